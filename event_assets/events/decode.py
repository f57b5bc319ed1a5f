"""Decode Pub/Sub messages into events or quarantine records.

Every message becomes exactly one of two things and decoding never raises:
a :class:`DecodedEvent` (a row of the ``events`` table, minus the landing
columns) or a :class:`QuarantineRecord` that keeps the raw bytes and says why.
Bad input must neither stop ingestion nor be dropped.

Message shapes, tried in this order:

1. size: more than ``max_bytes`` of data -> ``payload_too_large``;
2. CloudEvent, structured mode: attribute ``content-type`` is
   ``application/cloudevents+json``; the payload is the JSON CloudEvent;
3. CloudEvent, binary mode: any ``ce-*`` attribute; the payload is the event
   data, the ``content-type`` attribute is its ``datacontenttype``;
4. plain JSON (the seed's case): the payload is a UTF-8 JSON object.

Identity rule (``event_id``):

* Plain JSON: ``event_id = sha256(canonical_json(payload))``, exactly the seed's
  ``generate_unique_id``; Pub/Sub attributes are not part of it. A re-published
  copy of the same data is the same event.
* CloudEvent (either mode): ``event_id = event_id_of(structured form)`` where
  the structured form is the dict of every present context attribute
  (``specversion``, ``id``, ``source``, ``type`` and any of ``time``,
  ``subject``, ``datacontenttype``, ``dataschema`` and extensions) plus ``data``
  (the parsed JSON value) or ``data_base64`` (standard padded base64). The same
  event sent in binary or structured mode therefore has one id, while two events
  with equal data but different ``id`` stay two, as CloudEvents requires.
  Attribute values are kept verbatim (no time normalisation); a JSON ``null``
  context attribute counts as absent, ``"data": null`` is JSON null data. An
  empty binary-mode payload means "no data". Binary-mode data whose content type
  is not JSON is hashed as ``data_base64``, so the structured twin of such an
  event must carry ``data_base64`` too (a textual ``data`` string differs).

Partitioning: ``event_time`` is the CloudEvent ``time`` (RFC 3339, converted to
UTC, truncated to microseconds); for plain JSON, the RFC 3339 string in the
payload's top-level ``event_time_field`` (``EVENT_TIME_FIELD``), if one is named
and the field holds one; else the Pub/Sub ``publish_time``. ``event_date`` is its
UTC date. Redeliveries therefore land in the same partition, where the merge
skips them. The field never enters the identity beyond being part of the payload.

Accepted range (else ``event_date_out_of_range``): ``event_date`` from
``earliest_date`` on, and ``event_time`` at most ``future_skew_seconds`` after the
clock as it reads when the message is decoded, not when its round began: an event
stamped 00:00:03 decoded at 00:00:04 is accepted in a round that began at 23:59:58.
The hot path compares integers only: the clock is read once per batch, and read
again only before refusing an event as too late.

Only the standard library ``json`` dumps, for byte-compatibility with the seed's
ids. Parsing tries ``orjson`` first (about 3x faster) and falls back to the
standard library whenever orjson refuses the text or might read it differently
(integers of 19+ digits, which orjson turns into floats), so the parsed value,
and with it every id and every quarantine reason, is the standard library's.
Non-standard constants (``NaN``, ``Infinity``) and numbers
that overflow to infinity are rejected, so the ``data`` column always holds
standard JSON. Nesting is capped at :data:`MAX_JSON_DEPTH` so the outcome does
not depend on how deep the caller's stack happens to be.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

import pyarrow as pa

from event_assets.events.cloudevents import (
    decode_binary,
    decode_plain,
    decode_structured,
    media_type,
)
from event_assets.events.identity import canonical_json
from event_assets.events.json_text import no_collection
from event_assets.events.models import (
    STRUCTURED_MEDIA_TYPE,
    DecodedBatch,
    DecodedEvent,
    EventFields,
    EventRow,
    PulledMessage,
    QuarantineRecord,
    QuarantineRow,
    RawMessage,
    ReasonCode,
    RejectedError,
    new_row,
)
from event_assets.events.schema import EVENT_COLUMNS_SCHEMA, QUARANTINE_COLUMNS_SCHEMA
from event_assets.events.timestamps import (
    DAY_US,
    Clock,
    Limits,
    date_of_day,
    from_micros,
    to_micros,
    wall_clock_us,
)


def _is_binary_mode(attributes: Mapping[str, str]) -> bool:
    # A loop, not any(<generator>): the generator costs more than the test itself.
    for key in attributes:  # noqa: SIM110
        if key.startswith("ce-"):
            return True
    return False


def _decode_fields(
    data: bytes, attributes: Mapping[str, str], publish_us: int, limits: Limits
) -> EventFields:
    """The event's fields, its time within the accepted range."""
    size = len(data)
    if size > limits.max_bytes:
        raise RejectedError(
            ReasonCode.PAYLOAD_TOO_LARGE, f"{size} bytes > max_bytes {limits.max_bytes}"
        )
    content_type = attributes.get("content-type")
    if content_type is not None and (
        content_type == STRUCTURED_MEDIA_TYPE or media_type(content_type) == STRUCTURED_MEDIA_TYPE
    ):
        fields = decode_structured(data, publish_us)
    elif _is_binary_mode(attributes):
        fields = decode_binary(data, attributes, publish_us)
    else:
        fields = decode_plain(data, publish_us, limits.time_field)
    event_us = fields.event_time
    if event_us < limits.earliest_us or (event_us > limits.latest_us and limits.too_late(event_us)):
        raise limits.out_of_range(event_us)
    return fields


