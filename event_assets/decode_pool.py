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
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa

from event_assets.events.decode import (
    Clock,
    FixedClock,
    RawFields,
    RawMessage,
    decode_batch,
    to_micros,
    wall_clock_us,
)
from event_assets.pubsub.client import messages_of
from event_assets.settings import Settings

Decoded = tuple[pa.Table, pa.Table]
"""(events, quarantine) of one pull response."""

_LOCK = threading.Lock()
_POOL: ProcessPoolExecutor | None = None
_POOL_WORKERS = 0
# One start-up probe per worker of the current pool: until all are done, payloads
# are decoded in the caller, so a cold pool never makes a round wait.
_WARMUP: list[Future[int]] = []


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


def decode_messages(messages: Iterable[RawFields], options: DecodeOptions) -> Decoded:
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


def _pool(workers: int) -> ProcessPoolExecutor:
    global _POOL, _POOL_WORKERS, _WARMUP
    with _LOCK:
        if _POOL is None or _POOL_WORKERS != workers:
            if _POOL is not None:
                _POOL.shutdown(wait=False, cancel_futures=True)
            context = multiprocessing.get_context("forkserver")
            # The client imports its protobuf classes at first use: workers get them forked.
            context.set_forkserver_preload([__name__, "google.pubsub_v1.types"])
            _POOL = ProcessPoolExecutor(
                workers,
                mp_context=context,
                initializer=_watch_parent,
                initargs=(os.getpid(),),
            )
            _POOL_WORKERS = workers
            _WARMUP = [_POOL.submit(_started) for _ in range(workers)]
        return _POOL


def _warm() -> bool:
    with _LOCK:
        return all(probe.done() for probe in _WARMUP)


def start(workers: int, timeout: float | None = None) -> bool:
    """Start the pool now (if `workers` > 0); with a timeout, wait until its workers
    are up. Whether they are."""
    if workers <= 0:
        return False
    _pool(workers)
    with _LOCK:
        probes = list(_WARMUP)
    if timeout is not None:
        futures_wait(probes, timeout=timeout)
    return _warm()


def _discard(pool: ProcessPoolExecutor) -> None:
    global _POOL
    with _LOCK:
        if _POOL is pool:
            _POOL = None
    pool.shutdown(wait=False, cancel_futures=True)


@atexit.register
def _shutdown() -> None:
    with _LOCK:
        pool = _POOL
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


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


class Decoder:
    """Submit payloads as they are pulled; collect results in order.

    With `workers=0`, or while the pool's workers are still starting, a payload is
    decoded at submit time in this process.
    """

    def __init__(self, options: DecodeOptions, workers: int) -> None:
        self.options = options
        self._pool = _pool(workers) if workers > 0 else None
        # (payload, its decode): a pool future, or the tables decoded here already.
        self._pending: list[tuple[bytes, Future[Decoded] | Decoded]] = []
        self.in_workers = 0  # payloads decoded by the pool (the rest: in this process)

    def submit(self, payload: bytes) -> None:
        if self._pool is not None and _warm():
            try:
                future = self._pool.submit(decode_payload, payload, self.options)
            except (BrokenProcessPool, RuntimeError):
                self._drop_pool()
            else:
                self._pending.append((payload, future))
                self.in_workers += 1
                return
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
                # A worker died (killed, out of memory): decode here instead.
                self._drop_pool()
                self.in_workers -= 1
                out.append(decode_payload(payload, self.options))
        return out

    def _drop_pool(self) -> None:
        if self._pool is not None:
            _discard(self._pool)
            self._pool = None
