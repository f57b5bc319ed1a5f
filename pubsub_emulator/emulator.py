"""In-process Google Cloud Pub/Sub emulator served over gRPC.

Google's emulator is a Java program; tests and local runs need something that starts in
milliseconds, can be driven deterministically (virtual clock, injected faults, forced
duplicates, slow pulls) and speaks the real wire protocol so that the real
``google-cloud-pubsub`` client is exercised end to end. Behaviour follows Go's ``pstest``
fake and the documented service semantics.

Raw protobuf classes are used throughout the server because proto-plus wrapping of every
message dominates the cost of a Python gRPC servicer. On the hot path (Pull and
StreamingPull responses) not even those: each message is serialized once when published
and responses are concatenated from wire-format pieces (see :func:`_encode_received`).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import random
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any, NoReturn

import grpc
from google.protobuf import empty_pb2
from google.pubsub_v1 import types as _types

__all__ = ["PubSubEmulator", "serve_forever"]

# Raw protobuf classes; ``Any`` because protobuf/pubsub ship no usable stubs here.
_Pb = Any
_Topic: Any = _types.Topic.pb()
_Subscription: Any = _types.Subscription.pb()
_PublishRequest: Any = _types.PublishRequest.pb()
_PublishResponse: Any = _types.PublishResponse.pb()
_GetTopicRequest: Any = _types.GetTopicRequest.pb()
_ListTopicsRequest: Any = _types.ListTopicsRequest.pb()
_ListTopicsResponse: Any = _types.ListTopicsResponse.pb()
_ListTopicSubscriptionsRequest: Any = _types.ListTopicSubscriptionsRequest.pb()
_ListTopicSubscriptionsResponse: Any = _types.ListTopicSubscriptionsResponse.pb()
_DeleteTopicRequest: Any = _types.DeleteTopicRequest.pb()
_GetSubscriptionRequest: Any = _types.GetSubscriptionRequest.pb()
_ListSubscriptionsRequest: Any = _types.ListSubscriptionsRequest.pb()
_ListSubscriptionsResponse: Any = _types.ListSubscriptionsResponse.pb()
_DeleteSubscriptionRequest: Any = _types.DeleteSubscriptionRequest.pb()
_ModifyAckDeadlineRequest: Any = _types.ModifyAckDeadlineRequest.pb()
_AcknowledgeRequest: Any = _types.AcknowledgeRequest.pb()
_PullRequest: Any = _types.PullRequest.pb()
_StreamingPullRequest: Any = _types.StreamingPullRequest.pb()
_PubsubMessage: Any = _types.PubsubMessage.pb()
_ReceivedMessage: Any = _types.ReceivedMessage.pb()
_Empty: Any = empty_pb2.Empty

MAX_MESSAGE_DATA_BYTES = 10_000_000
"""Largest ``data`` payload the real service accepts in one message."""

DEFAULT_MAX_RESPONSE_BYTES = 3_670_016
"""3.5 MiB: keeps pull responses under gRPC's default 4 MiB client receive limit."""

_MAX_RECEIVE_BYTES = 64 * 1024 * 1024
_MIN_ACK_DEADLINE = 10
_MAX_ACK_DEADLINE = 600
_DEFAULT_ACK_DEADLINE = 10
_DEFAULT_MAX_DELIVERY_ATTEMPTS = 5
_DELETED_TOPIC = "_deleted-topic_"
_UNLIMITED = 1 << 62
_RECEIVED_MESSAGE_OVERHEAD = 16  # tag/length bytes around each ReceivedMessage (at most 14)
_STREAM_IDLE_WAKEUP = 1.0  # bounded wait so a stream notices cancellation without a notify
_DEADLINE_MARGIN = 0.05  # a response sent this close to the caller's deadline would arrive late
_RESOURCE_ID = r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}"
_TOPIC_RE = re.compile(rf"^projects/([^/]+)/topics/({_RESOURCE_ID})$")
_SUBSCRIPTION_RE = re.compile(rf"^projects/([^/]+)/subscriptions/({_RESOURCE_ID})$")
_PROJECT_RE = re.compile(r"^projects/[^/]+$")

_PUBLISHER_METHODS = (
    "CreateTopic",
    "GetTopic",
    "ListTopics",
    "DeleteTopic",
    "ListTopicSubscriptions",
    "Publish",
)
_SUBSCRIBER_METHODS = (
    "CreateSubscription",
    "GetSubscription",
    "ListSubscriptions",
    "DeleteSubscription",
    "ModifyAckDeadline",
    "Acknowledge",
    "Pull",
    "StreamingPull",
)


