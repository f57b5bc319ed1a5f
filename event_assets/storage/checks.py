"""Data-quality facts about the `events` table, for the Dagster asset checks to report.

Each check returns a `CheckOutcome`: pass/fail, one line for a human, and plain
numbers for plotting. The checks read as little as they can: one partition
(named literally, so only its files are opened), only the columns they need, and
Parquet statistics where those answer the question. An absent table or an empty
partition is a normal state with a defined outcome, not an error.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import obstore
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.parquet as pq
from deltalake import DeltaTable

from event_assets.events.schema import REQUIRED_EVENT_COLUMNS
from event_assets.storage.delta import DeltaTarget
from event_assets.storage.lake import LANDING_DIR, Lake
from event_assets.storage.landing import MERGED_DIR, list_batches
from event_assets.storage.maintenance import existing_table

EXAMPLES = 5

Metadata = dict[str, int | float | str]


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one check: verdict, one line, and numeric or plain facts."""

    passed: bool
    description: str
    metadata: Metadata = field(default_factory=dict)


def unique_event_ids(target: DeltaTarget, partition: str) -> CheckOutcome:
    """No key occurs twice in the partition (the dedup-write's promise)."""
    keys = _column(target, partition, target.key)
    counts = pc.value_counts(keys)
    duplicated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    n = len(duplicated)
    description = (
        f"{len(keys)} rows, every {target.key} unique"
        if n == 0
        else f"{n} {target.key} values occur more than once in {len(keys)} rows"
    )
    return CheckOutcome(
        passed=n == 0,
        description=description,
        metadata={"rows": len(keys), "duplicate_ids": n, "examples": _examples(duplicated)},
    )


def required_columns_non_null(
    target: DeltaTarget, partition: str, columns: Sequence[str] = REQUIRED_EVENT_COLUMNS
) -> CheckOutcome:
    """No nulls in columns the schema declares required.

    Counted with a null filter per column, which Parquet null counts answer without
    decoding row groups that have none.
    """
    dataset = _dataset(target, partition)
    rows = dataset.count_rows() if dataset is not None else 0
    nulls = {
        c: (dataset.count_rows(filter=pc.field(c).is_null()) if dataset is not None else 0)
        for c in columns
    }
    bad = {c: n for c, n in nulls.items() if n}
    description = (
        f"{rows} rows, no nulls in {len(columns)} required columns"
        if not bad
        else "nulls in required columns: " + ", ".join(f"{c} ({n})" for c, n in bad.items())
    )
    metadata: Metadata = {"rows": rows, "columns_with_nulls": len(bad)}
    metadata.update({f"nulls_{c}": n for c, n in nulls.items()})
    return CheckOutcome(passed=not bad, description=description, metadata=metadata)


def landing_reconciliation(target: DeltaTarget, lake: Lake, partition: str) -> CheckOutcome:
    """Every landed event is in the table partition, and nothing else is.

    The landing zone is the raw log of everything acked, so a landed id missing
    from the table is lost data; more table rows than unique landed ids means rows
    arrived by another path (or duplicates).
    """
    landed = _landing_keys(lake, date.fromisoformat(partition), target.key)
    unique_landed = pc.unique(landed)
    table_keys = _column(target, partition, target.key)
    missing = unique_landed.filter(pc.invert(pc.is_in(unique_landed, value_set=table_keys)))
    n_missing, table_rows = len(missing), len(table_keys)
    passed = n_missing == 0 and table_rows == len(unique_landed)
    if passed:
        description = f"all {len(unique_landed)} landed ids are in the table, once each"
    elif n_missing:
        description = f"{n_missing} of {len(unique_landed)} landed ids are missing from the table"
    else:
        description = f"table has {table_rows} rows for {len(unique_landed)} unique landed ids"
    return CheckOutcome(
        passed=passed,
        description=description,
        metadata={
            "landing_rows": len(landed),
            "landing_ids": len(unique_landed),
            "table_rows": table_rows,
            "missing": n_missing,
            "examples": _examples(missing),
        },
    )


def freshness(
    target: DeltaTarget, now: datetime, max_lag: timedelta, *, column: str = "ingested_at"
) -> CheckOutcome:
    """The newest row was ingested at most `max_lag` ago.

    Read from the per-file max statistics in the Delta log (no data file opened);
    only if a file lacks them is the newest partition scanned.
    """
    dt = existing_table(target)
    newest = _newest(dt, target, column) if dt is not None else None
    if newest is None:
        return CheckOutcome(passed=False, description="no data", metadata={"rows": 0})
    newest_partition, newest_at = newest
    lag = (now - newest_at).total_seconds()
    passed = lag <= max_lag.total_seconds()
    verb = "within" if passed else "over"
    return CheckOutcome(
        passed=passed,
        description=f"newest {column} {newest_at.isoformat()} is {lag:.0f} s old, {verb} "
        f"the {max_lag.total_seconds():.0f} s allowed",
        metadata={
            "newest_partition": newest_partition,
            f"newest_{column}": newest_at.isoformat(),
            "lag_seconds": round(lag, 3),
            "max_lag_seconds": max_lag.total_seconds(),
        },
    )


