"""Table maintenance: compact small files, vacuum unreferenced ones, keep the log short.

Every dedup-write appends at least one small file, so a busy partition collects
thousands of them and reads slow down. `compact` rewrites one partition at a
time, naming it literally in the filter: an optimize commit only removes files it
read and adds files with `dataChange=false`, so it never conflicts with blind
appends into the same or any other partition. A conflict with a rewrite (a
dedup repair) raises `CommitFailedError` and is retried from a fresh snapshot.

`vacuum` deletes files that the table stopped referencing at least
`retention_hours` ago; readers of an older snapshot (time travel, long queries)
need them until then, so we refuse anything below Delta's one-week default unless
the caller says so. It then writes a checkpoint and drops expired log files.

A missing table is not an error: a fresh deployment runs maintenance before the
first ingestion, and there is simply nothing to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import obstore
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable

from event_assets.faults import PausePoint, checkpoint
from event_assets.storage.delta import (
    OPERATION_KEY,
    DeltaTarget,
    commit_retries,
    existing_table,
    require_table,
)
from event_assets.storage.lake import Lake
from event_assets.storage.retention import SAFE_RETENTION_HOURS, retention_problem

DELTA_LOG_DIR = "_delta_log"

_T = TypeVar("_T")


@dataclass(frozen=True)
class FileStats:
    """A count of data files, their total size and (from the log's stats) their rows."""

    files: int
    bytes: int
    rows: int = 0


@dataclass(frozen=True)
class CompactResult:
    """What a compaction did; every number is plottable metadata."""

    partitions: int
    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    files_added: int
    files_removed: int
    version: int
    seconds: float


@dataclass(frozen=True)
class VacuumResult:
    """What a vacuum freed on storage (files counted physically, not from the log)."""

    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    files_deleted: int
    retention_hours: int
    checkpoint_version: int
    seconds: float


def table_file_stats(target: DeltaTarget, partitions: Sequence[str] | None = None) -> FileStats:
    """Data files of the current snapshot, optionally only those of some partitions."""
    dt = existing_table(target)
    if dt is None:
        return FileStats(0, 0)
    return _snapshot_stats(dt, target, partitions)


def storage_file_stats(lake: Lake, table_dir: str) -> FileStats:
    """Every data file physically under the table (not `_delta_log/`): what vacuum can free.

    The snapshot counts only referenced files; this also counts the ones compaction
    and repairs removed from the log, and orphans of crashed writers.
    """
    files = size = 0
    for chunk in obstore.list(lake.store(table_dir)):
        for meta in chunk:
            if str(meta["path"]).startswith(f"{DELTA_LOG_DIR}/"):
                continue
            files += 1
            size += int(meta["size"])
    return FileStats(files, size)


def compact(
    target: DeltaTarget,
    partitions: Sequence[str],
    *,
    target_size: int | None = None,
    max_attempts: int = 12,
) -> CompactResult:
    """Bin-pack the small files of each named partition, one commit per partition.

    An unpartitioned table is compacted whole: pass no partitions. Partitions
    already compact are left alone (optimize is idempotent and commits nothing).
    """
    started = time.perf_counter()
    partitions = list(dict.fromkeys(partitions))
    if target.partition_by is None and partitions:
        raise ValueError(f"{target.uri} is not partitioned: compact it with no partitions")
    dt = existing_table(target)
    if dt is None:
        return CompactResult(0, 0, 0, 0, 0, 0, 0, 0, _since(started))
    selection = partitions if target.partition_by else None
    before = _snapshot_stats(dt, target, selection)
    added = removed = 0
    filters: list[list[tuple[str, str, Any]] | None] = (
        [[(target.partition_by, "=", p)] for p in partitions] if target.partition_by else [None]
    )
    for partition_filter in filters:
        metrics = _with_retries(max_attempts, _compact_once, target, partition_filter, target_size)
        added += int(metrics.get("numFilesAdded", 0))
        removed += int(metrics.get("numFilesRemoved", 0))
    dt = require_table(target)
    after = _snapshot_stats(dt, target, selection)
    return CompactResult(
        partitions=len(partitions),
        files_before=before.files,
        files_after=after.files,
        bytes_before=before.bytes,
        bytes_after=after.bytes,
        files_added=added,
        files_removed=removed,
        version=dt.version(),
        seconds=_since(started),
    )


def _compact_once(
    target: DeltaTarget,
    partition_filter: list[tuple[str, str, Any]] | None,
    target_size: int | None,
) -> dict[str, Any]:
    dt = require_table(target)  # a fresh snapshot on every attempt
    checkpoint(PausePoint.BEFORE_COMPACT_COMMIT)
    metrics: dict[str, Any] = dt.optimize.compact(
        partition_filters=partition_filter,
        target_size=target_size,
        commit_properties=CommitProperties(custom_metadata={OPERATION_KEY: "compact"}),
    )
    return metrics


def recently_touched_partitions(target: DeltaTarget, since: datetime) -> list[str]:
    """Partitions holding a file added at or after `since`: what an hourly compaction needs.

    Compaction's own output counts as a touch, so a partition is looked at once more
    the next hour; optimize then finds nothing to do and commits nothing.
    """
    if target.partition_by is None:
        raise ValueError(f"{target.uri} is not partitioned")
    dt = existing_table(target)
    if dt is None:
        return []
    actions = pa.table(dt.get_add_actions(flatten=True))
    if len(actions) == 0:
        return []
    since_ms = int(since.timestamp() * 1000)
    recent = actions.filter(pc.greater_equal(actions["modification_time"], since_ms))
    values = pc.unique(recent[f"partition.{target.partition_by}"].cast(pa.string()))
    return sorted(str(v) for v in values.to_pylist() if v is not None)


def vacuum(
    target: DeltaTarget,
    lake: Lake,
    *,
    retention_hours: int = SAFE_RETENTION_HOURS,
    allow_below_default: bool = False,
    full: bool = True,
    max_attempts: int = 12,
) -> VacuumResult:
    """Delete files unreferenced for `retention_hours`, then checkpoint and drop expired logs.

    `full` also deletes files never committed (orphans of crashed writers) once they
    are older than the retention; below the default retention that could hit an
    in-flight write, which is one more reason the default is enforced.
    """
    started = time.perf_counter()
    if retention_hours < 0:
        raise ValueError(f"retention_hours must not be negative, got {retention_hours}")
    problem = retention_problem(retention_hours, allow_below_default)
    if problem:
        raise ValueError(f"{problem}; pass allow_below_default=True to do it anyway")
    dt = existing_table(target)
    if dt is None:
        return VacuumResult(0, 0, 0, 0, 0, retention_hours, 0, _since(started))
    table_dir = _table_dir(lake, target)
    before = storage_file_stats(lake, table_dir)
    deleted = _with_retries(
        max_attempts, _vacuum_once, target, retention_hours, allow_below_default, full
    )
    dt = require_table(target)
    dt.create_checkpoint()
    dt.cleanup_metadata()
    after = storage_file_stats(lake, table_dir)
    return VacuumResult(
        files_before=before.files,
        files_after=after.files,
        bytes_before=before.bytes,
        bytes_after=after.bytes,
        files_deleted=len(deleted),
        retention_hours=retention_hours,
        checkpoint_version=dt.version(),
        seconds=_since(started),
    )


def _vacuum_once(
    target: DeltaTarget, retention_hours: int, allow_below_default: bool, full: bool
) -> list[str]:
    dt = require_table(target)
    checkpoint(PausePoint.BEFORE_VACUUM)
    deleted: list[str] = dt.vacuum(
        retention_hours=retention_hours,
        dry_run=False,
        enforce_retention_duration=not allow_below_default,
        full=full,
        commit_properties=CommitProperties(custom_metadata={OPERATION_KEY: "vacuum"}),
    )
    return deleted


def _table_dir(lake: Lake, target: DeltaTarget) -> str:
    prefix = lake.root.rstrip("/") + "/"
    if not target.uri.startswith(prefix):
        raise ValueError(f"table {target.uri} is not under the lake {lake.root}")
    return target.uri.removeprefix(prefix).strip("/")


def _snapshot_stats(
    dt: DeltaTable, target: DeltaTarget, partitions: Sequence[str] | None
) -> FileStats:
    actions = pa.table(dt.get_add_actions(flatten=True))
    if partitions is not None and len(actions):
        if target.partition_by is None:
            raise ValueError(f"{target.uri} is not partitioned")
        column = actions[f"partition.{target.partition_by}"].cast(pa.string())
        wanted = pa.array(list(partitions), pa.string())
        actions = actions.filter(pc.is_in(column, value_set=wanted))
    if len(actions) == 0:
        return FileStats(0, 0)
    rows = pc.sum(actions["num_records"]).as_py() if "num_records" in actions.column_names else 0
    return FileStats(len(actions), int(pc.sum(actions["size_bytes"]).as_py()), int(rows or 0))


def _with_retries(max_attempts: int, fn: Callable[..., _T], *args: Any) -> _T:
    """Run `fn` again on a commit conflict (each attempt loads a fresh snapshot)."""
    return commit_retries(max_attempts)(fn, *args)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)
