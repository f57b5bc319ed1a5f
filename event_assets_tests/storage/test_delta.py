from __future__ import annotations

import multiprocessing
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import given, settings
from hypothesis import strategies as st

from event_assets.storage.delta import dedup_write, first_per_key, key_predicate, with_key_words
from event_assets.storage.lake import Lake
from event_assets.storage.landing import land_batch, read_batches
from event_assets.storage.tables import events_target

from .conftest import make_events

DAY = date(2026, 11, 20)
OTHER = date(2026, 11, 21)


def _landed(lake: Lake, day: date, ids, tag: str = "") -> pa.Table:
    batches = land_batch(lake, make_events(day, ids, tag=tag))
    return read_batches(lake, [b.path for b in batches])


def _ids(lake: Lake, day: date) -> list[str]:
    dt = DeltaTable(lake.events_uri)
    table = dt.to_pyarrow_dataset(
        file_pruning_predicate=[("event_date", "=", day.isoformat())]
    ).to_table(columns=["event_id"])
    return table["event_id"].to_pylist()


def test_inserts_absent_rows_and_skips_present_ones(lake: Lake) -> None:
    target = events_target(lake)
    first = dedup_write(target, _landed(lake, DAY, range(100)), partition=DAY.isoformat())
    assert (first.inserted, first.duplicates) == (100, 0)
    assert first.files_added >= 1
    assert first.bytes_added > 0
    second = dedup_write(target, _landed(lake, DAY, range(50, 150)), partition=DAY.isoformat())
    assert (second.inserted, second.duplicates) == (50, 50)
    assert second.version == first.version + 1
    ids = _ids(lake, DAY)
    assert len(ids) == 150 == len(set(ids))


def test_duplicates_inside_one_batch_are_inserted_once(lake: Lake) -> None:
    rows = _landed(lake, DAY, [1, 2, 2, 3, 3, 3])
    result = dedup_write(events_target(lake), rows, partition=DAY.isoformat())
    assert (result.inserted, result.duplicates) == (3, 3)
    assert sorted(_ids(lake, DAY)) == sorted(set(rows["event_id"].to_pylist()))


def test_same_id_in_another_partition_is_not_a_duplicate(lake: Lake) -> None:
    target = events_target(lake)
    dedup_write(target, _landed(lake, DAY, range(10)), partition=DAY.isoformat())
    other = dedup_write(target, _landed(lake, OTHER, range(10)), partition=OTHER.isoformat())
    assert other.inserted == 10
    assert len(_ids(lake, OTHER)) == 10


def test_the_dedup_window_skips_ids_already_in_the_day_before(lake: Lake) -> None:
    """A plain-JSON event re-published after midnight is a duplicate, not a second row."""
    target = events_target(lake)
    dedup_write(target, _landed(lake, DAY, range(10)), partition=DAY.isoformat())
    later = dedup_write(
        target,
        _landed(lake, OTHER, range(5, 15)),
        partition=OTHER.isoformat(),
        also_in=[DAY.isoformat()],
    )
    assert (later.inserted, later.duplicates, later.duplicates_in_window) == (5, 5, 5)
    assert len(_ids(lake, OTHER)) == 5
    assert len(_ids(lake, DAY)) == 10  # the window is only read, never written


def test_rows_of_another_partition_are_refused(lake: Lake) -> None:
    with pytest.raises(ValueError, match="given to partition"):
        dedup_write(events_target(lake), _landed(lake, OTHER, range(3)), partition=DAY.isoformat())


def test_rerun_repairs_duplicates_left_by_a_raced_blind_append(lake: Lake) -> None:
    """A crash between a raced append and its repair leaves a duplicate; a re-run heals it."""
    target = events_target(lake)
    rows = _landed(lake, DAY, range(20))
    dedup_write(target, rows, partition=DAY.isoformat())
    # Simulate the other writer's blind append of overlapping keys.
    raced = with_key_words(target, _landed(lake, DAY, range(10, 30), tag="x"))
    write_deltalake(lake.events_uri, raced, mode="append")
    assert len(_ids(lake, DAY)) == 40
    healed = dedup_write(target, _landed(lake, DAY, range(10, 30)), partition=DAY.isoformat())
    assert healed.repaired == 10
    ids = _ids(lake, DAY)
    assert len(ids) == len(set(ids)) == 30
    # The earliest landed copy survives.
    dt = DeltaTable(lake.events_uri)
    kept = dt.to_pyarrow_table(filters=[("event_id", "in", rows["event_id"].to_pylist()[10:])])
    assert set(kept["batch_id"].to_pylist()) == {rows["batch_id"][0].as_py()}


def _writer(args: tuple[str, str, int, int]) -> tuple[int, int]:
    root, day, start, stop = args
    lake = Lake.from_uri(root)
    rows = _landed(lake, date.fromisoformat(day), range(start, stop))
    result = dedup_write(events_target(lake), rows, partition=day)
    return result.inserted, result.repaired


