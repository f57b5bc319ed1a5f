"""The landing layout: batches pending under `_pending/`, moved to `_merged/` by the
merge, and the layout before it (data at the bare path, empty entries) still read."""

from __future__ import annotations

from datetime import date

import obstore

from event_assets.storage import landing
from event_assets.storage.lake import LANDING_DIR, Lake
from event_assets_tests.storage.conftest import make_events

DAY = date(2024, 5, 4)


def _keys(lake: Lake) -> list[str]:
    store = lake.store(LANDING_DIR)
    return sorted(str(m["path"]) for chunk in obstore.list(store) for m in chunk)


def test_a_batch_is_pending_until_merged_then_moves_to_merged(lake: Lake) -> None:
    (batch,) = landing.land_batch(lake, make_events(DAY, range(5)))
    assert _keys(lake) == [f"_pending/{batch.path}"]
    assert landing.pending_batches(lake) == [batch.path]
    landing.mark_merged(lake, [batch.path])
    landing.mark_merged(lake, [batch.path])  # idempotent
    assert _keys(lake) == [f"_merged/{batch.path}"]
    assert landing.pending_batches(lake) == []
    assert landing.list_batches(lake, DAY) == landing.list_batches(lake) == [batch.path]
    assert landing.read_batches(lake, [batch.path]).num_rows == 5


def test_batches_of_the_earlier_layout_are_listed_read_and_merged(lake: Lake) -> None:
    """Before: data at `event_date=.../<id>.parquet`, an empty `_pending/` entry beside it."""
    (batch,) = landing.land_batch(lake, make_events(DAY, range(7)))
    store = lake.store(LANDING_DIR)
    data = obstore.get(store, f"_pending/{batch.path}").bytes().to_bytes()
    obstore.put(store, batch.path, data)
    obstore.put(store, f"_pending/{batch.path}", b"")
    assert landing.pending_batches(lake, DAY) == [batch.path]
    assert landing.list_batches(lake, DAY) == [batch.path]
    rows = landing.read_batches(lake, [batch.path], columns=["event_id"])
    assert rows.column_names == ["event_id"]  # only the column asked for is decoded
    assert rows.num_rows == 7
    landing.mark_merged(lake, [batch.path])
    assert landing.pending_batches(lake) == []
    assert landing.read_batches(lake, [batch.path]).num_rows == 7
