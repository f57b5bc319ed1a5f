"""The dedup-write: insert-if-absent into a Delta table, cheaply and safely.

Semantics are those of `MERGE ... WHEN NOT MATCHED INSERT` on the key, but
delta-rs `merge` materialises the whole target partition (5 GB RSS for 100k rows
into 5M). Instead we read only the key of the one partition, with the batch's
keys pushed into the scan, anti-join, and append the rest. A target may name
compact "key words" derived from the key (the events table: the first 128 bits of
the sha256 id as two int64 columns); then those are read instead of the key,
16 bytes a row rather than ~70, which is most of the cost at millions of rows.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, PostCommitHookProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from event_assets.storage.lake import polars_storage_options

if TYPE_CHECKING:
    # Imported where used: the code location imports this module, and polars
    # (~0.5 s) and pyarrow.dataset (which imports pandas, ~1 s) are run-time only.
    import polars as pl
    import pyarrow.dataset as pds

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
    # Columns of `schema` computed from the key by `key_words_of` (always: values
    # given for them are replaced) that stand in for the key in the dedup scan.
    key_words: tuple[str, ...] = ()
    key_words_of: Callable[[pa.ChunkedArray], Sequence[pa.Array]] | None = None
    # False for a writer that may not delete or overwrite objects: its commits skip the
    # checkpoint (which overwrites `_last_checkpoint`) and the log expiry (deletes).
    log_upkeep: bool = True

    @property
    def commit_hooks(self) -> PostCommitHookProperties:
        return PostCommitHookProperties(
            create_checkpoint=self.log_upkeep, cleanup_expired_logs=self.log_upkeep
        )


@dataclass(frozen=True, kw_only=True)
class WriteCounts:
    """What dedup-writes did, in numbers that add up (a merge sums its chunks')."""

    inserted: int = 0
    duplicates: int = 0
    files_added: int = 0
    bytes_added: int = 0
    attempts: int = 0
    repaired: int = 0
    duplicates_in_window: int = 0  # skipped because the key is in an `also_in` partition

    def __add__(self, other: WriteCounts) -> WriteCounts:
        return WriteCounts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(WriteCounts)}
        )

    def counts(self) -> dict[str, int]:
        """The counts alone (of a subclass too), by name."""
        return {f.name: getattr(self, f.name) for f in fields(WriteCounts)}


@dataclass(frozen=True, kw_only=True)
class WriteResult(WriteCounts):
    """What one dedup-write did; every number is plottable metadata."""

    version: int
    seconds: float


def commit_retries(max_attempts: int) -> Retrying:
    """Attempts of a Delta commit that may conflict with another writer: each attempt
    starts from a fresh snapshot; jittered exponential waits; the last error re-raised."""
    return Retrying(
        retry=retry_if_exception_type(CommitFailedError),
        stop=stop_after_attempt(max_attempts),
        wait=wait_random_exponential(multiplier=0.05, max=2.0),
        reraise=True,
    )


# -- opening tables: every Delta table of the lake is opened or created here ------------


def delta_options(storage_options: Mapping[str, str]) -> dict[str, str] | None:
    """Storage options as delta-rs takes them: None, not {}, when there are none."""
    return dict(storage_options) or None


def load_table(uri: str, storage_options: Mapping[str, str]) -> DeltaTable | None:
    """The table at `uri`, or None if nobody has created it yet."""
    try:
        return DeltaTable(uri, storage_options=delta_options(storage_options))
    except TableNotFoundError:
        return None


def create_table(
    uri: str, schema: pa.Schema, partition_by: Sequence[str], storage_options: Mapping[str, str]
) -> DeltaTable:
    """Open the table at `uri`, creating it empty with this schema and partitioning if
    absent (a concurrent creator wins the race; its table is returned)."""
    existing = load_table(uri, storage_options)
    if existing is not None:
        return existing
    try:
        return DeltaTable.create(
            uri,
            schema,
            mode="ignore",
            partition_by=list(partition_by) or None,
            storage_options=delta_options(storage_options),
        )
    except CommitFailedError:  # another writer created it first
        return DeltaTable(uri, storage_options=delta_options(storage_options))