def test_concurrent_writers_of_one_partition_leave_no_duplicates(lake: Lake) -> None:
    # Four processes write overlapping ranges of one partition and two others.
    jobs = [
        (lake.root, DAY.isoformat(), 0, 600),
        (lake.root, DAY.isoformat(), 300, 900),
        (lake.root, DAY.isoformat(), 0, 900),
        (lake.root, OTHER.isoformat(), 0, 500),
    ]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_writer, jobs)
    ids = _ids(lake, DAY)
    assert len(ids) == len(set(ids)) == 900
    assert len(_ids(lake, OTHER)) == 500
    inserted_day = sum(r[0] for r in results[:3])
    repaired = sum(r[1] for r in results[:3])
    assert inserted_day - repaired == 900


def test_first_per_key_keeps_earliest_by_order() -> None:
    table = pa.table({"k": ["a", "b", "a"], "t": [3, 1, 1], "v": ["x", "y", "z"]})
    kept = first_per_key(table, "k", ("t",))
    assert kept.to_pydict() == {"k": ["b", "a"], "t": [1, 1], "v": ["y", "z"]}
    assert first_per_key(table, "k").column("v").to_pylist() == ["x", "y"]


def test_key_predicate_names_partition_literally_and_escapes(lake: Lake) -> None:
    predicate = key_predicate(events_target(lake), "2026-11-20", ["a'b"])
    assert predicate == "event_date = '2026-11-20' AND event_id IN ('a''b')"
    assert pc.equal(pa.scalar(1), pa.scalar(1)).as_py()


@settings(max_examples=150, deadline=None)
@given(
    keys=st.lists(st.sampled_from("abcdefgh") | st.text(min_size=1, max_size=3), max_size=30),
    orders=st.data(),
)
def test_first_per_key_matches_a_reference_with_and_without_repeats(
    keys: list[str], orders: st.DataObject
) -> None:
    """Unique keys take a shortcut (no group-by); the result must not change."""
    when = orders.draw(st.lists(st.integers(0, 3), min_size=len(keys), max_size=len(keys)))
    rows = pa.table({"k": pa.array(keys, pa.string()), "t": pa.array(when, pa.int64())})
    rows = rows.append_column("i", pa.array(range(len(keys)), pa.int64()))
    got = first_per_key(rows, "k", ("t",))
    ordered = sorted(range(len(keys)), key=lambda i: when[i])  # stable: then input order
    expected: dict[str, int] = {}
    for i in ordered:
        expected.setdefault(keys[i], i)
    assert got["i"].to_pylist() == sorted(expected.values(), key=ordered.index)


def test_stored_id_words_are_those_of_the_id(lake: Lake) -> None:
    dedup_write(events_target(lake), _landed(lake, DAY, range(30)), partition=DAY.isoformat())
    table = DeltaTable(lake.events_uri).to_pyarrow_table()
    ids = table["event_id"].to_pylist()
    assert table["event_id_hi"].to_pylist() == [
        int.from_bytes(bytes.fromhex(i[:16]), "big", signed=True) for i in ids
    ]
    assert table["event_id_lo"].to_pylist() == [
        int.from_bytes(bytes.fromhex(i[16:32]), "big", signed=True) for i in ids
    ]


def test_the_scan_compares_the_words_not_the_ids(lake: Lake) -> None:
    """Proof that the cheap columns decide: a stored row whose words were forged to
    match another id makes that id count as present (never happens to real rows)."""
    target = events_target(lake)
    dedup_write(target, _landed(lake, DAY, range(3)), partition=DAY.isoformat())
    newcomer = _landed(lake, DAY, [7])
    forged = with_key_words(target, _landed(lake, DAY, [8]))
    for name in target.key_words:
        forged = forged.set_column(
            forged.schema.get_field_index(name), name, with_key_words(target, newcomer)[name]
        )
    write_deltalake(lake.events_uri, forged, mode="append")
    result = dedup_write(target, newcomer, partition=DAY.isoformat())
    assert (result.inserted, result.duplicates) == (0, 1)


def test_a_table_created_without_the_id_words_is_still_deduplicated(lake: Lake) -> None:
    """Tables written before the words existed keep working (comparing full ids)."""
    legacy = _landed(lake, DAY, range(40))
    write_deltalake(lake.events_uri, legacy, mode="append", partition_by=["event_date"])
    target = events_target(lake)
    result = dedup_write(target, _landed(lake, DAY, range(20, 60)), partition=DAY.isoformat())
    assert (result.inserted, result.duplicates) == (20, 20)
    ids = _ids(lake, DAY)
    assert len(ids) == 60 == len(set(ids))
    fields = {f.name for f in DeltaTable(lake.events_uri).schema().fields}
    assert not fields & set(target.key_words)
