"""The ingestion steps, as plain functions the CLI and the Dagster layer both call.

`pull_round`: pull a bounded round, decode, land good events, quarantine bad
ones, and only then ack. `merge_partition`: dedup-write landing batches of one
day into `events` and mark them merged. `ingest`: the CLI loop of both, which
first merges any batch a crashed process landed but never merged.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import cast

import pyarrow as pa
import pyarrow.compute as pc

from event_assets.decode_pool import DecodeOptions, Decoder, shared_pool
from event_assets.faults import PausePoint, checkpoint
from event_assets.observability import logfire_span, record_merge, record_pull
from event_assets.pubsub.client import PendingPull, RawPull, Subscription
from event_assets.settings import Settings
from event_assets.storage.checks import CheckOutcome, MergeAudit
from event_assets.storage.deliveries import record_landed, record_merged
from event_assets.storage.delta import (
    DeltaTarget,
    WriteCounts,
    WriteResult,
    dedup_write,
    existing_table,
)
from event_assets.storage.lake import Lake, StorageRetry
from event_assets.storage.landing import (
    LandedBatch,
    batch_path,
    by_day,
    list_batches,
    mark_merged,
    parse_batch_path,
    pending_batches,
    pending_by_day,
    read_batches,
)
from event_assets.storage.landing import land_batch as _land_batch
from event_assets.storage.maintenance import table_file_stats
from event_assets.storage.tables import (
    events_target,
    quarantine_target,
    reason_counts,
    value_counts,
)

MERGE_CHUNK_BATCHES = 20
PULLS_IN_FLIGHT = 3


def lake_of(settings: Settings) -> Lake:
    return Lake.from_uri(
        settings.LAKE_URI,
        google_service_account=settings.GOOGLE_SERVICE_ACCOUNT,
        retry=StorageRetry(
            max_retries=settings.STORAGE_MAX_RETRIES,
            retry_timeout_seconds=settings.STORAGE_RETRY_TIMEOUT_SECONDS,
            request_timeout_seconds=settings.STORAGE_REQUEST_TIMEOUT_SECONDS,
        ),
        can_delete=settings.STORAGE_CAN_DELETE,
    )


@dataclass
class LandResult:
    """One pull round: what came in and where it went."""

    pulled: int = 0
    landed: int = 0
    quarantined: int = 0
    batches: list[LandedBatch] = field(default_factory=list)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    drained: bool = False  # a Pull came back empty: the subscription had nothing more

    def add(self, other: LandResult) -> None:
        """Count another round into this one (a tick's sum of rounds)."""
        self.pulled += other.pulled
        self.landed += other.landed
        self.quarantined += other.quarantined
        self.batches.extend(other.batches)
        for code, n in other.quarantine_reasons.items():
            self.quarantine_reasons[code] = self.quarantine_reasons.get(code, 0) + n

    def by_partition(self) -> dict[date, list[str]]:
        return by_day(batch.path for batch in self.batches)


@dataclass(frozen=True, kw_only=True)
class MergeResult(WriteCounts):
    """One partition's dedup-writes of landing batches, their counts summed (a merge of
    nothing is zeros)."""

    partition: date
    batches: int
    version: int
    seconds: float
    table_uri: str
    rows_read: int = 0
    checks: dict[str, CheckOutcome] = field(default_factory=dict)
    day_rows: int = 0  # the day's rows after the merge (from the Delta log's file stats)
    newest_event_time: datetime | None = None  # of the rows read (merged or duplicate)
    newest_ingested_at: datetime | None = None  # when the newest of them landed
    committed_at: datetime | None = None  # after the last commit (or mark) of the merge

    @property
    def event_lag_seconds(self) -> float | None:
        """From the newest event time read to the commit: how stale the day's newest row is."""
        return _seconds_between(self.newest_event_time, self.committed_at)

    @property
    def landing_lag_seconds(self) -> float | None:
        """From the newest landing read to the commit: the wait in the landing zone."""
        return _seconds_between(self.newest_ingested_at, self.committed_at)


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 3)


