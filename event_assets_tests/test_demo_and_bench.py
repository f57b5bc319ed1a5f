"""`make demo` and the benchmark entry point run end to end at tiny size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _run(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_demo_twice_adds_no_duplicates(tmp_path: Path) -> None:
    env = {"LAKE_URI": str(tmp_path / "lake"), "DEMO_EVENTS": "90"}
    env.pop("PUBSUB_EMULATOR_HOST", None)
    first = _run(["-m", "devtools.run_demo"], env)
    assert first.returncode == 0, first.stderr
    assert "rows=90 unique event_id=90 partitions=3" in first.stdout
    second = _run(["-m", "devtools.run_demo"], env)
    assert second.returncode == 0, second.stderr
    assert '"inserted": 0, "duplicates": 90' in second.stdout
    assert "rows=90 unique event_id=90" in second.stdout


def test_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    # The Dagster section runs the real daemon for minutes: its own slow smoke test below.
    done = _run(["-m", "benchmarks", "--small", "--skip", "dagster", "--json", str(out)], {})
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    assert results["end_to_end"]["events_per_s"]["median"] > 0
    assert results["dedup_write"]["dedup_over_append"] > 0
    assert results["startup"]["code_location"]["median"] > 0
    assert "dedup-write / append" in done.stdout


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_benchmark_dagster_section_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["-m", "benchmarks", "--only", "dagster", "--json", str(out)]
    args += ["--dagster-backlog", "3000", "--dagster-trickle-rate", "100"]
    args += ["--dagster-trickle-seconds", "10"]
    done = _run(args, {}, timeout=1400)
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(out.read_text())
    assert results["sections"] == ["dagster"]
    dagster = results["dagster"]
    assert dagster["backlog"] == 3000
    assert dagster["events_per_s"] > 0
    assert dagster["ingest_once"]["events_per_s"]["median"] > 0
    assert dagster["trickle"]["measured"] == dagster["trickle"]["published"] == 1000
    assert "publish -> queryable latency p95" in done.stdout
