"""Parallel decode: same tables as decoding in place, whatever happens to the workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from google.pubsub_v1 import types

from event_assets import ingest
from event_assets.decode_pool import DecodeOptions, DecodePool, Decoder, decode_payload
from event_assets.events.timestamps import FixedClock, to_micros, wall_clock_us
from event_assets.pubsub.client import Subscription, publish
from event_assets.settings import Settings, load_settings

from .corpus import mixed_corpus

OPTIONS = DecodeOptions(max_bytes=1_000_000, earliest_date=date(2020, 1, 1))


@pytest.fixture
def pool() -> Iterator[DecodePool]:
    with DecodePool(2) as started:
        assert started.start(timeout=120), "decode workers did not start"
        yield started


def _payloads(size: int = 7) -> list[bytes]:
    """The mixed corpus (good, duplicate and bad messages) as PullResponses of `size`."""
    messages = mixed_corpus(OPTIONS.max_bytes).messages
    pb = types.PullResponse.pb()
    out = []
    for start in range(0, len(messages), size):
        response = pb()
        for i, (data, attributes) in enumerate(messages[start : start + size], start):
            received = response.received_messages.add()
            received.ack_id = f"ack-{i}"
            received.message.data = data
            received.message.attributes.update(attributes)
            received.message.message_id = str(i)
            received.message.publish_time.FromSeconds(1_763_600_000 + i)
        out.append(response.SerializeToString())
    return out


def _decode(
    pool: DecodePool | None, payloads: list[bytes], *, in_workers: int | None = None
) -> list[tuple[pa.Table, pa.Table]]:
    decoder = Decoder(OPTIONS, pool)
    for payload in payloads:
        decoder.submit(payload)
    results = decoder.results()
    if in_workers is not None:
        assert decoder.in_workers == in_workers
    return results


def _same(left: list[tuple[pa.Table, pa.Table]], right: list[tuple[pa.Table, pa.Table]]) -> None:
    assert len(left) == len(right)
    for (events_a, quarantine_a), (events_b, quarantine_b) in zip(left, right, strict=True):
        assert events_a.equals(events_b)
        assert quarantine_a.equals(quarantine_b)


def test_workers_decode_exactly_like_this_process(pool: DecodePool) -> None:
    payloads = _payloads()
    inline = [decode_payload(p, OPTIONS) for p in payloads]
    assert sum(t[0].num_rows for t in inline) > 0
    assert sum(t[1].num_rows for t in inline) > 0
    _same(_decode(None, payloads), inline)
    _same(_decode(pool, payloads, in_workers=len(payloads)), inline)


def test_a_cold_pool_never_delays_a_round() -> None:
    """Until the workers are up, payloads are decoded in the caller."""
    payloads = _payloads()
    with DecodePool(2) as cold:
        _same(_decode(cold, payloads, in_workers=0), [decode_payload(p, OPTIONS) for p in payloads])


def _wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            alive.append(pid)
        if not alive:
            return True
        time.sleep(0.05)  # polling a condition, bounded by the deadline
    return False


def test_killed_workers_cost_nothing_the_payloads_are_decoded_here(pool: DecodePool) -> None:
    payloads = _payloads()
    inline = [decode_payload(p, OPTIONS) for p in payloads]
    _same(_decode(pool, payloads, in_workers=len(payloads)), inline)
    pids = pool.pids
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert _wait_gone(pids, 10)
    _same(_decode(pool, payloads), inline)  # decoded here: the pool is broken
    assert pool.start(timeout=120)  # a fresh pool serves the next round
    assert not set(pool.pids) & set(pids)
    _same(_decode(pool, payloads, in_workers=len(payloads)), inline)


CHILD = """
import sys, time
from event_assets.decode_pool import Decoder, shared_pool
from event_assets_tests.test_decode_pool import _payloads, OPTIONS
pool = shared_pool(2)
assert pool.start(timeout=120)
d = Decoder(OPTIONS, pool)
for p in _payloads():
    d.submit(p)
