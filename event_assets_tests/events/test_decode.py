"""Decoding: every message becomes one event or one quarantine record, never an exception."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from event_assets.events import (
    EVENT_COLUMNS_SCHEMA,
    MAX_JSON_DEPTH,
    QUARANTINE_COLUMNS_SCHEMA,
    DecodedEvent,
    PulledMessage,
    QuarantineRecord,
    ReasonCode,
    decode_batch,
    decode_message,
    event_id_of,
    parse_rfc3339,
)
from event_assets.events.timestamps import FixedClock, from_micros, parse_rfc3339_micros, to_micros
from event_assets_tests.support.push_envelope import decode_push_envelope

PUBLISH = datetime(2025, 11, 24, 10, 0, tzinfo=UTC)
MAX_BYTES = 1_000_000
SEED_EXAMPLE_ID = "08529916f7f003fd9cea3e440ddce69cb6ba863a751ee4e8d4ae536cf3fbe2d3"
STRUCTURED = {"content-type": "application/cloudevents+json; charset=utf-8"}
KNOWN_CODES = {code.value for code in ReasonCode} - {ReasonCode.INTERNAL_ERROR.value}


def seed_generate_unique_id(data: dict[str, Any]) -> str:
    """Verbatim from the seed README."""
    sorted_data = json.dumps(data, sort_keys=True)
    return hashlib.sha256(sorted_data.encode()).hexdigest()


def msg(
    data: bytes | str,
    attributes: Mapping[str, str] | None = None,
    *,
    message_id: str = "m-1",
    publish_time: datetime = PUBLISH,
) -> PulledMessage:
    return PulledMessage(
        data=data.encode() if isinstance(data, str) else data,
        attributes=dict(attributes or {}),
        message_id=message_id,
        publish_time=publish_time,
    )


def event_of(result: DecodedEvent | QuarantineRecord) -> DecodedEvent:
    assert isinstance(result, DecodedEvent), result
    return result


def quarantine_of(result: DecodedEvent | QuarantineRecord, code: ReasonCode) -> QuarantineRecord:
    assert isinstance(result, QuarantineRecord), result
    assert result.reason_code == code.value, result.reason
    assert result.reason.startswith(f"{code.value}: ")
    return result


def decode(message: PulledMessage, **kwargs: Any) -> DecodedEvent | QuarantineRecord:
    return decode_message(message, max_bytes=kwargs.pop("max_bytes", MAX_BYTES), **kwargs)


def binary_attrs(context: Mapping[str, str]) -> dict[str, str]:
    """Binary-mode attributes for a CloudEvent context (datacontenttype -> content-type)."""
    attrs = {f"ce-{k}": v for k, v in context.items() if k != "datacontenttype"}
    if "datacontenttype" in context:
        attrs["content-type"] = context["datacontenttype"]
    return attrs


CONTEXT = {
    "specversion": "1.0",
    "id": "evt-1",
    "source": "//pubsub.googleapis.com/projects/p/topics/t",
    "type": "com.example.order.created",
}


# --------------------------------------------------------------------------- plain JSON


def test_plain_json_seed_example() -> None:
    event = event_of(decode(msg(b'{"name": "John", "lastname": "Doe"}')))
    assert event.event_id == SEED_EXAMPLE_ID
    assert event.data == '{"lastname": "Doe", "name": "John"}'
    assert event.attributes == "{}"
    assert event.message_id == "m-1"
    assert event.publish_time == PUBLISH
    assert event.event_time == PUBLISH
    assert event.event_date == date(2025, 11, 24)
    assert (event.ce_id, event.ce_source, event.ce_type) == (None, None, None)
    assert (event.ce_subject, event.ce_specversion, event.ce_datacontenttype) == (None, None, None)


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "John", "lastname": "Doe"},
        {"city": "Zürich", "nested": {"b": [1, 2.5, None, True], "a": "日本"}},
        {},
    ],
)
def test_plain_json_id_is_the_seed_function(payload: dict[str, Any]) -> None:
    for text in (json.dumps(payload), json.dumps(payload, indent=2, ensure_ascii=False)):
        event = event_of(decode(msg(text)))
        assert event.event_id == seed_generate_unique_id(payload)
        assert event.data == json.dumps(payload, sort_keys=True)


def test_plain_json_attributes_are_not_part_of_identity() -> None:
    a = event_of(decode(msg(b'{"a": 1}', {"origin": "x"})))
    b = event_of(decode(msg(b'{"a": 1}', {"origin": "y", "b": "2"}, message_id="m-2")))
    assert a.event_id == b.event_id == seed_generate_unique_id({"a": 1})
    assert a.attributes == '{"origin": "x"}'
    assert b.attributes == '{"b": "2", "origin": "y"}'


def test_duplicate_keys_last_one_wins() -> None:
    event = event_of(decode(msg(b'{"a": 1, "a": 2}')))
    assert event.data == '{"a": 2}'
    assert event.event_id == seed_generate_unique_id({"a": 2})


def test_lone_surrogate_escape_is_kept_escaped() -> None:
    event = event_of(decode(msg(b'{"k": "\\ud800"}', {"x": "\udfff"})))
    assert event.data == '{"k": "\\ud800"}'
    assert event.event_id == "8fa807238f94ae868fa1b0eac419a21a25b7aac3fe7da00c0779904bb9c3d639"
    assert event.attributes == '{"x": "\\udfff"}'
    # And the batch path can still build Arrow tables from it.
    batch = decode_batch([msg(b'{"k": "\\ud800"}', {"x": "\udfff"})], max_bytes=MAX_BYTES)
    assert batch.events.column("data").to_pylist() == ['{"k": "\\ud800"}']


# --------------------------------------------------------------------------- quarantine reasons


def test_payload_too_large() -> None:
    payload = b'{"a": "xxxxx"}'  # 14 bytes
    assert isinstance(decode(msg(payload), max_bytes=14), DecodedEvent)
    record = quarantine_of(decode(msg(payload), max_bytes=13), ReasonCode.PAYLOAD_TOO_LARGE)
    assert record.reason == "payload_too_large: 14 bytes > max_bytes 13"
    assert record.payload == payload


def test_empty_payload() -> None:
    record = quarantine_of(decode(msg(b"", {"k": "v"})), ReasonCode.EMPTY_PAYLOAD)
    assert record.payload == b""
    assert record.attributes == '{"k": "v"}'
    assert record.message_id == "m-1"
    assert record.publish_time == PUBLISH


def test_not_utf8_keeps_raw_bytes() -> None:
    payload = b'{"a": "\xff\xfe"}'
    record = quarantine_of(decode(msg(payload)), ReasonCode.NOT_UTF8)
    assert record.payload == payload
    assert "can't decode byte 0xff" in record.reason


def test_invalid_json_reason_text() -> None:
    record = quarantine_of(decode(msg(b"not json")), ReasonCode.INVALID_JSON)
    assert record.reason == "invalid_json: Expecting value: line 1 column 1 (char 0)"


@pytest.mark.parametrize(
    "payload",
    [
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"a": 1e400}',
        b'{"a": 1} trailing',
        b'\xef\xbb\xbf{"a": 1}',  # UTF-8 BOM
        b'{"a": ' + b"1" * 5000 + b"}",  # beyond Python's int digit limit
    ],
)
def test_invalid_json_variants(payload: bytes) -> None:
    record = quarantine_of(decode(msg(payload)), ReasonCode.INVALID_JSON)
    assert record.payload == payload


def test_huge_finite_numbers_are_fine() -> None:
    event = event_of(decode(msg(b'{"a": 1e308, "b": -1e-320}')))
    assert event.data == '{"a": 1e+308, "b": -1e-320}'


def test_json_too_deep_array_bomb_is_fast() -> None:
    payload = b"[" * 100_000
    started = time.perf_counter()
    record = quarantine_of(decode(msg(payload)), ReasonCode.JSON_TOO_DEEP)
    assert time.perf_counter() - started < 1.0
    assert record.payload == payload


def _nested_object(depth: int) -> bytes:
    """A JSON object whose nesting depth (containers) is exactly ``depth``."""
    inner = "[" * (depth - 1) + "]" * (depth - 1)
    return ('{"a": ' + inner + "}").encode()


def test_json_depth_limit_is_exact_and_independent_of_stack_depth() -> None:
    def at_stack_depth(frames: int, payload: bytes) -> DecodedEvent | QuarantineRecord:
        if frames == 0:
            return decode(msg(payload))
        return at_stack_depth(frames - 1, payload)

    for frames in (0, 500):
        event_of(at_stack_depth(frames, _nested_object(MAX_JSON_DEPTH)))
        quarantine_of(
            at_stack_depth(frames, _nested_object(MAX_JSON_DEPTH + 1)), ReasonCode.JSON_TOO_DEEP
        )
        quarantine_of(at_stack_depth(frames, _nested_object(990)), ReasonCode.JSON_TOO_DEEP)


def test_depth_limit_is_not_fooled_by_brackets_in_strings() -> None:
    payload = json.dumps({"s": "[{" * 1000}).encode()
    event = event_of(decode(msg(payload)))
    assert event.event_id == seed_generate_unique_id({"s": "[{" * 1000})


@pytest.mark.parametrize(
    ("payload", "kind"),
    [(b"[1, 2]", "an array"), (b'"s"', "a string"), (b"1", "a number"), (b"null", "null")],
)
def test_not_an_object(payload: bytes, kind: str) -> None:
    record = quarantine_of(decode(msg(payload)), ReasonCode.NOT_AN_OBJECT)
    assert record.reason == f"not_an_object: top-level JSON value is {kind}, not an object"


def test_event_date_out_of_range() -> None:
    message = msg(b'{"a": 1}')  # published 2025-11-24T10:00:00Z
    kwargs: dict[str, Any] = {
        "earliest_date": date(2025, 11, 24),
        "future_skew_seconds": 0,
        "clock": FixedClock(to_micros(PUBLISH)),
    }
    assert isinstance(decode(message, **kwargs), DecodedEvent)  # both bounds inclusive
    record = quarantine_of(
        decode(message, earliest_date=date(2025, 11, 25)), ReasonCode.EVENT_DATE_OUT_OF_RANGE
    )
    assert record.reason == (
        "event_date_out_of_range: event_date 2025-11-24 is before the earliest accepted date "
        "2025-11-25"
    )
    record = quarantine_of(
        decode(
            message,
            earliest_date=date(2025, 1, 1),
            future_skew_seconds=300,
            clock=FixedClock(to_micros(PUBLISH - timedelta(seconds=300, microseconds=1))),
        ),
        ReasonCode.EVENT_DATE_OUT_OF_RANGE,
    )
    assert record.reason == (
        "event_date_out_of_range: event_time 2025-11-24T10:00:00Z is after the latest accepted "
        "time 2025-11-24T09:59:59.999999Z (the clock + 300 s of future skew)"
    )


def test_no_future_skew_means_no_upper_bound() -> None:
    far = msg(b'{"a": 1}', publish_time=datetime(9999, 12, 31, tzinfo=UTC))
    assert event_of(decode(far, clock=FixedClock(0))).event_date == date(9999, 12, 31)


def test_a_negative_future_skew_is_refused() -> None:
    with pytest.raises(ValueError, match="future_skew_seconds must be >= 0"):
        decode(msg(b"{}"), future_skew_seconds=-1)


# --------------------------------------------------------------------------- midnight and clocks

MIDNIGHT = datetime(2025, 11, 25, tzinfo=UTC)
ROUND_START = MIDNIGHT - timedelta(seconds=2)  # 23:59:58, when the old date bound was fixed


class SteppingClock:
    """Reads each of `readings` in turn, then the last one forever; counts its reads."""

    def __init__(self, *readings: datetime) -> None:
        self.readings = [to_micros(t) for t in readings]
        self.reads = 0

    def __call__(self) -> int:
        value = self.readings[min(self.reads, len(self.readings) - 1)]
        self.reads += 1
        return value


def _stamped(when: datetime, message_id: str = "m-1") -> PulledMessage:
    """A binary-mode CloudEvent timed `when`, published at the round's start."""
    context = {**CONTEXT, "id": message_id, "time": when.isoformat()}
    return msg(b"{}", binary_attrs(context), message_id=message_id, publish_time=ROUND_START)


