"""Arrow schemas of the ``events`` and ``events_quarantine`` tables, in one place.

The ``*_COLUMNS_SCHEMA`` schemas are what decoding produces;
``LANDED_EVENTS_SCHEMA`` adds the columns stamped when a batch is landed
(``ingested_at``/``batch_id``) and ``QUARANTINE_TABLE_SCHEMA`` the one stamped when
a message is quarantined (``quarantined_at``). ``EVENTS_TABLE_SCHEMA`` is the Delta
table: a landed batch plus ``EVENT_ID_WORDS``, the first 128 bits of ``event_id``
as two integers, which the dedup-write compares instead of reading every 64-character
id of a partition (see :func:`event_assets.events.identity.id_words`). All
timestamps are microsecond UTC: Delta Lake stores timestamps at microsecond
precision, so anything finer would be lost on write anyway.
"""

from __future__ import annotations

import pyarrow as pa

UTC_MICROS = pa.timestamp("us", tz="UTC")

EVENT_COLUMNS_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_date", pa.date32(), nullable=False),
        pa.field("event_time", UTC_MICROS, nullable=False),
        pa.field("message_id", pa.string(), nullable=False),
        pa.field("publish_time", UTC_MICROS, nullable=False),
        pa.field("ce_id", pa.string(), nullable=True),
        pa.field("ce_source", pa.string(), nullable=True),
        pa.field("ce_type", pa.string(), nullable=True),
        pa.field("ce_subject", pa.string(), nullable=True),
        pa.field("ce_specversion", pa.string(), nullable=True),
        pa.field("ce_datacontenttype", pa.string(), nullable=True),
        pa.field("attributes", pa.string(), nullable=False),
        pa.field("data", pa.string(), nullable=False),
    ]
)

LANDED_EVENTS_SCHEMA: pa.Schema = pa.schema(
    [
        *EVENT_COLUMNS_SCHEMA,
        pa.field("ingested_at", UTC_MICROS, nullable=False),
        pa.field("batch_id", pa.string(), nullable=False),
    ]
)

# Derived from event_id, never decoded: landing batches do not carry them.
EVENT_ID_WORDS: tuple[str, str] = ("event_id_hi", "event_id_lo")

EVENTS_TABLE_SCHEMA: pa.Schema = pa.schema(
    [
        *LANDED_EVENTS_SCHEMA,
        *(pa.field(name, pa.int64(), nullable=False) for name in EVENT_ID_WORDS),
    ]
)

QUARANTINE_COLUMNS_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("message_id", pa.string(), nullable=False),
        # Null only when the push envelope itself could not be read.
        pa.field("publish_time", UTC_MICROS, nullable=True),
        pa.field("attributes", pa.string(), nullable=False),
        pa.field("payload", pa.binary(), nullable=False),
        pa.field("reason_code", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)

QUARANTINE_TABLE_SCHEMA: pa.Schema = pa.schema(
    [
        *QUARANTINE_COLUMNS_SCHEMA,
        pa.field("quarantined_at", UTC_MICROS, nullable=False),
    ]
)

# Columns of the events table that must never be null (for asset checks).
REQUIRED_EVENT_COLUMNS: tuple[str, ...] = tuple(
    field.name for field in EVENTS_TABLE_SCHEMA if not field.nullable
)

EVENT_COLUMN_NAMES: tuple[str, ...] = tuple(EVENT_COLUMNS_SCHEMA.names)
QUARANTINE_COLUMN_NAMES: tuple[str, ...] = tuple(QUARANTINE_COLUMNS_SCHEMA.names)