class _RpcAbortError(Exception):
    """Raised by request helpers; translated to ``context.abort`` at the RPC boundary."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass(eq=False, slots=True)
class _Message:
    """One message as seen by one subscription (the bytes are shared across fan-out).

    ``encoded`` is the stamped PubsubMessage serialized once, at publish, as field
    ``message`` of a ReceivedMessage (tag, length, message), ready to be spliced into
    every response that delivers it; ``size`` is the message's own serialized size.
    """

    message_id: str
    encoded: bytes
    size: int
    acked: bool = False
    attempts: int = 0
    queued: int = 0  # entries for this message in the subscription's ready queues
    # Ack ids of its live deliveries: ``lease`` ("" for none), then any others (only
    # forced duplicates overlap). Plain strings, no set per message: the garbage
    # collector traverses every container a subscription's backlog holds.
    lease: str = ""
    more_leases: list[str] | None = None

    def add_lease(self, ack_id: str) -> None:
        if not self.lease:
            self.lease = ack_id
        elif self.more_leases is None:
            self.more_leases = [ack_id]
        else:
            self.more_leases.append(ack_id)

    def drop_lease(self, ack_id: str) -> None:
        if self.more_leases is None:
            self.lease = ""
            return
        if self.lease == ack_id:
            self.lease = self.more_leases.pop()
        else:
            self.more_leases.remove(ack_id)
        if not self.more_leases:
            self.more_leases = None

    def leases(self) -> list[str]:
        if not self.lease:
            return []
        return [self.lease, *(self.more_leases or ())]


@dataclass(eq=False)
class _Stream:
    """Per-StreamingPull state: its ack deadline and flow-control accounting."""

    deadline_seconds: int
    max_messages: int
    max_bytes: int
    out_count: int = 0
    out_bytes: int = 0
    closed: bool = False
    error: _RpcAbortError | None = None


@dataclass(eq=False, slots=True)
class _Taken:
    """The deliveries of one response, in order (parallel lists, not a tuple each).

    ``attempts`` holds delivery_attempt values, only with a dead-letter policy.
    """

    ack_ids: list[str]
    messages: list[_Message]
    attempts: list[int] | None

    def __len__(self) -> int:
        return len(self.ack_ids)


class _SubState:
    """Mutable state of one subscription; guarded by the emulator lock via ``cond``."""

    def __init__(self, pb: _Pb, cond: threading.Condition) -> None:
        self.pb = pb
        self.cond = cond
        self.deleted = False
        self.pending: deque[_Message] = deque()  # first deliveries, FIFO by publish
        self.redeliver: deque[_Message] = deque()  # expired / nacked, served first
        self.duplicates: deque[_Message] = deque()  # forced duplicate deliveries
        # Live deliveries by ack id. Nothing is allocated per delivery beyond its ack id
        # and dict slots: per-delivery objects made the garbage collector the largest
        # cost of big pulls. The bytes a delivery counts are recomputed (_lease_size).
        self.outstanding: dict[str, _Message] = {}
        self.lease_deadlines: dict[str, float] = {}
        self.lease_streams: dict[str, _Stream] = {}  # StreamingPull deliveries only
        # Lazy min-heap of ack deadlines, one entry per response (or modack) whose ack
        # ids all got that deadline; an id whose deadline has since changed is skipped.
        self.deadlines: list[tuple[float, int, list[str]]] = []
        self.delivered = 0
        self.acked = 0

    @property
    def max_delivery_attempts(self) -> int:
        """0 when the subscription has no dead-letter policy."""
        if not self.pb.HasField("dead_letter_policy"):
            return 0
        attempts = int(self.pb.dead_letter_policy.max_delivery_attempts)
        return attempts or _DEFAULT_MAX_DELIVERY_ATTEMPTS

    def next_deadline(self) -> float:
        return self.deadlines[0][0] if self.deadlines else math.inf

    def backlog(self) -> int:
        queues = (self.pending, self.redeliver, self.duplicates)
        return sum(1 for q in queues for m in q if not m.acked)


def _abort(context: Any, err: _RpcAbortError) -> NoReturn:
    context.abort(err.code, err.details)
    raise AssertionError("context.abort returned")  # pragma: no cover


class PubSubEmulator:
    """A faithful, controllable Pub/Sub server for tests and local development.

    All state sits behind one lock; each subscription has its own condition on that lock
    so waiting pullers only wake for their subscription. Time for ack deadlines is
    ``time.monotonic()`` plus a virtual offset moved by :meth:`advance_clock`, so tests
    can expire deadlines without sleeping.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_workers: int = 16,
        max_pull_wait: float = 1.0,
    ) -> None:
        if max_response_bytes <= 0:
            raise ValueError("max_response_bytes must be positive")
        self._host = host
        self._port = port
        self._max_response_bytes = max_response_bytes
        self._max_workers = max_workers
        self._max_pull_wait = max_pull_wait
        self._lock = threading.Lock()
        self._stats_cond = threading.Condition(self._lock)
        self._stats_waiters = 0
        self._topics: dict[str, _Pb] = {}
        self._topic_subs: dict[str, set[str]] = {}
        self._subs: dict[str, _SubState] = {}
        self._clock_offset = 0.0
        self._message_ids = itertools.count(1)
        self._ack_ids = itertools.count(1)
        self._heap_seq = itertools.count()
        self._faults: dict[str, deque[grpc.StatusCode]] = {}
        self._duplicates_remaining = 0
        self._pull_delays: deque[float] = deque()
        self._sleepers: set[threading.Event] = set()  # delayed calls, woken by stop()
        self._counters = dict.fromkeys(
            (
                "published",
                "delivered",
                "acked",
                "redelivered",
                "duplicated",
                "dead_lettered",
                "faults_injected",
                "faults_triggered",
                "pull_delays_injected",
                "pull_delays_triggered",
                "pull_delays_expired",
                "deadlines_modified",
            ),
            0,
        )
        self._readers: set[threading.Thread] = set()
        self._server: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> int:
        """Bind and start serving; returns the bound port (useful with ``port=0``)."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._stopping = False
        self._executor = ThreadPoolExecutor(
            max_workers=self._max_workers, thread_name_prefix="pubsub-emulator"
        )
        server = grpc.server(
            self._executor,
            options=[
                ("grpc.max_receive_message_length", _MAX_RECEIVE_BYTES),
                ("grpc.max_send_message_length", -1),
            ],
        )
        server.add_generic_rpc_handlers(self._handlers())
        bound = int(server.add_insecure_port(f"{self._format_host()}:{self._port}"))
        if bound == 0:
            raise OSError(f"could not bind {self._host}:{self._port}")
        server.start()
        self._server = server
        self._port = bound
        return bound

    def stop(self, grace: float | None = None) -> None:
        """Stop serving, cancelling open streams, and join every thread the server used."""
        server, executor = self._server, self._executor
        if server is None:
            return
        with self._lock:
            self._stopping = True
            for sub in self._subs.values():
                sub.cond.notify_all()
            for sleeper in self._sleepers:
                sleeper.set()
            self._stats_cond.notify_all()
        server.stop(grace).wait()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            readers, self._readers = self._readers, set()
        for reader in readers:
            reader.join(timeout=5.0)
        self._server = None
        self._executor = None

    @property
    def address(self) -> str:
        """``host:port`` suitable for ``PUBSUB_EMULATOR_HOST``."""
        return f"{self._format_host()}:{self._port}"

    def __enter__(self) -> PubSubEmulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _format_host(self) -> str:
        return f"[{self._host}]" if ":" in self._host else self._host

    # ------------------------------------------------------------------ test controls

    def advance_clock(self, seconds: float) -> None:
        """Move virtual time forward so ack deadlines expire without real waiting."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._clock_offset += seconds
            now = self._now()
            for sub in self._subs.values():
                self._expire_locked(sub, now)
                sub.cond.notify_all()

    def inject_faults(self, method: str, code: grpc.StatusCode, count: int = 1) -> None:
        """Make the next ``count`` calls of RPC ``method`` fail with ``code``."""
        if method not in _PUBLISHER_METHODS + _SUBSCRIBER_METHODS:
            raise ValueError(f"unknown Pub/Sub RPC {method!r}")
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._lock:
            self._faults.setdefault(method, deque()).extend([code] * count)
            self._counters["faults_injected"] += count

    def duplicate_next_deliveries(self, count: int) -> None:
        """Deliver each of the next ``count`` delivered messages a second time.

        The duplicate carries a different ack_id and is served by a later Pull or
        StreamingPull response, the way Pub/Sub's at-least-once delivery can.
        """
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._lock:
            self._duplicates_remaining += count

    def delay_pulls(
        self, count: int, seconds: float | tuple[float, float], *, seed: int | None = None
    ) -> None:
        """Make the next ``count`` Pull calls and StreamingPull responses answer late.

        Each waits ``seconds``, or a uniform draw from ``(low, high)`` (reproducible with
        ``seed``), before it chooses messages: a slow server, not a slow network. The
        wait holds no lock, so acks, publishes and other pulls go on, and ``stop()``
        cuts it short. A pull whose deadline passes during its delay gets
        DEADLINE_EXCEEDED, as from the real service, and leases nothing: its messages
        stay available to the next pull instead of waiting out an ack deadline. A
        stream's response takes its delay before it starts waiting for messages.
        Counted in ``stats()`` as ``pull_delays_{injected,triggered,expired}``.
        """
        if count < 0:
            raise ValueError("count must be >= 0")
        low, high = seconds if isinstance(seconds, tuple) else (seconds, seconds)
        if not (0 <= low <= high and math.isfinite(high)):
            raise ValueError("seconds must be finite, >= 0, and low <= high")
        rng = random.Random(seed)
        delays = [low if low == high else rng.uniform(low, high) for _ in range(count)]
        with self._lock:
            self._pull_delays.extend(delays)
            self._counters["pull_delays_injected"] += count

    def ensure_topic_and_subscription(
        self, project: str, topic: str, subscription: str, ack_deadline_seconds: int = 60
    ) -> None:
        """Create the topic and a pull subscription on it unless they already exist."""
        topic_name = f"projects/{project}/topics/{topic}"
        sub_name = f"projects/{project}/subscriptions/{subscription}"
        with self._lock:
            try:
                if topic_name not in self._topics:
                    self._create_topic_locked(_Topic(name=topic_name))
                if sub_name not in self._subs:
                    pb = _Subscription(
                        name=sub_name, topic=topic_name, ack_deadline_seconds=ack_deadline_seconds
                    )
                    self._create_subscription_locked(pb)
            except _RpcAbortError as err:
                raise ValueError(err.details) from None

    def stats(self) -> dict[str, int]:
        """Counters; totals plus ``<subscription>/{backlog,outstanding,delivered,acked}``."""
        with self._lock:
            return self._stats_locked()

    def wait_for_stats(self, predicate: Callable[[dict[str, int]], bool], timeout: float) -> bool:
        """Block until ``predicate(stats())`` holds or ``timeout`` elapses; no polling."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._stats_waiters += 1
            try:
                while True:
                    if predicate(self._stats_locked()):
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._stopping:
                        return False
                    now = self._now()
                    wake = min((s.next_deadline() for s in self._subs.values()), default=math.inf)
                    self._stats_cond.wait(min(remaining, max(wake - now, 0.001)))
            finally:
                self._stats_waiters -= 1

    def _stats_locked(self) -> dict[str, int]:
        now = self._now()
        out = dict(self._counters)
        outstanding = backlog = 0
        for name, sub in self._subs.items():
            self._expire_locked(sub, now)
            sub_backlog = sub.backlog()
            out[f"{name}/backlog"] = sub_backlog
            out[f"{name}/outstanding"] = len(sub.outstanding)
            out[f"{name}/delivered"] = sub.delivered
            out[f"{name}/acked"] = sub.acked
            outstanding += len(sub.outstanding)
            backlog += sub_backlog
        out.update(
            outstanding=outstanding,
            backlog=backlog,
            topics=len(self._topics),
            subscriptions=len(self._subs),
        )
        return out

    def _changed_locked(self) -> None:
        if self._stats_waiters:
            self._stats_cond.notify_all()

    # ------------------------------------------------------------------ plumbing

    def _now(self) -> float:
        return time.monotonic() + self._clock_offset

    def _handlers(self) -> tuple[Any, ...]:
        def unary(name: str, fn: Callable[[Any], Any], req: Any, resp: Any) -> tuple[str, Any]:
            def handler(request: Any, context: Any) -> Any:
                try:
                    self._maybe_fault(name)
                    return fn(request)
                except _RpcAbortError as err:
                    _abort(context, err)

            return name, grpc.unary_unary_rpc_method_handler(
                handler,
                request_deserializer=req.FromString,
                response_serializer=resp.SerializeToString,
            )

        def pull(request: Any, context: Any) -> Any:
            try:
                self._maybe_fault("Pull")
                return self._pull(request, context)
            except _RpcAbortError as err:
                _abort(context, err)

        publisher = dict(
            [
                unary("CreateTopic", self._create_topic, _Topic, _Topic),
                unary("GetTopic", self._get_topic, _GetTopicRequest, _Topic),
                unary("ListTopics", self._list_topics, _ListTopicsRequest, _ListTopicsResponse),
                unary("DeleteTopic", self._delete_topic, _DeleteTopicRequest, _Empty),
                unary(
                    "ListTopicSubscriptions",
                    self._list_topic_subscriptions,
                    _ListTopicSubscriptionsRequest,
                    _ListTopicSubscriptionsResponse,
                ),
                unary("Publish", self._publish, _PublishRequest, _PublishResponse),
            ]
        )
        subscriber = dict(
            [
                unary(
                    "CreateSubscription", self._create_subscription, _Subscription, _Subscription
                ),
                unary(
                    "GetSubscription",
                    self._get_subscription,
                    _GetSubscriptionRequest,
                    _Subscription,
                ),
                unary(
                    "ListSubscriptions",
                    self._list_subscriptions,
                    _ListSubscriptionsRequest,
                    _ListSubscriptionsResponse,
                ),
                unary(
                    "DeleteSubscription",
                    self._delete_subscription,
                    _DeleteSubscriptionRequest,
                    _Empty,
                ),
                unary(
                    "ModifyAckDeadline",
                    self._modify_ack_deadline,
                    _ModifyAckDeadlineRequest,
                    _Empty,
                ),
                unary("Acknowledge", self._acknowledge, _AcknowledgeRequest, _Empty),
            ]
        )
        # Pull and StreamingPull handlers return serialized responses: with no
        # serializer gRPC sends the bytes as they are.
        subscriber["Pull"] = grpc.unary_unary_rpc_method_handler(
            pull, request_deserializer=_PullRequest.FromString, response_serializer=None
        )
        subscriber["StreamingPull"] = grpc.stream_stream_rpc_method_handler(
            self._streaming_pull,
            request_deserializer=_StreamingPullRequest.FromString,
            response_serializer=None,
        )
        return (
            grpc.method_handlers_generic_handler("google.pubsub.v1.Publisher", publisher),
            grpc.method_handlers_generic_handler("google.pubsub.v1.Subscriber", subscriber),
        )

    def _maybe_fault(self, method: str) -> None:
        with self._lock:
            queue = self._faults.get(method)
            if not queue:
                return
            code = queue.popleft()
            self._counters["faults_triggered"] += 1
            self._changed_locked()
        raise _RpcAbortError(code, f"injected fault for {method}")

    def _delay_response(self, context: Any) -> bool:
        """Wait out the next armed pull delay, if any (see :meth:`delay_pulls`).

        Returns False when the call should end quietly (emulator stopping, call
        cancelled); raises DEADLINE_EXCEEDED when the caller's deadline passed first.
        Nothing has been taken from the subscription yet in either case.
        """
        with self._lock:
            if not self._pull_delays or self._stopping:
                return True
            seconds = self._pull_delays.popleft()
            self._counters["pull_delays_triggered"] += 1
            woken = threading.Event()  # set by stop() or when the call ends
            self._sleepers.add(woken)
            self._changed_locked()
        remaining = context.time_remaining()
        expires = remaining is not None and seconds >= remaining - _DEADLINE_MARGIN
        try:
            if context.add_callback(woken.set):  # False: the call is already over
                woken.wait(seconds if remaining is None else min(seconds, max(remaining, 0.0)))
        finally:
            with self._lock:
                self._sleepers.discard(woken)
                stopping = self._stopping
                if expires and not stopping:
                    self._counters["pull_delays_expired"] += 1
                    self._changed_locked()
        if stopping:
            return False
        if expires:
            raise _RpcAbortError(
                grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline exceeded while the pull was delayed"
            )
        return bool(context.is_active())

    def _sub_locked(self, name: str) -> _SubState:
        sub = self._subs.get(name)
        if sub is None:
            raise _RpcAbortError(grpc.StatusCode.NOT_FOUND, f"Subscription does not exist: {name}")
        return sub

    # ------------------------------------------------------------------ publisher

    def _create_topic(self, request: _Pb) -> _Pb:
        with self._lock:
            return self._create_topic_locked(request)

    def _create_topic_locked(self, topic: _Pb) -> _Pb:
        match = _TOPIC_RE.match(topic.name)
        if not match or match.group(2).startswith("goog"):
            raise _RpcAbortError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Invalid topic name: {topic.name}"
            )
        if topic.name in self._topics:
            raise _RpcAbortError(
                grpc.StatusCode.ALREADY_EXISTS, f"Topic already exists: {topic.name}"
            )
        self._topics[topic.name] = topic
        self._topic_subs[topic.name] = set()
        return topic

    def _get_topic(self, request: _Pb) -> _Pb:
        with self._lock:
            topic = self._topics.get(request.topic)
            if topic is None:
                raise _RpcAbortError(grpc.StatusCode.NOT_FOUND, f"Topic not found: {request.topic}")
            return topic

    def _list_topics(self, request: _Pb) -> _Pb:
        if not _PROJECT_RE.match(request.project):
            raise _RpcAbortError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Invalid project: {request.project}"
            )
        with self._lock:
            names = sorted(n for n in self._topics if n.startswith(f"{request.project}/topics/"))
            page, token = _page(names, request.page_size, request.page_token)
            response = _ListTopicsResponse(next_page_token=token)
            for name in page:
                response.topics.add().CopyFrom(self._topics[name])
            return response

    def _list_topic_subscriptions(self, request: _Pb) -> _Pb:
        with self._lock:
            if request.topic not in self._topics:
                raise _RpcAbortError(grpc.StatusCode.NOT_FOUND, f"Topic not found: {request.topic}")
            names = sorted(self._topic_subs[request.topic])
            page, token = _page(names, request.page_size, request.page_token)
            return _ListTopicSubscriptionsResponse(subscriptions=page, next_page_token=token)

    def _delete_topic(self, request: _Pb) -> _Pb:
        with self._lock:
            if request.topic not in self._topics:
                raise _RpcAbortError(grpc.StatusCode.NOT_FOUND, f"Topic not found: {request.topic}")
            del self._topics[request.topic]
            for name in self._topic_subs.pop(request.topic):
                self._subs[name].pb.topic = _DELETED_TOPIC
            return _Empty()

    def _publish(self, request: _Pb) -> _Pb:
        for message in request.messages:
            if not message.data and not message.attributes:
                raise _RpcAbortError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "Some messages contain neither data nor attributes",
                )
            if len(message.data) > MAX_MESSAGE_DATA_BYTES:
                raise _RpcAbortError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Message data exceeds {MAX_MESSAGE_DATA_BYTES} bytes",
                )
        with self._lock:
            if request.topic not in self._topics:
                raise _RpcAbortError(grpc.StatusCode.NOT_FOUND, f"Topic not found: {request.topic}")
            ids = [self._publish_locked(request.topic, m) for m in request.messages]
        return _PublishResponse(message_ids=ids)

    def _publish_locked(self, topic: str, message: _Pb) -> str:
        """Stamp ``message`` (now owned by the emulator) and fan it out to subscriptions."""
        message_id = str(next(self._message_ids))
        message.message_id = message_id
        # The wall clock, as Pub/Sub's servers stamp it: the virtual offset only moves ack
        # deadlines. Stamped with it, publish times ran minutes ahead of the decoder's
        # clock in long crash chains and good events were refused as "from the future".
        message.publish_time.FromNanoseconds(time.time_ns())
        wire = message.SerializeToString()
        encoded = b"\x12" + _varint(len(wire)) + wire  # ReceivedMessage field 2
        for name in self._topic_subs[topic]:
            sub = self._subs[name]
            sub.pending.append(_Message(message_id, encoded, len(wire), queued=1))
            sub.cond.notify_all()
        self._counters["published"] += 1
        self._changed_locked()
        return message_id

    # ------------------------------------------------------------------ subscriber admin

    def _create_subscription(self, request: _Pb) -> _Pb:
        with self._lock:
            return self._create_subscription_locked(request)

    def _create_subscription_locked(self, pb: _Pb) -> _Pb:
        match = _SUBSCRIPTION_RE.match(pb.name)
        if not match or match.group(2).startswith("goog"):
            raise _RpcAbortError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Invalid subscription name: {pb.name}"
            )
        if pb.name in self._subs:
            raise _RpcAbortError(
                grpc.StatusCode.ALREADY_EXISTS, f"Subscription already exists: {pb.name}"
            )
        if pb.topic not in self._topics:
            raise _RpcAbortError(grpc.StatusCode.NOT_FOUND, f"Topic not found: {pb.topic}")
        if pb.ack_deadline_seconds == 0:
            pb.ack_deadline_seconds = _DEFAULT_ACK_DEADLINE
        if not _MIN_ACK_DEADLINE <= pb.ack_deadline_seconds <= _MAX_ACK_DEADLINE:
            raise _RpcAbortError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Invalid ack_deadline_seconds {pb.ack_deadline_seconds}: must be in "
                f"[{_MIN_ACK_DEADLINE}, {_MAX_ACK_DEADLINE}]",
            )
        if pb.HasField("dead_letter_policy"):
            policy = pb.dead_letter_policy
            if not _TOPIC_RE.match(policy.dead_letter_topic):
                raise _RpcAbortError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Invalid dead_letter_topic: {policy.dead_letter_topic!r}",
                )
            if policy.max_delivery_attempts and not 5 <= policy.max_delivery_attempts <= 100:
                raise _RpcAbortError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "max_delivery_attempts must be in [5, 100]",
                )
        self._subs[pb.name] = _SubState(pb, threading.Condition(self._lock))
        self._topic_subs[pb.topic].add(pb.name)
        self._changed_locked()
        return pb

    def _get_subscription(self, request: _Pb) -> _Pb:
        with self._lock:
            return self._sub_locked(request.subscription).pb

    def _list_subscriptions(self, request: _Pb) -> _Pb:
        if not _PROJECT_RE.match(request.project):
            raise _RpcAbortError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Invalid project: {request.project}"
            )
        with self._lock:
            prefix = f"{request.project}/subscriptions/"
            names = sorted(n for n in self._subs if n.startswith(prefix))
            page, token = _page(names, request.page_size, request.page_token)
            response = _ListSubscriptionsResponse(next_page_token=token)
            for name in page:
                response.subscriptions.add().CopyFrom(self._subs[name].pb)
            return response

    def _delete_subscription(self, request: _Pb) -> _Pb:
        with self._lock:
            sub = self._sub_locked(request.subscription)
            del self._subs[request.subscription]
            self._topic_subs.get(sub.pb.topic, set()).discard(request.subscription)
            sub.deleted = True
            sub.cond.notify_all()
            self._changed_locked()
            return _Empty()

    # ------------------------------------------------------------------ acking

    def _acknowledge(self, request: _Pb) -> _Pb:
        with self._lock:
            sub = self._sub_locked(request.subscription)
            self._ack_locked(sub, request.ack_ids)
        return _Empty()

    def _modify_ack_deadline(self, request: _Pb) -> _Pb:
        seconds = request.ack_deadline_seconds
        if not 0 <= seconds <= _MAX_ACK_DEADLINE:
            raise _RpcAbortError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Invalid ack_deadline_seconds {seconds}: must be in [0, {_MAX_ACK_DEADLINE}]",
            )
        with self._lock:
            sub = self._sub_locked(request.subscription)
            self._modack_locked(sub, request.ack_ids, seconds)
            self._counters["deadlines_modified"] += len(request.ack_ids)
            self._changed_locked()
        return _Empty()

    def _ack_locked(self, sub: _SubState, ack_ids: Any) -> None:
        """Ack every known ack_id; unknown or expired ids are ignored as in Pub/Sub.

        Acking one delivery of a message drops all of its deliveries. The common case
        (a single delivery, not on a stream) is inlined: this runs once per message.
        """
        outstanding = sub.outstanding
        lease_deadlines = sub.lease_deadlines
        acked = 0
        for ack_id in ack_ids:
            message = outstanding.get(ack_id)
            if message is None:
                continue
            if message.more_leases is None and not sub.lease_streams:
                del outstanding[ack_id]
                del lease_deadlines[ack_id]
                message.lease = ""
            else:
                for lease in message.leases():
                    self._drop_delivery_locked(sub, lease)
            if not message.acked:
                message.acked = True
                acked += 1
        if acked:
            sub.acked += acked
            self._counters["acked"] += acked
        sub.cond.notify_all()
        self._changed_locked()

    def _modack_locked(self, sub: _SubState, ack_ids: Any, seconds: int) -> None:
        deadline = self._now() + seconds
        extended: list[str] = []
        for ack_id in ack_ids:
            if ack_id not in sub.outstanding:
                continue
            if seconds == 0:
                self._requeue_locked(sub, self._drop_delivery_locked(sub, ack_id))
            else:
                sub.lease_deadlines[ack_id] = deadline
                extended.append(ack_id)
        if extended:
            heapq.heappush(sub.deadlines, (deadline, next(self._heap_seq), extended))
        sub.cond.notify_all()
        self._changed_locked()

    def _drop_delivery_locked(self, sub: _SubState, ack_id: str) -> _Message:
        message = sub.outstanding.pop(ack_id)
        del sub.lease_deadlines[ack_id]
        message.drop_lease(ack_id)
        stream = sub.lease_streams.pop(ack_id, None)
        if stream is not None:
            stream.out_count -= 1
            stream.out_bytes -= _lease_size(message, ack_id)
        return message

    def _requeue_locked(self, sub: _SubState, message: _Message) -> None:
        """Make an unacked message with no live deliveries available again.

        With a dead-letter policy, a message that has used up its delivery attempts is
        forwarded to the dead-letter topic (when it exists) instead.
        """
        if message.acked or message.lease or message.queued:
            return
        max_attempts = sub.max_delivery_attempts
        if max_attempts and message.attempts >= max_attempts:
            dead_letter_topic = sub.pb.dead_letter_policy.dead_letter_topic
            if dead_letter_topic in self._topics:
                original = _ReceivedMessage.FromString(message.encoded).message
                forwarded = _PubsubMessage(data=original.data, ordering_key=original.ordering_key)
                forwarded.attributes.update(original.attributes)
                project, sub_id = _SUBSCRIPTION_RE.match(sub.pb.name).groups()  # type: ignore[union-attr]
                forwarded.attributes.update(
                    {
                        "CloudPubSubDeadLetterSourceDeliveryCount": str(message.attempts),
                        "CloudPubSubDeadLetterSourceSubscription": sub_id,
                        "CloudPubSubDeadLetterSourceSubscriptionProject": project,
                    }
                )
                self._publish_locked(dead_letter_topic, forwarded)
                message.acked = True
                self._counters["dead_lettered"] += 1
                return
        message.queued += 1
        sub.redeliver.append(message)
        sub.cond.notify_all()

    def _expire_locked(self, sub: _SubState, now: float) -> None:
        heap = sub.deadlines
        lease_deadlines = sub.lease_deadlines
        while heap and heap[0][0] <= now:
            deadline, _, ack_ids = heapq.heappop(heap)
            for ack_id in ack_ids:
                if lease_deadlines.get(ack_id) != deadline:
                    continue  # acked, nacked or extended since this heap entry was pushed
                self._requeue_locked(sub, self._drop_delivery_locked(sub, ack_id))
                self._changed_locked()

    # ------------------------------------------------------------------ delivery

    def _next_ready_locked(self, sub: _SubState) -> tuple[deque[_Message], _Message] | None:
        for queue in (sub.duplicates, sub.redeliver, sub.pending):
            while queue and queue[0].acked:
                queue.popleft().queued -= 1
            if queue:
                return queue, queue[0]
        return None

    def _take_locked(
        self,
        sub: _SubState,
        max_messages: int,
        deadline_seconds: int,
        stream: _Stream | None = None,
    ) -> _Taken:
        """Lease ready messages for one response; the caller encodes them (unlocked).

        Stops at ``max_messages``, the response byte cap and (for streams) the stream's
        flow-control limits, but always hands out one message when nothing else limits
        it so a single oversized message cannot wedge a subscription.
        """
        deadline = self._now() + deadline_seconds
        total = 0
        ack_ids: list[str] = []
        messages: list[_Message] = []
        attempts: list[int] | None = [] if sub.max_delivery_attempts else None
        duplicates: list[_Message] = []
        max_bytes = self._max_response_bytes
        outstanding = sub.outstanding
        lease_deadlines = sub.lease_deadlines
        counters = self._counters
        pending, redeliver, forced = sub.pending, sub.redeliver, sub.duplicates
        while len(ack_ids) < max_messages:
            if forced or redeliver:
                ready = self._next_ready_locked(sub)
                if ready is None:
                    break
                queue, message = ready
            else:  # the common case, inlined
                while pending and pending[0].acked:
                    pending.popleft().queued -= 1
                if not pending:
                    break
                queue, message = pending, pending[0]
            ack_id = f"{next(self._ack_ids)}-{message.message_id}"
            size = message.size + len(ack_id) + _RECEIVED_MESSAGE_OVERHEAD  # _lease_size
            if ack_ids and total + size > max_bytes:
                break
            if stream is not None:
                if stream.out_count and (
                    (stream.max_messages and stream.out_count + 1 > stream.max_messages)
                    or (stream.max_bytes and stream.out_bytes + size > stream.max_bytes)
                ):
                    break
                stream.out_count += 1
                stream.out_bytes += size
                sub.lease_streams[ack_id] = stream
            queue.popleft()
            message.queued -= 1
            is_duplicate = queue is forced
            if not is_duplicate:
                message.attempts += 1
                if message.attempts > 1:
                    counters["redelivered"] += 1
            outstanding[ack_id] = message
            lease_deadlines[ack_id] = deadline
            if message.lease:
                message.add_lease(ack_id)
            else:
                message.lease = ack_id
            ack_ids.append(ack_id)
            messages.append(message)
            if attempts is not None:
                attempts.append(message.attempts)
            total += size
            if self._duplicates_remaining and not is_duplicate:
                self._duplicates_remaining -= 1
                counters["duplicated"] += 1
                duplicates.append(message)
        for message in duplicates:  # served by a later response, never the same one
            message.queued += 1
            forced.append(message)
        if ack_ids:
            heapq.heappush(sub.deadlines, (deadline, next(self._heap_seq), ack_ids))
            sub.delivered += len(ack_ids)
            counters["delivered"] += len(ack_ids)
            self._changed_locked()
        return _Taken(ack_ids, messages, attempts)

    def _pull(self, request: _Pb, context: Any) -> bytes:
        """Pull; returns the serialized PullResponse (the handler has no serializer)."""
        if request.max_messages <= 0:
            raise _RpcAbortError(grpc.StatusCode.INVALID_ARGUMENT, "max_messages must be > 0")
        if not self._delay_response(context):
            return b""
        wait = self._max_pull_wait
        remaining = context.time_remaining()
        if remaining is not None:
            wait = min(wait, max(remaining - 0.05, 0.0))
        give_up = time.monotonic() + wait
        with self._lock:
            sub = self._sub_locked(request.subscription)
            while True:
                now = self._now()
                self._expire_locked(sub, now)
                taken = self._take_locked(sub, request.max_messages, sub.pb.ack_deadline_seconds)
                if taken or request.return_immediately or self._stopping or sub.deleted:
                    break
                left = give_up - time.monotonic()
                if left <= 0 or not context.is_active():
                    break
                sub.cond.wait(min(left, max(sub.next_deadline() - now, 0.001)))
        if sub.deleted and not taken:
            raise _RpcAbortError(
                grpc.StatusCode.NOT_FOUND, f"Subscription does not exist: {request.subscription}"
            )
        return _encode_received(taken)

    def _streaming_pull(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
        try:
            self._maybe_fault("StreamingPull")
            first = next(request_iterator, None)
            if first is None:
                return  # the client half-closed without asking for anything
            sub, stream = self._open_stream(first)
        except _RpcAbortError as err:
            _abort(context, err)
        except grpc.RpcError:
            return  # cancelled before the first request arrived

        def on_done() -> None:
            with self._lock:
                stream.closed = True
                sub.cond.notify_all()

        context.add_callback(on_done)
        reader = threading.Thread(
            target=self._read_stream,
            args=(request_iterator, sub, stream),
            name="pubsub-emulator-stream-reader",
            daemon=True,
        )
        with self._lock:
            # Finished readers are pruned here, not by themselves, so stop() can join
            # every reader that might still be running.
            self._readers = {t for t in self._readers if t.is_alive()}
            self._readers.add(reader)
        reader.start()
        while True:
            try:
                if not self._delay_response(context):
                    return
            except _RpcAbortError as err:
                _abort(context, err)
            with self._lock:
                while True:
                    if stream.error is not None:
                        _abort(context, stream.error)
                    if sub.deleted:
                        _abort(
                            context,
                            _RpcAbortError(
                                grpc.StatusCode.NOT_FOUND, f"Subscription deleted: {sub.pb.name}"
                            ),
                        )
                    if stream.closed or self._stopping:
                        return
                    now = self._now()
                    self._expire_locked(sub, now)
                    taken = self._take_locked(sub, _UNLIMITED, stream.deadline_seconds, stream)
                    if taken:
                        break
                    sub.cond.wait(min(_STREAM_IDLE_WAKEUP, max(sub.next_deadline() - now, 0.001)))
            yield _encode_received(taken)

    def _open_stream(self, first: _Pb) -> tuple[_SubState, _Stream]:
        if not first.subscription:
            raise _RpcAbortError(
                grpc.StatusCode.INVALID_ARGUMENT, "First request must set subscription"
            )
        deadline = first.stream_ack_deadline_seconds
        if deadline and not _MIN_ACK_DEADLINE <= deadline <= _MAX_ACK_DEADLINE:
            raise _RpcAbortError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Invalid stream_ack_deadline_seconds {deadline}",
            )
        with self._lock:
            sub = self._sub_locked(first.subscription)
            stream = _Stream(
                deadline_seconds=deadline or sub.pb.ack_deadline_seconds,
                max_messages=max(first.max_outstanding_messages, 0),
                max_bytes=max(first.max_outstanding_bytes, 0),
            )
            self._apply_stream_request_locked(sub, stream, first)
        if stream.error is not None:
            raise stream.error
        return sub, stream

    def _read_stream(self, requests: Iterator[Any], sub: _SubState, stream: _Stream) -> None:
        """Apply acks/modacks arriving on a stream; ends on half-close or cancellation."""
        try:
            for request in requests:
                with self._lock:
                    self._apply_stream_request_locked(sub, stream, request)
                    if stream.error is not None:
                        break
        except grpc.RpcError:
            pass  # the call was cancelled or the server is stopping
        finally:
            with self._lock:
                stream.closed = True
                sub.cond.notify_all()

    def _apply_stream_request_locked(self, sub: _SubState, stream: _Stream, request: _Pb) -> None:
        if len(request.modify_deadline_ack_ids) != len(request.modify_deadline_seconds):
            stream.error = _RpcAbortError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "modify_deadline_ack_ids and modify_deadline_seconds lengths differ",
            )
            sub.cond.notify_all()
            return
        if request.stream_ack_deadline_seconds:
            deadline = request.stream_ack_deadline_seconds
            if not _MIN_ACK_DEADLINE <= deadline <= _MAX_ACK_DEADLINE:
                stream.error = _RpcAbortError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Invalid stream_ack_deadline_seconds {deadline}",
                )
                sub.cond.notify_all()
                return
            stream.deadline_seconds = deadline
        if request.ack_ids:
            self._ack_locked(sub, request.ack_ids)
        for ack_id, seconds in zip(
            request.modify_deadline_ack_ids, request.modify_deadline_seconds, strict=True
        ):
            if not 0 <= seconds <= _MAX_ACK_DEADLINE:
                stream.error = _RpcAbortError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"Invalid modify_deadline_seconds {seconds}"
                )
                sub.cond.notify_all()
                return
            self._modack_locked(sub, (ack_id,), seconds)


_SMALL_VARINTS = [bytes((n,)) for n in range(0x80)]


def _varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int (lengths, delivery attempts)."""
    if n < 0x80:
        return _SMALL_VARINTS[n]
    if n < 0x4000:  # most ReceivedMessage lengths
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _lease_size(message: _Message, ack_id: str) -> int:
    """Bytes one delivery counts against response and flow-control caps (an upper bound)."""
    return message.size + len(ack_id) + _RECEIVED_MESSAGE_OVERHEAD