def test_an_event_after_midnight_in_a_round_that_began_before_it_is_accepted() -> None:
    """The round began at 23:59:58; the event, stamped 00:00:03, is decoded at 00:00:05.
    Even with no skew allowance it is accepted, in its own day's partition: the clock
    is read as the message is decoded."""
    after_midnight = MIDNIGHT + timedelta(seconds=3)
    clock = SteppingClock(ROUND_START, MIDNIGHT + timedelta(seconds=5))
    batch = decode_batch(
        [_stamped(ROUND_START, "before"), _stamped(after_midnight, "after")],
        max_bytes=MAX_BYTES,
        earliest_date=date(2020, 1, 1),
        future_skew_seconds=0,
        clock=clock,
    )
    assert batch.quarantine.num_rows == 0
    assert batch.events["message_id"].to_pylist() == ["before", "after"]
    assert batch.events["event_date"].to_pylist() == [date(2025, 11, 24), date(2025, 11, 25)]
    assert batch.events["event_time"].to_pylist() == [ROUND_START, after_midnight]
    # The batch's first reading, and one more for the event past it: not one per message.
    assert clock.reads == 2


def test_the_clock_is_read_again_only_for_an_event_past_the_bound() -> None:
    clock = SteppingClock(ROUND_START)
    messages = [_stamped(ROUND_START - timedelta(seconds=n), str(n)) for n in range(50)]
    batch = decode_batch(messages, max_bytes=MAX_BYTES, future_skew_seconds=0, clock=clock)
    assert batch.events.num_rows == 50
    assert clock.reads == 1


