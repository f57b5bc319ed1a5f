from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
from deltalake import ColumnProperties, DeltaTable, WriterProperties, write_deltalake

from event_assets.events.schema import EVENTS_TABLE_SCHEMA
from event_assets.storage.checks import (
    CheckOutcome,
    cross_partition_duplicates,
    freshness,
    landing_reconciliation,
    required_columns_non_null,
    unique_event_ids,
)
from event_assets.storage.delta import DeltaTarget, dedup_write, with_key_words
from event_assets.storage.lake import Lake
from event_assets.storage.landing import land_batch, mark_merged, read_batches
from event_assets.storage.tables import events_target

from .conftest import make_events

DAY = date(2026, 11, 20)
P = DAY.isoformat()
INGESTED = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)


def _ingest(
    lake: Lake,
    day: date,
    ids: range | list[int],
    *,
    target: DeltaTarget | None = None,
    now: datetime = INGESTED,
) -> pa.Table:
    """Land and dedup-write events, as ingestion does; returns the landed rows."""
    batches = land_batch(lake, make_events(day, ids), now=now)
    rows = read_batches(lake, [b.path for b in batches])
    dedup_write(target or events_target(lake), rows, partition=day.isoformat())
    mark_merged(lake, [b.path for b in batches])
    return rows


def _reconcile(lake: Lake, *, at: datetime = INGESTED + timedelta(minutes=1)) -> CheckOutcome:
    return landing_reconciliation(
        events_target(lake), lake, P, now=at, stuck_after=timedelta(minutes=30)
    )


def _event_id(i: int) -> str:
    return hashlib.sha256(f"e{i}".encode()).hexdigest()


def _all_checks(lake: Lake, partition: str) -> list[CheckOutcome]:
    target = events_target(lake)
    return [
        unique_event_ids(target, partition),
        required_columns_non_null(target, partition),
        landing_reconciliation(
            target, lake, partition, now=INGESTED, stuck_after=timedelta(minutes=30)
        ),
        cross_partition_duplicates(target, partition),
    ]


def test_every_check_passes_on_healthy_data(lake: Lake) -> None:
    _ingest(lake, DAY, range(100))
    _ingest(lake, DAY, range(50, 150))  # a re-delivery overlapping the first batch
    _ingest(lake, DAY + timedelta(days=2), range(10))  # same ids, not adjacent

    outcomes = _all_checks(lake, P)

    assert all(o.passed for o in outcomes), [o.description for o in outcomes]
    unique, non_null, reconciled, cross = outcomes
    assert unique.metadata == {"rows": 150, "duplicate_ids": 0, "examples": ""}
    assert non_null.metadata["rows"] == 150
    assert non_null.metadata["nulls_event_id"] == 0
    assert reconciled.metadata["landing_ids"] == reconciled.metadata["table_rows"] == 150
    assert reconciled.metadata["missing"] == 0
    assert cross.metadata["cross_partition_ids"] == 0
    fresh = freshness(events_target(lake), INGESTED + timedelta(minutes=1), timedelta(minutes=5))
    assert fresh.passed, fresh.description


@pytest.mark.parametrize("table_exists", [True, False])
def test_empty_partition_or_absent_table_has_a_defined_outcome(
    lake: Lake, table_exists: bool
) -> None:
    if table_exists:
        _ingest(lake, DAY - timedelta(days=5), range(3))
    unique, non_null, reconciled, cross = _all_checks(lake, P)
    assert unique.passed
    assert unique.metadata["rows"] == 0
    assert non_null.passed
    assert non_null.metadata["rows"] == 0
    assert reconciled.passed
    assert reconciled.metadata["table_rows"] == 0
    assert cross.passed
    if not table_exists:
        fresh = freshness(events_target(lake), INGESTED, timedelta(hours=1))
        assert not fresh.passed
        assert fresh.description == "no data"


def test_pending_batches_are_in_flight_until_stuck(lake: Lake) -> None:
    land_batch(lake, make_events(DAY, range(5)), now=INGESTED)
    waiting = _reconcile(lake)
    assert waiting.passed, waiting.description
    assert waiting.metadata["in_flight"] == 5
    stuck = _reconcile(lake, at=INGESTED + timedelta(hours=1))
    assert not stuck.passed
    assert stuck.metadata["stuck_batches"] == 1


def test_reconciliation_fails_when_merged_events_are_not_in_the_table(lake: Lake) -> None:
    batches = land_batch(lake, make_events(DAY, range(5)), now=INGESTED)
    mark_merged(lake, [b.path for b in batches])  # marked, but never written
    outcome = _reconcile(lake)
    assert not outcome.passed
    assert outcome.metadata["missing"] == 5


