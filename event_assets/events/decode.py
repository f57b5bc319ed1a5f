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

import base64
import binascii
import contextlib
import gc
import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, NamedTuple

import orjson
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from event_assets.events.identity import canonical_json, event_id_of_canonical
from event_assets.events.schema import EVENT_COLUMNS_SCHEMA, QUARANTINE_COLUMNS_SCHEMA

# The quoting json.dumps applies to every str (ensure_ascii=True): the C function.
_quote = json.encoder.encode_basestring_ascii

MAX_JSON_DEPTH = 200
"""Deepest accepted nesting of arrays/objects (of the hashed form). Far below the
interpreter's recursion limit, so parse and dump never depend on stack depth, and
below orjson's serialisation limit (254) should a faster path come later."""

MAX_REASON_CHARS = 500
STRUCTURED_MEDIA_TYPE = "application/cloudevents+json"
ENVELOPE_ID_PREFIX = "envelope-sha256:"
SUPPORTED_SPECVERSION = "1.0"


class ReasonCode(StrEnum):
    """Why a message was quarantined (the ``reason_code`` column)."""

    PAYLOAD_TOO_LARGE = "payload_too_large"
    EMPTY_PAYLOAD = "empty_payload"
    NOT_UTF8 = "not_utf8"
    INVALID_JSON = "invalid_json"
    JSON_TOO_DEEP = "json_too_deep"
    NOT_AN_OBJECT = "not_an_object"
    INVALID_CLOUDEVENT = "invalid_cloudevent"
    EVENT_DATE_OUT_OF_RANGE = "event_date_out_of_range"
    BAD_ENVELOPE = "bad_envelope"
    # A message that trips a bug in this module: quarantined (raw bytes kept for
    # replay) rather than stopping ingestion. Tests assert it never occurs.
    INTERNAL_ERROR = "internal_error"


# --------------------------------------------------------------------------- models


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return value.astimezone(UTC)


def _require_unicode(value: str) -> str:
    # Lone surrogates are legal in a Python str but not in Arrow/Parquet strings.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("string contains a lone surrogate (not valid Unicode)") from None
    return value


class PulledMessage(BaseModel):
    """One Pub/Sub message as pulled (or unwrapped from a push envelope)."""

    model_config = ConfigDict(frozen=True)

    data: bytes
    attributes: dict[str, str] = Field(default_factory=dict)
    message_id: str
    publish_time: datetime
    ordering_key: str = ""

    @field_validator("publish_time")
    @classmethod
    def _publish_time_utc(cls, value: datetime) -> datetime:
        return _to_utc(value)

    @field_validator("message_id", "ordering_key")
    @classmethod
    def _unicode_ids(cls, value: str) -> str:
        return _require_unicode(value)


class RawMessage(NamedTuple):
    """A pulled message on the hot path: the fields of :class:`PulledMessage`, unvalidated.

    For sources that already guarantee what the model checks (the pull client
    builds these from protobuf, whose strings are valid UTF-8); building a pydantic
    model per message cost 0.5 s per 100k. The publish time is kept as integer
    microseconds since the epoch (UTC), the table's own unit: converting datetimes
    to Arrow timestamps cost ~1.7 us per row. Any 5-tuple in this field order is
    accepted where a ``RawMessage`` is.
    """

    data: bytes
    attributes: Mapping[str, str]
    message_id: str
    publish_us: int
    ordering_key: str = ""


RawFields = tuple[bytes, Mapping[str, str], str, int, str]
"""A :class:`RawMessage` as a plain tuple, as the pull client builds them."""


class DecodedEvent(BaseModel):
    """A decoded event: the ``events`` table columns except ``ingested_at``/``batch_id``."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    event_date: date
    event_time: datetime
    message_id: str
    publish_time: datetime
    ce_id: str | None
    ce_source: str | None
    ce_type: str | None
    ce_subject: str | None
    ce_specversion: str | None
    ce_datacontenttype: str | None
    attributes: str
    data: str

    @field_validator("event_time", "publish_time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _to_utc(value)


class QuarantineRecord(BaseModel):
    """A message that could not be decoded, kept byte-for-byte with the reason."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    publish_time: datetime | None
    attributes: str
    payload: bytes
    reason_code: str
    reason: str


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """Result of :func:`decode_batch`: Arrow tables with the ``*_COLUMNS_SCHEMA`` schemas."""

    events: pa.Table
    quarantine: pa.Table


