"""Table schemas: one definition, matching the models and the design's table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

import pyarrow as pa

from event_assets.events import (
    EVENT_COLUMNS_SCHEMA,
    EVENT_ID_WORDS,
    EVENTS_TABLE_SCHEMA,
    LANDED_EVENTS_SCHEMA,
    QUARANTINE_COLUMNS_SCHEMA,
    QUARANTINE_TABLE_SCHEMA,
    REQUIRED_EVENT_COLUMNS,
    DecodedEvent,
    QuarantineRecord,
)
from event_assets.events.decode import _columns
from event_assets.events.models import EventFields, EventRow, QuarantineRow
from event_assets.events.timestamps import _epoch_day, to_micros

TS = pa.timestamp("us", tz="UTC")


# The models' fields, in the schemas' column order: a model and its schema cannot drift.
def events_to_table(events: Sequence[DecodedEvent]) -> pa.Table:
    """Arrow table (``EVENT_COLUMNS_SCHEMA``) of decoded events."""
    rows = [
        (
            e.event_id,
            _epoch_day(e.event_date),
            to_micros(e.event_time),
            e.message_id,
            to_micros(e.publish_time),
            e.ce_id,
            e.ce_source,
            e.ce_type,
            e.ce_subject,
            e.ce_specversion,
            e.ce_datacontenttype,
            e.attributes,
            e.data,
        )
        for e in events
    ]
    return _columns(rows, EVENT_COLUMNS_SCHEMA)


def quarantine_to_table(records: Sequence[QuarantineRecord]) -> pa.Table:
    """Arrow table (``QUARANTINE_COLUMNS_SCHEMA``) of quarantine records."""
    rows = [
        (
            r.message_id,
            None if r.publish_time is None else to_micros(r.publish_time),
            r.attributes,
            r.payload,
            r.reason_code,
            r.reason,
        )
        for r in records
    ]
    return _columns(rows, QUARANTINE_COLUMNS_SCHEMA)


def test_event_columns_schema() -> None:
    assert [(f.name, f.type, f.nullable) for f in EVENT_COLUMNS_SCHEMA] == [
        ("event_id", pa.string(), False),
        ("event_date", pa.date32(), False),
        ("event_time", TS, False),
        ("message_id", pa.string(), False),
        ("publish_time", TS, False),
        ("ce_id", pa.string(), True),
        ("ce_source", pa.string(), True),
        ("ce_type", pa.string(), True),
        ("ce_subject", pa.string(), True),
        ("ce_specversion", pa.string(), True),
        ("ce_datacontenttype", pa.string(), True),
        ("attributes", pa.string(), False),
        ("data", pa.string(), False),
    ]


def test_landed_schema_adds_landing_columns() -> None:
    assert LANDED_EVENTS_SCHEMA.names == [*EVENT_COLUMNS_SCHEMA.names, "ingested_at", "batch_id"]
    assert LANDED_EVENTS_SCHEMA.field("ingested_at").type == TS
    assert not LANDED_EVENTS_SCHEMA.field("ingested_at").nullable
    assert LANDED_EVENTS_SCHEMA.field("batch_id").type == pa.string()
    assert not LANDED_EVENTS_SCHEMA.field("batch_id").nullable


def test_events_table_schema_adds_the_id_words() -> None:
    assert EVENTS_TABLE_SCHEMA.names == [*LANDED_EVENTS_SCHEMA.names, *EVENT_ID_WORDS]
    for name in EVENT_ID_WORDS:
        assert EVENTS_TABLE_SCHEMA.field(name).type == pa.int64()
        assert not EVENTS_TABLE_SCHEMA.field(name).nullable


def test_quarantine_schemas() -> None:
    assert [(f.name, f.type, f.nullable) for f in QUARANTINE_COLUMNS_SCHEMA] == [
        ("message_id", pa.string(), False),
        ("publish_time", TS, True),
        ("attributes", pa.string(), False),
        ("payload", pa.binary(), False),
        ("reason_code", pa.string(), False),
        ("reason", pa.string(), False),
    ]
    assert QUARANTINE_TABLE_SCHEMA.names == [*QUARANTINE_COLUMNS_SCHEMA.names, "quarantined_at"]
    assert QUARANTINE_TABLE_SCHEMA.field("quarantined_at").type == TS
    assert not QUARANTINE_TABLE_SCHEMA.field("quarantined_at").nullable


def test_required_event_columns_are_the_not_null_ones() -> None:
    assert REQUIRED_EVENT_COLUMNS == (
        "event_id",
        "event_date",
        "event_time",
        "message_id",
        "publish_time",
        "attributes",
        "data",
        "ingested_at",
        "batch_id",
        "event_id_hi",
        "event_id_lo",
    )


def test_models_have_the_schema_columns_in_order() -> None:
    assert list(DecodedEvent.model_fields) == EVENT_COLUMNS_SCHEMA.names
    assert list(QuarantineRecord.model_fields) == QUARANTINE_COLUMNS_SCHEMA.names


def test_hot_path_rows_have_the_schema_columns_in_order() -> None:
    """The decoder builds rows positionally (in C, unchecked by mypy): their names are
    the columns' names, so a row and its table cannot drift."""
    assert list(EventRow._fields) == EVENT_COLUMNS_SCHEMA.names
    assert list(QuarantineRow._fields) == QUARANTINE_COLUMNS_SCHEMA.names
    assert set(EventFields._fields) <= set(EVENT_COLUMNS_SCHEMA.names)


def test_events_to_table_round_trips_values() -> None:
    event = DecodedEvent(
        event_id="abc",
        event_date=date(2025, 11, 24),
        event_time=datetime(2025, 11, 24, 10, 0, 0, 123456, tzinfo=UTC),
        message_id="m-1",
        publish_time=datetime(2025, 11, 24, 10, 0, 1, tzinfo=UTC),
        ce_id="id-1",
        ce_source="src",
        ce_type="t",
        ce_subject=None,
        ce_specversion="1.0",
        ce_datacontenttype=None,
        attributes="{}",
        data='{"a": 1}',
    )
    table = events_to_table([event])
    assert table.schema == EVENT_COLUMNS_SCHEMA
    assert table.to_pylist() == [event.model_dump()]
    assert events_to_table([]).schema == EVENT_COLUMNS_SCHEMA
    assert events_to_table([]).num_rows == 0


def test_quarantine_to_table_round_trips_values() -> None:
    records = [
        QuarantineRecord(
            message_id="m-1",
            publish_time=datetime(2025, 11, 24, 10, tzinfo=UTC),
            attributes='{"k": "v"}',
            payload=b"\xff\x00raw",
            reason_code="not_utf8",
            reason="not_utf8: ...",
        ),
        QuarantineRecord(
            message_id="envelope-sha256:00",
            publish_time=None,
            attributes="{}",
            payload=b"",
            reason_code="bad_envelope",
            reason="bad_envelope: ...",
        ),
    ]
    table = quarantine_to_table(records)
    assert table.schema == QUARANTINE_COLUMNS_SCHEMA
    assert table.to_pylist() == [record.model_dump() for record in records]
