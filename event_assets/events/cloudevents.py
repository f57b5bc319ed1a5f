"""CloudEvents (structured and binary mode) and plain JSON payloads: the fields each
shape decides (identity, event time, context attributes, data).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Mapping
from typing import Any

from event_assets.events.identity import event_id_of_canonical
from event_assets.events.json_text import (
    MAX_JSON_DEPTH,
    bounded_canonical,
    bracket_count,
    canonical_object,
    json_type,
    parse_json,
    quote,
)
from event_assets.events.models import (
    SUPPORTED_SPECVERSION,
    EventFields,
    ReasonCode,
    RejectedError,
    new_row,
)
from event_assets.events.timestamps import parse_rfc3339_micros


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json_media_type(content_type: str) -> bool:
    media = media_type(content_type)
    return media in ("application/json", "text/json") or media.endswith("+json")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_REQUIRED_ATTRIBUTES = ("id", "source", "type", "specversion")
_STRING_ATTRIBUTES = (*_REQUIRED_ATTRIBUTES, "time", "subject", "datacontenttype", "dataschema")
_RESERVED_BINARY_NAMES = frozenset({"", "data", "data_base64"})


def _invalid(detail: str) -> RejectedError:
    return RejectedError(ReasonCode.INVALID_CLOUDEVENT, detail)


def _context_time(event: Mapping[str, Any], publish_us: int) -> int:
    """Validate the context attributes; return the event time in microseconds."""
    for name in _REQUIRED_ATTRIBUTES:
        value = event.get(name)
        if value is None or value == "":
            raise _invalid(f"missing required attribute {name!r}")
    for name in _STRING_ATTRIBUTES:
        value = event.get(name)
        if value is None:
            continue
        if type(value) is not str:
            raise _invalid(f"attribute {name!r} must be a string, got {json_type(value)}")
        if value.isascii():  # the usual case; no lone surrogate possible
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _invalid(f"attribute {name!r} is not valid Unicode: {_short(value)}") from None
    specversion: str = event["specversion"]
    if specversion != SUPPORTED_SPECVERSION:
        raise _invalid(
            f"unsupported specversion {_short(specversion)} (expected {SUPPORTED_SPECVERSION!r})"
        )
    time_text: str | None = event.get("time")
    if time_text is None:
        event_us = publish_us
    else:
        try:
            event_us = parse_rfc3339_micros(time_text)
        except ValueError as exc:
            raise _invalid(f"time {_short(time_text)}: {exc}") from None
    return event_us


def _cloudevent_fields(event: dict[str, Any], event_us: int, bracket_bound: int) -> EventFields:
    """Hash the structured form ``event`` (its context validated) and pick the columns."""
    # The structured form is one level deeper than each of its values.
    limit = MAX_JSON_DEPTH - 1
    texts = {
        key: quote(value) if type(value) is str else bounded_canonical(value, bracket_bound, limit)
        for key, value in event.items()
    }
    data_text = texts.get("data") or texts.get("data_base64") or "null"
    event_id = event_id_of_canonical(canonical_object(texts))
    return new_row(
        EventFields,
        (
            event_id,
            event_us,
            event["id"],
            event["source"],
            event["type"],
            event.get("subject"),
            event["specversion"],
            event.get("datacontenttype"),
            data_text,
        ),
    )


def decode_structured(data: bytes, publish_us: int) -> EventFields:
    if not data:
        raise RejectedError(ReasonCode.EMPTY_PAYLOAD, "structured-mode CloudEvent with no data")
    parsed = parse_json(data)
    if not isinstance(parsed, dict):
        raise _invalid(f"structured-mode payload is {json_type(parsed)}, not a JSON object")
    # A null context attribute is an absent one; "data": null is JSON null data.
    event = {key: value for key, value in parsed.items() if value is not None or key == "data"}
    if "data" in event and "data_base64" in event:
        raise _invalid("both 'data' and 'data_base64' are present")
    if "data_base64" in event:
        encoded = event["data_base64"]
        if not isinstance(encoded, str):
            raise _invalid(f"'data_base64' must be a string, got {json_type(encoded)}")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _invalid(f"'data_base64' is not valid base64: {exc}") from None
        # Normalised so it hashes like binary mode's base64 of the same bytes.
        event["data_base64"] = base64.b64encode(raw).decode("ascii")
    event_us = _context_time(event, publish_us)
    return _cloudevent_fields(event, event_us, bracket_count(data))


def decode_binary(data: bytes, attributes: Mapping[str, str], publish_us: int) -> EventFields:
    event: dict[str, Any] = {}
    for key, value in attributes.items():
        if key.startswith("ce-"):
            name = key[3:]
            if name in _RESERVED_BINARY_NAMES:
                raise _invalid(f"attribute {_short(key)} does not name a usable attribute")
            event[name] = value
    content_type = attributes.get("content-type")
    if content_type is not None:
        declared = event.setdefault("datacontenttype", content_type)
        if declared != content_type:
            raise _invalid(
                f"'ce-datacontenttype' {_short(declared)} conflicts with "
                f"'content-type' {_short(content_type)}"
            )
    event_us = _context_time(event, publish_us)  # a bad context wins over bad data
    if data:
        declared_type = event.get("datacontenttype")
        if (
            declared_type is None
            or declared_type == "application/json"
            or _is_json_media_type(declared_type)
        ):
            event["data"] = parse_json(data)
        else:
            event["data_base64"] = base64.b64encode(data).decode("ascii")
    return _cloudevent_fields(event, event_us, bracket_count(data))


def _field_time(value: object, publish_us: int) -> int:
    """A plain-JSON event's time from its time field: the field's RFC 3339 string,
    else (absent, not a string, not RFC 3339) the publish time. Never a refusal:
    the payload, field included, is kept as it came."""
    if type(value) is str:
        with contextlib.suppress(ValueError):
            return parse_rfc3339_micros(value)
    return publish_us


def decode_plain(data: bytes, publish_us: int, time_field: str | None) -> EventFields:
    if not data:
        raise RejectedError(ReasonCode.EMPTY_PAYLOAD, "the message has no data")
    value = parse_json(data)
    if not isinstance(value, dict):
        raise RejectedError(
            ReasonCode.NOT_AN_OBJECT, f"top-level JSON value is {json_type(value)}, not an object"
        )
    data_text = bounded_canonical(value, bracket_count(data))
    event_us = publish_us if time_field is None else _field_time(value.get(time_field), publish_us)
    return new_row(
        EventFields,
        (event_id_of_canonical(data_text), event_us, None, None, None, None, None, None, data_text),
    )
