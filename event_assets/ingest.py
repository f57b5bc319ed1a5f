"""The ingestion steps, as plain functions the CLI and the Dagster layer both call.

`pull_round`: pull a bounded round, decode, land good events, quarantine bad
ones, and only then ack. `merge_partition`: dedup-write landing batches of one
day into `events` and mark them merged. `ingest`: the CLI loop of both, which
first merges any batch a crashed process landed but never merged.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import cast

import logfire
import pyarrow as pa

from event_assets.decode_pool import DecodeOptions, Decoder
from event_assets.faults import checkpoint
from event_assets.observability import record_merge, record_pull
from event_assets.pubsub.client import RawPull, Subscription
from event_assets.settings import Settings
from event_assets.storage.delta import WriteResult, dedup_write
from event_assets.storage.lake import Lake
from event_assets.storage.landing import (
    LandedBatch,
    list_batches,
    mark_merged,
    parse_batch_path,
    pending_batches,
    read_batches,
)
from event_assets.storage.landing import land_batch as _land_batch
from event_assets.storage.tables import events_target, quarantine_target

MERGE_CHUNK_BATCHES = 20


def lake_of(settings: Settings) -> Lake:
    return Lake.from_uri(settings.LAKE_URI, google_service_account=settings.GOOGLE_SERVICE_ACCOUNT)


@dataclass
class LandResult:
    """One pull round: what came in and where it went."""

    pulled: int = 0
    landed: int = 0
    quarantined: int = 0
    batches: list[LandedBatch] = field(default_factory=list)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    def by_partition(self) -> dict[date, list[str]]:
        grouped: dict[date, list[str]] = defaultdict(list)
        for batch in self.batches:
            grouped[batch.partition].append(batch.path)
        return dict(sorted(grouped.items()))


@dataclass(frozen=True)
class MergeResult:
    """One partition's dedup-write of landing batches."""

    partition: date
    batches: int
    rows_read: int
    inserted: int
    duplicates: int
    version: int
    files_added: int
    bytes_added: int
    seconds: float
    attempts: int
    repaired: int
    table_uri: str


def partition_range(settings: Settings, now: datetime | None = None) -> tuple[date, date]:
    """Dates that have a partition: from the configured start to today (UTC)."""
    today = (now or datetime.now(UTC)).date()
    return settings.PARTITIONS_START_DATE, today


def pull_round(
    settings: Settings, subscription: Subscription, lake: Lake, *, now: datetime | None = None
) -> LandResult:
    """Pull up to the round's count/time budget, land or quarantine, then ack.

    Nothing is acked before it is durable: a crash anywhere here means redelivery.
    """
    started = time.perf_counter()
    with logfire.span("pull_round {subscription}", subscription=subscription.path) as span:
        result = _pull_round(settings, subscription, lake, now=now)
        span.set_attributes(
            {"pulled": result.pulled, "landed": result.landed, "quarantined": result.quarantined}
        )
    record_pull(result.pulled, result.landed, result.quarantined, time.perf_counter() - started)
    return result


def _pull_round(
    settings: Settings, subscription: Subscription, lake: Lake, *, now: datetime | None
) -> LandResult:
    earliest, latest = partition_range(settings, now)
    options = DecodeOptions(settings.MAX_MESSAGE_BYTES, earliest, latest)
    decoder = Decoder(options, settings.DECODE_WORKERS)
    ack_ids: list[str] = []
    # A background thread waits on the next Pull RPC (GIL released) while this one
    # hands the previous response to the decoder (worker processes, or this thread
    # with DECODE_WORKERS=0): pulling and decoding overlap.
    # Nothing is acked until everything is durable.
    for pulled in _prefetched(_pulls(settings, subscription)):
        ack_ids.extend(pulled.ack_ids)
        decoder.submit(pulled.payload)
    decoded = decoder.results()
    result = LandResult(pulled=len(ack_ids))
    if not ack_ids:
        return result
    checkpoint("after_pull")
    events = pa.concat_tables([part[0] for part in decoded])
    quarantine = pa.concat_tables([part[1] for part in decoded])
    checkpoint("before_landing")
    result.batches = _land_batch(lake, events, now=now)
    result.landed = events.num_rows
    checkpoint("after_landing")
    if quarantine.num_rows:
        write_quarantine(lake, quarantine, settings=settings, now=now)
        result.quarantined = quarantine.num_rows
        for code in quarantine["reason_code"].to_pylist():
            result.quarantine_reasons[code] = result.quarantine_reasons.get(code, 0) + 1
    checkpoint("before_ack")
    subscription.acknowledge(ack_ids)
    checkpoint("after_ack")
    return result


def _pulls(settings: Settings, subscription: Subscription) -> Iterator[RawPull]:
    """Pull responses until the round's count, byte or time budget is spent."""
    deadline = time.monotonic() + settings.PULL_TIMEOUT_SECONDS
    count = held = 0
    while count < settings.PULL_MAX_MESSAGES and held < settings.PULL_MAX_BYTES:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        want = min(settings.PULL_BATCH_SIZE, settings.PULL_MAX_MESSAGES - count)
        pulled = subscription.pull_raw(want, timeout=min(remaining, 5.0))
        if not len(pulled):
            break
        count += len(pulled)
        held += pulled.data_bytes
        yield pulled


_DONE = object()


