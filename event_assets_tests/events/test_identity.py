"""The identity rule must stay byte-compatible with the seed's ``generate_unique_id``."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from event_assets.events import canonical_json, event_id_of, event_id_of_canonical, id_words


def seed_generate_unique_id(data: dict[str, object]) -> str:
    """Verbatim from the seed README."""
    sorted_data = json.dumps(data, sort_keys=True)
    return hashlib.sha256(sorted_data.encode()).hexdigest()


SEED_EXAMPLE: dict[str, object] = {"name": "John", "lastname": "Doe"}
SEED_EXAMPLE_ID = "08529916f7f003fd9cea3e440ddce69cb6ba863a751ee4e8d4ae536cf3fbe2d3"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


def test_canonical_json_is_the_seed_form() -> None:
    assert canonical_json(SEED_EXAMPLE) == '{"lastname": "Doe", "name": "John"}'


def test_seed_example_id_is_pinned() -> None:
    assert event_id_of(SEED_EXAMPLE) == SEED_EXAMPLE_ID
    assert seed_generate_unique_id(SEED_EXAMPLE) == SEED_EXAMPLE_ID


def test_unicode_id_is_pinned_and_ascii_escaped() -> None:
    value = {"key": "日本", "city": "Zürich", "emoji": "😀"}
    assert canonical_json(value) == (
        '{"city": "Z\\u00fcrich", "emoji": "\\ud83d\\ude00", "key": "\\u65e5\\u672c"}'
    )
    assert event_id_of(value) == "f78cdd9827cee4574bbb7ea396effff4ebe132edbb94f42c40b6f7e167e0666f"


def test_nested_id_is_pinned() -> None:
    value = {"n": -3, "a": {"z": [1, 2, {"y": None, "x": True}], "b": 1.5}}
    assert (
        canonical_json(value) == '{"a": {"b": 1.5, "z": [1, 2, {"x": true, "y": null}]}, "n": -3}'
    )
    assert event_id_of(value) == "35053d1b677b3250395f5a5180c7534a350005ced5d1d8e583ff752c05e501b6"


def test_lone_surrogate_stays_escaped() -> None:
    value = {"k": "\ud800"}
    assert canonical_json(value) == '{"k": "\\ud800"}'
    assert event_id_of(value) == "8fa807238f94ae868fa1b0eac419a21a25b7aac3fe7da00c0779904bb9c3d639"


def test_event_id_of_canonical_hashes_the_text() -> None:
    text = '{"lastname": "Doe", "name": "John"}'
    assert event_id_of_canonical(text) == SEED_EXAMPLE_ID
    assert event_id_of_canonical(text + " ") != SEED_EXAMPLE_ID


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_canonical_json_matches_json_dumps_sort_keys(value: object) -> None:
    expected = json.dumps(value, sort_keys=True)
    assert canonical_json(value) == expected
    assert event_id_of(value) == hashlib.sha256(expected.encode("utf-8")).hexdigest()
    assert event_id_of_canonical(canonical_json(value)) == event_id_of(value)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=5))
def test_event_id_of_equals_seed_generate_unique_id(value: dict[str, object]) -> None:
    assert event_id_of(value) == seed_generate_unique_id(value)


def _signed(hex16: str) -> int:
    return int.from_bytes(bytes.fromhex(hex16), "big", signed=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=40), min_size=1, max_size=50))
def test_id_words_are_the_first_128_bits_of_the_id(payloads: list[bytes]) -> None:
    ids = [hashlib.sha256(p).hexdigest() for p in payloads]
    hi, lo = id_words(pa.array(ids))
    assert hi.to_pylist() == [_signed(i[:16]) for i in ids]
    assert lo.to_pylist() == [_signed(i[16:32]) for i in ids]


def test_id_words_pinned_extremes() -> None:
    hi, lo = id_words(pa.chunked_array([["f" * 64, "0" * 64], ["7" + "f" * 63]]))
    assert hi.to_pylist() == [-1, 0, 2**63 - 1]
    assert lo.to_pylist() == [-1, 0, -1]


@pytest.mark.parametrize("bad", ["ab", "z" * 64, "0" * 63 + "é", None])
def test_id_words_refuse_what_is_not_a_sha256_hex_id(bad: str | None) -> None:
    with pytest.raises(ValueError, match="64-character sha256 hex"):
        id_words(pa.array(["0" * 64, bad], pa.string()))
