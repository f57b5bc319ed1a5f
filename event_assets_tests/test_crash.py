"""SIGKILL ingestion between landing and ack, and between ack and dedup-write.

The process is paused at the named point by `EVENT_ASSETS_PAUSE_AT` (a pause
only, no change in behaviour) and killed from outside; a fresh process must
then finish the job with nothing lost and nothing doubled.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading

import pytest
from deltalake import DeltaTable

from event_assets.faults import PAUSE_ENV, PausePoint
from event_assets.ingest import lake_of
from event_assets.pubsub.client import publish
from event_assets.settings import Settings
from event_assets.storage.landing import pending_batches
from pubsub_emulator.emulator import PubSubEmulator

from .corpus import mixed_corpus

# The same tests against a local folder and against gs:// on the GCS fake.
LAKE_KINDS = ("local", "gcs")


def _ingest_cmd() -> list[str]:
    return [sys.executable, "-m", "event_assets.cli", "ingest", "--once"]


def _run_until_paused(point: PausePoint, timeout: float = 60.0) -> subprocess.Popen[str]:
    env = {**os.environ, PAUSE_ENV: point}
    proc = subprocess.Popen(
        _ingest_cmd(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    stderr = proc.stderr

    def pump() -> None:
        for line in stderr:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            proc.kill()
            pytest.fail(f"ingest never reached {point}")
        if f"paused at {point}" in line:
            return proc


@pytest.mark.parametrize(
    "point", [PausePoint.BEFORE_ACK, PausePoint.AFTER_ACK, PausePoint.AFTER_COMMIT]
)
def test_kill_and_restart_loses_and_doubles_nothing(
    point: PausePoint, settings: Settings, emulator: PubSubEmulator
) -> None:
    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    publish(settings, corpus.messages)
    proc = _run_until_paused(point)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    lake = lake_of(settings)
    if point == PausePoint.BEFORE_ACK:
        # Landed but never acked: redelivered once the ack deadline passes.
        emulator.advance_clock(settings.ACK_DEADLINE_SECONDS + 1)
    else:
        assert pending_batches(lake), "the killed run should leave a landed, unmerged batch"

    done = subprocess.run(_ingest_cmd(), capture_output=True, text=True, timeout=120, check=True)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    if point != PausePoint.BEFORE_ACK:
        assert summary["recovered_batches"] >= 1

    events = DeltaTable(lake.events_uri).to_pyarrow_table(columns=["event_id"])
    ids = events["event_id"].to_pylist()
    assert len(ids) == len(set(ids)) == corpus.unique_events
    quarantine = DeltaTable(lake.quarantine_uri).to_pyarrow_table(columns=["message_id"])
    assert quarantine.num_rows == sum(corpus.bad.values())
    assert pending_batches(lake) == []
