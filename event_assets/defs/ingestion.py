"""The `events` asset and the sensor that feeds it: wiring over `event_assets.ingest`."""

import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import dagster as dg
from pydantic import Field

from event_assets.ingest import LandResult, merge_partition, pull_round
from event_assets.pubsub.client import PubSubUnavailableError, Subscription
from event_assets.settings import SettingsError
from event_assets.storage.lake import Lake
from event_assets.storage.landing import parse_batch_path, pending_batches

from .partitions import daily_partitions
from .resources import EventAssetsResource

OWNER = "team:data-platform"
BATCH_TAG = "event_assets/batch_id"


class EventsConfig(dg.Config):
    """Landing batches to merge; empty means every landing batch of the day (a backfill)."""

    batch_paths: list[str] = Field(default_factory=list)


@dg.asset(
    name="events",
    partitions_def=daily_partitions,
    group_name="ingestion",
    kinds={"deltalake", "polars", "gcp"},
    owners=[OWNER],
    retry_policy=dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL),
    description=(
        "CloudEvents from Pub/Sub, one row per unique event_id per day (Delta, partitioned by "
        "event_date). A run dedup-writes the landing batches named in its config; a run "
        "without them (a backfill) re-merges every landing batch of its day. Idempotent."
    ),
)
def events(
    context: dg.AssetExecutionContext, config: EventsConfig, event_assets: EventAssetsResource
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    settings = event_assets.settings()
    partition = date.fromisoformat(context.partition_key)
    merged = merge_partition(settings, event_assets.lake(), partition, config.batch_paths or None)
    context.log.info(
        f"{partition}: {merged.inserted} inserted, {merged.duplicates} duplicates skipped "
        f"from {merged.batches} landing batches in {merged.seconds}s"
    )
    return dg.MaterializeResult(
        metadata={
            "rows_inserted": merged.inserted,
            "duplicates_skipped": merged.duplicates,
            "rows_read": merged.rows_read,
            "table_version": merged.version,
            "files_added": merged.files_added,
            "bytes_added": merged.bytes_added,
            "seconds": merged.seconds,
            "landing_batches": merged.batches,
            "commit_attempts": merged.attempts,
            "duplicates_repaired": merged.repaired,
            "table_uri": dg.MetadataValue.path(merged.table_uri),
        }
    )


# Whole-table checks: they run on the health schedule, not after every day's merge.
TABLE_CHECKS = (
    dg.AssetCheckKey(events.key, "events_freshness"),
    dg.AssetCheckKey(events.key, "accounting"),
)

events_ingest_job = dg.define_asset_job(
    "events_ingest_job",
    # The per-partition checks run after every merge.
    selection=dg.AssetSelection.assets(events) - dg.AssetSelection.checks(*TABLE_CHECKS),
    description="Merge landing batches of one day into `events`, then check that day.",
)


def run_requests(landed: LandResult) -> list[dg.RunRequest]:
    """One run per touched partition, keyed by the landing batch so a retry never doubles."""
    requests = []
    for partition, paths in landed.by_partition().items():
        batch_ids = sorted({parse_batch_path(p)[1] for p in paths})
        requests.append(
            dg.RunRequest(
                partition_key=partition.isoformat(),
                run_key=f"{partition.isoformat()}:{'+'.join(batch_ids)}",
                run_config={"ops": {"events": {"config": {"batch_paths": paths}}}},
                tags={BATCH_TAG: ",".join(batch_ids)},
            )
        )
    return requests


def recovery_requests(lake: Lake, *, older_than: timedelta, now: datetime) -> list[dg.RunRequest]:
    """Runs for batches landed (and acked) long ago but never merged, e.g. after a crash."""
    cutoff = (now - older_than).strftime("%Y%m%dT%H%M%S")
    grouped: dict[date, list[str]] = defaultdict(list)
    for path in pending_batches(lake):
        partition, batch_id = parse_batch_path(path)
        if batch_id < cutoff:
            grouped[partition].append(path)
    return [
        dg.RunRequest(
            partition_key=partition.isoformat(),
            run_key=f"recover:{partition.isoformat()}:{'+'.join(sorted(paths))}",
            run_config={"ops": {"events": {"config": {"batch_paths": sorted(paths)}}}},
            tags={"event_assets/recovery": "true"},
        )
        for partition, paths in sorted(grouped.items())
    ]


@dg.sensor(
    name="pubsub_events_sensor",
    job=events_ingest_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Pulls a bounded round from the Pub/Sub subscription, lands good events and "
        "quarantines bad ones, acks only after that, and requests one `events` run per day."
    ),
)
def pubsub_events_sensor(
    context: dg.SensorEvaluationContext, event_assets: EventAssetsResource
) -> dg.SensorResult:
    now = datetime.now(UTC)
    totals: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    try:
        settings = event_assets.settings()
        lake = event_assets.lake()
        with Subscription(settings) as subscription:
            landed = pull_round(settings, subscription, lake)
    except (PubSubUnavailableError, SettingsError) as exc:
        return dg.SensorResult(skip_reason=dg.SkipReason(str(exc)), cursor=context.cursor)
    requests = run_requests(landed) + recovery_requests(
        lake, older_than=timedelta(seconds=settings.RECOVER_AFTER_SECONDS), now=now
    )
    tick = {"pulled": landed.pulled, "landed": landed.landed, "quarantined": landed.quarantined}
    for name, value in tick.items():
        totals[name] = totals.get(name, 0) + value
    totals["ticks"] = totals.get("ticks", 0) + 1
    context.log.info(f"tick {json.dumps(tick)}; since start {json.dumps(totals)}")
    if landed.quarantine_reasons:
        context.log.warning(f"quarantined by reason: {json.dumps(landed.quarantine_reasons)}")
    cursor = json.dumps(totals, sort_keys=True)
    if not requests:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"nothing to merge: {json.dumps(tick)}"), cursor=cursor
        )
    return dg.SensorResult(run_requests=requests, cursor=cursor)
