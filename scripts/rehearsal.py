"""The deployed topology on one machine: `make rehearsal` (until Ctrl-C) and
`make rehearsal-test` (drive it end to end, exit 1 on any failure).

Started as the Dockerfile's entrypoints start it, with the environment names Terraform
sets (`infra/modules/cloud_run/main.tf`, `app_env` + `DAGSTER_PG_URL`):

- the image's environment, built the way the Dockerfile builds it (`uv sync --frozen
  --no-dev --no-editable`, the project files only) into a temp dir, with
  `deploy/dagster.yaml` copied to its `dagster_home/`; the webserver
  (`dagster-webserver -w workspace.yaml`), the daemon (`dagster-daemon run -w
  workspace.yaml`) and every run worker (`dagster api execute_run ...`) run from it;
- the machine's PostgreSQL (a fresh database, dropped at exit) as Dagster's storage;
- the Pub/Sub emulator; the GCS fake serving the lake (`gs://`, through a throwaway
  service-account key per workload, as delta-rs reaches GCS, each held to that workload's
  object role: the webserver reads, the daemon creates and never deletes or overwrites,
  a run may do anything) and the compute-logs bucket (its JSON API, through
  `STORAGE_EMULATOR_HOST`, as google-cloud-storage does);
- the Cloud Run Admin API fake (`event_assets_tests/support/cloud_run_fake.py`): every
  run is a RunJob call by `CloudRunLauncher`, an execution is a process of the image.

What differs from GCP, and why: no Secret Manager (the Logfire secret cannot be read,
so logging stays local, with one warning: the first-deploy path), no Cloud SQL proxy,
plaintext local endpoints, and no container isolation.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg2
from deltalake import DeltaTable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devtools.demo import demo_messages  # noqa: E402
from devtools.webserver import Webserver  # noqa: E402
from event_assets.faults import PAUSE_DIR_ENV, PausePoint, arm, paused  # noqa: E402
from event_assets.pubsub.client import ensure_topic_and_subscription, publish  # noqa: E402
from event_assets.run_launcher import CLOUD_RUN_API_ENDPOINT_ENV  # noqa: E402
from event_assets.settings import load_settings  # noqa: E402
from event_assets_tests.corpus import mixed_corpus  # noqa: E402
from event_assets_tests.support.cloud_run_fake import CloudRunFake, JobSpec  # noqa: E402
from event_assets_tests.support.daemon import (  # noqa: E402
    INGEST_JOB,
    EmulatorProcess,
    spawn_daemon,
    stop_group,
)
from event_assets_tests.support.gcs_fake import GcsFake, service_account_key  # noqa: E402

PG_ADMIN_URL = os.environ.get("REHEARSAL_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
PROJECT, REGION = "rehearsal", "local"
LAKE_BUCKET, LOGS_BUCKET = "event-assets-lake", "event-assets-compute-logs"
JOB = "event-assets-run-worker"
APP_FILES = ("pyproject.toml", "uv.lock", "README.md")
SETTLE = 900.0  # run monitoring's start timeout in deploy/dagster.yaml is 600 s
INHERIT_NOT = ("DAGSTER_", "VIRTUAL_ENV", "EVENT_ASSETS_", "LOGFIRE_")
"""Host variables the workloads must not inherit (they would change what is rehearsed)."""
IN_FLIGHT = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
T = TypeVar("T")


class RehearsalError(AssertionError):
    """A step of the rehearsal did not hold."""


def wait_for(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise RehearsalError(f"{what}: not within {timeout:.0f} s (last {value!r})")
        time.sleep(1.0)  # poll interval, bounded by the deadline


# ------------------------------------------------------------------------- the image


def build_image_env(work: Path) -> Path:
    """The Dockerfile's /app: the project files, a venv without dev dependencies (same uv
    flags), workspace.yaml and deploy/dagster.yaml as dagster_home/dagster.yaml."""
    app = work / "app"
    app.mkdir()
    for name in APP_FILES:
        shutil.copy(ROOT / name, app / name)
    shutil.copytree(
        ROOT / "event_assets", app / "event_assets", ignore=shutil.ignore_patterns("__pycache__")
    )
    uv = os.environ.get("UV") or shutil.which("uv") or "python3 -m uv"  # the Makefile's UV
    env = {
        **os.environ,
        "UV_COMPILE_BYTECODE": "1",
        "UV_LINK_MODE": "copy",
        "UV_PYTHON": sys.executable,
    }
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        [*uv.split(), "sync", "--frozen", "--no-dev", "--no-editable", "--quiet"],
        cwd=app,
        env=env,
        check=True,
    )
    shutil.copy(ROOT / "workspace.yaml", app / "workspace.yaml")
    (app / "dagster_home").mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", app / "dagster_home" / "dagster.yaml")
    return app


# ------------------------------------------------------------------------- topology


@dataclass
class Topology:
    work: Path
    app: Path
    env: dict[str, str]
    fake: CloudRunFake
    gcs: GcsFake
    webserver: Webserver
    daemon: subprocess.Popen[bytes]
    settings_env: dict[str, str]
    pauses: Path
    started: float = field(default_factory=time.time)

    @property
    def lake_options(self) -> dict[str, str]:
        return {"google_service_account": self.env["GOOGLE_SERVICE_ACCOUNT"]}

    def events(self) -> int:
        uri = f"{self.env['LAKE_URI']}/events"
        try:
            table = DeltaTable(uri, storage_options=self.lake_options)
        except Exception:  # noqa: BLE001 (not created yet)
            return 0
        return int(table.to_pyarrow_table(columns=["event_id"]).num_rows)

    def runs(self) -> list[dict[str, Any]]:
        data = self.webserver.graphql(RUNS_QUERY)["runsOrError"]
        return list(data["results"])


RUNS_QUERY = """
query { runsOrError(filter: {pipelineName: "events_ingest_job"}) {
  ... on Runs { results { runId status startTime tags { key value } } } } }