def cross_partition_duplicates(target: DeltaTarget, partition: str) -> CheckOutcome:
    """Keys of the partition that also occur the day before or after.

    Not an error by the identity rule (the partition is part of the identity), but
    a sign of re-published plain-JSON events dated by their publish time: a warning.
    """
    day = date.fromisoformat(partition)
    keys = pc.unique(_column(target, partition, target.key))
    found: dict[str, pa.Array] = {}
    for name, other in (("previous", day - timedelta(days=1)), ("next", day + timedelta(days=1))):
        found[name] = (
            _column(target, other.isoformat(), target.key, only=keys)
            if len(keys)
            else pa.array([], pa.string())
        )
    shared = pc.unique(pa.concat_arrays([found["previous"], found["next"]]))
    n = len(shared)
    description = (
        f"none of {len(keys)} ids occur in an adjacent partition"
        if n == 0
        else f"{n} of {len(keys)} ids also occur in an adjacent partition"
    )
    return CheckOutcome(
        passed=n == 0,
        description=description,
        metadata={
            "ids": len(keys),
            "cross_partition_ids": n,
            "in_previous": len(pc.unique(found["previous"])),
            "in_next": len(pc.unique(found["next"])),
            "examples": _examples(shared),
        },
    )


def _dataset(target: DeltaTarget, partition: str) -> pds.Dataset | None:
    """The files of one partition (the literal prunes all others), or None without a table."""
    dt = existing_table(target)
    if dt is None:
        return None
    return _partition_dataset(dt, target, partition)


def _partition_dataset(dt: DeltaTable, target: DeltaTarget, partition: str) -> pds.Dataset:
    if target.partition_by is None:
        raise ValueError(f"{target.uri} is not partitioned")
    return dt.to_pyarrow_dataset(file_pruning_predicate=[(target.partition_by, "=", partition)])


def _column(
    target: DeltaTarget, partition: str, column: str, *, only: pa.Array | None = None
) -> pa.Array:
    """One column of one partition (optionally only values in `only`, pushed into the scan)."""
    dataset = _dataset(target, partition)
    if dataset is None:
        return pa.array([], target.schema.field(column).type)
    filter_ = pc.field(column).isin(only) if only is not None else None
    return dataset.to_table(columns=[column], filter=filter_)[column].combine_chunks()


def _landing_keys(lake: Lake, day: date, key: str) -> pa.Array:
    """The key column of every landing batch of the day (only that column is decoded)."""
    store = lake.store(LANDING_DIR)
    chunks = [
        pq.read_table(io.BytesIO(obstore.get(store, path).bytes().to_bytes()), columns=[key])[key]
        for path in list_batches(lake, day)
    ]
    if not chunks:
        return pa.array([], pa.string())
    return pa.chunked_array([c.cast(pa.string()) for c in chunks]).combine_chunks()


def _newest(dt: DeltaTable, target: DeltaTarget, column: str) -> tuple[str, datetime] | None:
    """(newest partition, newest value of `column`), from log statistics where possible.

    Files written without statistics are read instead, one partition literal each.
    """
    actions = pa.table(dt.get_add_actions(flatten=True))
    if len(actions):
        actions = actions.filter(pc.fill_null(pc.greater(actions["num_records"], 0), True))
    if len(actions) == 0:
        return None
    stat = f"max.{column}"
    maxima = actions[stat] if stat in actions.column_names else pa.nulls(len(actions))
    candidates = [v for v in maxima.to_pylist() if v is not None]
    newest_partition = ""
    if target.partition_by is None:
        if maxima.null_count:
            scanned = dt.to_pyarrow_dataset().to_table(columns=[column])
            candidates.append(pc.max(scanned[column]).as_py())
    else:
        values = actions[f"partition.{target.partition_by}"].cast(pa.string())
        newest_partition = str(pc.max(values).as_py())
        unstated = pc.unique(values.filter(pc.is_null(maxima))).to_pylist()
        for partition in unstated:
            scanned = _partition_dataset(dt, target, partition).to_table(columns=[column])
            candidates.append(pc.max(scanned[column]).as_py())
    known = [c for c in candidates if c is not None]
    if not known:
        return None
    newest_at: datetime = max(known)
    if newest_at.tzinfo is None:
        newest_at = newest_at.replace(tzinfo=UTC)
    return newest_partition, newest_at


def _examples(values: pa.Array) -> str:
    return ",".join(str(v) for v in sorted(values.to_pylist())[:EXAMPLES])


