"""The `events` asset and the sensor that feeds it: wiring over `event_assets.ingest`.

The sensor drains the subscription into the landing zone (never the table) and
asks for at most one queued merge run per day; a run merges whatever of its day
is pending when it starts, in one process, and reports the checks of what it
merged from what the merge itself read and wrote.
"""

import json
from datetime import UTC, date, datetime, timedelta

import dagster as dg
from pydantic import Field

from event_assets.ingest import MergeResult, drain, merge_partition, partition_range
from event_assets.pubsub.client import PubSubUnavailableError, Subscription
from event_assets.settings import Settings, SettingsError
from event_assets.storage.landing import batch_time, pending_by_day

from .partitions import daily_partitions
from .quarantine import QUARANTINE_KEY, quarantine_report
from .resources import EventAssetsResource
from .sources import OWNER, PUBSUB_SUBSCRIPTION

INGEST_JOB = "events_ingest_job"
PENDING_TAG = "event_assets/pending_batches"
# The run queue (dagster.yaml) runs one merge run per value of this tag at a time. Only the
# sensor's routine merges carry it: contract runs and runs launched from the UI (a
# backfill, a re-materialization) do not wait behind them, and may overlap a merge of the
# same day because the dedup-write detects and repairs a raced commit.
MERGE_DAY_TAG = "event_assets/merge_day"
# The run queue launches higher priorities first (default 0): a materialization or backfill
# launched from the UI goes ahead of the sensor's routine merges.
ROUTINE_PRIORITY = "-1"
# Time between tick starts: most of the publish-to-queryable latency under a trickle. An
# empty tick is one empty Pull (~1 s, mostly waiting), so ticking often is cheap.
SENSOR_INTERVAL_SECONDS = 15
# Runs of a day that will still list its pending batches when they start.
_WAITING = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
)
_ENDED_BADLY = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
MAX_RETRY_DELAY = timedelta(hours=1)


class EventsConfig(dg.Config):
    """What to merge: the day's pending batches (the sensor's runs), the named batches,
    or, with neither, every landing batch of the day (a backfill from the UI)."""

    pending: bool = False
    batch_paths: list[str] = Field(default_factory=list)


CHECK_SPECS = [
    dg.AssetCheckSpec(
        "event_id_unique",
        asset="events",
        blocking=True,
        partitions_def=daily_partitions,
        description="Every event_id the run merged occurs exactly once in its day (the dedup "
        "guarantee), verified after the commit.",
    ),
    dg.AssetCheckSpec(
        "required_columns_non_null",
        asset="events",
        partitions_def=daily_partitions,
        description="Identity, time, message and data columns of the merged rows are never null.",
    ),
    dg.AssetCheckSpec(
        "landing_reconciliation",
        asset="events",
        partitions_def=daily_partitions,
        description="Every event of the landing batches the run merged is in the table (or, "
        "within DEDUP_WINDOW_DAYS, already in a day before): nothing acked was lost.",
    ),
    dg.AssetCheckSpec(
        "cross_partition_duplicates",
        asset="events",
        partitions_def=daily_partitions,
        description="Warns when an event_id the run merged also occurs the day before or "
        "after: the same plain-JSON event re-published across midnight, outside the window.",
    ),
]
_WARN_CHECKS = {"cross_partition_duplicates"}