def test_the_skew_allowance_accepts_tomorrow_shortly_before_midnight() -> None:
    """Decoded at 23:59:58 with the default 300 s allowance: an event of 00:04:58
    is accepted (dated tomorrow), one of 00:04:58.000001 is not."""
    clock = FixedClock(to_micros(ROUND_START))
    limit = ROUND_START + timedelta(seconds=300)
    accepted = event_of(decode(_stamped(limit), future_skew_seconds=300, clock=clock))
    assert accepted.event_date == date(2025, 11, 25)
    record = quarantine_of(
        decode(_stamped(limit + timedelta(microseconds=1)), future_skew_seconds=300, clock=clock),
        ReasonCode.EVENT_DATE_OUT_OF_RANGE,
    )
    assert record.reason == (
        "event_date_out_of_range: event_time 2025-11-25T00:04:58.000001Z is after the latest "
        "accepted time 2025-11-25T00:04:58Z (the clock + 300 s of future skew)"
    )
    assert record.message_id == "m-1"
    assert record.payload == b"{}"


def test_beyond_the_skew_allowance_is_quarantined_even_when_the_clock_moves_on() -> None:
    """Re-reading the clock never lets an event further ahead than the allowance in."""
    clock = SteppingClock(ROUND_START, MIDNIGHT + timedelta(seconds=5))
    batch = decode_batch(
        [
            _stamped(MIDNIGHT + timedelta(seconds=3), "ok"),
            _stamped(MIDNIGHT + timedelta(seconds=10), "ahead"),
        ],
        max_bytes=MAX_BYTES,
        future_skew_seconds=4,
        clock=clock,
    )
    assert batch.events["message_id"].to_pylist() == ["ok"]
    assert batch.quarantine["message_id"].to_pylist() == ["ahead"]
    assert batch.quarantine["reason_code"].to_pylist() == ["event_date_out_of_range"]
    assert batch.quarantine["reason"].to_pylist() == [
        "event_date_out_of_range: event_time 2025-11-25T00:00:10Z is after the latest accepted "
        "time 2025-11-25T00:00:09Z (the clock + 4 s of future skew)"
    ]


# --------------------------------------------------------------------------- event time field

TIME_FIELD = "occurred_at"


def test_a_time_field_dates_plain_json_without_changing_its_identity() -> None:
    payload = {"order": 7, TIME_FIELD: "2025-11-20T23:30:00-02:00"}  # 2025-11-21 in UTC
    message = msg(json.dumps(payload))
    event = event_of(decode(message, event_time_field=TIME_FIELD))
    assert event.event_time == datetime(2025, 11, 21, 1, 30, tzinfo=UTC)
    assert event.event_date == date(2025, 11, 21)
    assert event.publish_time == PUBLISH
    assert event.event_id == seed_generate_unique_id(payload)
    assert event.event_id == event_of(decode(message)).event_id  # dated by publish time
    assert event_of(decode(message)).event_date == date(2025, 11, 24)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="absent"),
        pytest.param("2025-11-20", id="a-date"),
        pytest.param("yesterday", id="not-a-time"),
        pytest.param("2025-11-20T10:00:00", id="no-offset"),
        pytest.param("2025-02-30T00:00:00Z", id="no-such-day"),
        pytest.param(1763600000, id="a-number"),
        pytest.param({"at": "2025-11-20T00:00:00Z"}, id="an-object"),
        pytest.param("\ud800", id="lone-surrogate"),
    ],
)
def test_a_missing_or_invalid_time_field_falls_back_to_publish_time(value: object) -> None:
    payload: dict[str, Any] = {"order": 7}
    if value is not None:
        payload[TIME_FIELD] = value
    event = event_of(decode(msg(json.dumps(payload)), event_time_field=TIME_FIELD))
    assert event.event_time == PUBLISH
    assert event.event_date == date(2025, 11, 24)


