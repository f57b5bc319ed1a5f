"""A Cloud Run Admin API (v2) fake: the part `CloudRunRunLauncher` and run monitoring use.

A gRPC server on 127.0.0.1 answering, as Cloud Run does through the real
`google-cloud-run` client:

- `Jobs.RunJob` (with container overrides: args, env, timeout): a long-running
  operation whose metadata is the new `Execution`; the execution is a local
  subprocess running the job's command (its container `args`, overridden per run
  as the launcher does, with no fixed command) with the job's environment plus the
  overrides;
- `Executions.GetExecution`: `reconciling` while it starts or runs, then
  `succeeded_count`, `failed_count` or `cancelled_count` = 1 (exit status 0,
  non-zero or a cancel; a task past its timeout is killed and fails);
- `Executions.CancelExecution`: SIGKILLs the task, counted as cancelled.

Faults, armed per test: `exhaust_quota(n)` answers the next `n` RunJob calls with
RESOURCE_EXHAUSTED (the launcher's `run_job_retry` must retry them);
`never_start(n)` leaves the next `n` executions pending for ever (run monitoring's
`start_timeout_seconds` must fail their runs); `kill_running()` SIGKILLs the running
tasks (Cloud Run reports them failed).

Point the launcher at it with `CLOUD_RUN_API_ENDPOINT=<address>`
(`event_assets.run_launcher.CloudRunLauncher`, the one place that reads it).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import NoReturn, cast

import grpc
from google.cloud import run_v2
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, timestamp_pb2


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable: abort raises")


@dataclass(frozen=True)
class JobSpec:
    """A job as Terraform defines it: its environment and working directory.

    `command` is what the image runs the container's args with (empty: the args are the
    whole command, as in the Dockerfile); `executable_dir` is put first on PATH, as the
    image's venv is."""

    env: Mapping[str, str]
    cwd: Path
    command: Sequence[str] = ()
    executable_dir: Path | None = None


@dataclass
class _Execution:
    name: str
    job: str
    args: list[str]
    env: dict[str, str]
    timeout_seconds: float | None
    created: float = field(default_factory=time.time)
    process: subprocess.Popen[bytes] | None = None
    started: float | None = None
    ended: float | None = None
    outcome: str | None = None  # succeeded | failed | cancelled
    log: Path | None = None