def partition_range(settings: Settings, now: datetime | None = None) -> tuple[date, date]:
    """Dates that have a partition: from the configured start to today (UTC)."""
    today = (now or datetime.now(UTC)).date()
    return settings.PARTITIONS_START_DATE, today


@dataclass
class PulledRound:
    """A round pulled and decoded but not yet landed or acked (see :func:`land_round`)."""

    ack_ids: list[str]
    events: pa.Table | None
    quarantine: pa.Table | None
    started: float  # time.perf_counter() when its pulling began
    drained: bool = False  # a Pull came back empty
    # Pull responses the decode pool decoded (the rest were decoded in this process):
    # a span attribute, so a pool that is not doing the work shows.
    in_workers: int = 0


def pull_round(
    settings: Settings, subscription: Subscription, lake: Lake, *, now: datetime | None = None
) -> LandResult:
    """Pull up to the round's count/time budget, land or quarantine, then ack.

    Nothing is acked before it is durable: a crash anywhere here means redelivery.
    """
    with logfire_span("pull_round {subscription}", subscription=subscription.path):
        return land_round(
            settings, subscription, lake, pull_decoded(settings, subscription, now=now), now=now
        )


def pull_decoded(
    settings: Settings, subscription: Subscription, *, now: datetime | None = None
) -> PulledRound:
    """The first half of a round: pull and decode, nothing written or acked."""
    started = time.perf_counter()
    # The accepted range is judged as each response is decoded, not here (see DecodeOptions).
    options = DecodeOptions.from_settings(settings, now=now)
    decoder = Decoder(options, shared_pool(settings.DECODE_WORKERS))
    ack_ids: list[str] = []
    state = _PullState()
    # A background thread waits on the next Pull RPCs (GIL released) while this one
    # hands the previous response to the decoder (worker processes, or this thread
    # with DECODE_WORKERS=0): pulling and decoding overlap.
    for pulled in _prefetched(_pulls(settings, subscription, state)):
        ack_ids.extend(pulled.ack_ids)
        decoder.submit(pulled.payload)
    decoded = decoder.results()
    if not ack_ids:
        return PulledRound([], None, None, started, drained=True)
    events = pa.concat_tables([part[0] for part in decoded])
    quarantine = pa.concat_tables([part[1] for part in decoded])
    return PulledRound(
        ack_ids,
        events,
        quarantine,
        started,
        drained=state.empty_pull,
        in_workers=decoder.in_workers,
    )


def land_round(
    settings: Settings,
    subscription: Subscription,
    lake: Lake,
    pulled: PulledRound,
    *,
    now: datetime | None = None,
) -> LandResult:
    """The second half of a round: land good events, quarantine bad ones, then ack.

    Nothing is acked before it is durable: a crash anywhere here means redelivery.
    """
    with logfire_span("land_round {subscription}", subscription=subscription.path) as span:
        result = _land_round(settings, subscription, lake, pulled, now=now)
        span.set_attributes(
            {
                "pulled": result.pulled,
                "landed": result.landed,
                "quarantined": result.quarantined,
                "responses_decoded_in_workers": pulled.in_workers,
            }
        )
    seconds = time.perf_counter() - pulled.started
    record_pull(result.pulled, result.landed, result.quarantined, seconds)
    return result