def accounting(lake: Lake, events: DeltaTarget, quarantine: DeltaTarget) -> CheckOutcome:
    """published = inserted + duplicates + quarantined (+ in flight), from storage alone.

    Storage cannot see Pub/Sub, so "published" here means every message copy that
    storage accepted: each landing row (every landed copy of a good event, including
    redeliveries and re-publishes) plus each quarantine row (a bad message is kept
    once per Pub/Sub message id, however often delivered). With rows keyed by
    `(event_date, event_id)`:

    - inserted    = rows of `events`;
    - in_flight   = landing rows of batches without a `_merged` marker whose key is
      not in `events` yet (acked, waiting for their run: normal and short-lived);
    - duplicates  = landing rows - inserted - in_flight (landed copies the
      dedup-write skipped);
    - quarantined = rows of `events_quarantine`.

    It passes iff `events` holds each key once, every key of `events` was landed,
    every key of a merged batch is in `events` (nothing lost) and quarantine message
    ids are unique. So `duplicates >= 0` and the sum holds exactly. Storage is read
    in the order markers -> tables -> landing, so a concurrent ingestion cannot make
    a consistent lake look inconsistent (a marker implies a committed append, a
    committed row implies a landed batch). Cost: the key columns of every landing
    batch and of both tables: a scheduled health check, not a per-run one.
    """
    merged_markers = set(_merged_paths(lake))
    table_keys = _all_keys(events)
    quarantine_ids = _all_column(quarantine, quarantine.key)
    table_key_set = set(table_keys)
    landing_paths = list_batches(lake)
    landed_keys: set[tuple[str, str]] = set()
    lost: set[tuple[str, str]] = set()
    landing_rows = in_flight = 0
    store = lake.store(LANDING_DIR)
    for path in landing_paths:
        raw = obstore.get(store, path).bytes().to_bytes()
        batch = pq.read_table(io.BytesIO(raw), columns=["event_date", events.key])
        keys = list(
            zip(
                batch["event_date"].cast(pa.string()).to_pylist(),
                batch[events.key].cast(pa.string()).to_pylist(),
                strict=True,
            )
        )
        landing_rows += len(keys)
        landed_keys.update(keys)
        absent = [k for k in keys if k not in table_key_set]
        if path in merged_markers:
            lost.update(absent)
        else:
            in_flight += len(absent)
    table_rows = len(table_keys)
    duplicated_rows = table_rows - len(table_key_set)
    not_landed = table_key_set - landed_keys
    duplicates = landing_rows - table_rows - in_flight
    quarantine_rows = len(quarantine_ids)
    quarantine_dup = quarantine_rows - len(set(quarantine_ids))
    published = landing_rows + quarantine_rows
    problems = [
        f"{duplicated_rows} duplicated rows in events" if duplicated_rows else "",
        f"{len(not_landed)} keys in events never landed" if not_landed else "",
        f"{len(lost)} keys of merged batches missing from events" if lost else "",
        f"{quarantine_dup} duplicated quarantine message ids" if quarantine_dup else "",
    ]
    passed = not any(problems)
    summary = (
        f"published {published} = inserted {table_rows} + duplicates {duplicates} + "
        f"quarantined {quarantine_rows} + in flight {in_flight}"
    )
    description = summary if passed else "; ".join(p for p in problems if p) + f" ({summary})"
    return CheckOutcome(
        passed=passed,
        description=description,
        metadata={
            "published": published,
            "landing_rows": landing_rows,
            "landing_batches": len(landing_paths),
            "inserted": table_rows,
            "duplicates": duplicates,
            "in_flight": in_flight,
            "quarantined": quarantine_rows,
            "duplicated_rows": duplicated_rows,
            "not_landed": len(not_landed),
            "lost": len(lost),
            "duplicated_quarantine_ids": quarantine_dup,
            "examples": ",".join(sorted(key for _, key in lost)[:EXAMPLES]),
        },
    )


def _merged_paths(lake: Lake) -> list[str]:
    prefix = f"{MERGED_DIR}/"
    store = lake.store(LANDING_DIR)
    return [
        str(meta["path"]).removeprefix(prefix)
        for chunk in obstore.list(store, prefix=prefix)
        for meta in chunk
    ]


def _all_keys(target: DeltaTarget) -> list[tuple[str, str]]:
    """(partition, key) of every row of a partitioned table (only those columns read)."""
    dt = existing_table(target)
    if dt is None or target.partition_by is None:
        return []
    table = dt.to_pyarrow_dataset().to_table(columns=[target.partition_by, target.key])
    return list(
        zip(
            table[target.partition_by].cast(pa.string()).to_pylist(),
            table[target.key].cast(pa.string()).to_pylist(),
            strict=True,
        )
    )


def _all_column(target: DeltaTarget, column: str) -> list[str]:
    dt = existing_table(target)
    if dt is None:
        return []
    return [str(v) for v in dt.to_pyarrow_dataset().to_table(columns=[column])[column].to_pylist()]