class CloudRunFake:
    """The fake Admin API; `start()` returns its address (host:port)."""

    def __init__(self, jobs: Mapping[str, JobSpec], log_dir: Path) -> None:
        self.jobs = dict(jobs)  # full job name -> spec
        self.log_dir = log_dir
        self._lock = threading.Lock()
        self._executions: dict[str, _Execution] = {}
        self._ids = itertools.count(1)
        self._quota_faults = 0
        self._never_start = 0
        self._never_start_job = ""
        self.counts: dict[str, int] = {
            "run_job": 0,
            "quota_exhausted": 0,
            "get_execution": 0,
            "cancel_execution": 0,
        }
        self._server: grpc.Server | None = None
        self.address = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "google.cloud.run.v2.Jobs",
                    {
                        "RunJob": grpc.unary_unary_rpc_method_handler(
                            self._run_job,
                            request_deserializer=run_v2.RunJobRequest.deserialize,
                            response_serializer=operations_pb2.Operation.SerializeToString,
                        )
                    },
                ),
                grpc.method_handlers_generic_handler(
                    "google.cloud.run.v2.Executions",
                    {
                        "GetExecution": grpc.unary_unary_rpc_method_handler(
                            self._get_execution,
                            request_deserializer=run_v2.GetExecutionRequest.deserialize,
                            response_serializer=run_v2.Execution.serialize,
                        ),
                        "CancelExecution": grpc.unary_unary_rpc_method_handler(
                            self._cancel_execution,
                            request_deserializer=run_v2.CancelExecutionRequest.deserialize,
                            response_serializer=operations_pb2.Operation.SerializeToString,
                        ),
                    },
                ),
            )
        )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        self.address = f"127.0.0.1:{port}"
        self._watcher = threading.Thread(target=self._watch, name="cloud-run-fake", daemon=True)
        self._stopping = threading.Event()
        self._watcher.start()
        return self.address

    def stop(self) -> None:
        self._stopping.set()
        for execution in self.executions():
            if execution.process is not None and execution.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(execution.process.pid, signal.SIGKILL)
                execution.process.wait(timeout=30)
        if self._server is not None:
            self._server.stop(grace=1).wait()

    def __enter__(self) -> CloudRunFake:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults

    def exhaust_quota(self, calls: int) -> None:
        """The next `calls` RunJob requests fail with RESOURCE_EXHAUSTED."""
        with self._lock:
            self._quota_faults += calls

    def never_start(self, executions: int, *, job_name: str) -> None:
        """The next `executions` of Dagster job `job_name` are created but never start.

        Matched on the run's `execute_run` arguments (they name the job), so a scheduled
        run of another job launched meanwhile does not take the fault."""
        with self._lock:
            self._never_start += executions
            self._never_start_job = job_name

    def kill_running(self) -> int:
        """SIGKILL every running task (a crashed instance); returns how many."""
        killed = 0
        for execution in self.executions():
            if execution.process is not None and execution.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(execution.process.pid, signal.SIGKILL)
                killed += 1
        return killed

    def executions(self) -> list[_Execution]:
        with self._lock:
            return list(self._executions.values())

    def outcomes(self) -> dict[str, int]:
        """Executions by state: pending, running, succeeded, failed, cancelled."""
        counts: dict[str, int] = {}
        for execution in self.executions():
            state = execution.outcome or ("running" if execution.started else "pending")
            counts[state] = counts.get(state, 0) + 1
        return counts

    # ------------------------------------------------------------------ RPCs

    def _run_job(
        self, request: run_v2.RunJobRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        with self._lock:
            self.counts["run_job"] += 1
            if self._quota_faults:
                self._quota_faults -= 1
                self.counts["quota_exhausted"] += 1
                _abort(
                    context,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "Quota exceeded for quota metric 'Job run requests' (fake)",
                )
            spec = self.jobs.get(request.name)
            if spec is None:
                _abort(context, grpc.StatusCode.NOT_FOUND, f"Resource '{request.name}' not found")
            args = [a for c in request.overrides.container_overrides for a in c.args]
            named = f'"{self._never_start_job}"'
            hold = self._never_start > 0 and any(named in arg for arg in args)
            self._never_start -= hold
            execution_id = f"{request.name.rsplit('/', 1)[-1]}-{next(self._ids):05d}"
        overrides = request.overrides
        (container,) = overrides.container_overrides or [
            run_v2.RunJobRequest.Overrides.ContainerOverride()
        ]
        env = {**os.environ, **spec.env, **{e.name: e.value for e in container.env}}
        if spec.executable_dir is not None:
            env["PATH"] = f"{spec.executable_dir}{os.pathsep}{env.get('PATH', '')}"
        # proto-plus hands a Duration field over as a timedelta
        timeout = cast("timedelta | None", overrides.timeout)
        timeout_seconds = timeout.total_seconds() if timeout else None
        execution = _Execution(
            name=f"{request.name}/executions/{execution_id}",
            job=request.name,
            args=[*spec.command, *container.args],
            env=env,
            timeout_seconds=timeout_seconds or None,
        )
        with self._lock:
            self._executions[execution.name] = execution
        if not hold:
            self._spawn(execution, spec)
        metadata = any_pb2.Any()
        metadata.Pack(run_v2.Execution.pb(self._describe(execution)))
        return operations_pb2.Operation(
            name=f"{execution.name}/operations/run", metadata=metadata, done=False
        )

    def _spawn(self, execution: _Execution, spec: JobSpec) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        execution.log = self.log_dir / f"{execution.name.rsplit('/', 1)[-1]}.log"
        with execution.log.open("wb") as out:
            execution.process = subprocess.Popen(
                execution.args,
                cwd=spec.cwd,
                env=execution.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        execution.started = time.time()

    def _get_execution(
        self, request: run_v2.GetExecutionRequest, context: grpc.ServicerContext
    ) -> run_v2.Execution:
        with self._lock:
            self.counts["get_execution"] += 1
            execution = self._executions.get(request.name)
        if execution is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"Resource '{request.name}' not found")
        return self._describe(execution)

    def _cancel_execution(
        self, request: run_v2.CancelExecutionRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        with self._lock:
            self.counts["cancel_execution"] += 1
            execution = self._executions.get(request.name)
        if execution is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"Resource '{request.name}' not found")
        if execution.outcome is None:
            execution.outcome = "cancelled"
            execution.ended = time.time()
            if execution.process is not None and execution.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(execution.process.pid, signal.SIGKILL)
        metadata = any_pb2.Any()
        metadata.Pack(run_v2.Execution.pb(self._describe(execution)))
        return operations_pb2.Operation(
            name=f"{execution.name}/operations/cancel", metadata=metadata, done=True
        )

    # ------------------------------------------------------------------ state

    def _watch(self) -> None:
        """Settle finished tasks (exit status) and kill those past their timeout."""
        while not self._stopping.wait(0.2):
            for execution in self.executions():
                process = execution.process
                if execution.outcome is not None or process is None:
                    continue
                code = process.poll()
                if code is None:
                    started = execution.started or execution.created
                    if (
                        execution.timeout_seconds
                        and time.time() - started > execution.timeout_seconds
                    ):
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(process.pid, signal.SIGKILL)
                    continue
                execution.ended = time.time()
                execution.outcome = "succeeded" if code == 0 else "failed"

    def _describe(self, execution: _Execution) -> run_v2.Execution:
        def stamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
            if seconds is None:
                return None
            out = timestamp_pb2.Timestamp()
            out.FromNanoseconds(int(seconds * 1e9))
            return out

        outcome = execution.outcome
        return run_v2.Execution(
            name=execution.name,
            job=execution.job.rsplit("/", 1)[-1],
            create_time=stamp(execution.created),
            start_time=stamp(execution.started),
            completion_time=stamp(execution.ended),
            task_count=1,
            running_count=1 if execution.started and outcome is None else 0,
            succeeded_count=1 if outcome == "succeeded" else 0,
            failed_count=1 if outcome == "failed" else 0,
            cancelled_count=1 if outcome == "cancelled" else 0,
            reconciling=outcome is None,
        )