def _encode_received(taken: _Taken) -> bytes:
    """A serialized PullResponse / StreamingPullResponse holding ``taken``.

    Both carry ``repeated ReceivedMessage received_messages = 1``; a ReceivedMessage is
    ``string ack_id = 1; PubsubMessage message = 2; int32 delivery_attempt = 3`` (the
    last omitted when 0, as protobuf does). Splicing pre-serialized messages avoids a
    protobuf copy of each; the tags and lengths added here stay within
    _RECEIVED_MESSAGE_OVERHEAD per message, so a response stays within the byte cap.
    """
    pieces: list[bytes] = []
    append = pieces.append
    attempts = taken.attempts or [0] * len(taken.ack_ids)
    for ack_id, message, attempt in zip(taken.ack_ids, taken.messages, attempts, strict=True):
        ack = ack_id.encode()
        encoded = message.encoded
        tail = b"\x18" + _varint(attempt) if attempt else b""
        length = 2 + len(ack) + len(encoded) + len(tail)
        if len(ack) < 0x80 and 0x80 <= length < 0x4000:  # the usual case, varints inlined
            append(b"\x0a%c%c\x0a%c%b" % (length & 0x7F | 0x80, length >> 7, len(ack), ack))
        else:
            length += len(_varint(len(ack))) - 1
            append(b"\x0a%b\x0a%b%b" % (_varint(length), _varint(len(ack)), ack))
        append(encoded)
        if tail:
            append(tail)
    return b"".join(pieces)


def _page(names: list[str], page_size: int, page_token: str) -> tuple[list[str], str]:
    """Offset-based paging; the token is the index of the next name."""
    try:
        start = int(page_token) if page_token else 0
    except ValueError:
        raise _RpcAbortError(grpc.StatusCode.INVALID_ARGUMENT, "Invalid page token") from None
    end = start + page_size if page_size > 0 else len(names)
    return names[start:end], (str(end) if end < len(names) else "")


def serve_forever(host: str, port: int, on_started: Callable[[int], None] | None = None) -> None:
    """Run an emulator until SIGINT/SIGTERM; ``on_started`` receives the bound port."""
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, request_stop)
    emulator = PubSubEmulator(host, port)
    try:
        bound = emulator.start()
        print(f"Pub/Sub emulator listening on {emulator.address}", flush=True)
        if on_started is not None:
            on_started(bound)
        while not stop_requested.wait(1.0):
            pass
    finally:
        emulator.stop(grace=1.0)
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
