"""Data-quality facts about the `events` table, for the Dagster asset checks to report.

Each check returns a `CheckOutcome`: pass/fail, one line for a human, and plain
numbers for plotting. Two kinds: `MergeAudit` checks what one merge wrote, at the
cost of the merge (the batch's ids looked up in the day and its neighbours, the
batch's rows counted in memory), after every run; the whole-day functions below
re-read a day and run on a schedule. The checks read as little as they can: one partition
(named literally, so only its files are opened), only the columns they need, and
Parquet statistics where those answer the question. An absent table or an empty
partition is a normal state with a defined outcome, not an error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from event_assets.events.schema import REQUIRED_EVENT_COLUMNS
from event_assets.storage.deliveries import read_receipts
from event_assets.storage.delta import DeltaTarget, existing_table, stored_matches
from event_assets.storage.lake import Lake
from event_assets.storage.landing import (
    batch_time,
    list_batches,
    parse_batch_path,
    pending_batches,
    read_batches,
)

if TYPE_CHECKING:
    import pyarrow.dataset as pds  # imports pandas (~1 s); only annotations need it here

EXAMPLES = 5

Metadata = dict[str, int | float | str]


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one check: verdict, one line, and numeric or plain facts."""

    passed: bool
    description: str
    metadata: Metadata = field(default_factory=dict)


@dataclass
class ChunkFacts:
    """What committed merge rows look like in the table: one chunk's, or a merge's sum."""

    rows: int = 0
    ids: int = 0
    duplicated: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    in_previous: set[str] = field(default_factory=set)
    in_next: set[str] = field(default_factory=set)
    nulls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REQUIRED_EVENT_COLUMNS, 0))

    def add(self, other: ChunkFacts) -> None:
        self.rows += other.rows
        self.ids += other.ids
        self.duplicated |= other.duplicated
        self.missing |= other.missing
        self.in_previous |= other.in_previous
        self.in_next |= other.in_next
        for name, n in other.nulls.items():
            self.nulls[name] = self.nulls.get(name, 0) + n


@dataclass
class MergeAudit:
    """What the checks after a merge report, gathered chunk by chunk as it commits.

    After each chunk's commit, the chunk's ids are looked up in its day, the days of
    the dedup window before it and the day after (only the id words of the files of
    those days are read, filtered by the chunk's ids: the dedup-write's own scan), and
    its rows' required columns are counted for nulls in memory. So a check costs what
    the batch costs, not what the day holds, and keeps its meaning for what was merged:
    every merged id is in the table once, none is null where required.
    """

    partition: str
    window_days: int = 1
    total: ChunkFacts = field(default_factory=ChunkFacts)

    def inspect(self, target: DeltaTarget, rows: pa.Table) -> ChunkFacts:
        """Look one committed chunk (`rows` as read from landing) up in the table."""
        column = target.partition_by
        if column is None:
            raise ValueError(f"{target.uri} is not partitioned")
        facts = ChunkFacts(rows=rows.num_rows)
        for name in REQUIRED_EVENT_COLUMNS:
            facts.nulls[name] = rows[name].null_count if name in rows.column_names else 0
        if rows.num_rows == 0:
            return facts
        day = date.fromisoformat(self.partition)
        window = [(day - timedelta(days=n)).isoformat() for n in range(1, self.window_days + 1)]
        following = (day + timedelta(days=1)).isoformat()
        keys = pc.unique(rows[target.key].combine_chunks().cast(pa.string()))
        facts.ids = len(keys)
        found = stored_matches(
            target, [self.partition, *window, following], rows.select([target.key])
        )
        by_day = found.group_by([column, target.key]).len()
        here = by_day.filter(by_day[column] == self.partition)
        facts.duplicated = set(here.filter(here["len"] > 1)[target.key].to_list())
        present = set(here[target.key].to_list())
        in_window = set(by_day.filter(by_day[column].is_in(window))[target.key].to_list())
        after = set(by_day.filter(by_day[column] == following)[target.key].to_list())
        facts.missing = {k for k in keys.to_pylist() if k not in present and k not in in_window}
        facts.in_previous = present & in_window
        facts.in_next = present & after
        return facts

    def record(self, facts: ChunkFacts) -> None:
        """Count one chunk's facts into the merge's."""
        self.total.add(facts)

    def outcomes(self) -> dict[str, CheckOutcome]:
        """The four per-merge checks, by check name."""
        t = self.total
        bad_nulls = {c: n for c, n in t.nulls.items() if n}
        cross = t.in_previous | t.in_next
        return {
            "event_id_unique": _about_ids(
                t.duplicated,
                f"all {t.ids} merged ids occur once in {self.partition}",
                f"{len(t.duplicated)} of {t.ids} merged ids occur more than once in "
                f"{self.partition}",
                {"ids_checked": t.ids, "duplicate_ids": len(t.duplicated)},
            ),
            "required_columns_non_null": CheckOutcome(
                passed=not bad_nulls,
                description=(
                    f"{t.rows} merged rows, no nulls in {len(t.nulls)} required columns"
                    if not bad_nulls
                    else "nulls in required columns: "
                    + ", ".join(f"{c} ({n})" for c, n in bad_nulls.items())
                ),
                metadata={"rows_checked": t.rows, "columns_with_nulls": len(bad_nulls)},
            ),
            "landing_reconciliation": _about_ids(
                t.missing,
                f"all {t.ids} ids of the merged landing batches are in the table",
                f"{len(t.missing)} of {t.ids} ids of the merged landing batches are "
                "missing from the table",
                {"ids_checked": t.ids, "missing": len(t.missing)},
            ),
            "cross_partition_duplicates": _about_ids(
                cross,
                f"none of {t.ids} merged ids also occur on an adjacent day",
                f"{len(cross)} of {t.ids} merged ids also occur on an adjacent day",
                {
                    "ids_checked": t.ids,
                    "cross_partition_ids": len(cross),
                    "in_previous": len(t.in_previous),
                    "in_next": len(t.in_next),
                },
            ),
        }


