"""The crash matrix: SIGKILL real ingestion at every step boundary, restart, drain, verify.

A chain is one lab (emulator + lake + Dagster home). Each link publishes a fresh
seeded workload, starts an ingestion process (the CLI, or the sensor worker that
ticks `pubsub_events_sensor` and executes the runs it requests) paused at one
point by `EVENT_ASSETS_PAUSE_AT`, and SIGKILLs it there; or, for the `timing`
point, kills it a random 0-0.8 s after it first received messages, wherever it is
(mid-landing write, mid-commit, mid-marker, ...). The next link's process is also
the recovery of the previous one, so crashes during recovery are covered too.
After the last link a fresh process drains everything and the lake is verified.

Maintenance chains kill compaction and vacuum (paused before their commit, or at
a random moment) between ingestion rounds.

Any chain can keep its lake on `gs://` (`lake="gcs"`, the test suite's GCS fake):
the same kills then land between or inside HTTP requests, such as the create-only
PUT that commits a Delta version.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path

from event_assets.faults import PausePoint
from reliability import workload
from reliability.harness import (
    Ledger,
    ReliabilityError,
    child,
    cli_ingest_argv,
    drain_cli,
    drain_in_process,
    drain_sensor,
    lab,
    verify,
    worker_argv,
)
from reliability.outcome import Outcome

INGEST_POINTS: tuple[str, ...] = (
    PausePoint.AFTER_PULL,
    PausePoint.BEFORE_LANDING,
    PausePoint.AFTER_LANDING,
    PausePoint.BEFORE_ACK,
    PausePoint.AFTER_ACK,
    PausePoint.BEFORE_COMMIT,
    PausePoint.AFTER_COMMIT,
    "timing",  # a kill at a random moment
)
"""Where ingestion is killed; the sensor path's `after_ack` is "acked, no RunRequest yet"
and its `after_commit` is "committed, the run has not reported success"."""

MAINTENANCE_POINTS: tuple[str, ...] = (
    PausePoint.BEFORE_COMPACT_COMMIT,
    "compact:timing",
    PausePoint.BEFORE_VACUUM,
    "vacuum:timing",
)


def ingest_chain(
    root: Path,
    *,
    path: str,
    points: Sequence[str],
    seed: int,
    events_per_link: int,
    lake: str = "local",
) -> Outcome:
    """Kill the `cli` or `sensor` ingestion path once per point, then drain and verify."""
    started = time.perf_counter()
    rng = random.Random(seed)
    outcome = Outcome(kind=f"crash: {path} ingestion", lake=lake)
    with lab(root, lake) as lb:
        ledger = Ledger()
        for link, point in enumerate(points):
            ledger.publish(lb, workload.messages(rng, events_per_link, tag=f"{seed}-{link}"))
            if rng.random() < 0.3:
                lb.emulator.duplicate_next_deliveries(rng.randrange(1, 100))
            argv = cli_ingest_argv() if path == "cli" else worker_argv("sensor")
            delivered = lb.subscription_stats()["delivered"]
            pause = None if point == "timing" else point
            with child(argv, lb.child_env(pause)) as proc:
                outcome.runs += 1
                if point == "timing":
                    if not lb.wait_delivered(delivered, timeout=120):
                        raise ReliabilityError(f"{path} never pulled: {proc.output()[-2000:]}")
                    time.sleep(rng.uniform(0.0, 0.8))  # the kill moment, not synchronisation
                    killed = proc.proc.poll() is None
                    proc.kill()
                elif proc.wait_for(f"paused at {point}"):
                    proc.kill()
                    killed = True
                else:
                    # Every link has messages to ingest, so every pause point must be hit.
                    killed = False
                    code = proc.finish()
                    outcome.failed_runs += 1
                    outcome.notes.append(
                        f"{path} never paused at {point} (exit {code}): {proc.output()[-1500:]}"
                    )
            if killed:
                outcome.kills += 1
                outcome.kill_points[point] += 1
            lb.expire_deadlines()
        (drain_cli if path == "cli" else drain_sensor)(lb)
        outcome.runs += 1
        outcome.add(ledger, verify(lb, ledger))
    outcome.seconds = round(time.perf_counter() - started, 1)
    return outcome


def maintenance_chain(
    root: Path, *, points: Sequence[str], seed: int, events_per_link: int, lake: str = "local"
) -> Outcome:
    """Ingest a little, kill compaction or vacuum, verify; repeat; finish both; verify."""
    started = time.perf_counter()
    rng = random.Random(seed)
    outcome = Outcome(kind="crash: compaction / vacuum", lake=lake)
    with lab(root, lake, PULL_MAX_MESSAGES="100") as lb:
        ledger = Ledger()
        for link, point in enumerate(points):
            ledger.publish(lb, workload.messages(rng, events_per_link, tag=f"m{seed}-{link}"))
            drain_in_process(lb)
            what, _, timing = point.partition(":")
            if not timing:
                what = "compact" if point == "before_compact_commit" else "vacuum"
            args = [what] if what == "compact" else [what, "--retention-hours", "0"]
            env = lb.child_env(None if timing else point)
            with child(worker_argv(*args), env) as proc:
                outcome.runs += 1
                if timing:
                    if not proc.wait_for("worker: started"):
                        raise ReliabilityError(f"{what} died: {proc.output()[-2000:]}")
                    time.sleep(rng.uniform(0.0, 0.3))  # the kill moment, not synchronisation
                    killed = proc.proc.poll() is None
                    proc.kill()
                else:
                    killed = proc.wait_for(f"paused at {point}")
                    proc.kill()
            if killed:
                outcome.kills += 1
                outcome.kill_points[point] += 1
            verdict = verify(lb, ledger)
            if not verdict.ok:
                outcome.notes.append(f"after kill at {point}: {verdict!r}")
                outcome.failed_runs += 1
        for args in (["compact"], ["vacuum", "--retention-hours", "0"]):
            with child(worker_argv(*args), lb.child_env()) as proc:
                outcome.runs += 1
                if proc.finish() != 0:
                    outcome.failed_runs += 1
                    outcome.notes.append(f"{args} failed: {proc.output()[-2000:]}")
        outcome.add(ledger, verify(lb, ledger))
    outcome.seconds = round(time.perf_counter() - started, 1)
    return outcome
