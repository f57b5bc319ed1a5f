"""The two plans - quick and full - and the table they produce.

Both the `python -m reliability` command and the pytest suite run these
functions, so the figures in RELIABILITY.md are exactly what the tests assert.
Both also run a subset of the crash chains with the lake on `gs://` (the GCS
fake); `lake="gcs"` moves every crash chain there instead.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from event_assets.faults import PausePoint
from reliability import concurrency, crash, daemon, hostile, pubsub_faults
from reliability.outcome import Outcome

Scenario = Callable[[Path], Outcome]


@dataclass(frozen=True)
class Sizes:
    cli_chains: int
    sensor_chains: int
    cli_events_per_link: int
    sensor_events_per_link: int
    maintenance_chains: int
    gcs_cli_chains: int
    gcs_sensor_chains: int
    gcs_maintenance_chains: int
    concurrency_repeats: int
    concurrency_events: int
    fault_seeds: int
    fault_events: int
    decoder_examples: int
    e2e_examples: int
    e2e_big: int
    daemon_chains: int
    daemon_links: int
    daemon_events_per_link: int


QUICK = Sizes(
    cli_chains=1,
    sensor_chains=1,
    cli_events_per_link=300,
    sensor_events_per_link=200,
    maintenance_chains=1,
    gcs_cli_chains=1,
    gcs_sensor_chains=0,
    gcs_maintenance_chains=0,
    concurrency_repeats=1,
    concurrency_events=600,
    fault_seeds=1,
    fault_events=100,
    decoder_examples=100,
    e2e_examples=20,
    e2e_big=0,
    daemon_chains=1,
    daemon_links=3,
    daemon_events_per_link=300,
)
FULL = Sizes(
    cli_chains=8,
    sensor_chains=4,
    cli_events_per_link=1500,
    sensor_events_per_link=500,
    maintenance_chains=3,
    gcs_cli_chains=2,
    gcs_sensor_chains=1,
    gcs_maintenance_chains=1,
    concurrency_repeats=3,
    concurrency_events=4000,
    fault_seeds=3,
    fault_events=2000,
    decoder_examples=10_000,
    e2e_examples=500,
    e2e_big=2,
    daemon_chains=2,
    daemon_links=26,
    daemon_events_per_link=4000,
)


def _points(seed: int, points: tuple[str, ...], quick: bool) -> list[str]:
    chosen = list(points)
    random.Random(seed).shuffle(chosen)
    return chosen[:4] if quick else chosen


def _sensor_points(seed: int, quick: bool) -> list[str]:
    """All points; in the quick plan `after_ack` (the sensor's own window: acked, no
    RunRequest yet) and two more chosen by the seed - three Dagster processes, which
    is what `make test` can afford."""
    if not quick:
        return _points(seed, crash.INGEST_POINTS, quick)
    others = [p for p in crash.INGEST_POINTS if p != PausePoint.AFTER_ACK]
    random.Random(seed).shuffle(others)
    return [PausePoint.AFTER_ACK, *others[:2]]


def _chains(
    *, cli: int, sensor: int, maintenance: int, sizes: Sizes, seed: int, quick: bool, lake: str
) -> list[Scenario]:
    out: list[Scenario] = []
    for n in range(sensor):  # first: the longest chains, so two workers finish together
        s = seed + 100 + n
        out.append(
            partial(
                crash.ingest_chain,
                path="sensor",
                points=_sensor_points(s, quick),
                seed=s,
                events_per_link=sizes.sensor_events_per_link,
                lake=lake,
            )
        )
    for n in range(cli):
        s = seed + n
        out.append(
            partial(
                crash.ingest_chain,
                path="cli",
                points=_points(s, crash.INGEST_POINTS, quick),
                seed=s,
                events_per_link=sizes.cli_events_per_link,
                lake=lake,
            )
        )
    for n in range(maintenance):
        s = seed + 200 + n
        pts = (
            [PausePoint.BEFORE_COMPACT_COMMIT, PausePoint.BEFORE_VACUUM]
            if quick
            else _points(s, crash.MAINTENANCE_POINTS, quick)
        )
        out.append(
            partial(crash.maintenance_chain, points=pts, seed=s, events_per_link=300, lake=lake)
        )
    return out


def crash_scenarios(sizes: Sizes, seed: int, quick: bool, lake: str = "local") -> list[Scenario]:
    """The plan's crash chains with their lake on `lake`; on `local`, plus the gs:// subset.

    The subset (the `gcs_*` sizes) has seeds of its own, so other workloads and kill
    orders than the local chains.
    """
    out = _chains(
        cli=sizes.cli_chains,
        sensor=sizes.sensor_chains,
        maintenance=sizes.maintenance_chains,
        sizes=sizes,
        seed=seed,
        quick=quick,
        lake=lake,
    )
    if lake == "local":
        out += _chains(
            cli=sizes.gcs_cli_chains,
            sensor=sizes.gcs_sensor_chains,
            maintenance=sizes.gcs_maintenance_chains,
            sizes=sizes,
            seed=seed + 1000,
            quick=quick,
            lake="gcs",
        )
    return out


QUICK_DAEMON_LINKS = ("group:after_ack", "worker:before_commit", "sensor_timeout")
"""The quick plan's real-daemon chain: a kill of the whole group mid-tick, of one run
worker mid-merge, and a tick past the sensor timeout (random kills: the full plan)."""


def daemon_scenarios(sizes: Sizes, seed: int, quick: bool, lake: str = "local") -> list[Scenario]:
    """Real `dagster-daemon` chains: every link kind in a seeded order per chain."""
    out: list[Scenario] = []
    for n in range(sizes.daemon_chains):
        s = seed + 500 + n
        links = (
            list(QUICK_DAEMON_LINKS)[: sizes.daemon_links]
            if quick
            else daemon.chain_links(s, sizes.daemon_links)
        )
        out.append(
            partial(
                daemon.daemon_chain,
                links=links,
                seed=s,
                events_per_link=sizes.daemon_events_per_link,
                lake=lake,
            )
        )
    return out


def concurrency_scenarios(sizes: Sizes, seed: int, quick: bool) -> list[Scenario]:
    shapes = [(1, True)] if quick else [(1, False), (4, False), (1, True), (4, True)]
    out: list[Scenario] = []
    for rep in range(sizes.concurrency_repeats if not quick else 1):
        for partitions, maintenance in shapes:
            s = seed + 300 + rep * 10 + partitions + (5 if maintenance else 0)
            out.append(
                partial(
                    concurrency.writers_round,
                    seed=s,
                    partitions=partitions,
                    events=sizes.concurrency_events,
                    maintenance=maintenance,
                )
            )
    return out


FAULT_WORKERS = 4
"""Fault scenarios spend most of their time waiting (client retry backoff, slow and
expiring pulls), so four share the two cores well."""


def fault_scenarios(sizes: Sizes, seed: int, quick: bool) -> list[Scenario]:
    names = list(pubsub_faults.FAULTS)
    out: list[Scenario] = []
    for rep in range(sizes.fault_seeds):
        for i, name in enumerate(names):
            s = seed + 400 + rep * 100 + i
            out.append(
                partial(pubsub_faults.fault_run, name=name, seed=s, events=sizes.fault_events)
            )
    return out


def hostile_scenarios(sizes: Sizes) -> list[Scenario]:
    return [
        partial(_decoders, examples=sizes.decoder_examples),
        partial(hostile.end_to_end, examples=sizes.e2e_examples, big=sizes.e2e_big),
    ]


def _decoders(root: Path, *, examples: int) -> Outcome:
    return hostile.decoders(examples)


def run_all(scenarios: list[Scenario], *, workers: int = 2) -> list[Outcome]:
    """Run scenarios (each in its own temporary folder), `workers` at a time."""
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        base = Path(tmp)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(fn, base / f"s{i}") for i, fn in enumerate(scenarios)]
            return [f.result() for f in futures]


def combine(outcomes: list[Outcome]) -> list[Outcome]:
    """One row per kind and lake, in first-seen order."""
    rows: dict[tuple[str, str], Outcome] = {}
    for outcome in outcomes:
        key = (outcome.kind, outcome.lake)
        if key not in rows:
            rows[key] = Outcome(kind=outcome.kind, lake=outcome.lake)
        rows[key].merge(outcome)
    return list(rows.values())


def run_plan(quick: bool, seed: int = 1, lake: str = "local") -> tuple[list[Outcome], float]:
    """Run a plan; `lake` is where the crash chains keep their lake (the rest stays local)."""
    sizes = QUICK if quick else FULL
    started = time.perf_counter()
    outcomes = run_all(crash_scenarios(sizes, seed, quick, lake))
    outcomes += run_all(daemon_scenarios(sizes, seed, quick, lake))
    outcomes += run_all(concurrency_scenarios(sizes, seed, quick), workers=1)
    outcomes += run_all(fault_scenarios(sizes, seed, quick), workers=FAULT_WORKERS)
    outcomes += run_all(hostile_scenarios(sizes), workers=1)
    return combine(outcomes), round(time.perf_counter() - started, 1)


def render(
    rows: list[Outcome], *, quick: bool, seconds: float, seed: int, lake: str = "local"
) -> str:
    total = Outcome(kind="**total**", lake="")
    points: dict[str, Counter[str]] = {}  # lake -> kill point -> kills
    for row in rows:
        total.merge(row)
        if row.kill_points:
            points.setdefault(row.lake, Counter()).update(row.kill_points)
    header = (
        "| fault kind | lake | runs | SIGKILLs | messages published | events published | lost "
        "| duplicated | quarantine errors | orphaned batches | accounting failures "
        "| failed runs | blocked days | seconds |\n"
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |\n"
    )
    lines = [
        f"| {r.kind} | {r.lake} | {r.runs} | {r.kills} | {r.messages} | {r.events} | {r.lost} "
        f"| {r.duplicated} | {r.quarantine_errors} | {r.orphaned_batches} "
        f"| {r.accounting_failures} | {r.failed_runs} | {r.blocked_days} | {r.seconds} |"
        for r in [*rows, total]
    ]
    lakes = sorted(points, key=lambda lk: (lk != "local", lk))
    names = sorted({p for counts in points.values() for p in counts})
    kills = (
        "| kill point | "
        + " | ".join(f"kills ({lk})" for lk in lakes)
        + " |\n| --- |"
        + " ---: |" * len(lakes)
        + "\n"
        + "".join(
            f"| `{name}` | " + " | ".join(str(points[lk][name]) for lk in lakes) + " |\n"
            for name in names
        )
        if points
        else "none\n"
    )
    dagster = "".join(
        f"- {r.kind} ({r.lake}): "
        + ", ".join(f"{n} {status}" for status, n in sorted(r.dagster_runs.items()))
        + "\n"
        for r in rows
        if r.dagster_runs
    )
    notes = sorted({n for r in rows for n in r.notes})
    plan = "quick (`--quick`)" if quick else "full"
    where = ", every crash chain on gs:// (`--lake gcs`)" if lake == "gcs" else ""
    text = (
        f"Plan: {plan}, seed {seed}{where}, wall time {seconds} s. Lake `gcs` is gs:// "
        "through the GCS fake (`event_assets_tests/support/gcs_fake.py`).\n\n"
        + header
        + "\n".join(lines)
        + "\n\nSIGKILLs by kill point:\n\n"
        + kills
    )
    if dagster:
        text += "\nDagster runs of the real-daemon chains, by final status (a killed run "
        text += "worker's run is FAILURE; the sensor re-requests its day):\n\n" + dagster
    if notes:
        text += "\nNotes:\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    return text