"""
LOGS_QUERY = """
query ($runId: ID!) { logsForRun(runId: $runId) { __typename
  ... on EventConnection { events { __typename ... on LogsCapturedEvent { fileKey } } } } }
"""
CAPTURED_QUERY = """
query ($key: [String!]!) { capturedLogs(logKey: $key) { stdout stderr } }
"""


@contextlib.contextmanager
def topology(work: Path) -> Iterator[Topology]:
    database = f"rehearsal_{secrets.token_hex(4)}"
    admin = psycopg2.connect(PG_ADMIN_URL)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{database}"')
    pg_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    stack = contextlib.ExitStack()
    try:
        print("rehearsal: building the image environment (uv sync --no-dev) ...", flush=True)
        app = build_image_env(work)
        emulator = EmulatorProcess(work / "emulator.log")
        stack.callback(emulator.stop)
        gcs = stack.enter_context(GcsFake())
        gcs.create_bucket(LAKE_BUCKET)
        gcs.create_bucket(LOGS_BUCKET)
        # One storage identity per workload, as Terraform grants them (infra/modules/iam):
        # the webserver reads, the daemon creates but never deletes or overwrites, the
        # run worker (merges, compaction, vacuum) may do anything.
        keys = {}
        for workload, role in (("webserver", "viewer"), ("daemon", "creator"), ("run-worker", "")):
            if role:
                gcs.grant(workload, role)
            keys[workload] = work / f"{workload}-key.json"
            keys[workload].write_text(service_account_key(gcs.identity_url(workload)))
        pauses = work / "pauses"
        # What Terraform sets on all three workloads (app_env), then the secret.
        settings_env = {
            "LAKE_URI": f"gs://{LAKE_BUCKET}/lake",
            "GCP_PROJECT_ID": PROJECT,
            "PUBSUB_TOPIC": "events",
            "PUBSUB_SUBSCRIPTION": "events-ingest",
            "ACK_DEADLINE_SECONDS": "120",
            "MAX_MESSAGE_BYTES": "1048576",
            "PULL_MAX_MESSAGES": "5000",
            "PULL_MAX_BYTES": str(64 * 1024 * 1024),
            "DECODE_WORKERS": "0",
            "PARTITIONS_START_DATE": (datetime.now(UTC).date() - timedelta(days=30)).isoformat(),
            "LOGFIRE_SECRET_NAME": "event-assets-logfire-token",
        }
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(INHERIT_NOT)},
            **settings_env,
            "DAGSTER_HOME": str(app / "dagster_home"),
            "GCP_REGION": REGION,
            "DAGSTER_COMPUTE_LOGS_BUCKET": LOGS_BUCKET,
            "DAGSTER_PG_URL": pg_url,
            # Local stand-ins for GCP (none of these is set in production):
            "PUBSUB_EMULATOR_HOST": emulator.address,
            "GOOGLE_SERVICE_ACCOUNT": str(keys["run-worker"]),
            "STORAGE_EMULATOR_HOST": gcs.base_url,
            "NO_GCE_CHECK": "True",
            "PATH": f"{app / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        ensure_topic_and_subscription(
            load_settings(**{**settings_env, "PUBSUB_EMULATOR_HOST": emulator.address})
        )
        # The run worker job: the same environment (a test may arm pause points in it).
        job_env = {**env, PAUSE_DIR_ENV: str(pauses)}
        job = JobSpec(env=job_env, cwd=app)
        fake = stack.enter_context(
            CloudRunFake(
                {f"projects/{PROJECT}/locations/{REGION}/jobs/{JOB}": job}, work / "executions"
            )
        )
        env[CLOUD_RUN_API_ENDPOINT_ENV] = job_env[CLOUD_RUN_API_ENDPOINT_ENV] = fake.address
        bin_dir = app / ".venv" / "bin"
        webserver = Webserver(
            {**env, "GOOGLE_SERVICE_ACCOUNT": str(keys["webserver"])},
            work / "webserver.log",
            executable=[str(bin_dir / "dagster-webserver")],
            cwd=app,
        )
        stack.callback(webserver.stop)
        daemon_env = {
            **env,
            "GOOGLE_SERVICE_ACCOUNT": str(keys["daemon"]),
            "STORAGE_CAN_DELETE": "false",  # as Terraform sets on the daemon only
        }
        daemon = spawn_daemon(
            daemon_env, work / "daemon.log", daemon=str(bin_dir / "dagster-daemon"), cwd=app
        )
        stack.callback(stop_group, daemon)
        webserver.wait_until_loaded(timeout=180)
        yield Topology(work, app, env, fake, gcs, webserver, daemon, settings_env, pauses)
    finally:
        stack.close()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


# ------------------------------------------------------------------------- the drive


def _publish(top: Topology, messages: list[tuple[bytes, dict[str, str]]]) -> None:
    settings = load_settings(
        **{**top.settings_env, "PUBSUB_EMULATOR_HOST": top.env["PUBSUB_EMULATOR_HOST"]}
    )
    publish(settings, messages)


def _settled(top: Topology, events: int) -> Callable[[], dict[str, int] | None]:
    def check() -> dict[str, int] | None:
        if top.daemon.poll() is not None:
            raise RehearsalError(f"the daemon exited ({top.daemon.returncode})")
        runs = top.runs()
        statuses: dict[str, int] = {}
        for run in runs:
            statuses[run["status"]] = statuses.get(run["status"], 0) + 1
        busy = sum(
            statuses.get(s, 0)
            for s in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
        )
        running = top.fake.outcomes().get("running", 0)
        return statuses if not busy and not running and top.events() == events else None

    return check


def drive(top: Topology) -> str:
    """Every rehearsed fault; returns the summary line."""
    fake = top.fake
    # 1. An execution that never starts (run monitoring fails it after its start timeout,
    #    600 s) on a day of its own, so the other steps go on meanwhile.
    fake.never_start(1, job_name=INGEST_JOB)
    stuck_day = datetime.now(UTC) - timedelta(days=5)
    stuck = list(demo_messages(200, offset=10_000, day=stuck_day))
    _publish(top, stuck)
    wait_for(lambda: fake.outcomes().get("pending"), 300, "a launch that never starts")
    # 2. The RunJob quota exhausted for the next launches: the launcher's retry rides it.
    fake.exhaust_quota(2)
    corpus = mixed_corpus(int(top.settings_env["MAX_MESSAGE_BYTES"]))
    _publish(top, corpus.messages)
    expected = len(stuck) + corpus.unique_events
    # 3. A running execution killed mid-merge: Cloud Run reports it failed.
    arm(top.pauses, PausePoint.BEFORE_COMMIT)
    extra = list(demo_messages(300, offset=20_000))
    _publish(top, extra)
    expected += len(extra)
    wait_for(lambda: paused(top.pauses, PausePoint.BEFORE_COMMIT), 600, "a merge paused")
    killed = fake.kill_running()
    statuses = wait_for(_settled(top, expected), SETTLE, f"{expected} events merged, runs settled")
    problems = []
    if fake.counts["quota_exhausted"] != 2:
        problems.append(f"quota errors seen {fake.counts['quota_exhausted']}, armed 2")
    if statuses.get("FAILURE", 0) < 2:
        problems.append(f"failed runs {statuses.get('FAILURE', 0)}: the stuck and the killed run")
    outcomes = fake.outcomes()
    if outcomes.get("failed", 0) < 1:
        problems.append(f"no execution reported failed after the kill ({outcomes})")
    # 4. A run's compute logs, read back through the webserver (GCS JSON API).
    logs = _compute_logs(top)
    if "STEP_START" not in logs and "events" not in logs:
        problems.append(f"compute logs not readable through GraphQL: {logs[:200]!r}")
    denied = top.gcs.stats()["denied"]
    if denied:
        problems.append(f"{denied} storage requests refused for a workload's role (see logs)")
    launches = [e for e in fake.executions()]
    latency = _launch_to_start(top)
    minutes = max((time.time() - top.started) / 60, 1e-9)
    summary = (
        f"rehearsal: runs launched {len(launches)}, succeeded {statuses.get('SUCCESS', 0)}, "
        f"failed {statuses.get('FAILURE', 0)} (stuck 1, killed {killed}), quota errors retried "
        f"{fake.counts['quota_exhausted']}, events in table {top.events()} of {expected}, "
        f"storage requests refused {denied}; "
        f"launch-to-start median {latency:.1f} s, {len(launches) / minutes:.1f} runs/min"
    )
    if problems:
        raise RehearsalError(f"{summary}\n" + "\n".join(problems))
    return summary


def _compute_logs(top: Topology) -> str:
    for run in top.runs():
        if run["status"] != "SUCCESS":
            continue
        events = top.webserver.graphql(LOGS_QUERY, {"runId": run["runId"]})["logsForRun"]
        keys = [e["fileKey"] for e in events.get("events", []) if e.get("fileKey")]
        for file_key in keys:
            captured = top.webserver.graphql(
                CAPTURED_QUERY, {"key": [run["runId"], "compute_logs", file_key]}
            )["capturedLogs"]
            text = (captured.get("stdout") or "") + (captured.get("stderr") or "")
            if text:
                return text
    return ""


def _launch_to_start(top: Topology) -> float:
    """Median seconds from the RunJob call to the run worker's RUN_START."""
    created = {e.name.rsplit("/", 1)[-1]: e.created for e in top.fake.executions()}
    gaps = []
    for run in top.runs():
        tags = {t["key"]: t["value"] for t in run["tags"]}
        execution = tags.get("cloud_run_job_execution_id")
        if execution in created and run["startTime"]:
            gaps.append(float(run["startTime"]) - created[execution])
    gaps.sort()
    return gaps[len(gaps) // 2] if gaps else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", action="store_true", help="drive it end to end, then stop")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rehearsal-") as tmp, topology(Path(tmp)) as top:
        print(
            f"rehearsal: UI at {top.webserver.url} "
            "(Postgres, gs:// on the GCS fake, runs through the Cloud Run fake)",
            flush=True,
        )
        if not args.test:
            print("rehearsal: running until Ctrl-C", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
            return 0
        try:
            print(drive(top), flush=True)
        except RehearsalError as exc:
            print(f"rehearsal FAILED: {exc}", file=sys.stderr)
            for log in ("daemon.log", "webserver.log"):
                text = (top.work / log).read_text(errors="replace")
                print(f"--- last 3000 chars of {log} ---\n{text[-3000:]}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
