"""The product path: the real `dagster-daemon` drains Pub/Sub into an exact, checked table.

Everything else tests the sensor and the job in-process; here the daemon's sensor
loop, run queue (our dagster.yaml limits), run launcher and run workers do it, on a
throwaway DAGSTER_HOME, against the emulator in its own process. No timing is
asserted (the speed goals are in `python -m benchmarks --only dagster`); the
deadline only bounds a hang.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from event_assets.pubsub.client import publish

from ..corpus import mixed_corpus
from ..support.daemon import (
    INGEST_JOB,
    CheckEvaluation,
    DaemonLab,
    TableCounts,
    in_flight,
    latest_check_evaluations,
    partition_check_names,
    run_counts,
    run_failures,
    table_counts,
    table_rows,
)

MAX_MESSAGE_BYTES = 20_000
# Settles in ~30 s on a quiet 2-core machine (daemon start, one tick, one run per day),
# so it runs in `make test`; the bound only has to catch a hang on a loaded one.
SETTLE_TIMEOUT = 300.0


@pytest.mark.timeout(480)
def test_daemon_lands_the_corpus_exactly_and_checks_pass(tmp_path: Path) -> None:
    corpus = mixed_corpus(MAX_MESSAGE_BYTES)
    checks = partition_check_names()
    assert checks, "the events asset has no per-partition checks"
    with DaemonLab(tmp_path, name="daemon-test", MAX_MESSAGE_BYTES=MAX_MESSAGE_BYTES) as lab:
        # Published before the daemon starts, so its first tick sees the whole backlog.
        assert len(publish(lab.settings, corpus.messages)) == len(corpus.messages)
        lab.start_daemon()

        def settled() -> tuple[TableCounts, dict[tuple[str, str | None], CheckEvaluation]] | None:
            """The table is exact, no ingest run is pending, and every partition is checked."""
            counts = table_counts(lab.events_uri)
            if counts.rows != corpus.unique_events:
                return None
            if in_flight(run_counts(lab.instance, INGEST_JOB)):
                return None
            latest = latest_check_evaluations(lab.instance)
            wanted = {(name, day) for name in checks for day in counts.partitions}
            return (counts, latest) if wanted <= latest.keys() else None

        counts, latest = lab.wait_for(
            settled, timeout=SETTLE_TIMEOUT, what="table exact and every partition checked"
        )
        assert counts.unique_ids == counts.rows == corpus.unique_events
        assert len(counts.partitions) == 2  # the CloudEvents' day and today (plain JSON)
        failed = {
            key: f"{e.severity}: {e.description}"
            for key, e in latest.items()
            if key[1] in counts.partitions and not e.passed
        }
        assert not failed, f"{failed}\n{lab.log_tail()}"
        assert table_rows(lab.quarantine_uri) == sum(corpus.bad.values())
        ingest_failures = [line for line in run_failures(lab.instance) if INGEST_JOB in line]
        assert not ingest_failures, ingest_failures
        assert run_counts(lab.instance, INGEST_JOB).get("SUCCESS", 0) >= len(counts.partitions)
