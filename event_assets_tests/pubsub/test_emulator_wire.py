"""Pull responses are spliced from pre-serialized messages: they must decode, through the
real client, to exactly what was published."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import pytest
from google.cloud import pubsub_v1  # type: ignore[attr-defined]
from google.protobuf import wrappers_pb2
from google.pubsub_v1.types import (
    DeadLetterPolicy,
    PubsubMessage,
    PullRequest,
    PullResponse,
    ReceivedMessage,
    Subscription,
)

from event_assets_tests.pubsub.conftest import PROJECT
from event_assets_tests.pubsub.test_emulator import SUB, TOPIC, gapic_publisher
from pubsub_emulator.emulator import (
    _RECEIVED_MESSAGE_OVERHEAD,
    PubSubEmulator,
    _encode_received,
    _Message,
    _Taken,
    _varint,
)

RAW_SUB = f"projects/{PROJECT}/subscriptions/events-raw"
DLQ_TOPIC = f"projects/{PROJECT}/topics/dlq"
DLQ_SUB = f"projects/{PROJECT}/subscriptions/dlq-sub"
OFFSET_SECONDS = 3600

_PubsubMessagePb: Any = PubsubMessage.pb()
_ReceivedMessagePb: Any = ReceivedMessage.pb()
_PullResponsePb: Any = PullResponse.pb()


def sample_messages() -> list[PubsubMessage]:
    """Binary data, unicode and empty attributes, ordering keys; lengths that need
    one-, two- and three-byte varints."""
    return [
        PubsubMessage(
            data=bytes(range(256)),
            attributes={"k": "v", "ünï": "cødé ✓", "empty": ""},
            ordering_key="key-1",
        ),
        PubsubMessage(attributes={"only": "attributes"}),
        PubsubMessage(data=b"\x00" * 20_000, ordering_key="big"),
        PubsubMessage(data=b"x" * 60),
    ]


def publish(address: str, messages: list[PubsubMessage]) -> tuple[list[str], int, int]:
    """Message ids and the wall-clock window (ns) the Publish call took."""
    with gapic_publisher(address) as gapic:
        before = time.time_ns()
        ids = list(gapic.publish(topic=TOPIC, messages=messages).message_ids)
        after = time.time_ns()
    return ids, before, after


def raw_pull(address: str, subscription: str) -> bytes:
    """One Pull whose response is kept as the bytes the server sent."""
    with grpc.insecure_channel(address) as channel:
        pull = channel.unary_unary(
            "/google.pubsub.v1.Subscriber/Pull",
            request_serializer=PullRequest.pb().SerializeToString,
            response_deserializer=None,
        )
        request = PullRequest.pb()(subscription=subscription, max_messages=100)
        payload: bytes = pull(request, timeout=10)
        return payload


def assert_is_published(got: Any, sent: PubsubMessage, message_id: str, window: tuple[int, int]):
    """``got`` (raw ReceivedMessage.message) is ``sent`` stamped with id and time."""
    expected = _PubsubMessagePb()
    expected.CopyFrom(PubsubMessage.pb(sent))
    expected.message_id = message_id
    expected.publish_time.CopyFrom(got.publish_time)
    assert got == expected  # data, attributes, ordering_key, message_id; nothing else set
    stamped = got.publish_time.ToNanoseconds()  # the wall clock, not the virtual one
    assert window[0] <= stamped <= window[1]


def test_pulled_messages_are_exactly_what_was_published(
    pubsub_emulator: PubSubEmulator, subscriber: pubsub_v1.SubscriberClient
) -> None:
    pubsub_emulator.ensure_topic_and_subscription(PROJECT, "events", "events-sub", 10)
    pubsub_emulator.ensure_topic_and_subscription(PROJECT, "events", "events-raw", 10)
    pubsub_emulator.advance_clock(OFFSET_SECONDS)
    messages = sample_messages()
    ids, before, after = publish(pubsub_emulator.address, messages)

    received = list(subscriber.pull(subscription=SUB, max_messages=100).received_messages)
    assert [m.message.message_id for m in received] == ids
    for got, sent, message_id in zip(received, messages, ids, strict=True):
        assert_is_published(ReceivedMessage.pb(got).message, sent, message_id, (before, after))
        assert got.delivery_attempt == 0

    # The wire form is canonical: what protobuf would have written for the same content
    # (no explicit zero delivery_attempt, minimal varints), within the response byte cap.
    payload = raw_pull(pubsub_emulator.address, RAW_SUB)
    parsed = _PullResponsePb.FromString(payload)
    assert len(payload) == parsed.ByteSize()
    assert [r.message.message_id for r in parsed.received_messages] == ids
    for got, sent, message_id in zip(parsed.received_messages, messages, ids, strict=True):
        assert_is_published(got.message, sent, message_id, (before, after))
        assert got.delivery_attempt == 0
        assert got.ByteSize() <= (
            got.message.ByteSize() + len(got.ack_id) + _RECEIVED_MESSAGE_OVERHEAD
        )


def test_delivery_attempt_only_with_a_dead_letter_policy(
    pubsub_emulator: PubSubEmulator, subscriber: pubsub_v1.SubscriberClient
) -> None:
    pubsub_emulator.ensure_topic_and_subscription(PROJECT, "events", "events-raw", 10)
    pubsub_emulator.ensure_topic_and_subscription(PROJECT, "dlq", "dlq-sub", 10)
    subscriber.create_subscription(
        request=Subscription(
            name=SUB,
            topic=TOPIC,
            dead_letter_policy=DeadLetterPolicy(dead_letter_topic=DLQ_TOPIC),
        )
    )
    pubsub_emulator.advance_clock(OFFSET_SECONDS)
    sent = sample_messages()[0]
    (message_id,), before, after = publish(pubsub_emulator.address, [sent])

    payload = raw_pull(pubsub_emulator.address, RAW_SUB)
    plain = _PullResponsePb.FromString(payload)
    assert plain.received_messages[0].delivery_attempt == 0
    assert len(payload) == plain.ByteSize()  # absent, not an explicit 0

    for attempt in range(1, 6):  # the default max_delivery_attempts is 5
        (got,) = subscriber.pull(subscription=SUB, max_messages=10).received_messages
        assert got.delivery_attempt == attempt
        assert_is_published(ReceivedMessage.pb(got).message, sent, message_id, (before, after))
        subscriber.modify_ack_deadline(
            subscription=SUB, ack_ids=[got.ack_id], ack_deadline_seconds=0
        )

    # Forwarded to the dead-letter topic: same content plus the source attributes, a new
    # id and publish time, and no delivery_attempt (that subscription has no policy).
    (dead,) = subscriber.pull(subscription=DLQ_SUB, max_messages=10).received_messages
    assert dead.delivery_attempt == 0
    forwarded = PubsubMessage(
        data=sent.data,
        ordering_key=sent.ordering_key,
        attributes={
            **sent.attributes,
            "CloudPubSubDeadLetterSourceDeliveryCount": "5",
            "CloudPubSubDeadLetterSourceSubscription": "events-sub",
            "CloudPubSubDeadLetterSourceSubscriptionProject": PROJECT,
        },
    )
    assert dead.message.message_id != message_id
    assert_is_published(
        ReceivedMessage.pb(dead).message,
        forwarded,
        dead.message.message_id,
        (after, time.time_ns()),
    )


@pytest.mark.parametrize("dead_letter", [False, True])
def test_streaming_pull_delivers_exact_content(
    pubsub_emulator: PubSubEmulator, subscriber: pubsub_v1.SubscriberClient, dead_letter: bool
) -> None:
    pubsub_emulator.ensure_topic_and_subscription(PROJECT, "dlq", "dlq-sub", 10)
    pubsub_emulator.ensure_topic_and_subscription(PROJECT, "events", "unused", 10)
    policy = DeadLetterPolicy(dead_letter_topic=DLQ_TOPIC) if dead_letter else None
    subscriber.create_subscription(
        request=Subscription(name=SUB, topic=TOPIC, dead_letter_policy=policy)
    )
    pubsub_emulator.advance_clock(OFFSET_SECONDS)
    messages = sample_messages()
    ids, before, after = publish(pubsub_emulator.address, messages)
    received: dict[str, Any] = {}
    lock = threading.Lock()
    done = threading.Event()

    def callback(message: Any) -> None:
        with lock:
            received[message.message_id] = message
            if len(received) == len(messages):
                done.set()
        message.ack()

    future = subscriber.subscribe(SUB, callback)
    try:
        assert done.wait(20)
    finally:
        future.cancel()
        future.result(timeout=10)
    for sent, message_id in zip(messages, ids, strict=True):
        got = received[message_id]
        assert got.data == PubsubMessage.pb(sent).data
        assert dict(got.attributes) == dict(sent.attributes)
        assert got.ordering_key == sent.ordering_key
        stamped = got.publish_time.timestamp()
        assert before / 1e9 - 1e-6 <= stamped <= after / 1e9 + 1e-6
        assert got.delivery_attempt == (1 if dead_letter else None)


@pytest.mark.parametrize("data_size", [0, 1, 100, 110, 125, 126, 127, 16_360, 16_380, 20_000])
@pytest.mark.parametrize("ack_id", ["1-1", "123456789-987654321", "a" * 127, "b" * 200])
@pytest.mark.parametrize("attempt", [0, 1, 100, 300])
def test_encoding_matches_protobuf(data_size: int, ack_id: str, attempt: int) -> None:
    """Around every varint width boundary, the spliced bytes are protobuf's own."""
    pb = _PubsubMessagePb(data=bytes(range(256)) * (data_size // 256 + 1), message_id="7")
    pb.data = pb.data[:data_size]
    pb.publish_time.FromNanoseconds(1_700_000_000_123_456_789)
    wire = pb.SerializeToString()
    message = _Message("7", b"\x12" + _varint(len(wire)) + wire, len(wire))

    got = _encode_received(
        _Taken([ack_id, ack_id], [message, message], [attempt, attempt] if attempt else None)
    )

    received = _ReceivedMessagePb(ack_id=ack_id, message=pb, delivery_attempt=attempt)
    assert got == _PullResponsePb(received_messages=[received, received]).SerializeToString()
    if attempt <= 100:  # the most a dead-letter policy allows
        assert len(got) // 2 <= len(wire) + len(ack_id) + _RECEIVED_MESSAGE_OVERHEAD


def test_varint() -> None:
    for n in [*range(1, 300), 2**14 - 1, 2**14, 2**21 - 1, 2**21, 2**28, 2**35]:
        # field 1 (tag 0x08) of a UInt64Value is the varint itself
        assert b"\x08" + _varint(n) == wrappers_pb2.UInt64Value(value=n).SerializeToString()
    assert _varint(0) == b"\x00"