def test_a_time_field_only_counts_at_the_top_level_of_plain_json() -> None:
    nested = msg(json.dumps({"inner": {TIME_FIELD: "2025-11-20T00:00:00Z"}}))
    assert event_of(decode(nested, event_time_field=TIME_FIELD)).event_time == PUBLISH
    # A CloudEvent is dated by its `time` (else publish time), never by its data.
    data = json.dumps({TIME_FIELD: "2025-11-20T00:00:00Z"})
    binary = msg(data, binary_attrs({**CONTEXT, "datacontenttype": "application/json"}))
    assert event_of(decode(binary, event_time_field=TIME_FIELD)).event_time == PUBLISH
    structured = msg(
        json.dumps({**CONTEXT, "data": {TIME_FIELD: "2025-11-20T00:00:00Z"}}), STRUCTURED
    )
    assert event_of(decode(structured, event_time_field=TIME_FIELD)).event_time == PUBLISH


def test_a_time_field_is_bounded_like_any_event_time() -> None:
    clock = FixedClock(to_micros(ROUND_START))
    ahead = msg(json.dumps({TIME_FIELD: "2025-11-25T00:05:00Z"}), publish_time=ROUND_START)
    quarantine_of(
        decode(ahead, event_time_field=TIME_FIELD, future_skew_seconds=300, clock=clock),
        ReasonCode.EVENT_DATE_OUT_OF_RANGE,
    )
    old = msg(json.dumps({TIME_FIELD: "2019-12-31T23:59:59Z"}))
    quarantine_of(
        decode(old, event_time_field=TIME_FIELD, earliest_date=date(2020, 1, 1)),
        ReasonCode.EVENT_DATE_OUT_OF_RANGE,
    )


def test_reason_is_truncated() -> None:
    long_time = "2025-" + "x" * 2000
    record = quarantine_of(
        decode(msg(b"{}", binary_attrs({**CONTEXT, "time": long_time}))),
        ReasonCode.INVALID_CLOUDEVENT,
    )
    assert len(record.reason) <= 500


# --------------------------------------------------------------------------- CloudEvents


@pytest.mark.parametrize(
    ("extra", "data"),
    [
        pytest.param({}, {"order": 42}, id="minimal"),
        pytest.param({"time": "2025-11-24T09:00:00.5+01:00"}, {"order": 42}, id="with-time"),
        pytest.param(
            {"subject": "orders/42", "tenant": "acme", "traceparent": "00-abc-01"},
            [1, "two", None],
            id="subject-and-extensions",
        ),
        pytest.param({"datacontenttype": "application/json"}, {"a": "ü"}, id="json-content-type"),
        pytest.param(
            {"datacontenttype": "application/vnd.acme+json; charset=utf-8", "dataschema": "s"},
            "just a string",
            id="suffix-json-content-type",
        ),
        pytest.param({"time": "2025-11-24T10:00:00Z"}, None, id="json-null-data"),
    ],
)
def test_binary_and_structured_modes_have_one_id(extra: dict[str, str], data: object) -> None:
    context = {**CONTEXT, **extra}
    binary = event_of(decode(msg(json.dumps(data), binary_attrs(context))))
    structured = event_of(decode(msg(json.dumps({**context, "data": data}), STRUCTURED)))
    assert binary.event_id == structured.event_id == event_id_of({**context, "data": data})
    assert binary.data == structured.data == json.dumps(data, sort_keys=True)
    for column in ("ce_id", "ce_source", "ce_type", "ce_subject", "ce_specversion"):
        assert getattr(binary, column) == getattr(structured, column) == context.get(column[3:])
    assert (
        binary.ce_datacontenttype == structured.ce_datacontenttype == extra.get("datacontenttype")
    )
    assert binary.event_time == structured.event_time
    assert binary.event_date == structured.event_date


def test_binary_and_structured_without_data() -> None:
    binary = event_of(decode(msg(b"", binary_attrs(CONTEXT))))
    structured = event_of(decode(msg(json.dumps(CONTEXT), STRUCTURED)))
    assert binary.event_id == structured.event_id == event_id_of(CONTEXT)
    assert binary.data == structured.data == "null"


def test_binary_non_json_data_is_data_base64() -> None:
    context = {**CONTEXT, "datacontenttype": "application/octet-stream"}
    raw = b"\x00\xffbinary\n"
    encoded = base64.b64encode(raw).decode()
    binary = event_of(decode(msg(raw, binary_attrs(context))))
    assert binary.data == json.dumps(encoded)
    assert binary.event_id == event_id_of({**context, "data_base64": encoded})
    assert binary.ce_datacontenttype == "application/octet-stream"
    # The structured twin carries data_base64; a non-canonical (unpadded-bits) form is normalised.
    structured = event_of(decode(msg(json.dumps({**context, "data_base64": encoded}), STRUCTURED)))
    assert structured.event_id == binary.event_id
    assert structured.data == binary.data
    other = event_of(decode(msg(json.dumps({**CONTEXT, "data_base64": "QR=="}), STRUCTURED)))
    assert other.event_id == event_id_of({**CONTEXT, "data_base64": "QQ=="})


def test_cloudevent_id_is_pinned() -> None:
    event = event_of(decode(msg(b'{"order": 42}', binary_attrs(CONTEXT))))
    assert event.event_id == "24a4c429d06c8f41fbe8977914ee9c2a835efc177b961866f577748b391fc94d"
    assert event.ce_id == "evt-1"
    assert event.ce_specversion == "1.0"


