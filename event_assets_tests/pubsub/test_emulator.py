"""The emulator exercised only through the real google-cloud-pubsub client."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1  # type: ignore[attr-defined]
from google.pubsub_v1 import PublisherClient as GapicPublisherClient
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport
from google.pubsub_v1.types import DeadLetterPolicy, PubsubMessage, ReceivedMessage, Subscription

from event_assets_tests.pubsub.conftest import PROJECT
from pubsub_emulator.emulator import DEFAULT_MAX_RESPONSE_BYTES, PubSubEmulator

TOPIC = f"projects/{PROJECT}/topics/events"
SUB = f"projects/{PROJECT}/subscriptions/events-sub"


@pytest.fixture
def topic_and_sub(pubsub_emulator: PubSubEmulator) -> tuple[str, str]:
    pubsub_emulator.ensure_topic_and_subscription(PROJECT, "events", "events-sub", 10)
    return TOPIC, SUB


def publish_all(
    publisher: pubsub_v1.PublisherClient, topic: str, payloads: list[bytes]
) -> list[str]:
    futures = [publisher.publish(topic, p, seq=str(i)) for i, p in enumerate(payloads)]
    return [f.result(timeout=30) for f in futures]


def drain(
    subscriber: pubsub_v1.SubscriberClient,
    subscription: str,
    expected: int,
    *,
    max_messages: int = 1000,
    ack: bool = True,
    timeout: float = 20.0,
) -> list[ReceivedMessage]:
    """Pull (and optionally ack) until ``expected`` messages arrived or ``timeout`` passed."""
    received: list[ReceivedMessage] = []
    deadline = time.monotonic() + timeout
    while len(received) < expected and time.monotonic() < deadline:
        response = subscriber.pull(subscription=subscription, max_messages=max_messages)
        received.extend(response.received_messages)
        if ack and response.received_messages:
            subscriber.acknowledge(
                subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
            )
    return received


def gapic_publisher(address: str) -> GapicPublisherClient:
    """Raw GAPIC publisher: one Publish RPC per call, no batching or client-side checks."""
    transport = GapicPublisherClient.get_transport_class("grpc")(
        channel=grpc.insecure_channel(address)
    )
    return GapicPublisherClient(transport=transport)


def pull_now(subscriber: pubsub_v1.SubscriberClient, subscription: str) -> list[ReceivedMessage]:
    response = subscriber.pull(subscription=subscription, max_messages=100, return_immediately=True)
    return list(response.received_messages)


# ---------------------------------------------------------------------------- admin


def test_topic_and_subscription_lifecycle(
    publisher: pubsub_v1.PublisherClient, subscriber: pubsub_v1.SubscriberClient
) -> None:
    topic = publisher.create_topic(name=TOPIC)
    assert topic.name == TOPIC
    publisher.create_topic(name=f"projects/{PROJECT}/topics/other")
    publisher.create_topic(name="projects/elsewhere/topics/hidden")
    with pytest.raises(gexc.AlreadyExists):
        publisher.create_topic(name=TOPIC)
    with pytest.raises(gexc.InvalidArgument):
        publisher.create_topic(name="projects/p/topic/bad")
    assert publisher.get_topic(topic=TOPIC).name == TOPIC
    with pytest.raises(gexc.NotFound):
        publisher.get_topic(topic=f"projects/{PROJECT}/topics/missing")
    listed = [t.name for t in publisher.list_topics(project=f"projects/{PROJECT}")]
    assert listed == [TOPIC, f"projects/{PROJECT}/topics/other"]

    sub = subscriber.create_subscription(name=SUB, topic=TOPIC)
    assert sub.ack_deadline_seconds == 10  # the service default
    with pytest.raises(gexc.AlreadyExists):
        subscriber.create_subscription(name=SUB, topic=TOPIC)
    with pytest.raises(gexc.NotFound):
        subscriber.create_subscription(
            name=f"projects/{PROJECT}/subscriptions/orphan",
            topic=f"projects/{PROJECT}/topics/missing",
        )
    assert subscriber.get_subscription(subscription=SUB).topic == TOPIC
    with pytest.raises(gexc.NotFound):
        subscriber.get_subscription(subscription=f"projects/{PROJECT}/subscriptions/missing")
    assert [s.name for s in subscriber.list_subscriptions(project=f"projects/{PROJECT}")] == [SUB]
    assert list(publisher.list_topic_subscriptions(topic=TOPIC)) == [SUB]

    # Many pages: the client follows next_page_token.
    for i in range(7):
        subscriber.create_subscription(
            name=f"projects/{PROJECT}/subscriptions/page-{i}", topic=TOPIC
        )
    pages = subscriber.list_subscriptions(
        request={"project": f"projects/{PROJECT}", "page_size": 3}
    )
    assert len(list(pages)) == 8

    publisher.delete_topic(topic=TOPIC)
    with pytest.raises(gexc.NotFound):
        publisher.get_topic(topic=TOPIC)
    with pytest.raises(gexc.NotFound):
        publisher.delete_topic(topic=TOPIC)
    assert subscriber.get_subscription(subscription=SUB).topic == "_deleted-topic_"

    subscriber.delete_subscription(subscription=SUB)
    with pytest.raises(gexc.NotFound):
        subscriber.get_subscription(subscription=SUB)
    with pytest.raises(gexc.NotFound):
        subscriber.delete_subscription(subscription=SUB)


# ---------------------------------------------------------------------------- delivery


def test_publish_2000_then_pull_and_ack_drains_exactly_them(
    pubsub_emulator: PubSubEmulator,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic_and_sub: tuple[str, str],
) -> None:
    payloads = [f"event-{i}".encode() for i in range(2000)]
    ids = publish_all(publisher, TOPIC, payloads)
    assert len(set(ids)) == 2000

    received = drain(subscriber, SUB, 2000)

    assert len(received) == 2000
    assert sorted(m.message.message_id for m in received) == sorted(ids)
    assert len({m.ack_id for m in received}) == 2000
    for m in received:
        seq = int(m.message.attributes["seq"])
        assert m.message.data == payloads[seq]
        assert ReceivedMessage.pb(m).message.publish_time.seconds > 0
        assert m.delivery_attempt == 0  # only set with a dead-letter policy
    # The publisher commits batches concurrently, so FIFO means server (message_id) order.
    order = [int(m.message.message_id) for m in received]
    assert order == sorted(order), "FIFO within a subscription"
    assert pull_now(subscriber, SUB) == []
    stats = pubsub_emulator.stats()
    assert (stats["published"], stats["acked"], stats["outstanding"]) == (2000, 2000, 0)


def test_ack_deadline_expiry_nack_and_ack(
    pubsub_emulator: PubSubEmulator,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic_and_sub: tuple[str, str],
) -> None:
    (message_id,) = publish_all(publisher, TOPIC, [b"payload"])

    (first,) = drain(subscriber, SUB, 1, ack=False)
    assert pull_now(subscriber, SUB) == []  # outstanding, not redelivered early
    pubsub_emulator.advance_clock(11)
    (second,) = pull_now(subscriber, SUB)
    assert second.message.message_id == message_id
    assert second.ack_id != first.ack_id

    subscriber.modify_ack_deadline(
        subscription=SUB, ack_ids=[second.ack_id], ack_deadline_seconds=0
    )
    (third,) = pull_now(subscriber, SUB)
    assert third.message.message_id == message_id
    assert len({first.ack_id, second.ack_id, third.ack_id}) == 3

    # Extending the deadline keeps it outstanding past the original deadline.
    subscriber.modify_ack_deadline(
        subscription=SUB, ack_ids=[third.ack_id], ack_deadline_seconds=60
    )
    pubsub_emulator.advance_clock(30)
    assert pull_now(subscriber, SUB) == []

    subscriber.acknowledge(subscription=SUB, ack_ids=[third.ack_id])
    subscriber.acknowledge(subscription=SUB, ack_ids=[first.ack_id, "no-such-ack-id"])  # no-op
    pubsub_emulator.advance_clock(700)
    assert pull_now(subscriber, SUB) == []
    stats = pubsub_emulator.stats()
    assert (stats["delivered"], stats["redelivered"], stats["acked"]) == (3, 2, 1)


def test_waiting_pull_wakes_on_publish_and_on_clock_advance() -> None:
    # A long server-side wait: a missed notify would make the pull time out and fail.
    with PubSubEmulator(max_pull_wait=30) as emulator:
        emulator.ensure_topic_and_subscription(PROJECT, "events", "events-sub", 10)
        channel = grpc.insecure_channel(emulator.address)
        subscriber = pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))
        gapic = gapic_publisher(emulator.address)
        with gapic, ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(subscriber.pull, subscription=SUB, max_messages=5, timeout=10)
            gapic.publish(topic=TOPIC, messages=[PubsubMessage(data=b"wake")])
            assert [m.message.data for m in waiting.result(timeout=10).received_messages] == [
                b"wake"
            ]
            waiting = pool.submit(subscriber.pull, subscription=SUB, max_messages=5, timeout=10)
            emulator.advance_clock(11)
            assert [m.message.data for m in waiting.result(timeout=10).received_messages] == [
                b"wake"
            ]
        subscriber.close()


def test_large_message_needs_unlimited_channel(
    pubsub_emulator: PubSubEmulator,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    unlimited_subscriber: pubsub_v1.SubscriberClient,
    topic_and_sub: tuple[str, str],
) -> None:
    big = bytes(range(256)) * (9_900_000 // 256)
    publish_all(publisher, TOPIC, [big])

    with pytest.raises(gexc.ResourceExhausted):  # 4 MiB default limit on the client
        subscriber.pull(subscription=SUB, max_messages=1)
    pubsub_emulator.advance_clock(11)  # that delivery was lost; let it expire

    (received,) = drain(unlimited_subscriber, SUB, 1, max_messages=10)
    assert received.message.data == big
    assert pubsub_emulator.stats()["redelivered"] == 1


def test_pull_responses_stay_under_default_client_limit(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic_and_sub: tuple[str, str],
) -> None:
    payloads = [bytes([i]) * 1_000_000 for i in range(20)]
    publish_all(publisher, TOPIC, payloads)

    received: list[ReceivedMessage] = []
    deadline = time.monotonic() + 20
    while len(received) < 20 and time.monotonic() < deadline:
        response = subscriber.pull(subscription=SUB, max_messages=20)
        batch = list(response.received_messages)
        assert 1 <= len(batch) <= 3
        assert sum(len(m.message.data) for m in batch) <= DEFAULT_MAX_RESPONSE_BYTES
        subscriber.acknowledge(subscription=SUB, ack_ids=[m.ack_id for m in batch])
        received.extend(batch)
    assert sorted(m.message.data[0] for m in received) == list(range(20))


def test_streaming_pull_receives_and_acks_all(
    pubsub_emulator: PubSubEmulator,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic_and_sub: tuple[str, str],
) -> None:
    ids = publish_all(publisher, TOPIC, [f"m{i}".encode() for i in range(500)])
    seen: Counter[str] = Counter()
    lock = threading.Lock()
    all_seen = threading.Event()

    def callback(message: Any) -> None:
        with lock:
            seen[message.message_id] += 1
            if len(seen) == 500:
                all_seen.set()
        message.ack()

    future = subscriber.subscribe(SUB, callback)
    try:
        assert all_seen.wait(20)
        assert pubsub_emulator.wait_for_stats(lambda s: s["acked"] == 500, 20)
        pubsub_emulator.advance_clock(700)
        # Nothing may come back while the stream stays open.
        assert not pubsub_emulator.wait_for_stats(lambda s: s["delivered"] > 500, 0.5)
    finally:
        future.cancel()
        future.result(timeout=10)
    assert set(seen) == set(ids)
    assert max(seen.values()) == 1
    stats = pubsub_emulator.stats()
    assert (stats["redelivered"], stats["outstanding"], stats["backlog"]) == (0, 0, 0)


def test_stop_with_open_stream_is_prompt_and_leaks_no_threads() -> None:
    emulator = PubSubEmulator()
    emulator.start()
    emulator.ensure_topic_and_subscription(PROJECT, "events", "events-sub")
    channel = grpc.insecure_channel(emulator.address)
    subscriber = pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))
    got_one = threading.Event()
    future = subscriber.subscribe(SUB, lambda m: got_one.set())
    try:
        with gapic_publisher(emulator.address) as gapic:
            gapic.publish(topic=TOPIC, messages=[PubsubMessage(data=b"x")])
        assert got_one.wait(10)
        started = time.monotonic()
        emulator.stop(grace=0.5)
        assert time.monotonic() - started < 5
        leaked = [t.name for t in threading.enumerate() if t.name.startswith("pubsub-emulator")]
        assert leaked == []
    finally:
        future.cancel()
        subscriber.close()
        emulator.stop()


# ---------------------------------------------------------------------------- faults


def test_injected_pull_fault_is_retried_or_raised(
    pubsub_emulator: PubSubEmulator,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic_and_sub: tuple[str, str],
) -> None:
    publish_all(publisher, TOPIC, [b"a"])

    pubsub_emulator.inject_faults("Pull", grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(gexc.ServiceUnavailable):
        subscriber.pull(subscription=SUB, max_messages=1, retry=None)
    assert pubsub_emulator.stats()["faults_triggered"] == 1

    pubsub_emulator.inject_faults("Pull", grpc.StatusCode.UNAVAILABLE, count=2)
    response = subscriber.pull(subscription=SUB, max_messages=1)  # default retry policy
    assert [m.message.data for m in response.received_messages] == [b"a"]
    assert pubsub_emulator.stats()["faults_triggered"] == 3

    pubsub_emulator.inject_faults("Acknowledge", grpc.StatusCode.PERMISSION_DENIED)
    with pytest.raises(gexc.PermissionDenied):
        subscriber.acknowledge(subscription=SUB, ack_ids=[response.received_messages[0].ack_id])


def test_injected_streaming_pull_fault_is_survived_by_subscribe(
    pubsub_emulator: PubSubEmulator,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic_and_sub: tuple[str, str],
) -> None:
    publish_all(publisher, TOPIC, [b"a", b"b"])
    pubsub_emulator.inject_faults("StreamingPull", grpc.StatusCode.UNAVAILABLE)
    received: set[bytes] = set()
    done = threading.Event()

    def callback(message: Any) -> None:
        received.add(message.data)
        message.ack()
        if len(received) == 2:
            done.set()

    future = subscriber.subscribe(SUB, callback)
    try:
        # google-api-core's ResumableBidiRpc can race when a stream fails before its done
        # callback is registered: it reopens twice and orphans one healthy stream (never
        # read, never cancelled). Messages handed to that stream come back only after
        # their ack deadline, so expire them until the live stream has everything.
        deadline = time.monotonic() + 20
        while not done.wait(1.0) and time.monotonic() < deadline:
            pubsub_emulator.advance_clock(61)
        assert done.is_set()
    finally:
        future.cancel()
        future.result(timeout=10)
    assert received == {b"a", b"b"}
    assert pubsub_emulator.stats()["faults_triggered"] == 1


def test_duplicate_next_deliveries(
    pubsub_emulator: PubSubEmulator,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic_and_sub: tuple[str, str],
) -> None:
    first_id, second_id = publish_all(publisher, TOPIC, [b"one", b"two"])
    pubsub_emulator.duplicate_next_deliveries(1)

    batch = drain(subscriber, SUB, 2, max_messages=10, ack=False)
    assert [m.message.message_id for m in batch] == [first_id, second_id]
    (duplicate,) = pull_now(subscriber, SUB)
    assert duplicate.message.message_id == first_id
    assert duplicate.ack_id != batch[0].ack_id

    subscriber.acknowledge(subscription=SUB, ack_ids=[duplicate.ack_id, batch[1].ack_id])
    assert pubsub_emulator.stats()["outstanding"] == 0  # acking one delivery drops both
    pubsub_emulator.advance_clock(700)
    assert pull_now(subscriber, SUB) == []
    stats = pubsub_emulator.stats()
    assert (stats["duplicated"], stats["acked"], stats["delivered"]) == (1, 2, 3)


def test_dead_letter_after_max_delivery_attempts(
    pubsub_emulator: PubSubEmulator,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
) -> None:
    dlq_topic = f"projects/{PROJECT}/topics/dlq"
    dlq_sub = f"projects/{PROJECT}/subscriptions/dlq-sub"
    publisher.create_topic(name=TOPIC)
    publisher.create_topic(name=dlq_topic)
    subscriber.create_subscription(name=dlq_sub, topic=dlq_topic)
    created = subscriber.create_subscription(
        request=Subscription(
            name=SUB,
            topic=TOPIC,
            dead_letter_policy=DeadLetterPolicy(
                dead_letter_topic=dlq_topic, max_delivery_attempts=5
            ),
        )
    )
    assert created.dead_letter_policy.max_delivery_attempts == 5
    publish_all(publisher, TOPIC, [b"poison"])

    for attempt in range(1, 6):
        (received,) = drain(subscriber, SUB, 1, ack=False)
        assert received.delivery_attempt == attempt
        subscriber.modify_ack_deadline(
            subscription=SUB, ack_ids=[received.ack_id], ack_deadline_seconds=0
        )

    assert pull_now(subscriber, SUB) == []
    (dead,) = drain(subscriber, dlq_sub, 1)
    assert dead.message.data == b"poison"
    assert dead.message.attributes["CloudPubSubDeadLetterSourceSubscription"] == "events-sub"
    assert pubsub_emulator.stats()["dead_lettered"] == 1


# ---------------------------------------------------------------------------- validation


def test_invalid_arguments(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic_and_sub: tuple[str, str],
    request: pytest.FixtureRequest,
) -> None:
    # The GAPIC client honours PUBSUB_EMULATOR_HOST and skips the wrapper's client-side checks.
    gapic = GapicPublisherClient()
    request.addfinalizer(gapic.transport.close)
    with pytest.raises(gexc.InvalidArgument):
        publisher.publish(TOPIC, b"").result(timeout=10)
    with pytest.raises(gexc.InvalidArgument):
        gapic.publish(topic=TOPIC, messages=[PubsubMessage(data=b"x" * 10_000_001)], retry=None)
    with pytest.raises(gexc.NotFound):
        gapic.publish(
            topic=f"projects/{PROJECT}/topics/missing",
            messages=[PubsubMessage(data=b"x")],
            retry=None,
        )
    # Attributes alone are a valid message.
    assert gapic.publish(topic=TOPIC, messages=[PubsubMessage(attributes={"k": "v"})]).message_ids
    with pytest.raises(gexc.InvalidArgument):
        subscriber.create_subscription(
            name=f"projects/{PROJECT}/subscriptions/short", topic=TOPIC, ack_deadline_seconds=5
        )
    with pytest.raises(gexc.InvalidArgument):
        subscriber.create_subscription(
            name=f"projects/{PROJECT}/subscriptions/long", topic=TOPIC, ack_deadline_seconds=601
        )
    with pytest.raises(gexc.InvalidArgument):
        subscriber.pull(subscription=SUB, max_messages=0)
    with pytest.raises(gexc.InvalidArgument):
        subscriber.modify_ack_deadline(subscription=SUB, ack_ids=["x"], ack_deadline_seconds=601)
    with pytest.raises(gexc.NotFound):
        subscriber.pull(subscription=f"projects/{PROJECT}/subscriptions/missing", max_messages=1)


# ---------------------------------------------------------------------------- slow pulls


def test_delayed_pull_answers_late_without_blocking_other_rpcs(
    pubsub_emulator: PubSubEmulator,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic_and_sub: tuple[str, str],
) -> None:
    publish_all(publisher, TOPIC, [b"held", b"waiting"])
    (held,) = subscriber.pull(subscription=SUB, max_messages=1).received_messages
    pubsub_emulator.delay_pulls(1, 3.0)

    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        late = pool.submit(subscriber.pull, subscription=SUB, max_messages=10, timeout=30)
        assert pubsub_emulator.wait_for_stats(lambda s: s["pull_delays_triggered"] == 1, 10)
        # The delayed pull holds no lock: an ack and a publish complete while it waits,
        # and it has taken nothing yet.
        subscriber.acknowledge(subscription=SUB, ack_ids=[held.ack_id], timeout=10)
        publish_all(publisher, TOPIC, [b"published during the delay"])
        assert not late.done()
        stats = pubsub_emulator.stats()
        assert (stats["acked"], stats["delivered"], stats["backlog"]) == (1, 1, 2)

        response = late.result(timeout=30)
        elapsed = time.monotonic() - started

    # Messages are chosen after the delay, so the one published during it comes too.
    assert [m.message.data for m in response.received_messages] == [
        b"waiting",
        b"published during the delay",
    ]
    assert elapsed >= 2.5
    stats = pubsub_emulator.stats()
    assert (stats["pull_delays_injected"], stats["pull_delays_triggered"]) == (1, 1)
    assert stats["pull_delays_expired"] == 0
    assert pull_now(subscriber, SUB) == []  # one delay armed, one pull delayed


def test_pull_whose_deadline_passes_during_the_delay_leases_nothing(
    pubsub_emulator: PubSubEmulator,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic_and_sub: tuple[str, str],
) -> None:
    (message_id,) = publish_all(publisher, TOPIC, [b"a"])
    pubsub_emulator.delay_pulls(1, 60.0)

    with pytest.raises(gexc.DeadlineExceeded):
        subscriber.pull(subscription=SUB, max_messages=10, timeout=0.5, retry=None)
    # The server gives up at the caller's deadline, not after the 60 s delay.
    assert pubsub_emulator.wait_for_stats(lambda s: s["pull_delays_expired"] == 1, 10)
    assert pubsub_emulator.stats()["delivered"] == 0

    # Deliverable to the very next pull: no ack deadline to wait out, a first delivery.
    (received,) = pull_now(subscriber, SUB)
    assert received.message.message_id == message_id
    stats = pubsub_emulator.stats()
    assert (stats["delivered"], stats["redelivered"]) == (1, 0)


def test_delayed_streaming_pull_response(
    pubsub_emulator: PubSubEmulator,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic_and_sub: tuple[str, str],
) -> None:
    publish_all(publisher, TOPIC, [b"a"])
    pubsub_emulator.delay_pulls(1, 1.0)
    got = threading.Event()

    def callback(message: Any) -> None:
        message.ack()
        got.set()

    started = time.monotonic()
    future = subscriber.subscribe(SUB, callback)
    try:
        assert got.wait(20)
        elapsed = time.monotonic() - started
    finally:
        future.cancel()
        future.result(timeout=10)
    assert elapsed >= 0.9
    assert pubsub_emulator.stats()["pull_delays_triggered"] == 1


def test_stop_during_a_delayed_pull_is_prompt() -> None:
    emulator = PubSubEmulator()
    emulator.start()
    emulator.ensure_topic_and_subscription(PROJECT, "events", "events-sub")
    channel = grpc.insecure_channel(emulator.address)
    subscriber = pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))
    try:
        with gapic_publisher(emulator.address) as gapic:
            gapic.publish(topic=TOPIC, messages=[PubsubMessage(data=b"x")])
        emulator.delay_pulls(1, 120.0)
        with ThreadPoolExecutor(1) as pool:
            late = pool.submit(
                subscriber.pull, subscription=SUB, max_messages=1, timeout=180, retry=None
            )
            assert emulator.wait_for_stats(lambda s: s["pull_delays_triggered"] == 1, 10)
            started = time.monotonic()
            emulator.stop(grace=0.5)
            assert time.monotonic() - started < 5
            # Cut short, the pull ends empty (or as an error if the server went first).
            try:
                response = late.result(timeout=10)
            except gexc.GoogleAPICallError:
                pass
            else:
                assert list(response.received_messages) == []
        assert emulator.stats()["delivered"] == 0
        leaked = [t.name for t in threading.enumerate() if t.name.startswith("pubsub-emulator")]
        assert leaked == []
    finally:
        subscriber.close()
        emulator.stop()


@pytest.mark.parametrize(
    ("count", "seconds", "message"),
    [
        (-1, 1.0, "count"),
        (1, -0.1, "seconds"),
        (1, (0.5, 0.1), "seconds"),
        (1, float("nan"), "seconds"),
        (1, (0.0, float("inf")), "seconds"),
    ],
)
def test_delay_pulls_rejects_bad_arguments(
    pubsub_emulator: PubSubEmulator,
    count: int,
    seconds: float | tuple[float, float],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        pubsub_emulator.delay_pulls(count, seconds)
    assert pubsub_emulator.stats()["pull_delays_injected"] == 0


def test_delay_pulls_draws_are_seeded(
    pubsub_emulator: PubSubEmulator,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    topic_and_sub: tuple[str, str],
) -> None:
    pubsub_emulator.delay_pulls(3, (0.0, 0.05), seed=7)
    for _ in range(4):  # three delayed, the fourth not
        pull_now(subscriber, SUB)
    stats = pubsub_emulator.stats()
    assert (stats["pull_delays_injected"], stats["pull_delays_triggered"]) == (3, 3)
