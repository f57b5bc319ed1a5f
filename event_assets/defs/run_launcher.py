"""The local run launcher: Dagster's default one, plus a health check run monitoring can use.

`DefaultRunLauncher` starts each run worker as a child process of the code server but
cannot tell run monitoring whether that worker is still alive. A worker killed by
the OOM killer, a `kill -9` or a crash of the machine's session then leaves its run
STARTED for ever, and the run queue's one-merge-per-day slot with it: no later merge
of that day would start. This launcher reads the worker's pid from the run's
`RUN_START` event and checks it on this machine, so the daemon's run monitoring
(`run_monitoring` in `dagster.yaml`) fails the run and the sensor requests a new one.
Production uses the Cloud Run launcher, whose health check asks Cloud Run instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus


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
