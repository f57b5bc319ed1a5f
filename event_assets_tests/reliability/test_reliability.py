"""The reliability suite under pytest: a quick subset always, the full matrix with -m slow.

Every scenario runs real ingestion (CLI and sensor/run processes, SIGKILLed at
pause points or at random moments) against the real emulator, delta-rs and a
persistent Dagster instance, and must end with nothing lost, nothing doubled,
every bad message quarantined once and no landing batch left unmerged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability import daemon, plan
from reliability.outcome import Outcome


def _assert_clean(rows: list[Outcome]) -> None:
    for row in rows:
        assert row.ok, (row.kind, row.notes)
        assert row.runs > 0, row.kind


def _run(scenarios: list[plan.Scenario], workers: int = 2) -> list[Outcome]:
    return plan.combine(plan.run_all(scenarios, workers=workers))


# ------------------------------------------------------------------------------- quick


def test_crash_quick() -> None:
    rows = _run(plan.crash_scenarios(plan.QUICK, seed=1, quick=True))
    _assert_clean(rows)
    assert sum(r.kills for r in rows) >= 10
    sensor = next(r for r in rows if r.kind == "crash: sensor ingestion")
    assert len(sensor.kill_points) >= 3
    assert any(r.lake == "gcs" and r.kills for r in rows)


def test_daemon_crash_quick() -> None:
    """The real daemon: its group killed mid-tick, a run worker killed mid-merge (run
    monitoring fails the run), a tick past the sensor timeout."""
    (row,) = _run(plan.daemon_scenarios(plan.QUICK, seed=1, quick=True))
    _assert_clean([row])
    assert row.kills == len(plan.QUICK_DAEMON_LINKS)
    assert set(row.kill_points) == set(plan.QUICK_DAEMON_LINKS)
    assert row.dagster_runs["FAILURE"] >= 1  # the killed worker's run, failed by monitoring
    assert row.blocked_days == 0


def test_concurrency_quick() -> None:
    rows = _run(plan.concurrency_scenarios(plan.QUICK, seed=1, quick=True), workers=1)
    _assert_clean(rows)


def test_pubsub_faults_quick() -> None:
    rows = _run(plan.fault_scenarios(plan.QUICK, seed=1, quick=True), plan.FAULT_WORKERS)
    _assert_clean(rows)


def test_hostile_input_quick() -> None:
    _assert_clean(_run(plan.hostile_scenarios(plan.QUICK), workers=1))


def test_results_block_is_replaced(tmp_path: Path) -> None:
    from reliability.__main__ import END, START, write_results

    out = tmp_path / "R.md"
    out.write_text(f"# R\n\nintro\n\n{START}\nold\n{END}\n\nafter\n")
    write_results(out, "new\n")
    text = out.read_text()
    assert "old" not in text
    assert f"{START}\nnew\n{END}" in text
    assert text.startswith("# R\n\nintro")
    assert text.endswith("after\n")


# -------------------------------------------------------------------------------- slow


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_crash_matrix_full() -> None:
    rows = _run(plan.crash_scenarios(plan.FULL, seed=1, quick=False))
    _assert_clean(rows)
    assert sum(r.kills for r in rows) >= 100
    assert sum(r.kills for r in rows if r.lake == "gcs") >= 20
    assert sum(r.events for r in rows) >= 100_000


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_concurrency_full() -> None:
    _assert_clean(_run(plan.concurrency_scenarios(plan.FULL, seed=1, quick=False), workers=1))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_pubsub_faults_full() -> None:
    _assert_clean(_run(plan.fault_scenarios(plan.FULL, seed=1, quick=False), plan.FAULT_WORKERS))


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_hostile_input_full() -> None:
    rows = _run(plan.hostile_scenarios(plan.FULL), workers=1)
    _assert_clean(rows)
    assert sum(r.messages for r in rows) >= 10_000


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_daemon_crash_matrix_full() -> None:
    """>= 50 SIGKILLs of the real daemon's group and run workers, at every named point and
    at random moments, >= 200k events: nothing lost, nothing doubled, no day blocked."""
    rows = _run(plan.daemon_scenarios(plan.FULL, seed=1, quick=False))
    _assert_clean(rows)
    assert sum(r.kills for r in rows) >= 50
    assert sum(r.events for r in rows) >= 200_000
    points = {p for r in rows for p in r.kill_points}
    assert points == set(daemon.LINKS)
