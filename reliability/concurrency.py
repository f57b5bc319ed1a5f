"""Concurrent writers, and maintenance running under ingestion.

Four `event-assets ingest --once` processes drain one subscription at once, with
small pull rounds (many commits) and forced duplicate deliveries, so they write
the same partition - often the same event ids - at the same moment: the
dedup-write's conflict repair must leave each id once. With `maintenance=True` a
fifth process compacts every partition and vacuums (safe retention) in a loop
while they write: no run may fail and no row may go. Afterwards every table
version must still be readable (time travel) and hold no fewer rows than the one
before; a final vacuum with zero retention must leave the latest version intact.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from deltalake import DeltaTable

from event_assets.ingest import lake_of
from event_assets.storage.maintenance import vacuum
from event_assets.storage.tables import events_target
from reliability import workload
from reliability.harness import (
    Child,
    Lab,
    Ledger,
    ReliabilityError,
    cli_ingest_argv,
    drain_in_process,
    lab,
    verify,
    worker_argv,
)
from reliability.outcome import Outcome


def writers_round(
    root: Path,
    *,
    seed: int,
    partitions: int,
    writers: int = 4,
    events: int = 2000,
    maintenance: bool = False,
) -> Outcome:
    started = time.perf_counter()
    rng = random.Random(seed)
    kind = f"concurrency: {writers} writers, {partitions} partition{'s' if partitions > 1 else ''}"
    outcome = Outcome(kind=kind + (" + compaction/vacuum" if maintenance else ""))
    with lab(root, PULL_MAX_MESSAGES="150", PULL_BATCH_SIZE="150") as lb:
        ledger = Ledger()
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        for p in range(partitions):
            day = today - timedelta(days=p + 1)
            tag = f"c{seed}-{p}"
            ledger.publish(lb, workload.one_partition(rng, events // partitions, tag=tag, day=day))
        lb.emulator.duplicate_next_deliveries(events // 5)
        children: list[Child] = []
        try:
            if maintenance:
                keeper = Child(worker_argv("maintain"), lb.child_env())
                children.append(keeper)
                if not keeper.wait_for("worker: started"):
                    raise ReliabilityError(f"maintenance died: {keeper.output()[-2000:]}")
            ingesters = [Child(cli_ingest_argv(), lb.child_env()) for _ in range(writers)]
            children.extend(ingesters)
            for proc in ingesters:
                outcome.runs += 1
                if proc.finish() != 0:
                    outcome.failed_runs += 1
                    outcome.notes.append(f"writer failed: {proc.output()[-2000:]}")
            if maintenance:
                outcome.runs += 1
                if children[0].finish() != 0:
                    outcome.failed_runs += 1
                    outcome.notes.append(f"maintenance failed: {children[0].output()[-2000:]}")
        finally:
            for proc in children:
                proc.close()
        # Whatever a writer left (a round cut short by the end of the drain) is finished here.
        drain_in_process(lb)
        outcome.add(ledger, verify(lb, ledger))
        _check_time_travel(outcome, lb)
    outcome.seconds = round(time.perf_counter() - started, 1)
    return outcome


def _check_time_travel(outcome: Outcome, lb: Lab) -> None:
    """Every version readable; no event id ever disappears from one version to the next.

    Row counts may drop: when two writers inserted the same id, the later version
    holds both copies until the repair commit replaces them by one survivor.
    """
    lake = lake_of(lb.settings)
    latest = DeltaTable(lake.events_uri)
    previous: set[str] = set()
    transient = 0
    for version in range(latest.version() + 1):
        table = DeltaTable(lake.events_uri, version=version).to_pyarrow_table(columns=["event_id"])
        ids = set(table["event_id"].to_pylist())
        transient += table.num_rows - len(ids)
        gone = previous - ids
        if gone:
            outcome.lost += len(gone)
            outcome.notes.append(f"version {version} lost {len(gone)} ids of {version - 1}")
        previous = ids
    if transient:
        outcome.notes.append(f"{transient} transient duplicate rows in versions later repaired")
    vacuum(events_target(lake), lake, retention_hours=0, allow_below_default=True)
    after = DeltaTable(lake.events_uri).to_pyarrow_table(columns=["event_id"])
    if set(after["event_id"].to_pylist()) != previous:
        outcome.lost += 1
        outcome.notes.append("a zero-retention vacuum changed the latest version")
