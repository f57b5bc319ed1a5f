"""The crash matrix on the real `dagster-daemon`: what production runs, killed.

A chain is one lab (the harness's emulator, lake and Dagster home, with the project's
`dagster.yaml`: run queue, per-day tag limit, the local launcher and run monitoring)
and one `dagster-daemon run -w workspace.yaml` in its own process group, restarted
after each kill of the group. Each link arms a pause point (`faults.arm`: the first
process to reach it pauses, the code server ticking the sensor or a run worker) and
publishes a fresh seeded workload, then:

- `group:<point>`: SIGKILL the daemon's whole group (daemon, code server, run
  workers) once something paused at `<point>`, and start a new daemon;
- `worker:<point>`: SIGKILL only the paused run worker; the daemon lives on, and its
  run monitoring must fail the run (left STARTED, it would hold the day's slot);
- `group:timing`: SIGKILL the group a random 0-6 s after the sensor first pulled;
- `sensor_timeout`: a tick pauses after acking, past the daemon's sensor timeout
  (`DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS`, 20 s here): its run requests are lost, and a
  later tick must request the batches it landed; then the group is killed.

Named points: `after_landing` (mid-tick, landed, not acked), `after_ack` (acked, no
run request stored yet), `before_commit` (mid-merge) and `after_commit` (committed,
batches not yet recorded as merged). After the last link the daemon drains everything
and the lake is verified against the ledger; a day whose batches are still pending,
or whose run is still in flight, when the drain's deadline passes counts as blocked.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import dagster as dg

from event_assets import faults
from event_assets.ingest import lake_of
from event_assets.storage.landing import parse_batch_path, pending_batches
from event_assets_tests.support.daemon import (
    ROOT,
    in_flight,
    run_counts,
    spawn_daemon,
    stop_group,
)
from reliability import workload
from reliability.harness import Lab, Ledger, Message, ReliabilityError, lab, verify
from reliability.outcome import Outcome

SENSOR_POINTS = (faults.PausePoint.AFTER_LANDING, faults.PausePoint.AFTER_ACK)
RUN_POINTS = (faults.PausePoint.BEFORE_COMMIT, faults.PausePoint.AFTER_COMMIT)
LINKS = (
    *(f"group:{p}" for p in (*SENSOR_POINTS, *RUN_POINTS)),
    *(f"worker:{p}" for p in RUN_POINTS),
    "group:timing",
    "sensor_timeout",
)
"""Every kind of link; a chain takes them in a seeded order, each as often as it fits."""

SENSOR_TIMEOUT_SECONDS = 20
"""The daemon's sensor gRPC timeout in these labs (Dagster's default is 60 s): the
`sensor_timeout` link waits it out, so it is shortened, with the tick budget under it."""
DAEMON_SETTINGS = {
    "PULL_MAX_MESSAGES": "1000",
    "SENSOR_TICK_BUDGET_SECONDS": "8",
}
PAUSE_TIMEOUT = 240.0
"""Longest a link waits for its point to be reached (a daemon start, a tick, a run launch,
and, after a worker kill, run monitoring's poll and the sensor's retry)."""
DRAIN_TIMEOUT = 600.0
POLL = 0.5
INGEST_JOB = "events_ingest_job"


class Daemon:
    """The lab's `dagster-daemon run`, in its own session (process group), logging to a file."""

    def __init__(self, lb: Lab, pauses: Path) -> None:
        shutil.copy(ROOT / "dagster.yaml", lb.dagster_home / "dagster.yaml")
        self.log = lb.root / "daemon.log"
        self.env = {
            **lb.child_env(),
            faults.PAUSE_DIR_ENV: str(pauses),
            "DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS": str(SENSOR_TIMEOUT_SECONDS),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.process is None, "daemon already running"
        self.process = spawn_daemon(self.env, self.log)
        self.starts += 1

    def kill_group(self) -> None:
        """SIGKILL the daemon, its code server and every run worker, then reap the leader."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ReliabilityError(f"dagster-daemon exited ({self.process.returncode})")

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)
            self.process = None

    def timeouts(self) -> int:
        """Sensor evaluations the daemon gave up on so far (gRPC deadline exceeded)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text.count("status = StatusCode.DEADLINE_EXCEEDED")

    def tail(self, chars: int = 3000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-chars:]


def _until(condition: Callable[[], bool], timeout: float, daemon: Daemon) -> bool:
    """Poll `condition()` until true (True) or the deadline (False); fail if the daemon died."""
    deadline = time.monotonic() + timeout
    while True:
        daemon.alive()
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)  # poll interval, bounded by the deadline


def _runs(home: Path) -> dict[str, int]:
    """Run counts of the ingest job by status; SQLite may be busy while the daemon writes."""
    for _ in range(20):
        try:
            with dg.DagsterInstance.from_config(str(home)) as instance:
                return run_counts(instance, INGEST_JOB)
        except Exception:  # noqa: BLE001 (database locked: read again)
            time.sleep(POLL)  # retry interval of a bounded loop
    raise ReliabilityError("the Dagster instance could not be read")


