"""Hostile input: hypothesis strategies for Pub/Sub messages and push envelopes.

`messages()` generates what a careless or malicious publisher could send within
Pub/Sub's own limits (payload <= 10 MB, <= 100 attributes, keys <= 256 bytes,
values <= 1024 bytes): arbitrary bytes, near-JSON, huge and deeply nested JSON,
unicode edge cases, NaN/Infinity literals, duplicate keys, huge integers, bogus
CloudEvent attributes. `end_to_end` publishes them through the real client to
the emulator and ingests them with the real pull round and dedup-write; every
message must end as an event with the documented id or as a quarantine row with
its reason, and nothing may crash or hang. `decoders` feeds the same messages
and push envelopes straight to the decoders, which must never raise and never
produce `internal_error`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from event_assets.events.decode import decode_message
from event_assets.events.json_text import no_collection
from event_assets.events.models import DecodedEvent, PulledMessage, QuarantineRecord, ReasonCode
from event_assets.events.timestamps import FixedClock, to_micros
from event_assets_tests.support.push_envelope import decode_push_envelope
from reliability.harness import Ledger, Message, drain_in_process, lab, verify
from reliability.outcome import Outcome

MAX_PAYLOAD = 9_999_000
"""Pub/Sub caps the whole publish request at 10 MB; this is the largest data that fits."""
MAX_ATTRIBUTES = 100
MAX_KEY_BYTES = 256
MAX_VALUE_BYTES = 1024
REASONS = {code.value for code in ReasonCode} - {ReasonCode.INTERNAL_ERROR.value}

_UNICODE_EDGES = [
    "\ufeff",  # BOM
    "\u0000",
    "\u202e",  # right-to-left override
    "e\u0301",  # combining accent
    "\uffff",
    "\U0010ffff",
    "😀",
    "\u2028\u2029",
    "ǅ",
]
_RAW_EDGES = [
    b"\xef\xbb\xbf{}",  # UTF-8 BOM before JSON
    b"\xc0\xaf",  # overlong encoding
    b"\xed\xa0\x80",  # encoded surrogate
    b'{"s": "\\ud800"}',  # escaped lone surrogate
    b'{"s": "\\udc00\\ud800"}',
    b'{"x": NaN}',
    b'{"x": -Infinity}',
    b'{"x": 1e999}',
    b'{"x": -1e999}',
    b'{"a": 1, "a": 2}',
    b'{"a": {"b": 1}, "a": [1]}',
    b'{"n": 1' + b"0" * 5000 + b"}",
    b'{"n": -0}',
    b'{"n": 1.0e-400}',
    b'{"x": 1}garbage',
    b'{"x": 1} {"y": 2}',
    b"  {}  ",
    b"{}",
    b"null",
    b"true",
    b"\x00",
    b"{'single': 'quotes'}",
    b'{"trailing": 1,}',
    b'{"x": "unterminated}',
    b'{"x": 01}',
    b'{"x": .5}',
    b'{"x": +1}',
    b'{"\\u0000": 0}',
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers().map(lambda n: n * 10**300),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    st.sampled_from(_UNICODE_EDGES),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.text(max_size=10) | st.sampled_from(_UNICODE_EDGES), inner, max_size=5),
    ),
    max_leaves=30,
)


@st.composite
def deep_json(draw: st.DrawFn) -> bytes:
    depth = draw(st.sampled_from([150, 199, 200, 201, 250, 1000, 20_000]))
    if draw(st.booleans()):
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b"[" * depth + b"]" * depth


@st.composite
def near_json(draw: st.DrawFn) -> bytes:
    text = json.dumps(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4)))
    raw = bytearray(text.encode())
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(raw)))
        op = draw(st.sampled_from(["drop", "insert", "flip"]))
        if op == "drop" and raw:
            del raw[min(at, len(raw) - 1)]
        elif op == "insert":
            raw[at:at] = draw(st.sampled_from([b"{", b"}", b'"', b",", b":", b"\\", b"\xff"]))
        elif raw:
            raw[min(at, len(raw) - 1)] ^= 1 << draw(st.integers(0, 7))
    return bytes(raw)


@st.composite
def huge_json(draw: st.DrawFn) -> bytes:
    size = draw(st.sampled_from([100_000, 1_000_000, 1_048_576 - 12, 2_000_000]))
    return json.dumps({"pad": "x" * size}).encode()


def _fit(text: str, limit: int) -> str:
    data = text.encode("utf-8", "surrogatepass")[:limit]
    return data.decode("utf-8", "ignore")


# google-cloud-pubsub takes attributes as keyword arguments of `publish`, so these
# names cannot be published through it at all (found by this suite).
RESERVED_KEYS = frozenset({"data", "topic", "ordering_key", "retry", "timeout", "self"})
attribute_keys = (
    st.text(min_size=1, max_size=MAX_KEY_BYTES)
    .map(lambda k: _fit(k, MAX_KEY_BYTES))
    .filter(lambda k: bool(k) and not k.startswith("goog") and k not in RESERVED_KEYS)
)
attribute_values = st.text(max_size=MAX_VALUE_BYTES).map(lambda v: _fit(v, MAX_VALUE_BYTES))


@st.composite
def ce_attributes(draw: st.DrawFn) -> dict[str, str]:
    attrs = {
        "ce-specversion": draw(st.sampled_from(["1.0", "0.3", "2.0", "", "1.0 "])),
        "ce-id": draw(st.text(max_size=20)),
        "ce-source": draw(st.sampled_from(["//x", "", "not a uri", "😀"])),
        "ce-type": draw(st.text(max_size=20)),
        "ce-time": draw(
            st.sampled_from(
                [
                    datetime.now(UTC).isoformat(),
                    "2026-13-45T99:99:99Z",
                    "1970-01-01T00:00:00Z",
                    "9999-12-31T23:59:59Z",
                    "yesterday",
                    "",
                    "2026-11-20T23:30:00+02:00",
                ]
            )
        ),
        "content-type": draw(
            st.sampled_from(
                ["application/json", "text/plain", "application/cloudevents+json", "", "x/y; a=b"]
            )
        ),
    }
    drop = draw(st.sets(st.sampled_from(sorted(attrs)), max_size=3))
    return {k: v for k, v in attrs.items() if k not in drop}


attributes: st.SearchStrategy[dict[str, str]] = st.one_of(
    st.just({}),
    ce_attributes(),
    st.dictionaries(attribute_keys, attribute_values, max_size=MAX_ATTRIBUTES),
    st.dictionaries(attribute_keys, attribute_values, min_size=MAX_ATTRIBUTES, max_size=100),
)

payloads = st.one_of(
    st.binary(max_size=2000),
    near_json(),
    deep_json(),
    st.sampled_from(_RAW_EDGES),
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    st.dictionaries(st.text(max_size=8), json_values, max_size=6).map(
        lambda v: json.dumps(v).encode()
    ),
)


@st.composite
def messages(draw: st.DrawFn, *, huge: bool = False) -> Message:
    data = draw(st.one_of(payloads, huge_json()) if huge else payloads)
    attrs = draw(attributes)
    if not data and not attrs:
        attrs = {"k": "v"}  # Pub/Sub refuses a message with neither
    return data, attrs


def documented_plain_id(data: bytes) -> str | None:
    """The seed's `generate_unique_id` for a plain-JSON object payload, else None."""
    with no_collection():  # deep text recurses near the interpreter's limit
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            return None
        if not isinstance(value, dict):
            return None
        return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def check_decoded(result: object) -> None:
    """A decoder result is an event, or a quarantine record with a known reason; never a bug."""
    if isinstance(result, QuarantineRecord):
        assert result.reason_code in REASONS, (result.reason_code, result.reason)
        assert result.reason
    else:
        assert isinstance(result, DecodedEvent)
        assert len(result.event_id) == 64