def _land_round(
    settings: Settings,
    subscription: Subscription,
    lake: Lake,
    pulled: PulledRound,
    *,
    now: datetime | None,
) -> LandResult:
    result = LandResult(pulled=len(pulled.ack_ids), drained=pulled.drained)
    events, quarantine = pulled.events, pulled.quarantine
    if events is None or quarantine is None:
        return result
    checkpoint(PausePoint.AFTER_PULL)
    deadline = settings.ACK_DEADLINE_SECONDS
    with subscription.leased(pulled.ack_ids, deadline, lease_interval(deadline)):
        checkpoint(PausePoint.BEFORE_LANDING)
        result.batches = _land_batch(lake, events, now=now)
        result.landed = events.num_rows
        checkpoint(PausePoint.AFTER_LANDING)
        if quarantine.num_rows:
            write_quarantine(lake, quarantine, settings=settings, now=now)
            result.quarantined = quarantine.num_rows
            result.quarantine_reasons = reason_counts(quarantine)
        record_landed(
            lake, result.batches, result.quarantined, max_attempts=settings.WRITE_MAX_ATTEMPTS
        )
    checkpoint(PausePoint.BEFORE_ACK)
    subscription.acknowledge(pulled.ack_ids)
    checkpoint(PausePoint.AFTER_ACK)
    return result


def _rows_by_batch(partition: date, rows: pa.Table) -> dict[str, int]:
    """Landing path -> rows, of landed rows of one day (a day's batch is named by its id)."""
    return {batch_path(partition, b): n for b, n in value_counts(rows["batch_id"]).items()}


def lease_interval(ack_deadline_seconds: int) -> float:
    """How often a round being landed has its lease extended: a third of the deadline, so
    one lost extension still leaves time for the next. A fast landing sends none."""
    return ack_deadline_seconds / 3


@dataclass
class _PullState:
    empty_pull: bool = False  # the round ended on an empty Pull, not on a budget


