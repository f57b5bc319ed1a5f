"""Child processes of the reliability harness: the sensor path and maintenance.

`python -m reliability.worker sensor` ticks `pubsub_events_sensor` against the
persistent Dagster instance in `DAGSTER_HOME` and executes every run it requests
(`events_ingest_job`), as the daemon and a run launcher would, until a tick pulls
nothing and no landing batch is pending. `compact` / `vacuum` run one maintenance
pass; `maintain` loops compaction + vacuum until stdin closes. Each prints
"worker: started" on stderr once imports are done, and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from datetime import date
from typing import TYPE_CHECKING

from event_assets.ingest import lake_of
from event_assets.settings import load_settings
from event_assets.storage.landing import pending_batches
from event_assets.storage.maintenance import compact, vacuum
from event_assets.storage.tables import events_target

if TYPE_CHECKING:
    import dagster as dg

MAX_TICKS = 40


def _started() -> None:
    sys.stderr.write("worker: started\n")
    sys.stderr.flush()


def run_sensor() -> dict[str, int]:
    import dagster as dg

    from event_assets.definitions import build_defs
    from event_assets.defs.ingestion import pubsub_events_sensor
    from event_assets.defs.resources import EventAssetsResource

    settings = load_settings()
    lake = lake_of(settings)
    job = build_defs().resolve_job_def("events_ingest_job")
    totals = {"ticks": 0, "runs": 0}
    _started()
    with dg.DagsterInstance.get() as instance:
        cursor: str | None = None
        for _ in range(MAX_TICKS):
            _monitor_runs(instance)
            context = dg.build_sensor_context(
                instance=instance, cursor=cursor, resources={"event_assets": EventAssetsResource()}
            )
            result = pubsub_events_sensor(context)
            assert isinstance(result, dg.SensorResult)
            totals["ticks"] += 1
            cursor = result.cursor
            requests = result.run_requests or []
            for request in requests:
                job.execute_in_process(
                    partition_key=request.partition_key,
                    run_config=dict(request.run_config),
                    tags=dict(request.tags),
                    instance=instance,
                )
                totals["runs"] += 1
            idle = (
                '"pulled": 0' in (result.skip_reason.skip_message or "")
                if (result.skip_reason)
                else False
            )
            if not requests and idle and not pending_batches(lake):
                break
    return totals


def _monitor_runs(instance: dg.DagsterInstance) -> None:
    """The daemon's run monitoring, played here: fail runs whose worker was killed.

    A killed worker leaves its run STARTED; the real daemon's run monitoring
    (`LocalRunLauncher`'s health check) fails it, and the sensor's retry follows.
    """
    import dagster as dg

    from event_assets.defs.ingestion import INGEST_JOB
    from event_assets.run_launcher import worker_gone

    started = dg.RunsFilter(job_name=INGEST_JOB, statuses=[dg.DagsterRunStatus.STARTED])
    for run in instance.get_runs(started):
        gone = worker_gone(instance, run.run_id)
        if gone is not None:
            instance.report_run_failed(run, gone)


def run_compact() -> dict[str, int]:
    settings = load_settings()
    target = events_target(lake_of(settings))
    from event_assets.storage.delta import existing_table

    dt = existing_table(target)
    partitions = sorted({str(p["event_date"]) for p in dt.partitions()}) if dt is not None else []
    _started()
    result = compact(target, partitions, max_attempts=settings.WRITE_MAX_ATTEMPTS)
    return {"files_before": result.files_before, "files_after": result.files_after}


def run_vacuum(retention_hours: int) -> dict[str, int]:
    settings = load_settings()
    lake = lake_of(settings)
    _started()
    result = vacuum(
        events_target(lake),
        lake,
        retention_hours=retention_hours,
        allow_below_default=retention_hours < 168,
        max_attempts=settings.WRITE_MAX_ATTEMPTS,
    )
    return {"files_deleted": result.files_deleted}


def run_maintain() -> dict[str, int]:
    """Compact every partition and vacuum (safe retention) in a loop until stdin closes."""
    settings = load_settings()
    lake = lake_of(settings)
    target = events_target(lake)
    stop = threading.Event()

    def watch() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    totals = {"compactions": 0, "vacuums": 0, "files_removed": 0}
    _started()
    from event_assets.storage.delta import existing_table

    while not stop.is_set():
        dt = existing_table(target)
        if dt is None:
            stop.wait(0.05)
            continue
        partitions = sorted({str(p["event_date"]) for p in dt.partitions()})
        done = compact(target, partitions, max_attempts=settings.WRITE_MAX_ATTEMPTS)
        totals["compactions"] += 1
        totals["files_removed"] += done.files_removed
        vacuum(target, lake, max_attempts=settings.WRITE_MAX_ATTEMPTS)
        totals["vacuums"] += 1
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reliability.worker")
    parser.add_argument("what", choices=["sensor", "compact", "vacuum", "maintain"])
    parser.add_argument("--retention-hours", type=int, default=0)
    args = parser.parse_args(argv)
    if args.what == "sensor":
        out = run_sensor()
    elif args.what == "compact":
        out = run_compact()
    elif args.what == "vacuum":
        out = run_vacuum(args.retention_hours)
    else:
        out = run_maintain()
    print(json.dumps({**out, "date": date.today().isoformat()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