def test_different_ce_id_is_a_different_event() -> None:
    first = event_of(decode(msg(b'{"order": 42}', binary_attrs(CONTEXT))))
    second = event_of(decode(msg(b'{"order": 42}', binary_attrs({**CONTEXT, "id": "evt-2"}))))
    assert first.data == second.data
    assert first.event_id != second.event_id


def test_binary_identity_ignores_non_ce_attributes_but_keeps_them() -> None:
    plain_attrs = binary_attrs(CONTEXT)
    a = event_of(decode(msg(b'{"order": 42}', plain_attrs)))
    b = event_of(decode(msg(b'{"order": 42}', {**plain_attrs, "googclient_x": "1"})))
    assert a.event_id == b.event_id
    assert json.loads(b.attributes) == {**plain_attrs, "googclient_x": "1"}


def test_structured_null_attribute_is_absent() -> None:
    a = event_of(decode(msg(json.dumps({**CONTEXT, "subject": None, "data": 1}), STRUCTURED)))
    b = event_of(decode(msg(json.dumps({**CONTEXT, "data": 1}), STRUCTURED)))
    assert a.event_id == b.event_id
    assert a.ce_subject is None


def test_binary_data_may_be_any_json_value() -> None:
    event = event_of(decode(msg(b"[3, 1]", binary_attrs(CONTEXT))))
    assert event.data == "[3, 1]"


def test_binary_json_data_must_be_json() -> None:
    quarantine_of(decode(msg(b"nope", binary_attrs(CONTEXT))), ReasonCode.INVALID_JSON)
    quarantine_of(decode(msg(b'"\xff"', binary_attrs(CONTEXT))), ReasonCode.NOT_UTF8)


