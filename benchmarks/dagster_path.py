"""The Dagster path as users run it: the real `dagster-daemon` drains a backlog, then a trickle.

Phase 1 publishes the whole backlog before the daemon starts, then times from the
daemon's start to the moment the last event is visible in the table (its first
commit, read from the Delta log, not from a poll). Phase 2, on the same warm
daemon, publishes a steady trickle and measures per event: visible in the table
minus Pub/Sub's publish time. A sampler thread records the most ingest runs
queued at once throughout. `benchmarks.__main__` adds the `ingest --once`
reference on the same backlog and prints the goals.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from pathlib import Path
from typing import Any

from devtools.demo import demo_messages
from event_assets.pubsub.client import publish
from event_assets.settings import Settings
from event_assets_tests.support.daemon import (
    INGEST_JOB,
    DaemonLab,
    QueueSampler,
    first_visible,
    run_failures,
    table_counts,
)

TRICKLE_INTERVAL = 0.5  # seconds between trickle batches


def bench_daemon(
    backlog: int,
    trickle_rate: int,
    trickle_seconds: float,
    *,
    timeout: float,
    keep_logs: Path | None = None,
) -> dict[str, Any]:
    """Both phases on one daemon; every wait is bounded by `timeout` seconds."""
    with DaemonLab(name="bench-dagster", keep_logs=keep_logs) as lab:
        messages = list(demo_messages(backlog))
        started = time.perf_counter()
        publish(lab.settings, messages)
        publish_seconds = time.perf_counter() - started
        del messages
        with QueueSampler(lab.home) as sampler:
            daemon_started = lab.start_daemon()
            lab.wait_for_rows(backlog, timeout=timeout)
            visible: list[float] = first_visible(lab.events_uri)["visible_at"].to_list()
            counts = table_counts(lab.events_uri)
            assert counts.rows == counts.unique_ids == backlog, counts
            # The backlog's last runs still check their days: let them finish, so the
            # trickle starts in a steady state.
            lab.wait_until_idle(timeout=timeout, job_name=INGEST_JOB)
            backlog_runs = Counter(run.job_name for run in lab.instance.get_runs())
            backlog_queue = sampler.take()
            trickle = _trickle(lab, backlog, trickle_rate, trickle_seconds, timeout=timeout)
            trickle_queue = sampler.take()
        all_runs = Counter(run.job_name for run in lab.instance.get_runs())
        problems = lab.log_problems()
        failures = run_failures(lab.instance)
    seconds = max(visible) - daemon_started
    return {
        "backlog": backlog,
        "publish_per_s": backlog / publish_seconds,
        "daemon_seconds": seconds,
        "events_per_s": backlog / seconds,
        "first_event_seconds": min(visible) - daemon_started,
        "days_touched": len(counts.partitions),
        "runs_launched": dict(backlog_runs),
        "ingest_runs": backlog_runs[INGEST_JOB],
        "queue": dataclasses.asdict(backlog_queue),
        "trickle": {
            **trickle,
            "ingest_runs": all_runs[INGEST_JOB] - backlog_runs[INGEST_JOB],
            "queue": dataclasses.asdict(trickle_queue),
        },
        "runs_launched_total": dict(all_runs),
        "run_failures": failures,
        "daemon_log_problems": problems,
    }


def _publish_paced(settings: Settings, offset: int, rate: int, seconds: float) -> int:
    """Publish `rate` new demo events a second for `seconds`, in batches on a fixed clock."""
    per_batch = max(1, round(rate * TRICKLE_INTERVAL))
    batches = max(1, round(seconds / TRICKLE_INTERVAL))
    start = time.monotonic()
    for batch in range(batches):
        delay = start + batch * TRICKLE_INTERVAL - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # the publisher's pace, not a synchronization
        publish(settings, demo_messages(per_batch, offset=offset + batch * per_batch))
    return per_batch * batches


def _trickle(
    lab: DaemonLab, offset: int, rate: int, seconds: float, *, timeout: float
) -> dict[str, Any]:
    """Publish a trickle, wait until all of it is in, and read each event's latency."""
    started_wall, started = time.time(), time.perf_counter()
    published = _publish_paced(lab.settings, offset, rate, seconds)
    elapsed = time.perf_counter() - started
    lab.wait_for_rows(offset + published, timeout=timeout)
    seen = first_visible(lab.events_uri, since=started_wall)
    mine = seen.filter(seen["publish_time"] >= started_wall)
    latency = sorted((mine["visible_at"] - mine["publish_time"]).to_list())
    return {
        "target_per_s": rate,
        "seconds": seconds,
        "published": published,
        "published_per_s": published / elapsed,
        "measured": len(latency),
        "latency_p50_s": _percentile(latency, 50),
        "latency_p95_s": _percentile(latency, 95),
        "latency_max_s": latency[-1] if latency else 0.0,
    }


def _percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return float(ordered[int(rank) - 1])
