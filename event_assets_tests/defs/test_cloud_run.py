"""Production's run launcher under the real daemon, through the Cloud Run Admin API fake.

The instance is `deploy/dagster.yaml` with only what cannot run here swapped out
(Postgres and GCS compute logs: `event_assets_tests/defs/test_postgres_instance.py` and
the GCS fake cover those; Logfire's handler) and its timeouts shortened so a test can
wait them out. Its run launcher, `CloudRunLauncher`, is dagster-contrib-gcp's: every
run is a RunJob call with the run's `dagster api execute_run ...` as container
override args, answered by the fake with a local process that has the job's
environment; run monitoring asks the fake for each execution's state. Faults: the
RunJob quota is exhausted (the configured retry rides it out), an execution never
starts (run monitoring fails the run after `start_timeout_seconds`), a running one is
killed (Cloud Run reports it failed): every batch is merged all the same.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from devtools.demo import demo_messages
from event_assets.faults import PAUSE_DIR_ENV, PausePoint, arm, paused
from event_assets.pubsub.client import publish
from event_assets.run_launcher import CLOUD_RUN_API_ENDPOINT_ENV

from ..corpus import mixed_corpus
from ..support.cloud_run_fake import CloudRunFake, JobSpec
from ..support.daemon import (
    INGEST_JOB,
    ROOT,
    DaemonLab,
    TableCounts,
    in_flight,
    run_counts,
    table_counts,
)

PROJECT, REGION, JOB = "rehearsal", "local", "event-assets-run-worker"
MAX_MESSAGE_BYTES = 20_000
SETTLE_TIMEOUT = 300.0
START_TIMEOUT_SECONDS = 20


def instance_yaml() -> str:
    """`deploy/dagster.yaml` with SQLite storage, local compute logs, no Logfire handler,
    literal project and region, and timeouts a test can wait out."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    for local_only in ("storage", "compute_logs", "python_logs"):
        config.pop(local_only)
    launcher = config["run_launcher"]["config"]
    assert config["run_launcher"]["module"] == "event_assets.run_launcher"
    assert launcher["job_name_by_code_location"] == {"event_assets": JOB}
    launcher.update(project=PROJECT, region=REGION, run_job_retry={"wait": 1, "timeout": 60})
    config["run_monitoring"].update(
        start_timeout_seconds=START_TIMEOUT_SECONDS,
        poll_interval_seconds=2,
        cancel_timeout_seconds=20,
    )
    return yaml.safe_dump(config)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_runs_launched_through_cloud_run_survive_quota_stuck_and_killed_executions(
    tmp_path: Path,
) -> None:
    corpus = mixed_corpus(MAX_MESSAGE_BYTES)
    pauses = tmp_path / "pauses"
    with DaemonLab(
        tmp_path,
        name="cloud-run",
        instance_yaml=instance_yaml(),
        MAX_MESSAGE_BYTES=MAX_MESSAGE_BYTES,
        RUN_RETRY_BASE_SECONDS=1,
    ) as lab:
        job = f"projects/{PROJECT}/locations/{REGION}/jobs/{JOB}"
        spec = JobSpec(
            env={**lab.env, PAUSE_DIR_ENV: str(pauses)},
            cwd=ROOT,
            executable_dir=Path(sys.executable).parent,
        )
        with CloudRunFake({job: spec}, tmp_path / "executions") as fake:
            lab.env[CLOUD_RUN_API_ENDPOINT_ENV] = fake.address
            fake.exhaust_quota(2)  # the first launches hit the RunJob quota
            publish(lab.settings, corpus.messages)
            lab.start_daemon()
            expected = corpus.unique_events

            def exact() -> TableCounts | None:
                """The table holds every event, no run is in flight, no execution runs
                (a run reports success a moment before its process exits)."""
                counts = table_counts(lab.events_uri)
                busy = in_flight(run_counts(lab.instance, INGEST_JOB))
                busy += fake.outcomes().get("running", 0)
                return None if busy or counts.rows != expected else counts

            lab.wait_for(exact, timeout=SETTLE_TIMEOUT, what="the corpus merged")
            assert fake.counts["quota_exhausted"] == 2
            assert fake.outcomes().get("succeeded", 0) >= 2  # one run per day at least
            assert run_counts(lab.instance, INGEST_JOB).get("FAILURE", 0) == 0

            # An execution that never starts: monitoring fails its run, a later run merges.
            fake.never_start(1, job_name=INGEST_JOB)
            publish(lab.settings, list(demo_messages(300)))
            expected += 300
            lab.wait_for(exact, timeout=SETTLE_TIMEOUT, what="merged past a stuck execution")
            assert fake.outcomes().get("pending", 0) == 1
            assert run_counts(lab.instance, INGEST_JOB).get("FAILURE", 0) == 1

            # A running execution killed mid-merge: Cloud Run reports it failed.
            arm(pauses, PausePoint.BEFORE_COMMIT)
            publish(lab.settings, list(demo_messages(300, offset=300)))
            expected += 300
            lab.wait_for(
                lambda: paused(pauses, PausePoint.BEFORE_COMMIT),
                timeout=SETTLE_TIMEOUT,
                what="a pause",
            )
            assert fake.kill_running() >= 1
            lab.wait_for(exact, timeout=SETTLE_TIMEOUT, what="merged past a killed execution")
            assert fake.outcomes().get("failed", 0) >= 1
            assert run_counts(lab.instance, INGEST_JOB).get("FAILURE", 0) >= 2
        counts = table_counts(lab.events_uri)
        assert counts.rows == counts.unique_ids == expected
        runs = lab.instance.get_runs(dg.RunsFilter(job_name=INGEST_JOB))
        assert all(r.tags.get("cloud_run_job_execution_id") for r in runs)
