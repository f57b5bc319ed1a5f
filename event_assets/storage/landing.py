"""The landing zone: the immutable raw log of every accepted event.

A pulled batch is written here, one Parquet object per (partition, batch id),
before its messages are acked; that makes the ack safe. Objects are written with a
single put (local: staged file + rename; GCS: one PUT or a completed multipart
upload), so a reader never sees a partial file. A batch lands under `_pending/`:
there it still has to be merged, and finding the work left is listing `_pending/`
(it costs what is pending, not what the landing zone has held). The merge moves it
to `_merged/` (a rename: on GCS a server-side copy, then the delete). So landing
retention is a rule on `_merged/` alone: a batch that is not merged is never
deleted by age. A pending batch is merged by the next run of its day, which is how
nothing acked is ever lost.

Batches landed before this layout are an empty entry under `_pending/` or
`_merged/` beside the data at the bare path; they are read, listed and merged as
before (`_read`, `list_batches`).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import obstore
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from obstore.store import ObjectStore

from event_assets.events.schema import LANDED_EVENTS_SCHEMA
from event_assets.storage.lake import LANDING_DIR, Lake

MERGED_DIR = "_merged"
PENDING_DIR = "_pending"
_KEY = re.compile(r"^event_date=(\d{4}-\d{2}-\d{2})/([0-9A-Za-z_-]+)\.parquet$")


class LandingPathError(ValueError):
    """A batch path does not name a landing batch of the expected partition."""


@dataclass(frozen=True)
class LandedBatch:
    """One Parquet object in the landing zone."""

    partition: date
    batch_id: str
    path: str
    rows: int


def new_batch_id(now: datetime | None = None) -> str:
    """A time-sortable, collision-free batch id (UTC timestamp + random suffix)."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(6)}"


