"""The landing zone: the immutable raw log of every accepted event.

A pulled batch is written here, one Parquet object per (partition, batch id),
before its messages are acked; that makes the ack safe. Objects are written with a
single put (local: staged file + rename; GCS: one PUT or a completed multipart
upload), so a reader never sees a partial file. Beside each batch, before its
messages are acked, an empty entry under `_pending/` says it still has to be
merged; the merge writes a marker under `_merged/` and then removes the entry.
Finding the work left is listing `_pending/`: it costs what is pending, not what
the landing zone has held. A pending batch is merged by the next run of its day,
which is how nothing acked is ever lost.
"""

from __future__ import annotations

import contextlib
import io
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import obstore
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

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
    """Write decoded events as one immutable Parquet object per event date, each
    followed by its `_pending/` entry.

    Adds `ingested_at` and `batch_id`; returns what was written. Durable on return.
    A crash between the two puts leaves a batch without an entry: it was not acked,
    so its messages come back and land again; the orphan is never merged.
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
        obstore.put(store, path, _to_parquet(part))
        obstore.put(store, f"{PENDING_DIR}/{path}", b"")
        landed.append(LandedBatch(day, batch_id, path, part.num_rows))
    return landed


def _to_parquet(table: pa.Table) -> bytes:
    # Read back whole by the merge, never filtered: no statistics, and no dictionary
    # pages (mostly unique strings). 30 % faster to write and 13 % smaller, measured.
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", use_dictionary=False, write_statistics=False)
    return sink.getvalue()


def read_batches(lake: Lake, paths: Iterable[str]) -> pa.Table:
    """Read landing batches into one table with the events schema."""
    store = lake.store(LANDING_DIR)
    tables = [
        pq.read_table(io.BytesIO(obstore.get(store, path).bytes().to_bytes())) for path in paths
    ]
    if not tables:
        return LANDED_EVENTS_SCHEMA.empty_table()
    return pa.concat_tables([t.cast(LANDED_EVENTS_SCHEMA) for t in tables])


def list_batches(lake: Lake, partition: date | None = None) -> list[str]:
    """Every landing batch of a partition (or of all partitions), oldest first."""
    prefix = f"event_date={partition.isoformat()}/" if partition else None
    return sorted(p for p in _list(lake, LANDING_DIR, prefix) if _KEY.match(p))


def mark_merged(lake: Lake, paths: Iterable[str]) -> None:
    """Record that these batches are in the table (idempotent): the `_merged/` marker
    first, then the `_pending/` entry goes (a crash between leaves it pending, and
    re-merging is idempotent)."""
    store = lake.store(LANDING_DIR)
    paths = list(paths)
    for path in paths:
        obstore.put(store, f"{MERGED_DIR}/{path}", b"")
    for path in paths:
        with contextlib.suppress(FileNotFoundError):  # already gone: merged before
            obstore.delete(store, f"{PENDING_DIR}/{path}")


def pending_batches(lake: Lake, partition: date | None = None) -> list[str]:
    """Landing batches not yet recorded as merged, oldest first: what a run must merge.

    Lists only the `_pending/` entries (of one day, or of all days)."""
    prefix = f"{PENDING_DIR}/event_date={partition.isoformat()}/" if partition else PENDING_DIR
    entries = (p.removeprefix(f"{PENDING_DIR}/") for p in _list(lake, LANDING_DIR, prefix))
    return sorted(p for p in entries if _KEY.match(p))


def pending_by_day(lake: Lake) -> dict[date, list[str]]:
    """Pending batches grouped by their day, days in order."""
    grouped: dict[date, list[str]] = {}
    for path in pending_batches(lake):
        grouped.setdefault(parse_batch_path(path)[0], []).append(path)
    return dict(sorted(grouped.items()))


def _list(lake: Lake, subdir: str, prefix: str | None) -> Iterator[str]:
    store = lake.store(subdir)
    for chunk in obstore.list(store, prefix=prefix):
        for meta in chunk:
            yield str(meta["path"])