def chain_links(seed: int, links: int) -> list[str]:
    """`links` link kinds: every kind once per round, in a seeded order per round."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < links:
        kinds = list(LINKS)
        rng.shuffle(kinds)
        out += kinds
    return out[:links]


def daemon_chain(
    root: Path,
    *,
    links: Sequence[str],
    seed: int,
    events_per_link: int,
    lake: str = "local",
) -> Outcome:
    """Run the links against one lab and its daemon, drain, verify."""
    started = time.perf_counter()
    rng = random.Random(seed)
    outcome = Outcome(kind="crash: real dagster-daemon", lake=lake)
    with lab(root, lake, **DAEMON_SETTINGS) as lb:
        pauses = root / "pauses"
        pauses.mkdir()
        daemon = Daemon(lb, pauses)
        ledger = Ledger()
        try:
            daemon.start()
            for n, link in enumerate(links):
                how, _, point = link.partition(":")
                messages = workload.messages(rng, events_per_link, tag=f"d{seed}-{n}")
                if not _link(lb, daemon, pauses, ledger, messages, how, point, rng):
                    outcome.failed_runs += 1
                    outcome.notes.append(f"{link}: never reached; daemon log: {daemon.tail()}")
                    continue
                outcome.kills += 1
                outcome.kill_points[link] += 1
            blocked = _drain(lb, daemon, pauses)
            counts = _runs(lb.dagster_home)
        finally:
            daemon.stop()
        outcome.blocked_days += len(blocked)
        if blocked:
            outcome.notes.append(f"blocked days {blocked}; daemon log: {daemon.tail()}")
        outcome.runs += daemon.starts + sum(counts.values())
        outcome.add(ledger, verify(lb, ledger))
    outcome.dagster_runs.update(counts)
    outcome.seconds = round(time.perf_counter() - started, 1)
    return outcome


def _link(
    lb: Lab,
    daemon: Daemon,
    pauses: Path,
    ledger: Ledger,
    messages: list[Message],
    how: str,
    point: str,
    rng: random.Random,
) -> bool:
    """One link: arm, publish, wait, kill. False if the point was never reached."""
    if how == "group" and point == "timing":
        delivered = lb.subscription_stats()["delivered"]
        ledger.publish(lb, messages)
        if not lb.wait_delivered(delivered, timeout=PAUSE_TIMEOUT):
            return False
        time.sleep(rng.uniform(0.0, 6.0))  # the kill moment, not synchronisation
        _restart(lb, daemon)
        return True
    name = faults.PausePoint.AFTER_ACK if how == "sensor_timeout" else faults.PausePoint(point)
    faults.arm(pauses, name)
    ledger.publish(lb, messages)
    if not _until(lambda: faults.paused(pauses, name) is not None, PAUSE_TIMEOUT, daemon):
        faults.disarm(pauses, name)
        return False
    pid = faults.paused(pauses, name)
    assert pid is not None
    if how == "worker":
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        faults.disarm(pauses, name)
        return True
    if how == "sensor_timeout":
        # The paused tick acked its rounds' messages; their batches are merged only if a
        # later tick (after the daemon gave up on this one) requests them.
        landed = set(pending_batches(lake_of(lb.settings)))
        timeouts = daemon.timeouts()
        merged = _until(
            lambda: (
                daemon.timeouts() > timeouts
                and not landed & set(pending_batches(lake_of(lb.settings)))
            ),
            PAUSE_TIMEOUT,
            daemon,
        )
        if not merged:
            raise ReliabilityError(
                "no timed-out tick, or its batches never merged: "
                f"{sorted(landed)[:3]}\n{daemon.tail()}"
            )
    _restart(lb, daemon)
    faults.disarm(pauses, name)
    return True


def _restart(lb: Lab, daemon: Daemon) -> None:
    daemon.kill_group()
    lb.expire_deadlines()  # what a dead consumer held returns now, not in ACK_DEADLINE
    daemon.start()


def _drain(lb: Lab, daemon: Daemon, pauses: Path) -> list[str]:
    """Let the daemon finish everything; the days still pending or running at the deadline."""
    for armed in pauses.glob("*"):
        armed.unlink()
    lake = lake_of(lb.settings)

    def done() -> bool:
        return lb.drained() and not pending_batches(lake) and not in_flight(_runs(lb.dagster_home))

    if _until(done, DRAIN_TIMEOUT, daemon):
        return []
    days = {parse_batch_path(p)[0].isoformat() for p in pending_batches(lake)}
    if in_flight(_runs(lb.dagster_home)):
        days.add("(a run still in flight)")
    return sorted(days)