# Internal rows are plain tuples in table-column order (a NamedTuple per message
# cost ~0.3 us), with dates as days and times as microseconds since the epoch
# (UTC), which Arrow takes as they are.
_EventRow = tuple[
    str, int, int, str, int, str | None, str | None, str | None, str | None, str | None,
    str | None, str, str,
]  # fmt: skip
"""``EVENT_COLUMNS_SCHEMA`` order: event_id, event_date, event_time, message_id,
publish_time, ce_id, ce_source, ce_type, ce_subject, ce_specversion,
ce_datacontenttype, attributes, data."""
_QuarantineRow = tuple[str, int | None, str, bytes, str, str]
"""``QUARANTINE_COLUMNS_SCHEMA`` order: message_id, publish_time, attributes,
payload, reason_code, reason."""
_EventFields = tuple[
    str, int, str | None, str | None, str | None, str | None, str | None, str | None, str
]
"""What the payload and attributes decide: event_id, event_time, ce_id, ce_source,
ce_type, ce_subject, ce_specversion, ce_datacontenttype, data."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_MICROSECOND = timedelta(microseconds=1)
_DAY_US = 86_400_000_000
_MIN_US = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND
_MAX_US = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return (_to_utc(value) - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    """The aware UTC datetime of microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=micros)


def _epoch_day(value: date | None) -> int | None:
    return None if value is None else value.toordinal() - _EPOCH_ORDINAL


def _date_of_day(day: int) -> date:
    return date.fromordinal(day + _EPOCH_ORDINAL)


class _RejectedError(Exception):
    """Internal signal: this message goes to quarantine."""

    def __init__(self, code: ReasonCode, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail

    @property
    def reason(self) -> str:
        text = f"{self.code.value}: {self.detail}"
        # Details may quote hostile input; keep the text valid UTF-8 and short.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        if len(text) > MAX_REASON_CHARS:
            text = text[: MAX_REASON_CHARS - 3] + "..."
        return text


# --------------------------------------------------------------------------- JSON


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_reject_constant)


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


# A run of 19+ digits may be an integer beyond 64 bits, which orjson reads as a
# float where the standard library keeps an int: such texts take the slow path.
# (Checked as "19 digits in a row once every digit is mapped to 9": two C passes,
# 5x cheaper than a regex search.)
_DIGITS_TO_NINE = bytes(0x39 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_DIGIT_RUN = b"9" * 19


def _parse_json(data: bytes) -> Any:
    """Parse UTF-8 JSON text, rejecting what the ``data`` column cannot hold.

    The value is always what the standard library parser returns: orjson is only
    trusted where it agrees (a hypothesis test holds it to that); anything orjson
    refuses (NaN, infinities, lone surrogates, deep nesting, bad JSON) is handed to
    the standard library, which accepts it or gives the reason it always gave.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _RejectedError(ReasonCode.NOT_UTF8, str(exc)) from None
    if _LONG_DIGIT_RUN not in data.translate(_DIGITS_TO_NINE):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return _parse_json_stdlib(text)


def _parse_json_stdlib(text: str) -> Any:
    try:
        if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
            return _DECODER.decode(text)
        with no_collection():
            return _DECODER.decode(text)
    except RecursionError:
        raise _RejectedError(
            ReasonCode.JSON_TOO_DEEP, f"nested deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    except ValueError as exc:  # JSONDecodeError, rejected constants, int digit limit
        raise _RejectedError(ReasonCode.INVALID_JSON, str(exc)) from None


@contextlib.contextmanager
def no_collection() -> Iterator[None]:
    """No garbage collection while the parser may recurse to the interpreter's limit:
    a finalizer run at that depth fails with an 'unraisable' RecursionError (seen
    once in the hostile-input suite). Only for text with many brackets; brief."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _nesting_depth_exceeds(value: object, limit: int) -> bool:
    """Breadth-first, so it cannot itself recurse too deep."""
    level: list[dict[str, Any] | list[Any]] = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        children: list[dict[str, Any] | list[Any]] = []
        for container in level:
            items = container.values() if isinstance(container, dict) else container
            children.extend(item for item in items if isinstance(item, dict | list))
        level = children
    return False


def _canonical(value: object, bracket_bound: int, limit: int = MAX_JSON_DEPTH) -> str:
    """Canonical JSON of ``value``, whose nesting is at most ``bracket_bound``,
    refused if nested deeper than ``limit``.

    The bound (a count of ``[``/``{`` bytes) is cheap; the exact depth is only
    computed when the bound exceeds the limit.
    """
    if bracket_bound > limit and _nesting_depth_exceeds(value, limit):
        raise _RejectedError(
            ReasonCode.JSON_TOO_DEEP, f"nested deeper than {MAX_JSON_DEPTH} levels"
        )
    try:
        return canonical_json(value)
    except RecursionError:
        raise _RejectedError(
            ReasonCode.JSON_TOO_DEEP, f"nested deeper than {MAX_JSON_DEPTH} levels"
        ) from None


def _canonical_object(value_texts: Mapping[str, str]) -> str:
    """``canonical_json`` of an object whose values are already canonical text.

    Byte for byte what ``json.dumps(sort_keys=True)`` writes for the object (sorted
    keys quoted by the same C function, ``": "`` and ``", "``), so a CloudEvent's
    data is serialised once for both the ``data`` column and the hashed form.
    """
    items = ", ".join([f"{_quote(key)}: {value_texts[key]}" for key in sorted(value_texts)])
    return "{" + items + "}"


def _bracket_count(data: bytes) -> int:
    return data.count(b"[") + data.count(b"{")


# --------------------------------------------------------------------------- time


_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)


