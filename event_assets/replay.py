"""Replay tools: quarantined messages after a fix, and dead-lettered messages.

**Quarantine replay**: re-decode, land, merge, release.

The quarantine keeps every bad message's raw bytes, attributes, id and publish time,
so once the cause is fixed (a wider PARTITIONS_START_DATE or FUTURE_SKEW_SECONDS, an
EVENT_TIME_FIELD, a producer's bad batch re-read by a newer decoder) the messages can
be decoded again exactly as if they were pulled now. Those that now decode are landed
and merged like any batch (the dedup-write makes a replay idempotent), then removed from
the quarantine; those still bad stay there with their original reason. A crash
anywhere repeats nothing harmful: the next replay lands them again, the merge skips
them as duplicates, and the release finishes.

**Dead-letter redrive**: Pub/Sub moves a message that was delivered too often without an
ack (`max_delivery_attempts`, e.g. one that crashed every consumer) to the dead-letter
topic, whose subscription keeps it. Once the cause is fixed, redrive publishes each one
back to PUBSUB_TOPIC and only then acks it on the dead-letter subscription: a crash in
between publishes it twice, which ingestion deduplicates (same content, same event_id).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from event_assets.decode_pool import DecodeOptions, decode_messages
from event_assets.events.models import RawMessage
from event_assets.events.timestamps import to_micros
from event_assets.ingest import lake_of, merge_partition
from event_assets.settings import Settings
from event_assets.storage.deliveries import record_landed
from event_assets.storage.delta import delete_keys, existing_table
from event_assets.storage.landing import land_batch
from event_assets.storage.tables import quarantine_target, reason_counts

# Attributes Pub/Sub adds when it dead-letters a message; not the producer's.
DEAD_LETTER_ATTRIBUTE_PREFIX = "CloudPubSubDeadLetter"
REDRIVE_PULL = 1_000


@dataclass
class ReplayResult:
    """What a replay did; every figure is a count of messages (or rows)."""

    considered: int = 0  # quarantined rows matching the filters
    decoded: int = 0  # of those, now valid events
    still_bad: int = 0  # of those, still rejected (left in the quarantine)
    inserted: int = 0  # new rows of `events`
    duplicates: int = 0  # already in `events` (a replay repeated, or a re-publish)
    released: int = 0  # removed from the quarantine
    still_bad_by_reason: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        return asdict(self)


def replay_quarantine(
    settings: Settings,
    *,
    reasons: tuple[str, ...] = (),
    since: datetime | None = None,
) -> ReplayResult:
    """Re-decode the quarantined messages with these reason codes (all if empty),
    quarantined at or after `since`; land, merge and release those that now decode."""
    lake = lake_of(settings)
    target = quarantine_target(lake)
    result = ReplayResult()
    table = existing_table(target)
    if table is None:
        return result
    rows = table.to_pyarrow_table()
    if reasons:
        rows = rows.filter(pc.is_in(rows["reason_code"], value_set=pa.array(reasons)))
    if since is not None:
        stamp = pa.scalar(since, pa.timestamp("us", tz="UTC"))
        rows = rows.filter(pc.greater_equal(rows["quarantined_at"], stamp))
    result.considered = rows.num_rows
    if not rows.num_rows:
        return result
    events, still_bad = decode_messages(_messages(rows), DecodeOptions.from_settings(settings))
    result.decoded = events.num_rows
    result.still_bad = still_bad.num_rows
    result.still_bad_by_reason = reason_counts(still_bad)
    if not events.num_rows:
        return result
    batches = land_batch(lake, events)
    record_landed(lake, batches, 0, max_attempts=settings.WRITE_MAX_ATTEMPTS)
    for batch in batches:
        merged = merge_partition(settings, lake, batch.partition, [batch.path])
        result.inserted += merged.inserted
        result.duplicates += merged.duplicates
    released = events["message_id"].to_pylist()
    result.released = delete_keys(target, released, max_attempts=settings.WRITE_MAX_ATTEMPTS)
    return result


def _messages(rows: pa.Table) -> list[RawMessage]:
    """Quarantine rows as the pull client hands messages to the decoder. A row without a
    publish time (a bad push envelope) is dated by when it was quarantined."""
    out = []
    for row in rows.select(
        ["payload", "attributes", "message_id", "publish_time", "quarantined_at"]
    ).to_pylist():
        published = row["publish_time"] or row["quarantined_at"]
        out.append(
            RawMessage(
                row["payload"],
                json.loads(row["attributes"]),
                row["message_id"],
                to_micros(published),
            )
        )
    return out


@dataclass
class RedriveResult:
    """What a redrive did."""

    subscription: str
    topic: str
    moved: int = 0
    pulls: int = 0

    def summary(self) -> dict[str, object]:
        return asdict(self)


def dead_letter_subscription(settings: Settings) -> str:
    """The dead-letter subscription's name, as Terraform creates it."""
    return f"{settings.PUBSUB_SUBSCRIPTION}-dead-letter"


def redrive_dead_letters(
    settings: Settings, *, subscription: str | None = None, limit: int | None = None
) -> RedriveResult:
    """Move dead-lettered messages back to PUBSUB_TOPIC (at most `limit`), publish first,
    ack after: until the dead-letter subscription comes back empty."""
    from event_assets.pubsub.client import Subscription, messages_of, publish

    name = subscription or dead_letter_subscription(settings)
    source = settings.model_copy(update={"PUBSUB_SUBSCRIPTION": name})
    result = RedriveResult(subscription=source.subscription_path, topic=settings.topic_path)
    with Subscription(source) as dead:
        while limit is None or result.moved < limit:
            want = REDRIVE_PULL if limit is None else min(REDRIVE_PULL, limit - result.moved)
            pulled = dead.pull(want, timeout=5.0)
            result.pulls += 1
            if not pulled.ack_ids:
                break
            publish(
                settings,
                [
                    (
                        data,
                        {
                            k: v
                            for k, v in attributes.items()
                            if not k.startswith(DEAD_LETTER_ATTRIBUTE_PREFIX)
                        },
                    )
                    for data, attributes, *_ in messages_of(pulled.payload)
                ],
            )
            dead.acknowledge(pulled.ack_ids)
            result.moved += len(pulled.ack_ids)
    return result
