from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from event_assets.storage.delta import WriteResult, dedup_write
from event_assets.storage.lake import EVENTS_TABLE, Lake
from event_assets.storage.landing import land_batch, read_batches
from event_assets.storage.maintenance import (
    CompactResult,
    compact,
    recently_touched_partitions,
    storage_file_stats,
    table_file_stats,
    vacuum,
)
from event_assets.storage.tables import events_target

from .conftest import make_events

DAY = date(2026, 11, 20)
OTHER = date(2026, 11, 21)


def _write(lake: Lake, day: date, ids: range | list[int]) -> WriteResult:
    batches = land_batch(lake, make_events(day, ids))
    rows = read_batches(lake, [b.path for b in batches])
    return dedup_write(events_target(lake), rows, partition=day.isoformat())


def _small_files(lake: Lake, day: date, writes: int, per_write: int = 5) -> None:
    for i in range(writes):
        _write(lake, day, range(i * per_write, (i + 1) * per_write))


def _ids(lake: Lake, day: date, version: int | None = None) -> list[str]:
    dt = DeltaTable(lake.events_uri, version=version)
    dataset = dt.to_pyarrow_dataset(file_pruning_predicate=[("event_date", "=", day.isoformat())])
    return list(dataset.to_table(columns=["event_id"])["event_id"].to_pylist())


def _paths(lake: Lake, day: date) -> set[str]:
    actions = pa.table(DeltaTable(lake.events_uri).get_add_actions(flatten=True))
    return {
        p
        for p, d in zip(
            actions["path"].to_pylist(), actions["partition.event_date"].to_pylist(), strict=True
        )
        if d == day
    }


def test_compact_rewrites_one_partition_into_one_file(lake: Lake) -> None:
    target = events_target(lake)
    _small_files(lake, DAY, 20)
    _small_files(lake, OTHER, 3)
    ids_before, other_before = sorted(_ids(lake, DAY)), _paths(lake, OTHER)

    result = compact(target, [DAY.isoformat()])

    assert (result.partitions, result.files_before, result.files_after) == (1, 20, 1)
    assert (result.files_removed, result.files_added) == (20, 1)
    assert result.bytes_after < result.bytes_before
    assert sorted(_ids(lake, DAY)) == ids_before
    assert len(ids_before) == 100
    assert _paths(lake, OTHER) == other_before
    assert table_file_stats(target, [DAY.isoformat()]).files == 1
    assert table_file_stats(target).files == 4
    last = DeltaTable(lake.events_uri).history(1)[0]
    assert last["operation"] == "OPTIMIZE"
    assert last["event_assets.operation"] == "compact"


def test_compacting_a_compact_partition_commits_nothing(lake: Lake) -> None:
    target = events_target(lake)
    _small_files(lake, DAY, 3)
    first = compact(target, [DAY.isoformat()])
    again = compact(target, [DAY.isoformat()])
    assert again.version == first.version
    assert (again.files_before, again.files_after, again.files_removed) == (1, 1, 0)


def test_maintenance_of_an_absent_table_does_nothing(lake: Lake) -> None:
    target = events_target(lake)
    compacted = compact(target, [DAY.isoformat()])
    assert (compacted.files_before, compacted.files_after, compacted.version) == (0, 0, 0)
    result = vacuum(target, lake)
    assert (result.files_before, result.files_after, result.files_deleted) == (0, 0, 0)
    assert recently_touched_partitions(target, datetime(2000, 1, 1, tzinfo=UTC)) == []
    assert table_file_stats(target).files == 0
    assert not DeltaTable.is_deltatable(lake.events_uri)


def _race(*fns: Callable[[], object]) -> list[object]:
    """Run the functions in threads released at once; each one's result or exception."""
    start = threading.Barrier(len(fns))
    results: list[object] = [None] * len(fns)

    def run(i: int, fn: Callable[[], object]) -> None:
        start.wait()
        try:
            results[i] = fn()
        except Exception as exc:  # noqa: BLE001 - the caller asserts on it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_ingestion_into_the_same_partition_during_compaction_never_fails(lake: Lake) -> None:
    target = events_target(lake)
    _small_files(lake, DAY, 10)
    expected = 50
    for round_ in range(3):
        new_ids = list(range(1000 + 100 * round_, 1000 + 100 * round_ + 40))
        overlap = list(range(10)) + new_ids  # ten ids already present
        compacted, written = _race(
            partial(compact, target, [DAY.isoformat()]), partial(_write, lake, DAY, overlap)
        )

        assert isinstance(compacted, CompactResult), compacted
        assert isinstance(written, WriteResult), written
        assert (written.inserted, written.duplicates) == (40, 10)
        expected += 40
        ids = _ids(lake, DAY)
        assert len(ids) == len(set(ids)) == expected


def test_recently_touched_partitions_are_those_with_new_files(lake: Lake) -> None:
    target = events_target(lake)
    _write(lake, DAY, range(5))
    actions = pa.table(DeltaTable(lake.events_uri).get_add_actions(flatten=True))
    after_day = max(actions["modification_time"].to_pylist()) + 1
    _write(lake, OTHER, range(5))

    since = datetime.fromtimestamp(after_day / 1000, tz=UTC)
    assert recently_touched_partitions(target, since) == [OTHER.isoformat()]
    long_ago = since - timedelta(days=1)
    assert recently_touched_partitions(target, long_ago) == [DAY.isoformat(), OTHER.isoformat()]
    assert recently_touched_partitions(target, since + timedelta(days=1)) == []


def test_vacuum_refuses_retention_below_the_default(lake: Lake) -> None:
    _write(lake, DAY, range(5))
    with pytest.raises(ValueError, match="below Delta's safe default of 168 h"):
        vacuum(events_target(lake), lake, retention_hours=0)


def test_vacuum_with_default_retention_keeps_recently_removed_files(lake: Lake) -> None:
    target = events_target(lake)
    _small_files(lake, DAY, 4)
    compact(target, [DAY.isoformat()])
    result = vacuum(target, lake)
    assert result.files_deleted == 0
    assert result.files_before == result.files_after == 5
    assert result.retention_hours == 168


def test_vacuum_deletes_files_compaction_removed(lake: Lake) -> None:
    target = events_target(lake)
    _small_files(lake, DAY, 20)
    old_version = DeltaTable(lake.events_uri).version()
    storage_before = storage_file_stats(lake, EVENTS_TABLE)
    snapshot = table_file_stats(target)
    assert (storage_before.files, storage_before.bytes) == (snapshot.files, snapshot.bytes)
    assert snapshot.rows == 100
    compact(target, [DAY.isoformat()])
    # Until vacuum, the old files serve time travel.
    assert sorted(_ids(lake, DAY, version=old_version)) == sorted(_ids(lake, DAY))

    result = vacuum(target, lake, retention_hours=0, allow_below_default=True)

    assert (result.files_before, result.files_after, result.files_deleted) == (21, 1, 20)
    assert result.bytes_after < result.bytes_before
    storage_after, snapshot = storage_file_stats(lake, EVENTS_TABLE), table_file_stats(target)
    assert (storage_after.files, storage_after.bytes) == (snapshot.files, snapshot.bytes)
    assert len(_ids(lake, DAY)) == len(set(_ids(lake, DAY))) == 100
    dt = DeltaTable(lake.events_uri)
    assert result.checkpoint_version == dt.version()
    log = Path(lake.events_uri) / "_delta_log"
    assert (log / "_last_checkpoint").exists()
    assert (log / f"{result.checkpoint_version:020d}.checkpoint.parquet").exists()