def _about_ids(bad: set[str], passed: str, failed: str, metadata: Metadata) -> CheckOutcome:
    """An outcome that fails when `bad` holds ids, with a few of them as examples."""
    return CheckOutcome(
        passed=not bad,
        description=failed if bad else passed,
        metadata={**metadata, "examples": _examples(pa.array(sorted(bad), pa.string()))},
    )


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


def landing_reconciliation(
    target: DeltaTarget,
    lake: Lake,
    partition: str,
    *,
    now: datetime,
    stuck_after: timedelta,
    window_days: int = 1,
) -> CheckOutcome:
    """Every id of the day's merged landing batches is in the table (or, skipped as a
    duplicate, in the dedup window's days before), and the table holds no id that
    was never landed.

    The landing zone is the raw log of everything acked. Ids of batches still
    pending (landed, acked, waiting for their run) are reported as in flight, not
    missing; a pending batch older than `stuck_after` fails the check, because its
    run keeps failing or never comes.
    """
    day = date.fromisoformat(partition)
    pending = set(pending_batches(lake, day))
    batches = list_batches(lake, day)
    merged_ids = pc.unique(
        _landing_keys(lake, [b for b in batches if b not in pending], target.key)
    )
    pending_ids = pc.unique(_landing_keys(lake, sorted(pending), target.key))
    table_keys = _column(target, partition, target.key)
    window = [
        _column(target, (day - timedelta(days=n)).isoformat(), target.key, only=merged_ids)
        for n in range(1, window_days + 1)
    ]
    known = pa.chunked_array([table_keys, *window], pa.string())
    missing = merged_ids.filter(pc.invert(pc.is_in(merged_ids, value_set=known)))
    landed = pa.chunked_array([merged_ids, pending_ids], pa.string())
    never_landed = pc.unique(table_keys).filter(pc.invert(pc.is_in(pc.unique(table_keys), landed)))
    in_flight = pending_ids.filter(pc.invert(pc.is_in(pending_ids, value_set=table_keys)))
    stuck = [p for p in sorted(pending) if now - batch_time(p) > stuck_after]
    problems = [
        f"{len(missing)} of {len(merged_ids)} ids of merged batches are missing" if missing else "",
        f"{len(never_landed)} table ids were never landed" if len(never_landed) else "",
        f"{len(stuck)} batches pending for over {stuck_after.total_seconds():.0f} s"
        if stuck
        else "",
    ]
    passed = not any(problems)
    summary = (
        f"{len(merged_ids)} ids merged from {len(batches) - len(pending)} batches, "
        f"{len(in_flight)} in flight in {len(pending)} pending batches"
    )
    return CheckOutcome(
        passed=passed,
        description=summary if passed else "; ".join(p for p in problems if p) + f" ({summary})",
        metadata={
            "landing_ids": len(merged_ids),
            "table_rows": len(table_keys),
            "missing": len(missing),
            "never_landed": len(never_landed),
            "in_flight": len(in_flight),
            "pending_batches": len(pending),
            "stuck_batches": len(stuck),
            "examples": _examples(pa.concat_arrays([missing, never_landed.cast(pa.string())])),
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


def _landing_keys(lake: Lake, paths: Sequence[str], key: str) -> pa.Array:
    """The key column of landing batches (only that column is decoded)."""
    return read_batches(lake, paths, columns=[key])[key].cast(pa.string()).combine_chunks()


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
    """delivered = inserted + duplicates + quarantined + in flight, from the delivery
    receipts (`storage.deliveries`): counts the rounds and merges wrote apart from the
    tables, kept after landing retention has deleted the batches they name.

    - delivered   = copies the rounds receipted before acking (good, per landing
      batch; bad, per round);
    - unacked     = copies of batches landed by a round that died before its receipt
      (never acked, so delivered again), counted when merged;
    - inserted    = rows of `events`; duplicates = merged copies - inserted;
    - in flight   = copies of receipted batches still pending (acked, waiting for their
      run); quarantined = rows of `events_quarantine` (one per message id).

    It fails when a receipted batch is neither merged nor pending (lost: deleted or
    never written), when a merge read another row count than its round landed, when
    a day holds more rows than its merged and pending copies (rows nobody delivered),
    when `events` holds a key twice, or quarantine a message id twice. Receipts are
    read before and after listing pending batches, so a concurrent round or merge
    cannot make a consistent lake look inconsistent (a batch is pending before its
    landed receipt, and its merged receipt is written before it stops being pending).
    Rows of batches that have no receipt at all (landed before receipts existed) are
    counted apart, not judged. Cost: the receipts, the pending listing and the key,
    day and batch columns of `events`: a scheduled health check, not a per-run one.
    """
    import polars as pl

    before = read_receipts(lake)
    pending = set(pending_batches(lake))
    receipts = read_receipts(lake)
    landed, merged = receipts.landed, receipts.merged
    lost = sorted(p for p in before.landed if p not in merged and p not in pending)
    miscounted = sorted(p for p, n in merged.items() if p in landed and landed[p] != n)
    waiting = {p: n for p, n in landed.items() if p not in merged and p in pending}
    unacked = sum(n for p, n in merged.items() if p not in landed)
    copies: Counter[str] = Counter()  # day -> merged and pending copies
    for path, n in [*merged.items(), *waiting.items()]:
        copies[parse_batch_path(path)[0].isoformat()] += n
    receipted_ids = {parse_batch_path(p)[1] for p in [*landed, *merged]}

    dt = existing_table(events)
    rows = (
        pl.from_arrow(
            dt.to_pyarrow_dataset().to_table(columns=["event_date", events.key, "batch_id"])
        )
        if dt is not None
        else pl.DataFrame(
            schema={"event_date": pl.Date, events.key: pl.String, "batch_id": pl.String}
        )
    )
    assert isinstance(rows, pl.DataFrame)
    inserted = rows.height
    duplicated_rows = inserted - rows.select(pl.col(events.key).n_unique()).item()
    of_receipted = pl.col("batch_id").is_in(list(receipted_ids))
    by_day = rows.filter(of_receipted).group_by("event_date").len()
    undelivered = {str(day): n for day, n in by_day.iter_rows() if n > copies.get(str(day), 0)}
    unreceipted_rows = rows.filter(~of_receipted).height
    quarantine_ids = _all_column(quarantine, quarantine.key)
    quarantine_rows = len(quarantine_ids)
    quarantine_dup = quarantine_rows - len(set(quarantine_ids))
    delivered = sum(landed.values()) + receipts.quarantined
    in_flight = sum(waiting.values())
    duplicates = sum(merged.values()) - (inserted - unreceipted_rows)
    problems = [
        f"{len(lost)} receipted batches neither merged nor pending (lost), e.g. {lost[0]}"
        if lost
        else "",
        f"{len(miscounted)} batches merged with other row counts than landed, e.g. {miscounted[0]}"
        if miscounted
        else "",
        f"rows nobody delivered on {', '.join(sorted(undelivered))}" if undelivered else "",
        f"{duplicated_rows} duplicated rows in events" if duplicated_rows else "",
        f"{quarantine_dup} duplicated quarantine message ids" if quarantine_dup else "",
    ]
    passed = not any(problems)
    summary = (
        f"delivered {delivered} + unacked {unacked} = inserted {inserted - unreceipted_rows} "
        f"+ duplicates {duplicates} + bad copies {receipts.quarantined} + in flight {in_flight}"
        + (f" + lost {sum(before.landed[p] for p in lost)}" if lost else "")
        + f"; quarantined {quarantine_rows} messages"
        + (f"; {unreceipted_rows} rows from before receipts" if unreceipted_rows else "")
    )
    description = summary if passed else "; ".join(p for p in problems if p) + f" ({summary})"
    return CheckOutcome(
        passed=passed,
        description=description,
        metadata={
            "delivered": delivered,
            "unacked": unacked,
            "inserted": inserted,
            "duplicates": duplicates,
            "bad_copies": receipts.quarantined,
            "quarantined": quarantine_rows,
            "in_flight": in_flight,
            "lost_batches": len(lost),
            "miscounted_batches": len(miscounted),
            "undelivered_days": len(undelivered),
            "duplicated_rows": duplicated_rows,
            "quarantine_duplicated_ids": quarantine_dup,
            "unreceipted_rows": unreceipted_rows,
            "examples": ",".join((lost + miscounted)[:EXAMPLES]),
        },
    )


def _all_column(target: DeltaTarget, column: str) -> list[str]:
    dt = existing_table(target)
    if dt is None:
        return []
    return [str(v) for v in dt.to_pyarrow_dataset().to_table(columns=[column])[column].to_pylist()]