d.results()
print(" ".join(str(pid) for pid in pool.pids), flush=True)
time.sleep(600)
"""


def test_workers_exit_when_their_owner_is_killed() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        assert child.stdout is not None
        pids = [int(p) for p in child.stdout.readline().split()]
        assert len(pids) == 2
    finally:
        child.kill()
        child.wait(timeout=30)
    assert _wait_gone(pids, 15), "decode workers outlived the process that owned them"


def test_a_bad_worker_count_is_a_one_line_error() -> None:
    from event_assets.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="DECODE_WORKERS"):
        load_settings(DECODE_WORKERS=-1)
    assert load_settings(DECODE_WORKERS=0).DECODE_WORKERS == 0


class FileClock:
    """Reads the time (microseconds) from a file each time it is called: picklable,
    so a worker process reads the file as it decodes, whenever that is."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self) -> int:
        return int(self.path.read_text())


def test_workers_read_the_clock_as_they_decode(tmp_path: Path, pool: DecodePool) -> None:
    """Options are made as the round starts (23:59:58); the response is decoded, in a
    worker, at 00:00:05: an event stamped 00:00:03 is accepted with no skew allowance,
    one stamped 00:00:06 is not."""
    midnight = datetime(2026, 11, 25, tzinfo=UTC)
    round_start = midnight - timedelta(seconds=2)
    clock_file = tmp_path / "now"
    clock_file.write_text(str(to_micros(round_start)))
    options = DecodeOptions(
        max_bytes=1_000_000, earliest_date=date(2020, 1, 1), future_skew_seconds=0,
        clock=FileClock(clock_file),
    )  # fmt: skip
    response = types.PullResponse.pb()()
    for n, seconds in enumerate((3, 6)):
        received = response.received_messages.add()
        received.ack_id = f"ack-{n}"
        received.message.data = b"{}"
        received.message.message_id = f"m-{seconds}"
        received.message.attributes.update(
            {
                "ce-specversion": "1.0",
                "ce-id": f"e-{seconds}",
                "ce-source": "//test",
                "ce-type": "t",
                "ce-time": (midnight + timedelta(seconds=seconds)).isoformat(),
            }
        )
        received.message.publish_time.FromSeconds(int(round_start.timestamp()))
    clock_file.write_text(str(to_micros(midnight + timedelta(seconds=5))))
    decoder = Decoder(options, pool)
    decoder.submit(response.SerializeToString())
    [(events, quarantine)] = decoder.results()
    assert decoder.in_workers == 1
    assert events["message_id"].to_pylist() == ["m-3"]
    assert events["event_date"].to_pylist() == [date(2026, 11, 25)]
    assert quarantine["message_id"].to_pylist() == ["m-6"]
    assert quarantine["reason_code"].to_pylist() == ["event_date_out_of_range"]


def test_options_from_settings() -> None:
    settings = load_settings(
        MAX_MESSAGE_BYTES=1234, FUTURE_SKEW_SECONDS=7, EVENT_TIME_FIELD="occurred_at"
    )
    options = DecodeOptions.from_settings(settings)
    assert options == DecodeOptions(
        max_bytes=1234,
        earliest_date=settings.PARTITIONS_START_DATE,
        future_skew_seconds=7,
        event_time_field="occurred_at",
        clock=wall_clock_us,
    )
    now = datetime(2026, 11, 24, 23, 59, 58, tzinfo=UTC)
    frozen = DecodeOptions.from_settings(settings, now=now)
    assert frozen.clock == FixedClock(to_micros(now))


def test_a_round_reports_how_many_responses_the_workers_decoded(
    settings: Settings, pool: DecodePool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`PulledRound.in_workers` (a span attribute of the round) shows whether the pool
    does the work: every response with warm workers, none without a pool."""
    publish(settings, mixed_corpus(settings.MAX_MESSAGE_BYTES).messages)
    monkeypatch.setattr(ingest, "shared_pool", lambda workers: pool if workers else None)
    with Subscription(settings) as subscription:
        pooled = ingest.pull_decoded(
            settings.model_copy(update={"DECODE_WORKERS": 2}), subscription
        )
        assert pooled.in_workers >= 1
        assert pooled.events is not None
        assert pooled.events.num_rows > 0
        subscription.nack(pooled.ack_ids)  # back to the subscription, for the second round
        here = ingest.pull_decoded(settings.model_copy(update={"DECODE_WORKERS": 0}), subscription)
    assert here.in_workers == 0
    assert here.events is not None
    assert here.events.sort_by("message_id").equals(pooled.events.sort_by("message_id"))