def parse_rfc3339_micros(text: str) -> int:
    """Parse an RFC 3339 timestamp to microseconds since the epoch (UTC).

    Accepts ``Z`` or a numeric offset and any number of fractional digits
    (truncated to microseconds, the table's precision). A leap second ``:60``
    becomes ``:59.999999``. Raises ``ValueError`` for anything else, including
    instants outside years 1-9999 in UTC.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError("not an RFC 3339 timestamp")
    if text[-1] == "Z":
        # The usual form. Once the pattern has matched, the C ISO parser reads a
        # "Z" timestamp as the rules below do (fraction truncated; always in range)
        # at half the cost; what it refuses (a leap second, 30 February) takes the
        # long way, which accepts or explains it.
        try:
            return (datetime.fromisoformat(text) - _EPOCH) // _MICROSECOND
        except ValueError:
            pass
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
    seconds = int(second)
    if seconds == 60:
        seconds, micros = 59, 999_999
    if zulu:
        tz: timezone = UTC
    else:
        if int(off_h) > 23 or int(off_m) > 59:
            raise ValueError("offset out of range")
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        tz = timezone(-offset if sign == "-" else offset)
    local = datetime(
        int(year), int(month), int(day), int(hour), int(minute), seconds, micros, tzinfo=tz
    )
    # Aware subtraction converts to UTC without the overflow astimezone raises
    # near year 1 / 9999; the range check then refuses what UTC cannot hold.
    since_epoch = (local - _EPOCH) // _MICROSECOND
    if not _MIN_US <= since_epoch <= _MAX_US:  # e.g. 0001-01-01T00:00:00+01:00
        raise ValueError("timestamp out of range in UTC")
    return since_epoch


def parse_rfc3339(text: str) -> datetime:
    """:func:`parse_rfc3339_micros` as an aware UTC datetime."""
    return from_micros(parse_rfc3339_micros(text))


def _iso_micros(micros: int) -> str:
    try:
        return from_micros(micros).isoformat().replace("+00:00", "Z")
    except OverflowError:
        return f"{micros} us since the epoch"


Clock = Callable[[], int]
"""Reads the current time, in microseconds since the epoch (UTC)."""


def wall_clock_us() -> int:
    """The system clock in microseconds since the epoch: the decoder's default clock."""
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class FixedClock:
    """A clock that always reads ``micros``: for tests, and for a round given an
    explicit ``now``. Picklable, so it reaches decode worker processes."""

    micros: int

    def __call__(self) -> int:
        return self.micros