def batch_time(path_or_id: str) -> datetime:
    """When a batch was landed, from its id (or path): ids start with the UTC time."""
    batch_id = path_or_id.rsplit("/", 1)[-1]
    return datetime.strptime(batch_id[:21], "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)


def batch_path(partition: date, batch_id: str) -> str:
    return f"event_date={partition.isoformat()}/{batch_id}.parquet"


def parse_batch_path(path: str, *, partition: date | None = None) -> tuple[date, str]:
    """Validate a landing key (e.g. from run config) and return (partition, batch id)."""
    match = _KEY.match(path)
    if not match:
        raise LandingPathError(
            f"not a landing batch path: {path!r} (expected event_date=YYYY-MM-DD/<id>.parquet)"
        )
    found = date.fromisoformat(match.group(1))
    if partition is not None and found != partition:
        raise LandingPathError(f"batch {path!r} belongs to {found}, not partition {partition}")
    return found, match.group(2)


def land_batch(
    lake: Lake, events: pa.Table, *, batch_id: str | None = None, now: datetime | None = None
) -> list[LandedBatch]:
    """Write decoded events as one immutable Parquet object per event date, under
    `_pending/`.

    Adds `ingested_at` and `batch_id`; returns what was written. Durable on return.
    """
    if events.num_rows == 0:
        return []
    batch_id = batch_id or new_batch_id(now)
    ingested_at = now or datetime.now(UTC)
    rows = events.num_rows
    table = events.append_column(
        "ingested_at", pa.repeat(pa.scalar(ingested_at, pa.timestamp("us", tz="UTC")), rows)
    ).append_column("batch_id", pa.repeat(pa.scalar(batch_id, pa.string()), rows))
    table = table.select(LANDED_EVENTS_SCHEMA.names).cast(LANDED_EVENTS_SCHEMA)
    store = lake.store(LANDING_DIR)
    landed: list[LandedBatch] = []
    dates = pc.unique(table["event_date"]).to_pylist()
    for day in sorted(dates):
        part = table.filter(pc.equal(table["event_date"], pa.scalar(day, pa.date32())))
        path = batch_path(day, batch_id)
        obstore.put(store, f"{PENDING_DIR}/{path}", _to_parquet(part))
        landed.append(LandedBatch(day, batch_id, path, part.num_rows))
    return landed


def _to_parquet(table: pa.Table) -> bytes:
    # Read back whole by the merge, never filtered: no statistics, and no dictionary
    # pages (mostly unique strings). 30 % faster to write and 13 % smaller, measured.
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", use_dictionary=False, write_statistics=False)
    return sink.getvalue()


def read_batches(lake: Lake, paths: Iterable[str], columns: list[str] | None = None) -> pa.Table:
    """Read landing batches (pending or merged) into one table with the events schema
    (only `columns` of it, decoding nothing else, if given)."""
    store = lake.store(LANDING_DIR)
    schema = LANDED_EVENTS_SCHEMA
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    tables = [pq.read_table(io.BytesIO(_read(store, path)), columns=columns) for path in paths]
    if not tables:
        return schema.empty_table()
    return pa.concat_tables([t.cast(schema) for t in tables])


def _read(store: ObjectStore, path: str) -> bytes:
    """A batch's bytes wherever it is: pending, or merged meanwhile by another run."""
    try:
        data = obstore.get(store, f"{PENDING_DIR}/{path}").bytes().to_bytes()
    except FileNotFoundError:
        data = obstore.get(store, f"{MERGED_DIR}/{path}").bytes().to_bytes()
    return data or obstore.get(store, path).bytes().to_bytes()  # empty: the legacy layout


def list_batches(lake: Lake, partition: date | None = None) -> list[str]:
    """Every landing batch of a partition (or of all partitions), pending or merged,
    oldest first: what a backfill of the day re-merges."""
    if partition is None:
        listed = _list(lake, LANDING_DIR, None)
    else:
        day = f"event_date={partition.isoformat()}"
        listed = itertools.chain.from_iterable(
            _list(lake, LANDING_DIR, prefix)
            for prefix in (f"{PENDING_DIR}/{day}", f"{MERGED_DIR}/{day}", day)  # day: legacy
        )
    found = {p.removeprefix(f"{PENDING_DIR}/").removeprefix(f"{MERGED_DIR}/") for p in listed}
    return sorted(p for p in found if _KEY.match(p))


def mark_merged(lake: Lake, paths: Iterable[str]) -> None:
    """Record that these batches are in the table: move each from `_pending/` to
    `_merged/` (idempotent: one already moved, by this run's earlier attempt or by
    another run, is left as it is). On GCS the move is a copy, then the delete: a crash
    between leaves the batch pending too, and re-merging it is idempotent."""
    store = lake.store(LANDING_DIR)
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            obstore.rename(store, f"{PENDING_DIR}/{path}", f"{MERGED_DIR}/{path}")


def pending_batches(lake: Lake, partition: date | None = None) -> list[str]:
    """Landing batches not yet recorded as merged, oldest first: what a run must merge.

    Lists only the `_pending/` entries (of one day, or of all days)."""
    prefix = f"{PENDING_DIR}/event_date={partition.isoformat()}/" if partition else PENDING_DIR
    entries = (p.removeprefix(f"{PENDING_DIR}/") for p in _list(lake, LANDING_DIR, prefix))
    return sorted(p for p in entries if _KEY.match(p))


def by_day(paths: Iterable[str]) -> dict[date, list[str]]:
    """Batch paths grouped by their day (days in order, paths in the order given)."""
    grouped: dict[date, list[str]] = {}
    for path in paths:
        grouped.setdefault(parse_batch_path(path)[0], []).append(path)
    return dict(sorted(grouped.items()))


def pending_by_day(lake: Lake) -> dict[date, list[str]]:
    """Pending batches grouped by their day, days in order."""
    return by_day(pending_batches(lake))


def _list(lake: Lake, subdir: str, prefix: str | None) -> Iterator[str]:
    store = lake.store(subdir)
    for chunk in obstore.list(store, prefix=prefix):
        for meta in chunk:
            yield str(meta["path"])
