"""The project's two Delta tables, each with its identity key and survivor rule."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from event_assets.events.identity import id_words
from event_assets.events.schema import (
    EVENT_ID_WORDS,
    EVENTS_TABLE_SCHEMA,
    QUARANTINE_TABLE_SCHEMA,
)
from event_assets.storage.delta import DeltaTarget
from event_assets.storage.lake import Lake


def events_target(lake: Lake) -> DeltaTarget:
    """`events`: unique `event_id` per `event_date`; the earliest landed copy survives.

    The dedup scan compares `event_id`'s first 128 bits (`EVENT_ID_WORDS`)."""
    return DeltaTarget(
        uri=lake.events_uri,
        schema=EVENTS_TABLE_SCHEMA,
        key="event_id",
        partition_by="event_date",
        survivor_order=("ingested_at", "batch_id"),
        storage_options=lake.storage_options,
        log_upkeep=lake.can_delete,
        key_words=EVENT_ID_WORDS,
        key_words_of=id_words,
    )


def quarantine_target(lake: Lake) -> DeltaTarget:
    """`events_quarantine`: one row per Pub/Sub message id, however often delivered."""
    return DeltaTarget(
        uri=lake.quarantine_uri,
        schema=QUARANTINE_TABLE_SCHEMA,
        key="message_id",
        survivor_order=("quarantined_at",),
        storage_options=lake.storage_options,
        log_upkeep=lake.can_delete,
    )


def reason_counts(rows: pa.Table) -> dict[str, int]:
    """Quarantine rows (or decoded quarantine records) counted by `reason_code`."""
    return value_counts(rows["reason_code"])


def value_counts(column: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    """Each value of a string column and how often it occurs."""
    if not len(column):
        return {}
    tallied = pc.value_counts(column)
    return dict(
        zip(tallied.field("values").to_pylist(), tallied.field("counts").to_pylist(), strict=True)
    )
