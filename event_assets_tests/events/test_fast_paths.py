"""The speed-ups keep the identity rule: every fast path gives the stdlib's value and ids.

`parse_json` tries orjson and falls back to the standard library; the lean pull
builds `RawMessage` tuples instead of `PulledMessage` models; a CloudEvent's hashed
form is assembled around its already serialised data (`canonical_object`). Whatever the input,
the parsed value (and so the canonical text and the event id) and the decoded
rows must be exactly what the standard-library path gives.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from event_assets.events.decode import decode_batch
from event_assets.events.identity import canonical_json, event_id_of
from event_assets.events.json_text import (
    MAX_JSON_DEPTH,
    _parse_json_stdlib,
    canonical_object,
    parse_json,
)
from event_assets.events.models import PulledMessage, RawMessage, RejectedError
from event_assets.events.timestamps import to_micros

PUBLISH = datetime(2025, 11, 24, 10, 0, tzinfo=UTC)
PUBLISH_US = to_micros(PUBLISH)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
number_text = st.from_regex(
    r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)
json_alphabet = st.sampled_from(
    [
        *'{}[],:"\\ ',
        "1",
        "0",
        "-",
        ".",
        "e",
        "E",
        "+",
        "true",
        "null",
        "NaN",
        "Infinity",
        "\\u",
        "d800",
        "dc00",
        "a",
        "\u00e9",
        "\x7f",
        "\x00",
        "\n",
        "\ufeff",
        "9" * 20,
    ]
)
hostile = st.lists(json_alphabet, max_size=30).map("".join)


def _outcome(data: bytes) -> tuple[str, Any]:
    """("ok", canonical text + type skeleton) or ("rejected", code + reason)."""
    try:
        value = parse_json(data)
    except RejectedError as exc:
        return "rejected", (exc.code, exc.reason)
    return "ok", (canonical_json(value), _types(value))


def _stdlib_outcome(data: bytes) -> tuple[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _outcome(data)  # not UTF-8: decided before either parser runs
    try:
        value = _parse_json_stdlib(text)
    except RejectedError as exc:
        return "rejected", (exc.code, exc.reason)
    return "ok", (canonical_json(value), _types(value))


def _types(value: Any) -> Any:
    """Types all the way down, so an int read as a float (or -0.0 as 0) is caught."""
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    if isinstance(value, float):
        return ("float", math.copysign(1.0, value), value.hex())
    return type(value).__name__


@settings(max_examples=400, deadline=None)
@given(value=json_values, ensure_ascii=st.booleans(), compact=st.booleans())
def test_orjson_parse_matches_stdlib_on_json(value: Any, ensure_ascii: bool, compact: bool) -> None:
    separators = (",", ":") if compact else (", ", ": ")
    try:
        text = json.dumps(value, ensure_ascii=ensure_ascii, separators=separators)
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogate with ensure_ascii=False: not UTF-8
        data = json.dumps(value, separators=separators).encode()
    fast = _outcome(data)
    assert fast == _stdlib_outcome(data)
    if fast[0] == "ok":
        assert event_id_of(parse_json(data)) == event_id_of(json.loads(data))


@settings(max_examples=400, deadline=None)
@given(number=number_text)
@example("123456789012345678901234567890")
@example("-9223372036854775809")
@example("18446744073709551616")
@example("1e400")
@example("2.2250738585072011e-308")
@example("9007199254740993")
@example("0.1000000000000000055511151231257827")
def test_orjson_parse_matches_stdlib_on_numbers(number: str) -> None:
    for text in (number, f"[{number}]", f'{{"n": {number}}}'):
        data = text.encode()
        assert _outcome(data) == _stdlib_outcome(data)


@settings(max_examples=600, deadline=None)
@given(text=hostile)
@example('{"a": 1, "a": 2}')
@example('"\\ud800"')
@example("NaN")
@example("[1,]")
@example("\ufeff{}")
@example('{"a": "\\u0000\x7f"}')
def test_orjson_parse_matches_stdlib_on_hostile_text(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    assert _outcome(data) == _stdlib_outcome(data)


def test_deep_nesting_is_rejected_the_same_way() -> None:
    for depth in (199, 200, 201, 1500, 5000):
        data = ("[" * depth + "]" * depth).encode()
        assert _outcome(data) == _stdlib_outcome(data)


@settings(max_examples=100, deadline=None)
@given(
    payloads=st.lists(
        st.tuples(
            json_values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=40),
            st.dictionaries(
                st.sampled_from(
                    ["ce-id", "ce-source", "ce-type", "ce-specversion", "x", "content-type"]
                ),
                st.sampled_from(["1.0", "a", "application/json", "application/cloudevents+json"]),
            ),
        ),
        max_size=8,
    )
)
def test_raw_messages_decode_exactly_like_pulled_messages(
    payloads: list[tuple[bytes, dict[str, str]]],
) -> None:
    raw = [RawMessage(d, a, f"m-{i}", PUBLISH_US) for i, (d, a) in enumerate(payloads)]
    models = [
        PulledMessage(data=d, attributes=a, message_id=f"m-{i}", publish_time=PUBLISH)
        for i, (d, a) in enumerate(payloads)
    ]
    fast = decode_batch(raw, max_bytes=1_000_000)
    slow = decode_batch(models, max_bytes=1_000_000)
    assert fast.events.equals(slow.events)
    assert fast.quarantine.equals(slow.quarantine)
    assert isinstance(fast.events, pa.Table)


@settings(max_examples=400, deadline=None)
@given(value=st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_object_assembled_from_canonical_values_is_canonical_json(value: dict[str, Any]) -> None:
    assembled = canonical_object({k: canonical_json(v) for k, v in value.items()})
    assert assembled == canonical_json(value) == json.dumps(value, sort_keys=True)


@settings(max_examples=200, deadline=None)
@given(
    data=json_values,
    extension=json_values,
    binary=st.booleans(),
)
def test_cloudevent_id_is_the_hash_of_its_whole_structured_form(
    data: Any, extension: Any, binary: bool
) -> None:
    """The seed rule applied to the structured form, computed the slow way."""
    context = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "//s",
        "type": "t",
        "time": "2025-11-24T10:00:00Z",
    }
    if binary:
        attributes = {f"ce-{k}": str(v) for k, v in context.items()}
        attributes["content-type"] = "application/json"
        structured = {**context, "datacontenttype": "application/json", "data": data}
        payload = json.dumps(data).encode()
    else:
        structured = {**context, "data": data, "ext": extension}
        if extension is None:
            del structured["ext"]  # a null attribute counts as absent
        attributes = {"content-type": "application/cloudevents+json"}
        payload = json.dumps(structured).encode()
    batch = decode_batch([RawMessage(payload, attributes, "m", PUBLISH_US)], max_bytes=10**7)
    assert batch.quarantine.num_rows == 0, batch.quarantine["reason"].to_pylist()
    assert batch.events["event_id"].to_pylist() == [event_id_of(structured)]
    assert batch.events["data"].to_pylist() == [json.dumps(data, sort_keys=True)]


def test_cloudevent_data_at_the_depth_limit_is_rejected_as_before() -> None:
    """The structured form is one level deeper than its data: data nested
    MAX_JSON_DEPTH deep makes a form one level too deep."""
    attributes = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t"}
    for depth, accepted in ((MAX_JSON_DEPTH - 1, True), (MAX_JSON_DEPTH, False)):
        payload = ("[" * depth + "]" * depth).encode()
        batch = decode_batch([RawMessage(payload, attributes, "m", PUBLISH_US)], max_bytes=10**7)
        assert (batch.events.num_rows == 1) is accepted
        if not accepted:
            assert batch.quarantine["reason_code"].to_pylist() == ["json_too_deep"]


@pytest.mark.parametrize("enabled", [True, False])
def test_a_batch_pauses_the_collector_and_leaves_it_as_it_was(enabled: bool) -> None:
    """decode_batch pauses garbage collection (process-wide) for the batch only, also
    when the caller's iterable fails mid-batch."""
    seen: list[bool] = []

    def messages(fail: bool) -> Iterator[RawMessage]:
        seen.append(gc.isenabled())
        yield RawMessage(b'{"a": 1}', {}, "m", PUBLISH_US)
        if fail:
            raise OSError("the source broke")

    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        assert decode_batch(messages(fail=False), max_bytes=100).events.num_rows == 1
        assert gc.isenabled() is enabled
        with pytest.raises(OSError, match="the source broke"):
            decode_batch(messages(fail=True), max_bytes=100)
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert seen == [False, False]