def _attributes_json(attributes: Mapping[str, str]) -> str:
    if not attributes:
        return "{}"
    return canonical_json(attributes if type(attributes) is dict else dict(attributes))


def _decode_row(
    msg: RawMessage, limits: Limits, events: list[EventRow], quarantine: list[QuarantineRow]
) -> None:
    """Decode one message into a row of ``events`` or of ``quarantine``. Never raises.

    Appends rather than returns, so the hot path builds no (event, rejection) pair.
    """
    data, attributes, message_id, publish_us, _ = msg
    attributes_json = "{}"
    try:
        attributes_json = _attributes_json(attributes)
        fields = _decode_fields(data, attributes, publish_us, limits)
    except RejectedError as exc:
        # Read here, not kept: the exception holds this frame (a reference cycle).
        code, reason = exc.code.value, exc.reason
    except Exception as exc:  # noqa: BLE001
        # Never-raise boundary: one message that trips a bug must not stop the
        # whole subscription (it would be redelivered forever) nor be lost; the
        # quarantine row keeps its raw bytes for replay once the bug is fixed.
        internal = RejectedError(ReasonCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        code, reason = internal.code.value, internal.reason
    else:
        event_id, event_us, ce_id, source, type_, subject, specversion, content_type, text = fields
        events.append(
            new_row(
                EventRow,
                (
                    event_id,
                    event_us // DAY_US,
                    event_us,
                    message_id,
                    publish_us,
                    ce_id,
                    source,
                    type_,
                    subject,
                    specversion,
                    content_type,
                    attributes_json,
                    text,
                ),
            )
        )
        return
    quarantine.append(
        new_row(
            QuarantineRow,
            (
                message_id,
                publish_us,
                attributes_json,
                data,
                code,
                reason,
            ),
        )
    )


def _raw(msg: PulledMessage) -> RawMessage:
    return RawMessage(
        msg.data, msg.attributes, msg.message_id, to_micros(msg.publish_time), msg.ordering_key
    )


def decode_message(
    msg: PulledMessage,
    *,
    max_bytes: int,
    earliest_date: date | None = None,
    future_skew_seconds: float | None = None,
    event_time_field: str | None = None,
    clock: Clock = wall_clock_us,
) -> DecodedEvent | QuarantineRecord:
    """Decode one pulled message into an event or a quarantine record; never raises.

    The accepted range, so a wild clock cannot create far-away partitions:
    ``event_date`` from ``earliest_date`` on (inclusive), and, unless
    ``future_skew_seconds`` is None, ``event_time`` at most that many seconds after
    ``clock()`` as read at decode time. ``event_time_field`` names the top-level
    payload field whose RFC 3339 string dates a plain-JSON message (see the module
    docstring). Bad arguments (a negative skew) raise ``ValueError``.
    """
    limits = Limits(max_bytes, earliest_date, future_skew_seconds, clock, event_time_field)
    events: list[EventRow] = []
    quarantine: list[QuarantineRow] = []
    _decode_row(_raw(msg), limits, events, quarantine)
    # Rows are fully typed by construction, so skip re-validation.
    if events:
        event = events[0]._asdict()
        event["event_date"] = date_of_day(event["event_date"])
        event["event_time"] = from_micros(event["event_time"])
        event["publish_time"] = from_micros(event["publish_time"])
        return DecodedEvent.model_construct(**event)
    record = quarantine[0]._asdict()
    record["publish_time"] = msg.publish_time
    return QuarantineRecord.model_construct(**record)


def _columns(rows: Sequence[tuple[Any, ...]], schema: pa.Schema) -> pa.Table:
    """Transpose row tuples (in schema order) into an Arrow table; dates and
    timestamps are given as integers in the schema's units."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    arrays = [
        pa.array(column, type=field.type) for column, field in zip(columns, schema, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def decode_batch(
    messages: Iterable[PulledMessage | RawMessage],
    *,
    max_bytes: int,
    earliest_date: date | None = None,
    future_skew_seconds: float | None = None,
    event_time_field: str | None = None,
    clock: Clock = wall_clock_us,
) -> DecodedBatch:
    """Decode many messages into Arrow tables, column-wise.

    Row for row the same as :func:`decode_message` on each message (with the same
    clock readings), in input order, without building a pydantic model per message.
    """
    limits = Limits(max_bytes, earliest_date, future_skew_seconds, clock, event_time_field)
    events: list[EventRow] = []
    quarantine: list[QuarantineRow] = []
    # The rows are tuple subclasses, which the collector never untracks (plain tuples of
    # strings and ints it does): collecting while they live walks every one of them, in
    # each generation it moves them to, for nothing (+3 % instructions a message,
    # measured). So no collection until they are gone; the batch makes no cycles.
    with no_collection():
        for msg in messages:
            # `tuple`, not `PulledMessage`: isinstance against a pydantic model goes
            # through its metaclass's __instancecheck__; against a builtin type it does not.
            _decode_row(msg if isinstance(msg, tuple) else _raw(msg), limits, events, quarantine)
        batch = DecodedBatch(
            events=_columns(events, EVENT_COLUMNS_SCHEMA),
            quarantine=_columns(quarantine, QUARANTINE_COLUMNS_SCHEMA),
        )
        del events, quarantine
    return batch
