from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from event_assets.events.schema import EVENT_COLUMNS_SCHEMA
from event_assets.storage.lake import Lake


def make_events(day: date, ids: range | list[int], *, tag: str = "") -> pa.Table:
    """Synthetic decoded events (EVENT_COLUMNS_SCHEMA) whose ids derive from integers."""
    ids = list(ids)
    when = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    event_ids = [hashlib.sha256(f"e{i}".encode()).hexdigest() for i in ids]
    columns = {
        "event_id": event_ids,
        "event_date": [day] * len(ids),
        "event_time": [when] * len(ids),
        "message_id": [f"m{i}{tag}" for i in ids],
        "publish_time": [when] * len(ids),
        "ce_id": [None] * len(ids),
        "ce_source": [None] * len(ids),
        "ce_type": [None] * len(ids),
        "ce_subject": [None] * len(ids),
        "ce_specversion": [None] * len(ids),
        "ce_datacontenttype": [None] * len(ids),
        "attributes": ["{}"] * len(ids),
        "data": [f'{{"i": {i}}}' for i in ids],
    }
    return pa.table(columns, schema=EVENT_COLUMNS_SCHEMA)


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake.from_uri(str(tmp_path / "lake"))