# ---------------------------------------------------------------------------- envelopes


@st.composite
def envelopes(draw: st.DrawFn) -> bytes | str | dict[str, Any]:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=500))
    if kind == 1:
        return draw(st.text(max_size=200))
    data, attrs = draw(messages())
    message: dict[str, Any] = {
        "data": draw(
            st.one_of(
                st.just(base64.b64encode(data).decode()),
                st.just(base64.urlsafe_b64encode(data).decode()),
                st.text(max_size=20),
                json_scalars,
            )
        ),
        "messageId": draw(st.one_of(st.text(max_size=20), st.integers(), st.none())),
        "message_id": draw(st.one_of(st.text(max_size=20), st.none())),
        "publishTime": draw(
            st.one_of(
                st.just(datetime.now(UTC).isoformat()),
                st.sampled_from(["", "not a time", "2026-02-30T00:00:00Z", "1999-01-01T00:00:00Z"]),
                st.integers(),
            )
        ),
        "attributes": draw(st.one_of(st.just(attrs), json_values)),
    }
    drop = draw(st.sets(st.sampled_from(sorted(message)), max_size=3))
    body: dict[str, Any] = {
        "message": {k: v for k, v in message.items() if k not in drop},
        "subscription": "projects/p/subscriptions/s",
    }
    if draw(st.booleans()) and kind == 3:
        return json.dumps(body, default=str).encode()
    return body