def _prefetched(source: Iterator[RawPull], depth: int = 2) -> Iterator[RawPull]:
    """Run `source` in a background thread, at most `depth` items ahead of the consumer.

    An exception in the thread is re-raised here; if the consumer stops early the
    thread stops at its next item (so nothing is pulled that is never handed over).
    """
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            items.put(exc)
            return
        items.put(_DONE)

    worker = threading.Thread(target=run, name="pull-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(RawPull, item)
    finally:
        stop.set()
        worker.join()


def write_quarantine(
    lake: Lake, records: pa.Table, *, settings: Settings, now: datetime | None = None
) -> WriteResult:
    """Keep bad messages (raw bytes + reason), once per message id."""
    stamp = now or datetime.now(UTC)
    table = records.append_column(
        "quarantined_at", pa.array([stamp] * records.num_rows, pa.timestamp("us", tz="UTC"))
    )
    return dedup_write(quarantine_target(lake), table, max_attempts=settings.WRITE_MAX_ATTEMPTS)


def merge_partition(
    settings: Settings, lake: Lake, partition: date, paths: Iterable[str] | None = None
) -> MergeResult:
    """Dedup-write landing batches of one day into `events`, then mark them merged.

    `paths=None` re-merges every landing batch of the day (a backfill); merging is
    idempotent, so any batch may be merged any number of times.
    """
    with logfire.span("merge_partition {partition}", partition=partition.isoformat()) as span:
        merged = _merge_partition(settings, lake, partition, paths)
        span.set_attributes(
            {
                "inserted": merged.inserted,
                "duplicates": merged.duplicates,
                "batches": merged.batches,
            }
        )
    record_merge(partition.isoformat(), merged.inserted, merged.duplicates, merged.seconds)
    return merged


def _merge_partition(
    settings: Settings, lake: Lake, partition: date, paths: Iterable[str] | None
) -> MergeResult:
    started = time.perf_counter()
    if paths is None:
        batch_paths = list_batches(lake, partition)
    else:
        batch_paths = list(dict.fromkeys(paths))
        for path in batch_paths:
            parse_batch_path(path, partition=partition)
    target = events_target(lake)
    totals: defaultdict[str, int] = defaultdict(int)
    version = -1
    for chunk in _chunks(batch_paths):
        rows = read_batches(lake, chunk)
        checkpoint("before_commit")
        written = dedup_write(
            target, rows, partition=partition.isoformat(), max_attempts=settings.WRITE_MAX_ATTEMPTS
        )
        totals["rows_read"] += rows.num_rows
        for name in (
            "inserted",
            "duplicates",
            "files_added",
            "bytes_added",
            "attempts",
            "repaired",
        ):
            totals[name] += getattr(written, name)
        version = written.version
        checkpoint("after_commit")
        mark_merged(lake, chunk)
    return MergeResult(
        partition=partition,
        batches=len(batch_paths),
        version=version,
        seconds=round(time.perf_counter() - started, 3),
        table_uri=target.uri,
        **totals,
    )


def _chunks(paths: list[str]) -> Iterable[list[str]]:
    """Group batches so one dedup-write holds a bounded number of rows in memory.

    A batch holds at most one pull round (`PULL_MAX_MESSAGES`, 50k by default), so
    MERGE_CHUNK_BATCHES batches stay near a million rows.
    """
    for start in range(0, len(paths), MERGE_CHUNK_BATCHES):
        yield paths[start : start + MERGE_CHUNK_BATCHES]


@dataclass
class IngestSummary:
    """What `event-assets ingest` prints: one JSON line."""

    pulled: int = 0
    landed: int = 0
    quarantined: int = 0
    inserted: int = 0
    duplicates: int = 0
    batches: int = 0
    recovered_batches: int = 0
    rounds: int = 0
    seconds: float = 0.0

    def add_merge(self, merged: MergeResult) -> None:
        self.inserted += merged.inserted
        self.duplicates += merged.duplicates


def recover_pending(settings: Settings, lake: Lake) -> list[MergeResult]:
    """Merge batches landed (and acked) but never merged, e.g. after a crash."""
    grouped: dict[date, list[str]] = defaultdict(list)
    for path in pending_batches(lake):
        partition, _ = parse_batch_path(path)
        grouped[partition].append(path)
    return [merge_partition(settings, lake, day, paths) for day, paths in sorted(grouped.items())]


def ingest(
    settings: Settings,
    *,
    once: bool = True,
    stop: threading.Event | None = None,
    on_round: Callable[[IngestSummary], None] | None = None,
) -> IngestSummary:
    """Drain the subscription into the lake: pull -> decode -> land -> ack -> dedup-write."""
    started = time.perf_counter()
    lake = lake_of(settings)
    stop = stop or threading.Event()
    summary = IngestSummary()
    for merged in recover_pending(settings, lake):
        summary.recovered_batches += merged.batches
        summary.add_merge(merged)
    with Subscription(settings) as subscription:
        while not stop.is_set():
            landed = pull_round(settings, subscription, lake)
            summary.rounds += 1
            summary.pulled += landed.pulled
            summary.landed += landed.landed
            summary.quarantined += landed.quarantined
            summary.batches += len(landed.batches)
            for partition, paths in landed.by_partition().items():
                summary.add_merge(merge_partition(settings, lake, partition, paths))
            if on_round:
                on_round(summary)
            if landed.pulled == 0 and once:
                break
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary
