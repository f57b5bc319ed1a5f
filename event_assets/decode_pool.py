"""Decode pull responses on every core.

Decoding (JSON parse, canonical JSON, SHA-256, Arrow columns) is CPU-bound Python:
one interpreter holds one core however many threads it runs. Worker processes
take serialized `PullResponse`s and hand back Arrow tables, so while the caller
pulls, lands and writes (native code that releases the GIL) the decode runs on
the other cores.

Workers are forked from a forkserver that has already imported the decoder, and
the pool is kept for the life of the process (the Dagster code server across
sensor ticks, the CLI across rounds); until its workers are up (a few seconds, once)
payloads are decoded in the caller, so start-up never delays a round. A worker
never acks or writes anything: if one dies, its payload is decoded in the caller
instead, and the pool is rebuilt for the next round.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
import weakref
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa

from event_assets.events.decode import decode_batch
from event_assets.events.models import RawMessage
from event_assets.events.timestamps import Clock, FixedClock, to_micros, wall_clock_us
from event_assets.pubsub.client import messages_of
from event_assets.settings import Settings

Decoded = tuple[pa.Table, pa.Table]
"""(events, quarantine) of one pull response."""

_SHARED_LOCK = threading.Lock()
_SHARED: DecodePool | None = None  # the process's pool: see `shared_pool`


@dataclass(frozen=True)
class DecodeOptions:
    """What `decode_batch` needs besides the messages (picklable, clock included).

    The clock is read where the payload is decoded (a worker, or the caller), as
    it is decoded: the latest accepted event time is not fixed when a round starts.
    """

    max_bytes: int
    earliest_date: date | None = None
    future_skew_seconds: float | None = None  # None: no upper bound
    event_time_field: str | None = None
    clock: Clock = wall_clock_us

    @classmethod
    def from_settings(cls, settings: Settings, *, now: datetime | None = None) -> DecodeOptions:
        """The options a round decodes with; `now` freezes the clock (tests, replays)."""
        return cls(
            max_bytes=settings.MAX_MESSAGE_BYTES,
            earliest_date=settings.PARTITIONS_START_DATE,
            future_skew_seconds=settings.FUTURE_SKEW_SECONDS,
            event_time_field=settings.EVENT_TIME_FIELD,
            clock=wall_clock_us if now is None else FixedClock(to_micros(now)),
        )


def decode_payload(payload: bytes, options: DecodeOptions) -> Decoded:
    """Decode a serialized PullResponse into (events, quarantine); runs anywhere."""
    return decode_messages(messages_of(payload), options)


def decode_messages(messages: Iterable[RawMessage], options: DecodeOptions) -> Decoded:
    """Decode messages into (events, quarantine) with the round's options."""
    decoded = decode_batch(
        messages,
        max_bytes=options.max_bytes,
        earliest_date=options.earliest_date,
        future_skew_seconds=options.future_skew_seconds,
        event_time_field=options.event_time_field,
        clock=options.clock,
    )
    return decoded.events, decoded.quarantine


def _started() -> int:
    """A worker's first task: decode one message, so the first real payload does
    not pay for lazy initialisation (measured: ~1 s on the first decode)."""
    probe = RawMessage(b'{"warm": "up"}', {}, "warm-up", 0)
    decode_batch([probe], max_bytes=1024)
    return os.getpid()