@dg.asset(
    name="events",
    deps=[PUBSUB_SUBSCRIPTION],
    partitions_def=daily_partitions,
    group_name="ingestion",
    kinds={"deltalake", "polars", "gcp"},
    owners=[OWNER],
    retry_policy=dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL),
    check_specs=CHECK_SPECS,
    description=(
        "CloudEvents from Pub/Sub, one row per unique event_id per day (Delta, partitioned by "
        "event_date). The sensor's runs dedup-write every landing batch of their day pending "
        "when they start; a run from the UI (a backfill) re-merges every landing batch of its "
        "day. Idempotent."
    ),
)
def events(
    context: dg.AssetExecutionContext, config: EventsConfig, event_assets: EventAssetsResource
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    settings = event_assets.settings()
    partition = date.fromisoformat(context.partition_key)
    merged = merge_partition(
        settings,
        event_assets.lake(),
        partition,
        config.batch_paths or None,
        pending=config.pending and not config.batch_paths,
    )
    context.log.info(
        f"{partition}: {merged.inserted} inserted, {merged.duplicates} duplicates skipped "
        f"from {merged.batches} landing batches in {merged.seconds}s"
    )
    check_results = [
        dg.AssetCheckResult(
            check_name=name,
            passed=outcome.passed,
            severity=(
                dg.AssetCheckSeverity.WARN if name in _WARN_CHECKS else dg.AssetCheckSeverity.ERROR
            ),
            description=outcome.description,
            metadata=dict(outcome.metadata),
        )
        for name, outcome in merged.checks.items()
    ]
    return dg.MaterializeResult(check_results=check_results, metadata=merge_metadata(merged))


def merge_metadata(merged: MergeResult) -> dict[str, dg.MetadataValue | int | float | str]:
    """A merge as plottable metadata: units in the key names, and the counters that are
    nearly always the same (commit attempts, repairs) only when they say something."""
    metadata: dict[str, dg.MetadataValue | int | float | str] = {
        "dagster/row_count": merged.day_rows,
        "rows_inserted": merged.inserted,
        "duplicates_skipped": merged.duplicates,
        "rows_read": merged.rows_read,
        "landing_batches": merged.batches,
        "bytes_added": merged.bytes_added,
        "merge_seconds": merged.seconds,
        "table_version": merged.version,
    }
    lags = {
        "event_lag_seconds": merged.event_lag_seconds,
        "landing_lag_seconds": merged.landing_lag_seconds,
    }
    metadata.update({key: lag for key, lag in lags.items() if lag is not None})
    unusual = {
        "commit_attempts": (merged.attempts, merged.attempts > 1),
        "duplicates_repaired": (merged.repaired, merged.repaired > 0),
        "duplicates_in_window": (merged.duplicates_in_window, merged.duplicates_in_window > 0),
    }
    metadata.update({key: value for key, (value, shown) in unusual.items() if shown})
    metadata["table_uri"] = dg.MetadataValue.path(merged.table_uri)
    return metadata


events_ingest_job = dg.define_asset_job(
    INGEST_JOB,
    # The per-merge checks are reported by the merge itself (check_specs).
    selection=dg.AssetSelection.assets(events),
    # One process per run: each step of a multiprocess run would start its own Python
    # and import the code location (seconds each), for a merge of a second or less.
    executor_def=dg.in_process_executor,
    description="Merge one day's pending landing batches into `events` and check them.",
)


def merge_request(
    instance: dg.DagsterInstance,
    settings: Settings,
    day: date,
    pending: list[str],
    now: datetime,
) -> dg.RunRequest | None:
    """A run for a day with pending batches, unless one is coming anyway.

    None while a run of the day has yet to list its batches (queued or starting: it
    will list every pending batch), while a running run started after the newest
    pending batch landed (it listed them all; a batch it missed is still pending when
    it ends, and the next tick asks again), or while the back-off after a failed run
    lasts. The run key counts the day's runs, so it never repeats: Dagster skips a key
    that already has a run forever, even a failed one, and a failed run must be
    re-tried.
    """
    key = day.isoformat()
    runs = dg.RunsFilter(job_name=INGEST_JOB, tags={"dagster/partition": key})
    records = instance.get_run_records(runs, limit=50)
    statuses = [r.dagster_run.status for r in records]  # newest first
    if any(s in _WAITING for s in statuses):
        return None
    newest = max(batch_time(p) for p in pending) if pending else None
    started = [
        datetime.fromtimestamp(r.start_time, UTC)
        for r in records
        if r.dagster_run.status == dg.DagsterRunStatus.STARTED and r.start_time
    ]
    if started and (newest is None or max(started) > newest):
        return None
    failures = 0
    for status in statuses:
        if status not in _ENDED_BADLY:
            break
        failures += 1
    if failures and records[0].end_time is not None:
        delay = min(
            timedelta(seconds=settings.RUN_RETRY_BASE_SECONDS * 2 ** (failures - 1)),
            MAX_RETRY_DELAY,
        )
        if now < datetime.fromtimestamp(records[0].end_time, UTC) + delay:
            return None
    return dg.RunRequest(
        partition_key=key,
        run_key=f"{key}:{instance.get_runs_count(runs)}",
        run_config={"ops": {"events": {"config": {"pending": True}}}},
        tags={
            PENDING_TAG: str(len(pending)),
            MERGE_DAY_TAG: key,
            "dagster/priority": ROUTINE_PRIORITY,
        },
    )


def merge_requests(
    instance: dg.DagsterInstance,
    settings: Settings,
    now: datetime,
    lake_pending: dict[date, list[str]],
) -> tuple[list[dg.RunRequest], list[date]]:
    """Requests for the days with pending batches; and days that must wait for their
    partition to exist (dated up to the clock-skew allowance ahead of today)."""
    earliest, latest = partition_range(settings, now)
    requests: list[dg.RunRequest] = []
    waiting: list[date] = []
    for day, paths in lake_pending.items():
        if not earliest <= day <= latest:
            waiting.append(day)
            continue
        request = merge_request(instance, settings, day, paths, now)
        if request is not None:
            requests.append(request)
    return requests, waiting


@dg.sensor(
    name="pubsub_events_sensor",
    job=events_ingest_job,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Drains the Pub/Sub subscription (rounds back to back, within "
        "SENSOR_TICK_BUDGET_SECONDS), lands good events and quarantines bad ones, acks only "
        "after that, and requests a merge run for each day with pending batches unless one "
        "is already queued."
    ),
)
def pubsub_events_sensor(
    context: dg.SensorEvaluationContext, event_assets: EventAssetsResource
) -> dg.SensorResult:
    totals: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    totals.pop("last_tick", None)
    try:
        settings = event_assets.settings()
        lake = event_assets.lake()
        with Subscription(settings) as subscription:
            drained = drain(
                settings, subscription, lake, budget_seconds=settings.SENSOR_TICK_BUDGET_SECONDS
            )
    except (PubSubUnavailableError, SettingsError) as exc:
        return dg.SensorResult(skip_reason=dg.SkipReason(str(exc)), cursor=context.cursor)
    now = datetime.now(UTC)
    requests, waiting = merge_requests(context.instance, settings, now, pending_by_day(lake))
    tick = drained.summary()
    for name in ("pulled", "landed", "quarantined", "rounds"):
        totals[name] = totals.get(name, 0) + int(tick[name])
    totals["ticks"] = totals.get("ticks", 0) + 1
    line = f"tick {json.dumps(tick)}; runs requested {len(requests)}"
    if waiting:
        line += f"; waiting for partitions {', '.join(d.isoformat() for d in waiting)}"
    context.log.info(f"{line}; since start {json.dumps(totals)}")
    if drained.total.quarantine_reasons:
        reasons = json.dumps(drained.total.quarantine_reasons)
        context.log.warning(f"quarantined by reason: {reasons}")
    cursor = json.dumps({**totals, "last_tick": tick}, sort_keys=True)
    # Bad messages show on `events_quarantine` as they arrive, not only at the next health run.
    reported = (
        [
            dg.AssetMaterialization(
                asset_key=QUARANTINE_KEY,
                description=f"{drained.total.quarantined} messages quarantined by this tick",
                metadata=quarantine_report(lake, drained.total.quarantine_reasons),
            )
        ]
        if drained.total.quarantined
        else []
    )
    if not requests:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"no run needed: {json.dumps(tick)}"),
            cursor=cursor,
            asset_events=reported,
        )
    return dg.SensorResult(run_requests=requests, cursor=cursor, asset_events=reported)
