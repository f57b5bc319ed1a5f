"""The product path: the real `dagster-daemon` drains Pub/Sub into an exact, checked table.

Everything else tests the sensor and the job in-process; here the daemon's sensor
loop, run queue (our dagster.yaml limits), run launcher and run workers do it, on a
throwaway DAGSTER_HOME, against the emulator in its own process. No timing is
asserted (the speed goals are in `python -m benchmarks --only dagster`); the
deadline only bounds a hang.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import dagster as dg
import pytest

from devtools.demo import demo_messages
from event_assets.faults import PAUSE_DIR_ENV, PausePoint, arm, paused
from event_assets.pubsub.client import publish
from event_assets.run_launcher import worker_start

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
    stop_group,
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


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_a_run_left_started_by_a_killed_daemon_is_failed_and_its_day_merged(
    tmp_path: Path,
) -> None:
    """kill -9 of the daemon's whole process group (daemon, code server, a run worker
    paused mid-merge), then a restart: nobody is left to report the run's end, so
    without run monitoring it would stay STARTED for ever and hold its day's slot.
    The local launcher lets monitoring see the worker is gone; the run is failed and
    the sensor's retry merges the day: nothing lost, nothing doubled, no day blocked."""
    corpus = mixed_corpus(MAX_MESSAGE_BYTES)
    pauses = tmp_path / "pauses"
    with DaemonLab(
        tmp_path,
        name="daemon-kill",
        MAX_MESSAGE_BYTES=MAX_MESSAGE_BYTES,
        RUN_RETRY_BASE_SECONDS=1,
    ) as lab:
        # The first merge to reach its commit pauses there (and only that one).
        lab.env[PAUSE_DIR_ENV] = str(pauses)
        arm(pauses, PausePoint.BEFORE_COMMIT)
        publish(lab.settings, corpus.messages)
        lab.start_daemon()

        pid = lab.wait_for(
            lambda: paused(pauses, PausePoint.BEFORE_COMMIT),
            timeout=SETTLE_TIMEOUT,
            what="a merge paused",
        )
        (victim,) = [
            r
            for r in lab.instance.get_runs(
                dg.RunsFilter(job_name=INGEST_JOB, statuses=[dg.DagsterRunStatus.STARTED])
            )
            if (start := worker_start(lab.instance, r.run_id)) is not None and start[0] == pid
        ]
        assert lab.daemon is not None
        os.killpg(lab.daemon.pid, signal.SIGKILL)
        lab.stop_daemon()  # reaps the leader; the group is gone already
        lab.start_daemon()

        def failed() -> dg.DagsterRun | None:
            run = lab.instance.get_run_by_id(victim.run_id)
            return run if run is not None and run.status == dg.DagsterRunStatus.FAILURE else None

        lab.wait_for(failed, timeout=SETTLE_TIMEOUT, what="the orphaned run marked failed")

        def exact() -> TableCounts | None:
            counts = table_counts(lab.events_uri)
            busy = in_flight(run_counts(lab.instance, INGEST_JOB))
            return None if busy or counts.rows != corpus.unique_events else counts

        counts = lab.wait_for(exact, timeout=SETTLE_TIMEOUT, what="table exact after the kill")
        assert counts.unique_ids == counts.rows == corpus.unique_events
        # The victim, and any other run the kill caught between launch and its end.
        assert run_counts(lab.instance, INGEST_JOB).get("FAILURE", 0) >= 1


DEMO_ROUNDS, DEMO_EVENTS = 3, 500


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_two_daemons_on_one_instance_lose_and_double_nothing(tmp_path: Path) -> None:
    """A rolling deploy runs the old daemon beside the new one for a while: both tick the
    sensor (each pulls its own messages), both run queues launch runs. The run queue's
    per-day limit is then per daemon, so one day may be merged by two runs at once; the
    dedup-write's race repair keeps the day exact."""
    corpus = mixed_corpus(MAX_MESSAGE_BYTES)
    with DaemonLab(tmp_path, name="two-daemons", MAX_MESSAGE_BYTES=MAX_MESSAGE_BYTES) as lab:
        lab.start_daemon()
        second = lab.spawn_daemon(tmp_path / "second-daemon.log")
        try:
            # The corpus, then more rounds of distinct demo events: both daemons' ticks
            # take part as they come.
            publish(lab.settings, corpus.messages)
            for n in range(DEMO_ROUNDS):
                publish(lab.settings, list(demo_messages(DEMO_EVENTS, offset=n * DEMO_EVENTS)))
            expected = corpus.unique_events + DEMO_ROUNDS * DEMO_EVENTS

            def exact() -> TableCounts | None:
                counts = table_counts(lab.events_uri)
                if counts.rows < expected or in_flight(run_counts(lab.instance, INGEST_JOB)):
                    return None
                return counts

            counts = lab.wait_for(exact, timeout=SETTLE_TIMEOUT, what="the table exact")
            assert second.poll() is None, "the second daemon exited"
        finally:
            stop_group(second)
        assert counts.unique_ids == counts.rows == expected
        assert table_rows(lab.quarantine_uri) == sum(corpus.bad.values())