# ---------------------------------------------------------------------------- runners


def decoders(examples: int) -> Outcome:
    """Messages and push envelopes straight into the decoders (no I/O)."""
    started = time.perf_counter()
    outcome = Outcome(kind="hostile input: decoders (message + push envelope)", lake="-")
    now = datetime.now(UTC)
    clock = FixedClock(to_micros(now))

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(messages(), envelopes())
    def one(message: Message, envelope: bytes | str | dict[str, Any]) -> None:
        data, attrs = message
        pulled = PulledMessage(data=data, attributes=attrs, message_id="m", publish_time=now)
        result = decode_message(pulled, max_bytes=1_048_576, future_skew_seconds=300, clock=clock)
        check_decoded(result)
        plain = not any(k.startswith("ce-") for k in attrs) and "cloudevents" not in attrs.get(
            "content-type", ""
        )
        if isinstance(result, DecodedEvent) and plain:
            assert result.event_id == documented_plain_id(data), data[:200]
        check_decoded(decode_push_envelope(envelope, max_bytes=1_048_576))
        outcome.messages += 2
        outcome.runs += 1

    one()
    outcome.seconds = round(time.perf_counter() - started, 1)
    return outcome


def end_to_end(root: Path, examples: int, *, max_batch: int = 10, big: int = 1) -> Outcome:
    """Publish generated batches through the real client, ingest, verify every message."""
    started = time.perf_counter()
    outcome = Outcome(kind="hostile input: published and ingested end to end")
    with lab(root, PULL_TIMEOUT_SECONDS="2") as lb:
        ledger = Ledger()

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.lists(messages(), min_size=1, max_size=max_batch))
        def one(batch: list[Message]) -> None:
            ledger.publish(lb, batch)
            drain_in_process(lb)
            outcome.runs += 1

        one()
        # Payloads at Pub/Sub's 10 MB limit and just over our 1 MiB limit, with full attributes.
        full_attrs = {f"k{i:03d}" + "k" * 252: "v" * MAX_VALUE_BYTES for i in range(MAX_ATTRIBUTES)}
        for n in range(big):
            ledger.publish(
                lb,
                [
                    (json.dumps({"pad": "x" * (MAX_PAYLOAD - 20), "n": n}).encode(), {}),
                    (b"\xff" * MAX_PAYLOAD, {"n": str(n)}),
                    (json.dumps({"n": n, "big": "y" * 1000}).encode(), full_attrs),
                ],
            )
            drain_in_process(lb)
            outcome.runs += 1
        verdict = verify(lb, ledger)
        outcome.add(ledger, verdict)
    outcome.seconds = round(time.perf_counter() - started, 1)
    return outcome
