"""What decoding takes and gives: the message shapes, the decoded event, the quarantine
record and its reason codes, and the hot path's named rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import NamedTuple

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

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
    to Arrow timestamps cost ~1.7 us per row.
    """

    data: bytes
    attributes: Mapping[str, str]
    message_id: str
    publish_us: int
    ordering_key: str = ""


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


# The hot path's rows. Dates are days and times microseconds since the epoch (UTC),
# which Arrow takes as they are. NamedTuple's generated constructor is a Python
# function (+0.2 us a call, measured); the hot path builds the same instances with
# `new_row`, which is `tuple.__new__` and runs in C. mypy does not check the fields
# there: the tests that decode every shape into the Arrow schema do, and
# test_schema pins each row's field names to its table's columns.
new_row = tuple.__new__


class EventFields(NamedTuple):
    """What a message's payload and attributes decide (each shape's decoder returns it)."""

    event_id: str
    event_time: int
    ce_id: str | None
    ce_source: str | None
    ce_type: str | None
    ce_subject: str | None
    ce_specversion: str | None
    ce_datacontenttype: str | None
    data: str


class EventRow(NamedTuple):
    """One row of ``EVENT_COLUMNS_SCHEMA``, field for column."""

    event_id: str
    event_date: int
    event_time: int
    message_id: str
    publish_time: int
    ce_id: str | None
    ce_source: str | None
    ce_type: str | None
    ce_subject: str | None
    ce_specversion: str | None
    ce_datacontenttype: str | None
    attributes: str
    data: str


class QuarantineRow(NamedTuple):
    """One row of ``QUARANTINE_COLUMNS_SCHEMA``, field for column."""

    message_id: str
    publish_time: int | None
    attributes: str
    payload: bytes
    reason_code: str
    reason: str


class RejectedError(Exception):
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