def open_table(target: DeltaTarget) -> DeltaTable:
    """Open the target's table, creating it empty if absent (writers)."""
    partition_by = [target.partition_by] if target.partition_by else []
    return create_table(target.uri, target.schema, partition_by, target.storage_options)


def existing_table(target: DeltaTarget) -> DeltaTable | None:
    """The target's table, or None if nobody has written it yet (readers, maintenance)."""
    return load_table(target.uri, target.storage_options)


def require_table(target: DeltaTarget) -> DeltaTable:
    """The target's table, which must exist (TableNotFoundError otherwise)."""
    return DeltaTable(target.uri, storage_options=delta_options(target.storage_options))


def append(target: DeltaTarget, rows: pa.Table, *, max_attempts: int = 12) -> None:
    """Append rows as they are (no key check: for a log whose rows need none), creating
    the table if absent; a conflicting commit is retried from a fresh snapshot."""
    for attempt in commit_retries(max_attempts):
        with attempt:
            dt = open_table(target)
            write_deltalake(
                dt,
                rows.select(target.schema.names).cast(target.schema),
                mode="append",
                partition_by=[target.partition_by] if target.partition_by else None,
                commit_properties=CommitProperties(custom_metadata={OPERATION_KEY: "append"}),
                post_commithook_properties=target.commit_hooks,
            )


def dedup_write(
    target: DeltaTarget,
    rows: pa.Table,
    *,
    partition: str | None = None,
    also_in: Sequence[str] = (),
    max_attempts: int = 12,
) -> WriteResult:
    """Insert the rows whose key is not yet in the table (or partition); skip the rest.

    `partition` is the literal partition value every row must carry; it goes into
    every read and predicate so concurrent writers of other partitions never conflict.
    `also_in` names other partitions whose keys count as present too (the dedup
    window: a plain-JSON event re-published after midnight is dated the next day);
    they are only read, never written or repaired.
    """
    started = time.perf_counter()
    rows = _conform(target, rows, partition)
    unique_rows = first_per_key(rows, target.key, target.survivor_order)
    attempts = 0
    # Appends that committed, over all attempts: an attempt whose append landed but
    # whose repair then lost a commit race is retried, and the retry finds its own
    # rows present, so counting only the last attempt would drop those rows.
    appended: list[tuple[int, int, int]] = []
    for attempt in commit_retries(max_attempts):
        with attempt:
            attempts += 1
            version, repaired, elsewhere = _write_once(
                target, unique_rows, partition, also_in, appended
            )
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
        duplicates_in_window=elsewhere,
    )


def with_key_words(target: DeltaTarget, rows: pa.Table) -> pa.Table:
    """`rows` with the target's key words (re)computed from the key."""
    if not target.key_words:
        return rows
    if target.key_words_of is None:
        raise ValueError(f"{target.uri}: key_words without key_words_of")
    rows = rows.drop_columns([c for c in target.key_words if c in rows.column_names])
    words = target.key_words_of(rows[target.key])
    for name, column in zip(target.key_words, words, strict=True):
        rows = rows.append_column(name, column)
    return rows


def _conform(target: DeltaTarget, rows: pa.Table, partition: str | None) -> pa.Table:
    rows = with_key_words(target, rows).select(target.schema.names).cast(target.schema)
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
    import polars as pl

    if pl.Series(rows[key]).n_unique() == rows.num_rows:
        # Every key once (the usual batch): the group-by below would keep every row
        # in this order anyway; counting (polars: ~3 ms per 100k ids, pyarrow's
        # count_distinct ~15 ms) is far cheaper than grouping.
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
    return dt.to_pyarrow_dataset(file_pruning_predicate=_partition_filter(target, partition))


def _table_words(dt: DeltaTable, target: DeltaTarget) -> tuple[str, ...]:
    """The target's key words if this table has them; () for a table created before them
    (its writes then compare the key itself: correct, only slower)."""
    names = {f.name for f in dt.schema().fields}
    return target.key_words if all(w in names for w in target.key_words) else ()


def _table_schema(target: DeltaTarget, words: tuple[str, ...]) -> pa.Schema:
    missing = set(target.key_words) - set(words)
    return pa.schema([f for f in target.schema if f.name not in missing])


