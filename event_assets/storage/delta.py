"""The dedup-write: insert-if-absent into a Delta table, cheaply and safely.

Semantics are those of `MERGE ... WHEN NOT MATCHED INSERT` on the key, but
delta-rs `merge` materialises the whole target partition (5 GB RSS for 100k rows
into 5M). Instead we read only the key column of the one partition, with the
batch's keys pushed into the scan, anti-join, and append the rest.

An append is a blind commit, so two writers of one partition could both insert
a key they each found absent. Detect and repair: every writer notes the version
it read; if its own append did not land at the very next version, another
commit raced it, so it re-reads its keys and, where a key now has more than one
row, atomically replaces those rows by a single survivor (an overwrite with a
predicate, which delta-rs conflict-checks). The same repair runs whenever a
re-run finds a duplicate already present (a crash between append and repair),
so re-running a batch always heals it. Dagster also serializes same-partition
runs; this is the safety net under it. Conflicting commits (`CommitFailedError`)
are retried from a fresh read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

OPERATION_KEY = "event_assets.operation"


@dataclass(frozen=True)
class DeltaTarget:
    """A Delta table with a unique key and an optional partition column."""

    uri: str
    schema: pa.Schema
    key: str
    partition_by: str | None = None
    survivor_order: tuple[str, ...] = ()
    storage_options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WriteResult:
    """What a dedup-write did; every number is plottable metadata."""

    inserted: int
    duplicates: int
    version: int
    files_added: int
    bytes_added: int
    seconds: float
    attempts: int
    repaired: int


def open_table(target: DeltaTarget) -> DeltaTable:
    """Open the table, creating it empty (with its schema and partitioning) if absent."""
    try:
        return DeltaTable(target.uri, storage_options=target.storage_options or None)
    except TableNotFoundError:
        pass
    try:
        return DeltaTable.create(
            target.uri,
            target.schema,
            mode="ignore",
            partition_by=[target.partition_by] if target.partition_by else None,
            storage_options=target.storage_options or None,
        )
    except CommitFailedError:  # another writer created it first
        return DeltaTable(target.uri, storage_options=target.storage_options or None)


def dedup_write(
    target: DeltaTarget,
    rows: pa.Table,
    *,
    partition: str | None = None,
    max_attempts: int = 12,
) -> WriteResult:
    """Insert the rows whose key is not yet in the table (or partition); skip the rest.

    `partition` is the literal partition value every row must carry; it goes into
    every read and predicate so concurrent writers of other partitions never conflict.
    """
    started = time.perf_counter()
    rows = _conform(target, rows, partition)
    unique_rows = first_per_key(rows, target.key, target.survivor_order)
    attempts = 0
    # Appends that committed, over all attempts: an attempt whose append landed but
    # whose repair then lost a commit race is retried, and the retry finds its own
    # rows present, so counting only the last attempt would drop those rows.
    appended: list[tuple[int, int, int]] = []
    for attempt in Retrying(
        retry=retry_if_exception_type(CommitFailedError),
        stop=stop_after_attempt(max_attempts),
        wait=wait_random_exponential(multiplier=0.05, max=2.0),
        reraise=True,
    ):
        with attempt:
            attempts += 1
            version, repaired = _write_once(target, unique_rows, partition, appended)
    inserted = sum(a[0] for a in appended)
    return WriteResult(
        inserted=inserted,
        duplicates=rows.num_rows - inserted,
        version=version,
        files_added=sum(a[1] for a in appended),
        bytes_added=sum(a[2] for a in appended),
        seconds=round(time.perf_counter() - started, 3),
        attempts=attempts,
        repaired=repaired,
    )


def _conform(target: DeltaTarget, rows: pa.Table, partition: str | None) -> pa.Table:
    rows = rows.select(target.schema.names).cast(target.schema)
    if target.partition_by is None:
        return rows
    if partition is None:
        raise ValueError(f"{target.uri} is partitioned by {target.partition_by}: name a partition")
    values = pc.unique(rows[target.partition_by].cast(pa.string())).to_pylist()
    if any(v != partition for v in values):
        raise ValueError(f"rows for partitions {sorted(values)} given to partition {partition}")
    return rows


def first_per_key(rows: pa.Table, key: str, order: tuple[str, ...] = ()) -> pa.Table:
    """One row per key: the first by `order` (then input order)."""
    if rows.num_rows == 0:
        return rows
    if order and not all(_constant(rows[c]) for c in order):
        # (A stable sort by constant columns is the identity: one landing batch
        # shares its ingested_at and batch_id, so the usual case skips the sort.)
        rows = rows.sort_by([(c, "ascending") for c in order])
    if pc.count_distinct(rows[key]).as_py() == rows.num_rows:
        # Every key once (the usual batch): the group-by below would keep every row
        # in this order anyway; counting is ~5x cheaper than grouping 100k ids.
        return rows
    indexed = rows.append_column("__i", pa.array(range(rows.num_rows), pa.int64()))
    firsts = indexed.group_by(key, use_threads=False).aggregate([("__i", "min")])
    keep = pc.sort_indices(firsts["__i_min"])
    return rows.take(pc.take(firsts["__i_min"], keep))


def _constant(column: pa.ChunkedArray) -> bool:
    """Every value equal (all null counts as equal too)."""
    if column.null_count in (0, len(column)) and column.null_count:
        return True
    if column.null_count:
        return False
    bounds = pc.min_max(column)
    return bool(bounds["min"] == bounds["max"])


def _scan(dt: DeltaTable, target: DeltaTarget, partition: str | None) -> pds.Dataset:
    parts = [(target.partition_by, "=", partition)] if target.partition_by else None
    return dt.to_pyarrow_dataset(file_pruning_predicate=parts)


def _existing_keys(
    dt: DeltaTable, target: DeltaTarget, partition: str | None, keys: pa.Array
) -> pa.Array:
    """Keys of the batch already in the partition, with repeats (reads one column only).

    Polars' streaming Parquet reader with the batch's keys as an `is_in` filter:
    measured here at a 5M-row partition it reads the 5M 64-character ids in 0.31 s
    where a pyarrow dataset scan with the same filter took 1.39 s, with bounded
    memory (it streams morsels; it never holds the whole column).
    """
    parts = [(target.partition_by, "=", partition)] if target.partition_by else None
    files = dt.file_uris(file_pruning_predicate=parts)
    if not files:
        return pa.array([], pa.string())
    wanted = pl.Series(target.key, keys.cast(pa.string()), dtype=pl.String)
    found = (
        pl.scan_parquet(
            files,
            hive_partitioning=False,
            storage_options=target.storage_options or None,
        )
        .select(pl.col(target.key).cast(pl.String))
        .filter(pl.col(target.key).is_in(wanted.implode()))
        .collect(engine="streaming")
    )
    return found.to_series().to_arrow().cast(pa.string())


def _write_once(
    target: DeltaTarget,
    rows: pa.Table,
    partition: str | None,
    appended: list[tuple[int, int, int]],
) -> tuple[int, int]:
    """One read-append-repair pass; notes a committed append in `appended`
    (rows, files, bytes) at once, before anything else can fail."""
    dt = open_table(target)
    read_version = dt.version()
    keys = rows[target.key].combine_chunks()
    existing = _existing_keys(dt, target, partition, keys)
    needs_repair = len(existing) != len(pc.unique(existing))
    new_rows = rows.filter(pc.invert(pc.is_in(keys, value_set=pc.unique(existing))))
    version = read_version
    if new_rows.num_rows:
        before = _partition_files(dt, target, partition)
        write_deltalake(
            dt,
            new_rows,
            mode="append",
            partition_by=[target.partition_by] if target.partition_by else None,
            commit_properties=CommitProperties(custom_metadata={OPERATION_KEY: "dedup_write"}),
        )
        appended.append((new_rows.num_rows, 0, 0))  # committed: count it whatever follows
        dt.update_incremental()
        version = dt.version()
        added = {
            p: s for p, s in _partition_files(dt, target, partition).items() if p not in before
        }
        appended[-1] = (new_rows.num_rows, len(added), sum(added.values()))
        needs_repair = needs_repair or version != read_version + 1
    repaired = _repair(dt, target, partition, keys) if needs_repair else 0
    if repaired:
        version = dt.version()
    return version, repaired


def _repair(dt: DeltaTable, target: DeltaTarget, partition: str | None, keys: pa.Array) -> int:
    """Replace every duplicated key among `keys` by its one survivor, atomically."""
    dt.update_incremental()
    existing = _existing_keys(dt, target, partition, keys)
    counts = pc.value_counts(existing)
    dups = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if len(dups) == 0:
        return 0
    rows = _scan(dt, target, partition).to_table(filter=pc.field(target.key).isin(dups))
    survivors = first_per_key(rows, target.key, target.survivor_order)
    write_deltalake(
        dt,
        survivors.select(target.schema.names).cast(target.schema),
        mode="overwrite",
        predicate=key_predicate(target, partition, dups.to_pylist()),
        partition_by=[target.partition_by] if target.partition_by else None,
        commit_properties=CommitProperties(custom_metadata={OPERATION_KEY: "dedup_repair"}),
    )
    dt.update_incremental()
    return int(rows.num_rows - survivors.num_rows)


def key_predicate(target: DeltaTarget, partition: str | None, keys: list[str]) -> str:
    """A SQL predicate naming the partition literally and the keys explicitly."""
    listed = ", ".join(_sql_str(k) for k in keys)
    clause = f"{target.key} IN ({listed})"
    if target.partition_by:
        return f"{target.partition_by} = {_sql_str(str(partition))} AND {clause}"
    return clause


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _partition_files(dt: DeltaTable, target: DeltaTarget, partition: str | None) -> dict[str, int]:
    actions = pa.table(dt.get_add_actions(flatten=True))
    if target.partition_by and len(actions):
        column = f"partition.{target.partition_by}"
        actions = actions.filter(pc.equal(actions[column].cast(pa.string()), partition))
    return dict(zip(actions["path"].to_pylist(), actions["size_bytes"].to_pylist(), strict=True))