@pytest.mark.parametrize(
    ("time_text", "expected"),
    [
        # Offset crossing midnight UTC forwards and backwards.
        ("2025-11-24T23:30:00-02:00", datetime(2025, 11, 25, 1, 30, tzinfo=UTC)),
        ("2025-11-25T00:30:00+02:00", datetime(2025, 11, 24, 22, 30, tzinfo=UTC)),
        ("2025-01-01T00:00:00.123456789Z", datetime(2025, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2025-01-01t00:00:00.5z", datetime(2025, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ],
)
def test_event_time_comes_from_ce_time(time_text: str, expected: datetime) -> None:
    context = {**CONTEXT, "time": time_text}
    for message in (
        msg(b"{}", binary_attrs(context)),
        msg(json.dumps({**context, "data": {}}), STRUCTURED),
    ):
        event = event_of(decode(message))
        assert event.event_time == expected
        assert event.event_date == expected.date()
        assert event.publish_time == PUBLISH


def test_event_time_defaults_to_publish_time() -> None:
    publish = datetime(2025, 11, 24, 23, 59, 59, tzinfo=UTC)
    event = event_of(decode(msg(b"{}", binary_attrs(CONTEXT), publish_time=publish)))
    assert event.event_time == publish
    assert event.event_date == date(2025, 11, 24)


def test_ce_time_drives_the_date_range_check() -> None:
    context = {**CONTEXT, "time": "2025-11-24T23:30:00-02:00"}  # 2025-11-25 in UTC
    quarantine_of(
        decode(
            msg(b"{}", binary_attrs(context)),
            future_skew_seconds=300,
            clock=FixedClock(to_micros(datetime(2025, 11, 24, 23, 59, tzinfo=UTC))),
        ),
        ReasonCode.EVENT_DATE_OUT_OF_RANGE,
    )


@pytest.mark.parametrize(
    ("data", "attributes", "detail"),
    [
        (json.dumps({k: v for k, v in CONTEXT.items() if k != "id"}), STRUCTURED, "'id'"),
        (json.dumps({**CONTEXT, "source": ""}), STRUCTURED, "'source'"),
        (json.dumps({**CONTEXT, "id": 7}), STRUCTURED, "must be a string"),
        (json.dumps({**CONTEXT, "specversion": "0.3"}), STRUCTURED, "specversion"),
        (json.dumps({**CONTEXT, "data": 1, "data_base64": "AA=="}), STRUCTURED, "both"),
        (json.dumps({**CONTEXT, "data_base64": "not base64!"}), STRUCTURED, "base64"),
        (json.dumps({**CONTEXT, "data_base64": 5}), STRUCTURED, "data_base64"),
        (json.dumps({**CONTEXT, "time": "yesterday"}), STRUCTURED, "time"),
        (json.dumps({**CONTEXT, "time": "2025-13-01T00:00:00Z"}), STRUCTURED, "time"),
        (json.dumps({**CONTEXT, "time": "0001-01-01T00:00:00+01:00"}), STRUCTURED, "time"),
        (json.dumps({**CONTEXT, "subject": "\ud800"}), STRUCTURED, "not valid Unicode"),
        (json.dumps([CONTEXT]), STRUCTURED, "not a JSON object"),
        ("{}", {"ce-id": "x"}, "'source'"),
        ("{}", binary_attrs({**CONTEXT, "id": ""}), "'id'"),
        ("{}", binary_attrs({**CONTEXT, "specversion": "2.0"}), "specversion"),
        ("{}", binary_attrs({**CONTEXT, "time": "2025-11-24"}), "time"),
        ("{}", {**binary_attrs(CONTEXT), "ce-data": "x"}, "ce-data"),
        ("{}", {**binary_attrs(CONTEXT), "ce-": "x"}, "ce-"),
        ("{}", binary_attrs({**CONTEXT, "type": "\udc80"}), "not valid Unicode"),
        (
            "{}",
            {**binary_attrs(CONTEXT), "ce-datacontenttype": "a/b", "content-type": "c/d"},
            "conflicts",
        ),
    ],
)
def test_invalid_cloudevent(data: str, attributes: dict[str, str], detail: str) -> None:
    record = quarantine_of(decode(msg(data, attributes)), ReasonCode.INVALID_CLOUDEVENT)
    assert detail in record.reason
    assert record.payload == data.encode()


def test_structured_mode_empty_payload() -> None:
    quarantine_of(decode(msg(b"", STRUCTURED)), ReasonCode.EMPTY_PAYLOAD)


def test_structured_content_type_without_ce_attributes_is_not_plain() -> None:
    # A plain JSON object sent with the structured content type is a bad CloudEvent.
    quarantine_of(decode(msg(b'{"a": 1}', STRUCTURED)), ReasonCode.INVALID_CLOUDEVENT)


def test_parse_rfc3339_rejects_non_ascii_digits() -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_rfc3339("٢٠٢٥-01-01T00:00:00Z")
    assert parse_rfc3339("2025-01-01T00:00:00+00:30") == datetime(2024, 12, 31, 23, 30, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(
    when=st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999_999)
    ),
    offset_minutes=st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
    digits=st.integers(min_value=0, max_value=9),
    zulu=st.booleans(),
)
def test_rfc3339_micros_is_the_utc_instant(
    when: datetime, offset_minutes: int, digits: int, zulu: bool
) -> None:
    """Microseconds since the epoch of the UTC instant (fraction truncated), or
    ValueError where UTC cannot hold it (years 1-9999), as the datetime path did;
    "Z" timestamps (read by a faster path) included."""
    offset_minutes = 0 if zulu else offset_minutes
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    fraction = f".{when.microsecond:06d}{'7' * max(digits - 6, 0)}"[: digits + 1] if digits else ""
    stamp = f"{when.year:04d}-{when:%m-%dT%H:%M:%S}"  # %Y is not zero-padded below 1000
    text = f"{stamp}{fraction}" + ("Z" if zulu else f"{sign}{hours:02d}:{minutes:02d}")
    local = when.replace(
        microsecond=int(fraction[1:7].ljust(6, "0")) if digits else 0,
        tzinfo=timezone(timedelta(minutes=offset_minutes)),
    )
    try:
        expected = local.astimezone(UTC)
    except OverflowError:
        with pytest.raises(ValueError, match="out of range"):
            parse_rfc3339_micros(text)
        return
    micros = parse_rfc3339_micros(text)
    assert micros == (expected - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert from_micros(micros) == expected == parse_rfc3339(text)
    assert to_micros(expected) == micros


def test_rfc3339_micros_edges() -> None:
    assert parse_rfc3339_micros("1970-01-01T00:00:00Z") == 0
    assert parse_rfc3339_micros("1969-12-31T23:59:59.999999Z") == -1
    assert parse_rfc3339_micros("2016-12-31T23:59:60Z") == parse_rfc3339_micros(
        "2016-12-31T23:59:59.999999Z"
    )
    for outside in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-00:01"):
        with pytest.raises(ValueError, match="out of range in UTC"):
            parse_rfc3339_micros(outside)
    with pytest.raises(ValueError, match="day is out of range"):
        parse_rfc3339_micros("2025-02-30T00:00:00Z")
    for lenient_in_iso_only in (
        "2025-01-01T00:00:00+00:60",
        "2025-01-01T00:00Z",
        "20250101T000000Z",
    ):
        with pytest.raises(ValueError, match=r"offset out of range|not an RFC 3339"):
            parse_rfc3339_micros(lenient_in_iso_only)


def test_pulled_message_requires_aware_publish_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        msg(b"{}", publish_time=datetime(2025, 1, 1))
    local = datetime(2025, 1, 1, 3, tzinfo=timezone(timedelta(hours=2)))
    assert msg(b"{}", publish_time=local).publish_time.utcoffset() == timedelta(0)


# --------------------------------------------------------------------------- push envelope


def envelope(payload: bytes, **message: Any) -> dict[str, Any]:
    return {
        "message": {
            "data": base64.b64encode(payload).decode(),
            "messageId": "123456789",
            "publishTime": "2025-11-24T10:00:00Z",
            **message,
        },
        "subscription": "projects/p/subscriptions/s",
    }


SEED_REQUEST = {
    "message": {
        "data": "eyJuYW1lIjogIkpvaG4iLCAibGFzdG5hbWUiOiAiRG9lIn0=",
        "messageId": "123456789",
        "publishTime": "2025-11-24T10:00:00Z",
    }
}


@pytest.mark.parametrize(
    "body", [SEED_REQUEST, json.dumps(SEED_REQUEST), json.dumps(SEED_REQUEST).encode()]
)
def test_push_envelope_seed_request(body: Any) -> None:
    event = event_of(decode_push_envelope(body, max_bytes=MAX_BYTES))
    assert event.event_id == SEED_EXAMPLE_ID
    assert event.message_id == "123456789"
    assert event.publish_time == datetime(2025, 11, 24, 10, tzinfo=UTC)
    assert event.data == '{"lastname": "Doe", "name": "John"}'


def test_push_envelope_snake_case_and_attributes() -> None:
    body = {
        "message": {
            "data": base64.b64encode(b'{"order": 42}').decode(),
            "message_id": "m-9",
            "publish_time": "2025-11-24T10:00:00.123456789+01:00",
            "attributes": binary_attrs(CONTEXT),
        }
    }
    event = event_of(decode_push_envelope(body, max_bytes=MAX_BYTES))
    assert event.message_id == "m-9"
    assert event.publish_time == datetime(2025, 11, 24, 9, 0, 0, 123456, tzinfo=UTC)
    assert event.event_id == event_id_of({**CONTEXT, "data": {"order": 42}})


def test_push_envelope_decode_errors_keep_the_message_identity() -> None:
    record = quarantine_of(
        decode_push_envelope(envelope(b"not json"), max_bytes=MAX_BYTES), ReasonCode.INVALID_JSON
    )
    assert record.message_id == "123456789"
    assert record.payload == b"not json"
    assert record.publish_time == datetime(2025, 11, 24, 10, tzinfo=UTC)


def test_push_envelope_date_range() -> None:
    quarantine_of(
        decode_push_envelope(envelope(b"{}"), max_bytes=MAX_BYTES, earliest_date=date(2025, 12, 1)),
        ReasonCode.EVENT_DATE_OUT_OF_RANGE,
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"[1]", id="not-an-object"),
        pytest.param(b"[" * 100_000, id="too-deep"),
        pytest.param(json.dumps({"subscription": "s"}), id="missing-message"),
        pytest.param(json.dumps({"message": "x"}), id="message-not-object"),
        pytest.param(json.dumps(envelope(b"{}", data="%%%")), id="bad-base64"),
        pytest.param(json.dumps(envelope(b"{}", data=5)), id="data-not-string"),
        pytest.param(json.dumps(envelope(b"{}", messageId=None)), id="missing-message-id"),
        pytest.param(json.dumps(envelope(b"{}", messageId="")), id="empty-message-id"),
        pytest.param(json.dumps(envelope(b"{}", publishTime=None)), id="missing-publish-time"),
        pytest.param(json.dumps(envelope(b"{}", publishTime="soon")), id="bad-publish-time"),
        pytest.param(json.dumps(envelope(b"{}", attributes=[1])), id="attributes-not-map"),
        pytest.param(json.dumps(envelope(b"{}", attributes={"k": 1})), id="attribute-not-str"),
        pytest.param(json.dumps(envelope(b"{}", messageId="\ud800")), id="surrogate-message-id"),
        pytest.param("\ud800", id="surrogate-str-body"),
    ],
)
def test_bad_envelope(body: bytes | str) -> None:
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    record = quarantine_of(decode_push_envelope(body, max_bytes=MAX_BYTES), ReasonCode.BAD_ENVELOPE)
    assert record.payload == raw
    assert record.message_id == "envelope-sha256:" + hashlib.sha256(raw).hexdigest()
    assert record.publish_time is None
    assert record.attributes == "{}"
    assert len(record.reason) <= 500


def test_bad_envelope_mapping_body() -> None:
    body = {"message": {"data": "AA=="}}
    record = quarantine_of(decode_push_envelope(body, max_bytes=MAX_BYTES), ReasonCode.BAD_ENVELOPE)
    raw = json.dumps(body, sort_keys=True).encode()
    assert record.payload == raw
    assert record.message_id == "envelope-sha256:" + hashlib.sha256(raw).hexdigest()


# --------------------------------------------------------------------------- batches


def mixed_corpus() -> list[PulledMessage]:
    later = PUBLISH + timedelta(days=1)
    return [
        msg(b'{"name": "John", "lastname": "Doe"}', message_id="plain"),
        msg(b'{"a": 1}', {"origin": "x"}, message_id="plain-attrs", publish_time=later),
        msg(b'{"order": 42}', binary_attrs(CONTEXT), message_id="binary"),
        msg(
            json.dumps({**CONTEXT, "time": "2025-11-24T23:30:00-02:00", "data": [1]}),
            STRUCTURED,
            message_id="structured",
        ),
        msg(
            b"\x00\x01", binary_attrs({**CONTEXT, "datacontenttype": "image/png"}), message_id="b64"
        ),
        msg(b"", message_id="empty"),
        msg(b"\xff", message_id="not-utf8"),
        msg(b"{", message_id="invalid-json"),
        msg(b"[1]", message_id="not-object"),
        msg(_nested_object(MAX_JSON_DEPTH + 1), message_id="deep"),
        msg(b"{}", {"ce-id": "only-id"}, message_id="bad-ce"),
        msg(b'{"big": "' + b"x" * 600 + b'"}', message_id="too-large"),
        msg(b'{"old": 1}', publish_time=datetime(2020, 1, 1, tzinfo=UTC), message_id="old"),
    ]


def test_decode_batch_equals_decode_message() -> None:
    corpus = mixed_corpus()
    kwargs: dict[str, Any] = {"max_bytes": 500, "earliest_date": date(2025, 1, 1)}
    singles = [decode_message(m, **kwargs) for m in corpus]
    batch = decode_batch(iter(corpus), **kwargs)
    assert batch.events.schema == EVENT_COLUMNS_SCHEMA
    assert batch.quarantine.schema == QUARANTINE_COLUMNS_SCHEMA
    events = [s.model_dump() for s in singles if isinstance(s, DecodedEvent)]
    records = [s.model_dump() for s in singles if isinstance(s, QuarantineRecord)]
    assert batch.events.to_pylist() == events
    assert batch.quarantine.to_pylist() == records
    assert [e["message_id"] for e in events] == [
        "plain",
        "plain-attrs",
        "binary",
        "structured",
        "b64",
    ]
    codes = {r["message_id"]: r["reason_code"] for r in records}
    assert codes == {
        "empty": "empty_payload",
        "not-utf8": "not_utf8",
        "invalid-json": "invalid_json",
        "not-object": "not_an_object",
        "deep": "json_too_deep",
        "bad-ce": "invalid_cloudevent",
        "too-large": "payload_too_large",
        "old": "event_date_out_of_range",
    }


def test_decode_batch_empty() -> None:
    batch = decode_batch([], max_bytes=MAX_BYTES)
    assert batch.events.num_rows == 0
    assert batch.quarantine.num_rows == 0
    assert batch.events.schema == EVENT_COLUMNS_SCHEMA
    assert batch.quarantine.schema == QUARANTINE_COLUMNS_SCHEMA


# --------------------------------------------------------------------------- never raises


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def documented_identity_form(message: PulledMessage) -> object:
    """An independent restatement of the identity rule in the decode docstring."""
    attrs, data = message.attributes, message.data
    content_type = attrs.get("content-type")
    media = content_type.split(";")[0].strip().lower() if content_type is not None else None
    if media == "application/cloudevents+json":
        obj = json.loads(data)
        form = {k: v for k, v in obj.items() if v is not None or k == "data"}
        if "data_base64" in form:
            raw = base64.b64decode(form["data_base64"])
            form["data_base64"] = base64.b64encode(raw).decode()
        return form
    if any(key.startswith("ce-") for key in attrs):
        form = {key[3:]: value for key, value in attrs.items() if key.startswith("ce-")}
        if content_type is not None:
            form["datacontenttype"] = content_type
        if data:
            dct = form.get("datacontenttype")
            json_media = dct is None or (
                (m := dct.split(";")[0].strip().lower()) in ("application/json", "text/json")
                or m.endswith("+json")
            )
            if json_media:
                form["data"] = json.loads(data)
            else:
                form["data_base64"] = base64.b64encode(data).decode()
        return form
    return json.loads(data)


hostile_text = st.text(
    alphabet=st.characters() | st.sampled_from(["\ud800", "\udfff"]), max_size=12
)
attribute_keys = (
    st.sampled_from(
        [
            *("ce-id", "ce-source", "ce-type", "ce-specversion", "ce-time", "ce-subject", "ce-x"),
            *("content-type", "ce-data", "ce-", "ce-datacontenttype", "origin"),
        ]
    )
    | hostile_text
)
attribute_values = (
    st.sampled_from(
        [
            *("1.0", "0.3", "", "application/cloudevents+json", "application/json", "text/plain"),
            *("2025-11-24T23:30:00-02:00", "x", "\ud800"),
        ]
    )
    | hostile_text
)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | hostile_text
json_values = st.recursive(
    json_scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(hostile_text, c, max_size=3),
    max_leaves=10,
)


def _mostly(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> Any:
    """Valid values most of the time, so the generated CloudEvents often decode."""
    return st.one_of(valid, valid, valid, invalid)


times = st.sampled_from(["2025-11-24T10:00:00Z", "2025-11-24T23:30:00.123456789-02:00", "bad"])
content_types = st.sampled_from(["application/json", "text/plain; charset=utf-8", "a/b+json"])
context_objects = st.fixed_dictionaries(
    {
        "specversion": _mostly(st.just("1.0"), json_scalars),
        "id": _mostly(st.just("a"), json_scalars),
        "source": _mostly(st.just("s"), json_scalars),
        "type": _mostly(st.just("t"), json_scalars),
    },
    optional={
        "time": _mostly(times, json_scalars),
        "subject": _mostly(hostile_text, json_scalars),
        "datacontenttype": _mostly(content_types, json_scalars),
        "data": json_values,
        "data_base64": _mostly(st.sampled_from(["AA==", "QR==", ""]), json_scalars),
        "ext": json_values,
    },
)
binary_attributes = st.fixed_dictionaries(
    {
        "ce-id": _mostly(st.just("a"), hostile_text),
        "ce-source": _mostly(st.just("s"), hostile_text),
        "ce-type": _mostly(st.just("t"), hostile_text),
        "ce-specversion": _mostly(st.just("1.0"), hostile_text),
    },
    optional={
        "ce-time": _mostly(times, hostile_text),
        "ce-subject": hostile_text,
        "ce-ext": hostile_text,
        "content-type": _mostly(content_types, hostile_text),
        "origin": hostile_text,
    },
)
attribute_maps = (
    st.dictionaries(attribute_keys, attribute_values, max_size=6)
    | binary_attributes
    | st.just(STRUCTURED)
)
payloads = (
    st.binary(max_size=64)
    | json_values.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass"))
    | context_objects.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass"))
)


@settings(max_examples=200, deadline=None)
@given(
    data=payloads,
    attributes=attribute_maps,
    message_id=st.text(max_size=10),
)
def test_decode_message_never_raises(
    data: bytes, attributes: dict[str, str], message_id: str
) -> None:
    message = msg(data, attributes, message_id=message_id)
    result = decode_message(message, max_bytes=256, earliest_date=date(2025, 1, 1))
    if isinstance(result, DecodedEvent):
        form = documented_identity_form(message)
        expected = hashlib.sha256(json.dumps(form, sort_keys=True).encode()).hexdigest()
        assert result.event_id == expected
        json.loads(result.data, parse_constant=_reject_constant)  # standard JSON only
        assert result.event_date == result.event_time.date()
        assert result.event_time.utcoffset() == timedelta(0)
        assert DecodedEvent.model_validate(result.model_dump()) == result
    else:
        assert isinstance(result, QuarantineRecord)
        assert result.reason_code in KNOWN_CODES, result.reason
        assert result.reason.startswith(result.reason_code + ": ")
        assert len(result.reason) <= 500
        result.reason.encode("utf-8")
        assert result.payload == data
        assert QuarantineRecord.model_validate(result.model_dump()) == result
    assert result.message_id == message_id
    # The batch path agrees and can always build its Arrow tables.
    batch = decode_batch([message], max_bytes=256, earliest_date=date(2025, 1, 1))
    table = batch.events if isinstance(result, DecodedEvent) else batch.quarantine
    assert table.to_pylist() == [result.model_dump()]


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=64) | hostile_text | json_values.map(json.dumps))
def test_decode_push_envelope_never_raises(body: bytes | str) -> None:
    result = decode_push_envelope(body, max_bytes=MAX_BYTES)
    assert isinstance(result, QuarantineRecord)  # none of these is a valid envelope
    assert result.reason_code == ReasonCode.BAD_ENVELOPE.value