def _found(
    dt: DeltaTable,
    target: DeltaTarget,
    partitions: Sequence[str | None],
    batch: pl.DataFrame,
    columns: list[str],
) -> pl.DataFrame:
    """The compare `columns` (and the partition column, if any) of every stored row of
    `partitions` that matches a batch row (a key stored twice shows twice); reads
    those columns and nothing else.

    Polars' streaming Parquet reader with the batch's first column as an `is_in`
    filter (pushed into the scan) streams with bounded memory; at a 5M-row
    partition it reads the two int64 key words in ~0.05 s where the 64-character
    ids took 0.31 s (and a pyarrow dataset scan of them 1.39 s).
    """
    import polars as pl

    first = columns[0]
    wanted = batch.lazy().select(columns).unique()
    scans = []
    for partition in partitions:
        files = dt.file_uris(file_pruning_predicate=_partition_filter(target, partition))
        if not files:
            continue
        scan = (
            pl.scan_parquet(
                files,
                hive_partitioning=False,
                storage_options=polars_storage_options(target.storage_options),
            )
            .select(columns)
            .filter(pl.col(first).is_in(batch[first].implode()))
            .join(wanted, on=columns, how="semi")
        )
        # Delta keeps partition values in the log, not in the data files.
        scans.append(_with_partition(target, scan, partition))
    if not scans:
        return _with_partition(target, batch.lazy().select(columns).clear(), None).collect()
    return pl.concat(scans).collect(engine="streaming")


def stored_matches(target: DeltaTarget, partitions: Sequence[str], rows: pa.Table) -> pl.DataFrame:
    """(partition, key) of every stored row of `partitions` whose key is among `rows`'
    keys (a key stored twice shows twice): what a check needs to verify a write,
    read at the cost of the dedup-write's own scan. Empty without a table."""
    dt = existing_table(target)
    rows = with_key_words(target, rows)
    words = _table_words(dt, target) if dt is not None else target.key_words
    columns = _compare_columns(target, words)
    batch = _batch_frame(target, rows, words)
    if dt is None:
        found = _with_partition(target, batch.lazy().select(columns).clear(), None).collect()
    else:
        found = _found(dt, target, partitions, batch, columns)
    named = found.join(batch.unique(subset=columns), on=columns, how="left")
    keep = [target.partition_by, target.key] if target.partition_by else [target.key]
    return named.select(keep)


def _partition_filter(
    target: DeltaTarget, partition: str | None
) -> list[tuple[str, str, str]] | None:
    return [(target.partition_by, "=", str(partition))] if target.partition_by else None


def _with_partition(target: DeltaTarget, frame: pl.LazyFrame, value: str | None) -> pl.LazyFrame:
    import polars as pl

    if not target.partition_by:
        return frame
    return frame.with_columns(pl.lit(value, pl.String).alias(target.partition_by))


def _compare_columns(target: DeltaTarget, words: tuple[str, ...]) -> list[str]:
    """What the dedup scan compares: the table's key words, else the key."""
    return list(words) or [target.key]


def _batch_frame(target: DeltaTarget, rows: pa.Table, words: tuple[str, ...]) -> pl.DataFrame:
    import polars as pl

    frame = pl.DataFrame(rows.select([target.key, *words]))
    return frame.with_columns(pl.col(target.key).cast(pl.String))


def _write_once(
    target: DeltaTarget,
    rows: pa.Table,
    partition: str | None,
    also_in: Sequence[str],
    appended: list[tuple[int, int, int]],
) -> tuple[int, int, int]:
    """One read-append-repair pass; notes a committed append in `appended`
    (rows, files, bytes) at once, before anything else can fail. Returns the version,
    the rows repaired and the rows skipped for a key in an `also_in` partition."""
    import polars as pl

    dt = open_table(target)
    read_version = dt.version()
    words = _table_words(dt, target)
    rows = rows.select(_table_schema(target, words).names)
    columns = _compare_columns(target, words)
    batch = _batch_frame(target, rows, words)
    found = _found(dt, target, [partition, *also_in], batch, columns)
    here = found
    if target.partition_by and also_in:
        here = found.filter(pl.col(target.partition_by) == partition)
    needs_repair = here.height != here.unique().height
    present = found.select(columns).unique()
    elsewhere = present.height - here.select(columns).unique().height
    keep = (
        batch.select(columns)
        .with_row_index("__row")
        .join(present, on=columns, how="anti", maintain_order="left")["__row"]
    )
    new_rows = rows.take(keep.to_arrow())
    version = read_version
    if new_rows.num_rows:
        before = _partition_files(dt, target, partition)
        write_deltalake(
            dt,
            new_rows,
            mode="append",
            partition_by=[target.partition_by] if target.partition_by else None,
            commit_properties=CommitProperties(custom_metadata={OPERATION_KEY: "dedup_write"}),
            post_commithook_properties=target.commit_hooks,
        )
        appended.append((new_rows.num_rows, 0, 0))  # committed: count it whatever follows
        dt.update_incremental()
        version = dt.version()
        added = {
            p: s for p, s in _partition_files(dt, target, partition).items() if p not in before
        }
        appended[-1] = (new_rows.num_rows, len(added), sum(added.values()))
        needs_repair = needs_repair or version != read_version + 1
    repaired = _repair(dt, target, partition, batch, words) if needs_repair else 0
    if repaired:
        version = dt.version()
    return version, repaired, elsewhere