def _pulls(settings: Settings, subscription: Subscription, state: _PullState) -> Iterator[RawPull]:
    """Pull responses until the round's count, byte or time budget is spent or a
    pull comes back empty.

    Up to `PULLS_IN_FLIGHT` Pull RPCs are outstanding at once (one at a time, the
    round waited on each round trip). Requested counts never add up past
    `PULL_MAX_MESSAGES`; a pull is only issued while the bytes held plus the pulls
    in flight, each counted as large as the largest response so far, fit in
    `PULL_MAX_BYTES` (so only the first pulls can overshoot it).
    """
    deadline = time.monotonic() + settings.PULL_TIMEOUT_SECONDS
    asked = held = largest = 0  # asked: messages received plus those requested in flight
    drained = False
    in_flight: deque[tuple[int, PendingPull]] = deque()
    try:
        while True:
            while (
                not drained
                and len(in_flight) < PULLS_IN_FLIGHT
                and asked < settings.PULL_MAX_MESSAGES
                and held + len(in_flight) * largest < settings.PULL_MAX_BYTES
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    drained = True
                    break
                want = min(settings.PULL_BATCH_SIZE, settings.PULL_MAX_MESSAGES - asked)
                in_flight.append((want, subscription.start_pull(want, min(remaining, 5.0))))
                asked += want
            if not in_flight:
                return
            want, pending = in_flight.popleft()
            pulled = pending.result()
            asked -= want - len(pulled)
            if not len(pulled):
                drained = state.empty_pull = True  # nothing more; collect what is in flight
                continue
            held += pulled.payload_bytes
            largest = max(largest, pulled.payload_bytes)
            yield pulled
    finally:
        for _, pending in in_flight:  # only if the consumer stopped early
            pending.cancel()


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


@dataclass
class DrainResult:
    """What one sensor tick pulled: rounds back to back until empty or out of time."""

    total: LandResult = field(default_factory=LandResult)
    rounds: int = 0
    seconds: float = 0.0
    stopped_on_budget: bool = False  # stopped with messages possibly left (a backlog)

    def summary(self) -> dict[str, int | float | bool]:
        return {
            "pulled": self.total.pulled,
            "landed": self.total.landed,
            "quarantined": self.total.quarantined,
            "rounds": self.rounds,
            "seconds": self.seconds,
            "backlog_left": self.stopped_on_budget,
        }


def drain(
    settings: Settings, subscription: Subscription, lake: Lake, *, budget_seconds: float
) -> DrainResult:
    """Pull rounds back to back until a Pull comes back empty or the next round might
    not finish within `budget_seconds`.

    Each round is landed, quarantined and acked before the next is pulled, so memory
    holds one round and a crash loses nothing acked. A round is assumed to take as
    long as the longest so far; the budget keeps a tick inside Dagster's sensor
    timeout, and a tick that stops on it says so (the next tick carries on).
    """
    started = time.monotonic()
    result = DrainResult()
    longest = 0.0
    while True:
        began = time.monotonic()
        landed = pull_round(settings, subscription, lake)
        result.total.add(landed)
        result.rounds += 1
        now = time.monotonic()
        longest = max(longest, now - began)
        if landed.drained or not landed.pulled:
            break
        if now - started + longest > budget_seconds:
            result.stopped_on_budget = True
            break
    result.seconds = round(time.monotonic() - started, 3)
    return result


def write_quarantine(
    lake: Lake, records: pa.Table, *, settings: Settings, now: datetime | None = None
) -> WriteResult:
    """Keep bad messages (raw bytes + reason), once per message id."""
    stamp = now or datetime.now(UTC)
    stamps = pa.repeat(pa.scalar(stamp, pa.timestamp("us", tz="UTC")), records.num_rows)
    table = records.append_column("quarantined_at", stamps)
    return dedup_write(quarantine_target(lake), table, max_attempts=settings.WRITE_MAX_ATTEMPTS)


def merge_partition(
    settings: Settings,
    lake: Lake,
    partition: date,
    paths: Iterable[str] | None = None,
    *,
    pending: bool = False,
) -> MergeResult:
    """Dedup-write landing batches of one day into `events`, then mark them merged.

    `pending=True` merges every batch of the day still pending when the merge starts
    (a routine run: one run takes whatever landed before it, so runs coalesce);
    otherwise `paths`, or with `paths=None` every landing batch of the day (a
    backfill). Merging is idempotent, so any batch may be merged any number of times.
    Keys already in the `DEDUP_WINDOW_DAYS` days before count as present too.
    """
    if pending:
        paths = pending_batches(lake, partition)
    with logfire_span("merge_partition {partition}", partition=partition.isoformat()) as span:
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
    window = [
        (partition - timedelta(days=n)).isoformat()
        for n in range(1, settings.DEDUP_WINDOW_DAYS + 1)
    ]
    audit = MergeAudit(partition.isoformat(), window_days=settings.DEDUP_WINDOW_DAYS)
    write = partial(
        dedup_write,
        target,
        partition=partition.isoformat(),
        also_in=window,
        max_attempts=settings.WRITE_MAX_ATTEMPTS,
    )
    totals = WriteCounts()
    rows_read = 0
    newest: defaultdict[str, list[datetime]] = defaultdict(list)  # each chunk's, per column
    version = -1
    for chunk in _chunks(batch_paths):
        rows = read_batches(lake, chunk)
        for column in ("event_time", "ingested_at"):
            if rows.num_rows:
                newest[column].append(pc.max(rows[column]).as_py())
        checkpoint(PausePoint.BEFORE_COMMIT)
        written = write(rows)
        rows_read += rows.num_rows
        totals += written
        version = written.version
        checkpoint(PausePoint.AFTER_COMMIT)
        record_merged(
            lake, _rows_by_batch(partition, rows), max_attempts=settings.WRITE_MAX_ATTEMPTS
        )
        mark_merged(lake, chunk)
        facts = audit.inspect(target, rows)
        if facts.duplicated:
            # Another writer of the day appended the same ids and has not repaired yet
            # (Dagster runs one merge per day; this is the net under it): the
            # dedup-write repairs what it finds, then look again.
            write(rows)
            facts = audit.inspect(target, rows)
        audit.record(facts)
    committed_at = datetime.now(UTC)
    if version < 0:
        version = _table_version(target)
    return MergeResult(
        partition=partition,
        batches=len(batch_paths),
        version=version,
        seconds=round(time.perf_counter() - started, 3),
        table_uri=target.uri,
        checks=audit.outcomes(),
        day_rows=table_file_stats(target, [partition.isoformat()]).rows,
        newest_event_time=max(newest["event_time"], default=None),
        newest_ingested_at=max(newest["ingested_at"], default=None),
        committed_at=committed_at,
        rows_read=rows_read,
        **totals.counts(),
    )


def _table_version(target: DeltaTarget) -> int:
    """The table's version (-1 without a table): what a merge of nothing leaves."""
    table = existing_table(target)
    return -1 if table is None else table.version()


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

    def add_round(self, landed: LandResult, merged: list[MergeResult]) -> None:
        self.pulled += landed.pulled
        self.landed += landed.landed
        self.quarantined += landed.quarantined
        self.batches += len(landed.batches)
        for one in merged:
            self.add_merge(one)


def recover_pending(settings: Settings, lake: Lake) -> list[MergeResult]:
    """Merge batches landed (and acked) but never merged, e.g. after a crash."""
    return [
        merge_partition(settings, lake, day, paths) for day, paths in pending_by_day(lake).items()
    ]


def ingest(
    settings: Settings,
    *,
    once: bool = True,
    stop: threading.Event | None = None,
    on_round: Callable[[IngestSummary], None] | None = None,
) -> IngestSummary:
    """Drain the subscription into the lake: pull -> decode -> land -> ack -> dedup-write.

    Rounds overlap: while one round is landed, acked and merged in a background
    thread (mostly Parquet and Delta work in native code that releases the GIL),
    the next round is pulled and decoded. Each round still lands before it is acked
    and is acked before it is merged; at most two rounds are held in memory.
    """
    started = time.perf_counter()
    lake = lake_of(settings)
    stop = stop or threading.Event()
    summary = IngestSummary()
    for merged in recover_pending(settings, lake):
        summary.recovered_batches += merged.batches
        summary.add_merge(merged)
    # The summary is updated, and `on_round` called, as soon as a round is merged.
    counting = threading.Lock()

    def finish(pulled: PulledRound) -> None:
        landed, merged = _finish_round(settings, subscription, lake, pulled)
        with counting:
            summary.add_round(landed, merged)
            if on_round:
                on_round(summary)

    with (
        Subscription(settings) as subscription,
        ThreadPoolExecutor(1, thread_name_prefix="land-and-merge") as finisher,
    ):
        finishing: Future[None] | None = None
        while not stop.is_set():
            pulled = pull_decoded(settings, subscription)
            with counting:
                summary.rounds += 1
            if finishing is not None:
                _result_or_release(finishing, subscription, pulled)
                finishing = None
            if pulled.ack_ids:
                finishing = finisher.submit(finish, pulled)
            elif on_round:
                with counting:
                    on_round(summary)
            if not pulled.ack_ids and once:
                break
        if finishing is not None:
            finishing.result()
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _result_or_release(
    finishing: Future[None], subscription: Subscription, pulled: PulledRound
) -> None:
    """Wait for the previous round; if it failed, the round just pulled (never to be
    landed) is handed back to Pub/Sub at once instead of after its ack deadline."""
    try:
        finishing.result()
    except BaseException:
        with contextlib.suppress(Exception):
            subscription.nack(pulled.ack_ids)
        raise


def _finish_round(
    settings: Settings, subscription: Subscription, lake: Lake, pulled: PulledRound
) -> tuple[LandResult, list[MergeResult]]:
    landed = land_round(settings, subscription, lake, pulled)
    merged = [
        merge_partition(settings, lake, partition, paths)
        for partition, paths in landed.by_partition().items()
    ]
    return landed, merged