def _watch_parent(parent_pid: int) -> None:
    """Exit when the process that owns the pool is gone (e.g. SIGKILLed), so a
    killed ingestion never leaves decoders behind."""

    def watch() -> None:
        while True:
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass  # alive, owned by someone else
            threading.Event().wait(1.0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class DecodePool:
    """`workers` decode processes, started on first use and rebuilt after one dies.

    Until every worker has decoded its warm-up probe, `submit` declines (the caller
    decodes), so a cold or rebuilding pool never makes a round wait. Close it (or use
    it as a context manager) to stop the workers; they also exit if this process dies.
    """

    def __init__(self, workers: int) -> None:
        if workers <= 0:
            raise ValueError(f"a decode pool needs at least one worker, not {workers}")
        self.workers = workers
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._warmup: list[Future[int]] = []
        # Which executor each pending decode went to: a dead worker breaks that one only.
        self._owners: weakref.WeakKeyDictionary[Future[Decoded], ProcessPoolExecutor] = (
            weakref.WeakKeyDictionary()
        )
        self._closed = False

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, timeout: float | None = None) -> bool:
        """Start the workers (if not running); with a timeout, wait until they are up.
        Whether they are."""
        self._ensure()
        with self._lock:
            probes = list(self._warmup)
        if timeout is not None:
            futures_wait(probes, timeout=timeout)
        return self.warm

    @property
    def warm(self) -> bool:
        with self._lock:
            return self._executor is not None and all(p.done() for p in self._warmup)

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (for a test that kills them)."""
        with self._lock:
            return list(self._executor._processes) if self._executor is not None else []

    def submit(self, payload: bytes, options: DecodeOptions) -> Future[Decoded] | None:
        """Decode `payload` in a worker; None while the pool is cold or broken (it is
        being started: decode in the caller)."""
        executor = self._ensure()
        if executor is None or not self.warm:
            return None
        try:
            future = executor.submit(decode_payload, payload, options)
        except (BrokenProcessPool, RuntimeError):
            self._discard(executor)
            return None
        self._owners[future] = executor
        return future

    def broken(self, future: Future[Decoded]) -> None:
        """`future` failed with BrokenProcessPool: drop the executor it went to (not a
        fresh one built since); the next `submit` or `start` builds another."""
        executor = self._owners.pop(future, None)
        if executor is not None:
            self._discard(executor)

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is not executor:
                return  # replaced already
            self._executor, self._warmup = None, []
        executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers for good (waits for them)."""
        with self._lock:
            executor, self._executor, self._closed = self._executor, None, True
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _ensure(self) -> ProcessPoolExecutor | None:
        with self._lock:
            if self._executor is None and not self._closed:
                context = multiprocessing.get_context("forkserver")
                # The client imports its protobuf classes at first use: workers get them forked.
                context.set_forkserver_preload([__name__, "google.pubsub_v1.types"])
                self._executor = ProcessPoolExecutor(
                    self.workers,
                    mp_context=context,
                    initializer=_watch_parent,
                    initargs=(os.getpid(),),
                )
                self._warmup = [self._executor.submit(_started) for _ in range(self.workers)]
            return self._executor


def shared_pool(workers: int) -> DecodePool | None:
    """This process's pool of `workers` (None for 0), kept for the life of the process
    (the Dagster code server across sensor ticks, the CLI across rounds) and closed at
    exit; asked for another size, it is replaced."""
    global _SHARED
    if workers <= 0:
        return None
    with _SHARED_LOCK:
        if _SHARED is None or _SHARED.workers != workers:
            if _SHARED is None:
                atexit.register(_close_shared)
            else:
                _SHARED.close()
            _SHARED = DecodePool(workers)
        return _SHARED


def _close_shared() -> None:
    with _SHARED_LOCK:
        pool = _SHARED
    if pool is not None:
        pool.close()


class Decoder:
    """Submit payloads as they are pulled; collect results in order.

    With no pool, or while the pool's workers are still starting, a payload is
    decoded at submit time in this process.
    """

    def __init__(self, options: DecodeOptions, pool: DecodePool | None) -> None:
        self.options = options
        self._pool = pool
        # (payload, its decode): a pool future, or the tables decoded here already.
        self._pending: list[tuple[bytes, Future[Decoded] | Decoded]] = []
        self.in_workers = 0  # payloads decoded by the pool (the rest: in this process)

    def submit(self, payload: bytes) -> None:
        future = self._pool.submit(payload, self.options) if self._pool is not None else None
        if future is not None:
            self._pending.append((payload, future))
            self.in_workers += 1
        else:
            self._pending.append((b"", decode_payload(payload, self.options)))

    def results(self) -> list[Decoded]:
        """Every submitted payload's (events, quarantine), in submission order."""
        out: list[Decoded] = []
        for payload, decoded in self._pending:
            if not isinstance(decoded, Future):
                out.append(decoded)
                continue
            try:
                out.append(decoded.result())
            except BrokenProcessPool:
                # A worker died (killed, out of memory): decode here instead; the pool
                # is rebuilt for the next round.
                if self._pool is not None:
                    self._pool.broken(decoded)
                self.in_workers -= 1
                out.append(decode_payload(payload, self.options))
        return out
