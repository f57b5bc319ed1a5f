"""The local run launcher: Dagster's default one, plus a health check run monitoring can use.

`DefaultRunLauncher` starts each run worker as a child process of the code server but
cannot tell run monitoring whether that worker is still alive. A worker killed by
the OOM killer, a `kill -9` or a crash of the machine's session then leaves its run
STARTED for ever, and the run queue's one-merge-per-day slot with it: no later merge
of that day would start. This launcher reads the worker's pid from the run's
`RUN_START` event and checks it on this machine, so the daemon's run monitoring
(`run_monitoring` in `dagster.yaml`) fails the run and the sensor requests a new one.
Production uses the Cloud Run launcher, whose health check asks Cloud Run instead:
`CloudRunLauncher` below, which is dagster-contrib-gcp's with one switch for the
rehearsal.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._serdes import ConfigurableClassData
from dagster_contrib_gcp.cloud_run.run_launcher import CloudRunRunLauncher


def _process(pid: int) -> tuple[str, float | None] | None:
    """(state letter, start time as a Unix timestamp) of a process; None if there is none.

    Without /proc (macOS) only existence is known: state "?" and no start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ("?", None)
    fields = stat.rsplit(")", 1)[1].split()  # fields 3.. of proc(5); the name may hold spaces
    boot = next(
        float(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    return (fields[0], boot + int(fields[19]) / os.sysconf("SC_CLK_TCK"))


# A process that started this long after the run's RUN_START is another one with the pid.
_PID_REUSE_MARGIN_SECONDS = 5.0


def worker_start(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, timestamp) of the run's RUN_START event: its worker and when it started."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.RUN_START, limit=1
    ).records
    event = records[0].event_log_entry.dagster_event if records else None
    if event is None or event.pid is None:
        return None
    return event.pid, records[0].event_log_entry.timestamp


def worker_gone(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """Why the run's worker is known to be gone (on this machine), or None.

    None too when no worker pid is recorded yet: nothing to judge by.
    """
    found = worker_start(instance, run_id)
    if found is None:
        return None
    pid, started = found
    process = _process(pid)
    if (
        process is None
        or process[0] in ("Z", "X")
        or (process[1] is not None and process[1] > started + _PID_REUSE_MARGIN_SECONDS)
    ):
        return f"run worker (pid {pid}) is no longer running"
    return None


class LocalRunLauncher(dg.DefaultRunLauncher):
    """`DefaultRunLauncher` whose dead run workers run monitoring can see."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        gone = worker_gone(self._instance, run.run_id)
        if gone is not None:
            return CheckRunHealthResult(WorkerStatus.FAILED, gone)
        return CheckRunHealthResult(WorkerStatus.RUNNING)


CLOUD_RUN_API_ENDPOINT_ENV = "CLOUD_RUN_API_ENDPOINT"


class CloudRunLauncher(CloudRunRunLauncher):  # type: ignore[misc]  # untyped base
    """dagster-contrib-gcp's Cloud Run launcher (production's), whose Admin API clients
    can be pointed at a local, plaintext endpoint: `CLOUD_RUN_API_ENDPOINT=host:port`
    (the rehearsal's Cloud Run fake; unset in production, where nothing changes).

    The base class builds its clients in `__init__` with default credentials, which a
    machine without Google credentials does not have, so with an endpoint they are
    built here instead, on an insecure channel, and nothing else differs."""

    def __init__(
        self,
        project: str,
        region: str,
        job_name_by_code_location: dict[str, str | dict[str, str]],
        run_job_retry: dict[str, int],
        run_timeout: int,
        inst_data: ConfigurableClassData | None = None,
    ) -> None:
        endpoint = os.environ.get(CLOUD_RUN_API_ENDPOINT_ENV)
        if not endpoint:
            super().__init__(
                project, region, job_name_by_code_location, run_job_retry, run_timeout, inst_data
            )
            return
        import grpc
        from google.cloud import run_v2
        from google.cloud.run_v2.services.executions.transports import ExecutionsGrpcTransport
        from google.cloud.run_v2.services.jobs.transports import JobsGrpcTransport

        self._inst_data = inst_data
        self.project = project
        self.region = region
        self.job_name_by_code_location = job_name_by_code_location
        self.run_job_retry_wait = run_job_retry["wait"]
        self.run_job_retry_timeout = run_job_retry["timeout"]
        self.run_timeout = run_timeout
        channel = grpc.insecure_channel(endpoint)
        self.jobs_client = run_v2.JobsClient(transport=JobsGrpcTransport(channel=channel))
        self.executions_client = run_v2.ExecutionsClient(
            transport=ExecutionsGrpcTransport(channel=channel)
        )
