"""Push-subscription envelopes: a message unwrapped from the JSON body Pub/Sub POSTs."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from datetime import date
from typing import Any

from pydantic import ValidationError

from event_assets.events.cloudevents import _short
from event_assets.events.decode import decode_message
from event_assets.events.identity import canonical_json
from event_assets.events.json_text import json_type, parse_json
from event_assets.events.models import (
    ENVELOPE_ID_PREFIX,
    DecodedEvent,
    PulledMessage,
    QuarantineRecord,
    ReasonCode,
    RejectedError,
)
from event_assets.events.timestamps import Clock, parse_rfc3339, wall_clock_us


def _body_bytes(body: bytes | str | Mapping[str, Any]) -> bytes:
    """The body as bytes, for the quarantine ``payload`` and the fallback id."""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    try:
        return canonical_json(body).encode("ascii")
    except (TypeError, ValueError, RecursionError):
        return repr(body).encode("utf-8", "backslashreplace")


def _bad_envelope(detail: str) -> RejectedError:
    return RejectedError(ReasonCode.BAD_ENVELOPE, detail)


def _first(message: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = message.get(key)
        if value is not None:
            return value
    return None


def _envelope_message(body: bytes | str | Mapping[str, Any], raw: bytes) -> PulledMessage:
    if isinstance(body, Mapping):
        envelope: Any = body
    else:
        try:
            envelope = parse_json(raw)
        except RejectedError as rejected:
            raise _bad_envelope(f"body is not JSON ({rejected.reason})") from None
    if not isinstance(envelope, Mapping):
        raise _bad_envelope(f"body is {json_type(envelope)}, not a JSON object")
    message = envelope.get("message")
    if not isinstance(message, Mapping):
        raise _bad_envelope("missing 'message' object")
    encoded = message.get("data")
    if encoded is None:
        encoded = ""
    if not isinstance(encoded, str):
        raise _bad_envelope(f"message.data must be a base64 string, got {json_type(encoded)}")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad_envelope(f"message.data is not valid base64: {exc}") from None
    message_id = _first(message, "messageId", "message_id")
    if not isinstance(message_id, str) or not message_id:
        raise _bad_envelope("missing message.messageId")
    publish_text = _first(message, "publishTime", "publish_time")
    if not isinstance(publish_text, str):
        raise _bad_envelope("missing message.publishTime")
    try:
        publish_time = parse_rfc3339(publish_text)
    except ValueError as exc:
        raise _bad_envelope(f"message.publishTime {_short(publish_text)}: {exc}") from None
    attributes = message.get("attributes")
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, Mapping) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in attributes.items()
    ):
        raise _bad_envelope("message.attributes must map strings to strings")
    ordering_key = _first(message, "orderingKey", "ordering_key")
    try:
        return PulledMessage(
            data=data,
            attributes=dict(attributes),
            message_id=message_id,
            publish_time=publish_time,
            ordering_key=ordering_key if isinstance(ordering_key, str) else "",
        )
    except ValidationError as exc:
        raise _bad_envelope(str(exc)) from None


def decode_push_envelope(
    body: bytes | str | Mapping[str, Any],
    *,
    max_bytes: int,
    earliest_date: date | None = None,
    future_skew_seconds: float | None = None,
    event_time_field: str | None = None,
    clock: Clock = wall_clock_us,
) -> DecodedEvent | QuarantineRecord:
    """Decode a Pub/Sub push request body (the seed's input); never raises.

    A body that is not a push envelope is quarantined as ``bad_envelope`` with
    the raw body as payload and ``envelope-sha256:<sha256 of body>`` as message
    id, so a redelivered bad body maps to the same quarantine id.
    """
    raw = _body_bytes(body)
    try:
        msg = _envelope_message(body, raw)
    except RejectedError as rejected:
        return QuarantineRecord.model_construct(
            message_id=ENVELOPE_ID_PREFIX + hashlib.sha256(raw).hexdigest(),
            publish_time=None,
            attributes="{}",
            payload=raw,
            reason_code=rejected.code.value,
            reason=rejected.reason,
        )
    return decode_message(
        msg,
        max_bytes=max_bytes,
        earliest_date=earliest_date,
        future_skew_seconds=future_skew_seconds,
        event_time_field=event_time_field,
        clock=clock,
    )