def _repair(
    dt: DeltaTable,
    target: DeltaTarget,
    partition: str | None,
    batch: pl.DataFrame,
    words: tuple[str, ...],
) -> int:
    """Replace every duplicated key of `batch` by its one survivor, atomically."""
    import polars as pl

    dt.update_incremental()
    columns = _compare_columns(target, words)
    found = _found(dt, target, [partition], batch, columns).select(columns)
    doubled = found.group_by(columns).len().filter(pl.col("len") > 1).drop("len")
    if doubled.height == 0:
        return 0
    dups = batch.join(doubled, on=columns, how="semi")[target.key].to_arrow().cast(pa.string())
    rows = _scan(dt, target, partition).to_table(filter=pc.field(target.key).isin(dups))
    survivors = first_per_key(rows, target.key, target.survivor_order)
    schema = _table_schema(target, words)
    write_deltalake(
        dt,
        survivors.select(schema.names).cast(schema),
        mode="overwrite",
        predicate=key_predicate(target, partition, dups.to_pylist()),
        partition_by=[target.partition_by] if target.partition_by else None,
        commit_properties=CommitProperties(custom_metadata={OPERATION_KEY: "dedup_repair"}),
        post_commithook_properties=target.commit_hooks,
    )
    dt.update_incremental()
    return int(rows.num_rows - survivors.num_rows)


DELETE_CHUNK = 1_000  # keys per delete predicate


def delete_keys(
    target: DeltaTarget,
    keys: Sequence[str],
    *,
    partition: str | None = None,
    max_attempts: int = 12,
) -> int:
    """Delete the rows with these keys (of one partition, if the table has them); the rows
    deleted. A commit that conflicts with another writer is retried on a fresh snapshot."""
    deleted = 0
    unique = sorted(set(keys))
    for start in range(0, len(unique), DELETE_CHUNK):
        predicate = key_predicate(target, partition, unique[start : start + DELETE_CHUNK])
        for attempt in commit_retries(max_attempts):
            with attempt:
                metrics = open_table(target).delete(
                    predicate,
                    commit_properties=CommitProperties(custom_metadata={OPERATION_KEY: "delete"}),
                    post_commithook_properties=target.commit_hooks,
                )
        deleted += int(metrics.get("num_deleted_rows", 0))
    return deleted


def key_predicate(target: DeltaTarget, partition: str | None, keys: list[str]) -> str:
    """A SQL predicate naming the partition literally and the keys explicitly."""
    listed = ", ".join(sql_literal(k) for k in keys)
    clause = f"{target.key} IN ({listed})"
    if target.partition_by:
        return f"{target.partition_by} = {sql_literal(str(partition))} AND {clause}"
    return clause


def sql_literal(value: str) -> str:
    """A SQL string literal for a delta-rs predicate (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def _partition_files(dt: DeltaTable, target: DeltaTarget, partition: str | None) -> dict[str, int]:
    actions = pa.table(dt.get_add_actions(flatten=True))
    if target.partition_by and len(actions):
        column = f"partition.{target.partition_by}"
        actions = actions.filter(pc.equal(actions[column].cast(pa.string()), partition))
    return dict(zip(actions["path"].to_pylist(), actions["size_bytes"].to_pylist(), strict=True))