_UNBOUNDED_US = 1 << 64  # beyond any representable event time


class _Limits:
    """What, besides the message, decides its fate; built once per batch.

    ``latest_us`` is the clock plus the future skew as last read. It is read when
    the batch starts and read again before an event is refused as too late
    (:meth:`too_late`), so every refusal is judged against the time the event was
    decoded at, and an accepted event was at most the skew ahead of a reading taken
    no later than its decode. Events under the bound never read the clock.
    """

    __slots__ = ("clock", "earliest_us", "latest_us", "max_bytes", "skew_us", "time_field")

    def __init__(
        self,
        max_bytes: int,
        earliest_date: date | None,
        future_skew_seconds: float | None,
        clock: Clock,
        time_field: str | None,
    ) -> None:
        if future_skew_seconds is not None and future_skew_seconds < 0:
            raise ValueError(f"future_skew_seconds must be >= 0, got {future_skew_seconds}")
        self.max_bytes = max_bytes
        self.earliest_us = (
            -_UNBOUNDED_US
            if earliest_date is None
            else (earliest_date.toordinal() - _EPOCH_ORDINAL) * _DAY_US
        )
        self.skew_us = None if future_skew_seconds is None else round(future_skew_seconds * 1e6)
        self.clock = clock
        self.time_field = time_field
        self.latest_us = _UNBOUNDED_US if self.skew_us is None else clock() + self.skew_us

    def too_late(self, event_us: int) -> bool:
        """Whether ``event_us`` is more than the skew after the clock, read now."""
        if self.skew_us is None:
            return False
        self.latest_us = self.clock() + self.skew_us
        return event_us > self.latest_us

    def out_of_range(self, event_us: int) -> _RejectedError:
        event_day = event_us // _DAY_US
        if event_us < self.earliest_us:
            earliest = _date_of_day(self.earliest_us // _DAY_US).isoformat()
            return _RejectedError(
                ReasonCode.EVENT_DATE_OUT_OF_RANGE,
                f"event_date {_date_of_day(event_day).isoformat()} is before the earliest "
                f"accepted date {earliest}",
            )
        return _RejectedError(
            ReasonCode.EVENT_DATE_OUT_OF_RANGE,
            f"event_time {_iso_micros(event_us)} is after the latest accepted time "
            f"{_iso_micros(self.latest_us)} (the clock + {(self.skew_us or 0) / 1e6:g} s "
            "of future skew)",
        )


# --------------------------------------------------------------------------- CloudEvents


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json_media_type(content_type: str) -> bool:
    media = _media_type(content_type)
    return media in ("application/json", "text/json") or media.endswith("+json")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_REQUIRED_ATTRIBUTES = ("id", "source", "type", "specversion")
_STRING_ATTRIBUTES = (*_REQUIRED_ATTRIBUTES, "time", "subject", "datacontenttype", "dataschema")
_RESERVED_BINARY_NAMES = frozenset({"", "data", "data_base64"})


_Context = tuple[str, str, str, str | None, str, str | None, int]


def _invalid(detail: str) -> _RejectedError:
    return _RejectedError(ReasonCode.INVALID_CLOUDEVENT, detail)


def _context_fields(event: Mapping[str, Any], publish_us: int) -> _Context:
    """Validate the context attributes; return (id, source, type, subject,
    specversion, datacontenttype, event_time in microseconds)."""
    for name in _REQUIRED_ATTRIBUTES:
        value = event.get(name)
        if value is None or value == "":
            raise _invalid(f"missing required attribute {name!r}")
    for name in _STRING_ATTRIBUTES:
        value = event.get(name)
        if value is None:
            continue
        if type(value) is not str:
            raise _invalid(f"attribute {name!r} must be a string, got {_json_type(value)}")
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
    return (
        event["id"],
        event["source"],
        event["type"],
        event.get("subject"),
        specversion,
        event.get("datacontenttype"),
        event_us,
    )


def _cloudevent_fields(
    event: dict[str, Any], context: _Context, bracket_bound: int
) -> _EventFields:
    """Hash the structured form ``event`` and pick the columns."""
    ce_id, source, type_, subject, specversion, content_type, event_us = context
    # The structured form is one level deeper than each of its values.
    limit = MAX_JSON_DEPTH - 1
    texts = {
        key: _quote(value) if type(value) is str else _canonical(value, bracket_bound, limit)
        for key, value in event.items()
    }
    data_text = texts.get("data") or texts.get("data_base64") or "null"
    event_id = event_id_of_canonical(_canonical_object(texts))
    return (event_id, event_us, ce_id, source, type_, subject, specversion, content_type, data_text)


def _decode_structured(data: bytes, publish_us: int) -> _EventFields:
    if not data:
        raise _RejectedError(ReasonCode.EMPTY_PAYLOAD, "structured-mode CloudEvent with no data")
    parsed = _parse_json(data)
    if not isinstance(parsed, dict):
        raise _invalid(f"structured-mode payload is {_json_type(parsed)}, not a JSON object")
    # A null context attribute is an absent one; "data": null is JSON null data.
    event = {key: value for key, value in parsed.items() if value is not None or key == "data"}
    if "data" in event and "data_base64" in event:
        raise _invalid("both 'data' and 'data_base64' are present")
    if "data_base64" in event:
        encoded = event["data_base64"]
        if not isinstance(encoded, str):
            raise _invalid(f"'data_base64' must be a string, got {_json_type(encoded)}")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _invalid(f"'data_base64' is not valid base64: {exc}") from None
        # Normalised so it hashes like binary mode's base64 of the same bytes.
        event["data_base64"] = base64.b64encode(raw).decode("ascii")
    context = _context_fields(event, publish_us)
    return _cloudevent_fields(event, context, _bracket_count(data))


def _decode_binary(data: bytes, attributes: Mapping[str, str], publish_us: int) -> _EventFields:
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
    context = _context_fields(event, publish_us)  # a bad context wins over bad data
    if data:
        declared_type = event.get("datacontenttype")
        if (
            declared_type is None
            or declared_type == "application/json"
            or _is_json_media_type(declared_type)
        ):
            event["data"] = _parse_json(data)
        else:
            event["data_base64"] = base64.b64encode(data).decode("ascii")
    return _cloudevent_fields(event, context, _bracket_count(data))


def _field_time(value: object, publish_us: int) -> int:
    """A plain-JSON event's time from its time field: the field's RFC 3339 string,
    else (absent, not a string, not RFC 3339) the publish time. Never a refusal:
    the payload, field included, is kept as it came."""
    if type(value) is str:
        with contextlib.suppress(ValueError):
            return parse_rfc3339_micros(value)
    return publish_us


def _decode_plain(data: bytes, publish_us: int, time_field: str | None) -> _EventFields:
    if not data:
        raise _RejectedError(ReasonCode.EMPTY_PAYLOAD, "the message has no data")
    value = _parse_json(data)
    if not isinstance(value, dict):
        raise _RejectedError(
            ReasonCode.NOT_AN_OBJECT, f"top-level JSON value is {_json_type(value)}, not an object"
        )
    data_text = _canonical(value, _bracket_count(data))
    return (
        event_id_of_canonical(data_text),
        publish_us if time_field is None else _field_time(value.get(time_field), publish_us),
        None,
        None,
        None,
        None,
        None,
        None,
        data_text,
    )


# --------------------------------------------------------------------------- decoding


def _is_binary_mode(attributes: Mapping[str, str]) -> bool:
    # A loop, not any(<generator>): the generator costs more than the test itself.
    for key in attributes:  # noqa: SIM110
        if key.startswith("ce-"):
            return True
    return False


def _decode_fields(
    data: bytes, attributes: Mapping[str, str], publish_us: int, limits: _Limits
) -> tuple[_EventFields, int]:
    """The event's fields and its ``event_date`` (days since the epoch)."""
    size = len(data)
    if size > limits.max_bytes:
        raise _RejectedError(
            ReasonCode.PAYLOAD_TOO_LARGE, f"{size} bytes > max_bytes {limits.max_bytes}"
        )
    content_type = attributes.get("content-type")
    if content_type is not None and (
        content_type == STRUCTURED_MEDIA_TYPE or _media_type(content_type) == STRUCTURED_MEDIA_TYPE
    ):
        fields = _decode_structured(data, publish_us)
    elif _is_binary_mode(attributes):
        fields = _decode_binary(data, attributes, publish_us)
    else:
        fields = _decode_plain(data, publish_us, limits.time_field)
    event_us = fields[1]
    if event_us < limits.earliest_us or (event_us > limits.latest_us and limits.too_late(event_us)):
        raise limits.out_of_range(event_us)
    return fields, event_us // _DAY_US


def _attributes_json(attributes: Mapping[str, str]) -> str:
    if not attributes:
        return "{}"
    return canonical_json(attributes if type(attributes) is dict else dict(attributes))


def _decode_row(
    msg: RawFields, limits: _Limits
) -> tuple[_EventRow, None] | tuple[None, _QuarantineRow]:
    """Decode one message into an event row or a quarantine row. Never raises."""
    data, attributes, message_id, publish_us, _ = msg
    attributes_json = "{}"
    try:
        attributes_json = _attributes_json(attributes)
        fields, event_day = _decode_fields(data, attributes, publish_us, limits)
    except _RejectedError as exc:
        rejected = exc
    except Exception as exc:  # noqa: BLE001
        # Never-raise boundary: one message that trips a bug must not stop the
        # whole subscription (it would be redelivered forever) nor be lost; the
        # quarantine row keeps its raw bytes for replay once the bug is fixed.
        rejected = _RejectedError(ReasonCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
    else:
        event_id, event_us, ce_id, source, type_, subject, specversion, content_type, text = fields
        return (
            event_id,
            event_day,
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
        ), None
    return None, (
        message_id,
        publish_us,
        attributes_json,
        data,
        rejected.code.value,
        rejected.reason,
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
    limits = _Limits(max_bytes, earliest_date, future_skew_seconds, clock, event_time_field)
    event, rejected = _decode_row(_raw(msg), limits)
    # Rows are fully typed by construction, so skip re-validation.
    if event is not None:
        values: dict[str, Any] = dict(zip(DecodedEvent.model_fields, event, strict=True))
        values["event_date"] = _date_of_day(event[1])
        values["event_time"] = from_micros(event[2])
        values["publish_time"] = from_micros(event[4])
        return DecodedEvent.model_construct(**values)
    assert rejected is not None
    record: dict[str, Any] = dict(zip(QuarantineRecord.model_fields, rejected, strict=True))
    record["publish_time"] = msg.publish_time
    return QuarantineRecord.model_construct(**record)


def _columns(rows: list[Any], schema: pa.Schema) -> pa.Table:
    """Transpose row tuples (in schema order) into an Arrow table; dates and
    timestamps are given as integers in the schema's units."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    arrays = [
        pa.array(column, type=field.type) for column, field in zip(columns, schema, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def decode_batch(
    messages: Iterable[PulledMessage | RawFields],
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
    limits = _Limits(max_bytes, earliest_date, future_skew_seconds, clock, event_time_field)
    events: list[_EventRow] = []
    quarantine: list[_QuarantineRow] = []
    for msg in messages:
        event, rejected = _decode_row(_raw(msg) if isinstance(msg, PulledMessage) else msg, limits)
        if event is not None:
            events.append(event)
        else:
            quarantine.append(rejected)  # type: ignore[arg-type]
    return DecodedBatch(
        events=_columns(events, EVENT_COLUMNS_SCHEMA),
        quarantine=_columns(quarantine, QUARANTINE_COLUMNS_SCHEMA),
    )


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


# --------------------------------------------------------------------------- push envelope


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


def _bad_envelope(detail: str) -> _RejectedError:
    return _RejectedError(ReasonCode.BAD_ENVELOPE, detail)


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
            envelope = _parse_json(raw)
        except _RejectedError as rejected:
            raise _bad_envelope(f"body is not JSON ({rejected.reason})") from None
    if not isinstance(envelope, Mapping):
        raise _bad_envelope(f"body is {_json_type(envelope)}, not a JSON object")
    message = envelope.get("message")
    if not isinstance(message, Mapping):
        raise _bad_envelope("missing 'message' object")
    encoded = message.get("data")
    if encoded is None:
        encoded = ""
    if not isinstance(encoded, str):
        raise _bad_envelope(f"message.data must be a base64 string, got {_json_type(encoded)}")
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
    except _RejectedError as rejected:
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