def test_duplicate_row_fails_unique_event_ids(lake: Lake) -> None:
    rows = _ingest(lake, DAY, range(20))
    write_deltalake(
        lake.events_uri, with_key_words(events_target(lake), rows.slice(3, 1)), mode="append"
    )

    outcome = unique_event_ids(events_target(lake), P)

    assert not outcome.passed
    assert outcome.metadata["rows"] == 21
    assert outcome.metadata["duplicate_ids"] == 1
    assert outcome.metadata["examples"] == rows["event_id"][3].as_py()


def test_null_in_a_required_column_fails_non_null(lake: Lake) -> None:
    # delta-rs refuses nulls in non-nullable columns, so corrupt a table whose
    # schema is a nullable copy of the real one.
    nullable = pa.schema([f.with_nullable(True) for f in EVENTS_TABLE_SCHEMA])
    target = replace(events_target(lake), schema=nullable)
    rows = _ingest(lake, DAY, range(10), target=target)
    bad = rows.slice(0, 1).set_column(0, "event_id", pa.array([_event_id(999)]))
    bad = with_key_words(target, bad).cast(nullable)
    bad = bad.set_column(
        bad.schema.get_field_index("event_time"),
        nullable.field("event_time"),
        pa.nulls(1, nullable.field("event_time").type),
    )
    write_deltalake(lake.events_uri, bad, mode="append")

    outcome = required_columns_non_null(target, P)

    assert not outcome.passed
    assert outcome.metadata["rows"] == 11
    assert outcome.metadata["nulls_event_time"] == 1
    assert outcome.metadata["nulls_data"] == 0
    assert outcome.metadata["columns_with_nulls"] == 1
    assert "event_time (1)" in outcome.description


def test_deleted_rows_fail_reconciliation(lake: Lake) -> None:
    _ingest(lake, DAY, range(30))
    gone = [_event_id(i) for i in (1, 2, 3)]
    listed = ", ".join(f"'{g}'" for g in gone)
    DeltaTable(lake.events_uri).delete(f"event_date = '{P}' AND event_id IN ({listed})")

    outcome = _reconcile(lake)

    assert not outcome.passed
    assert outcome.metadata["missing"] == 3
    assert outcome.metadata["table_rows"] == 27
    assert outcome.metadata["examples"] == ",".join(sorted(gone))


def test_freshness_fails_when_the_newest_row_is_too_old(lake: Lake) -> None:
    _ingest(lake, DAY, range(5), now=INGESTED - timedelta(hours=3))
    _ingest(lake, DAY - timedelta(days=1), range(5), now=INGESTED)
    target = events_target(lake)

    stale = freshness(target, INGESTED + timedelta(hours=2), timedelta(hours=1))
    fresh = freshness(target, INGESTED + timedelta(minutes=30), timedelta(hours=1))

    assert not stale.passed
    assert stale.metadata["lag_seconds"] == 7200
    assert stale.metadata["newest_partition"] == P
    assert fresh.passed
    assert fresh.metadata["lag_seconds"] == 1800


def test_events_in_adjacent_partitions_fail_cross_partition_check(lake: Lake) -> None:
    _ingest(lake, DAY, range(10))
    _ingest(lake, DAY - timedelta(days=1), [2, 100])
    _ingest(lake, DAY + timedelta(days=1), [2, 7, 200])
    _ingest(lake, DAY + timedelta(days=2), [5])  # not adjacent

    outcome = cross_partition_duplicates(events_target(lake), P)

    assert not outcome.passed
    assert outcome.metadata["cross_partition_ids"] == 2
    assert (outcome.metadata["in_previous"], outcome.metadata["in_next"]) == (1, 2)
    assert outcome.metadata["examples"] == ",".join(sorted([_event_id(2), _event_id(7)]))
    assert unique_event_ids(events_target(lake), P).passed


def test_freshness_reads_partitions_whose_files_lack_statistics(lake: Lake) -> None:
    _ingest(lake, DAY, range(3))
    older_day = DAY - timedelta(days=3)
    later = INGESTED + timedelta(hours=1)
    rows = read_batches(
        lake, [b.path for b in land_batch(lake, make_events(older_day, [9]), now=later)]
    )
    no_stats = WriterProperties(
        default_column_properties=ColumnProperties(statistics_enabled="NONE")
    )
    write_deltalake(
        lake.events_uri,
        with_key_words(events_target(lake), rows),
        mode="append",
        writer_properties=no_stats,
    )

    outcome = freshness(events_target(lake), later + timedelta(minutes=1), timedelta(minutes=5))

    assert outcome.passed, outcome.description
    assert outcome.metadata["lag_seconds"] == 60
    assert outcome.metadata["newest_partition"] == P
