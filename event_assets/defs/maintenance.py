"""Scheduled upkeep of the table: compaction and vacuum."""

from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from event_assets.storage.maintenance import compact, recently_touched_partitions, vacuum
from event_assets.storage.tables import events_target

from .ingestion import events
from .resources import EventAssetsResource
from .sources import OWNER


class CompactionConfig(dg.Config):
    """Partitions to compact; empty means those written in the last COMPACTION_LOOKBACK_HOURS."""

    partitions: list[str] = Field(default_factory=list)


@dg.asset(
    name="events_compaction",
    deps=[events],
    group_name="maintenance",
    kinds={"deltalake"},
    owners=[OWNER],
    description=(
        "Rewrites the many small files of recently written partitions into few large ones "
        "(optimize.compact, dataChange=false, so it never conflicts with ingestion)."
    ),
)
def events_compaction(
    context: dg.AssetExecutionContext, config: CompactionConfig, event_assets: EventAssetsResource
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    settings = event_assets.settings()
    target = events_target(event_assets.lake())
    since = datetime.now(UTC) - timedelta(hours=settings.COMPACTION_LOOKBACK_HOURS)
    partitions = config.partitions or recently_touched_partitions(target, since)
    result = compact(target, partitions, max_attempts=settings.WRITE_MAX_ATTEMPTS)
    context.log.info(
        f"compacted {len(partitions)} partitions: files {result.files_before} -> "
        f"{result.files_after}"
    )
    return dg.MaterializeResult(
        metadata={
            "partitions": len(partitions),
            "partition_keys": ", ".join(partitions) or "none",
            "files_before": result.files_before,
            "files_after": result.files_after,
            "bytes_before": result.bytes_before,
            "bytes_after": result.bytes_after,
            "files_added": result.files_added,
            "files_removed": result.files_removed,
            "table_version": result.version,
            "seconds": result.seconds,
        }
    )


@dg.asset(
    name="events_vacuum",
    deps=[events_compaction],
    group_name="maintenance",
    kinds={"deltalake"},
    owners=[OWNER],
    description=(
        "Deletes files no longer referenced by versions younger than VACUUM_RETENTION_HOURS "
        "(never below Delta's safe 168 h unless VACUUM_ALLOW_BELOW_DEFAULT), then writes a "
        "checkpoint and removes expired log entries."
    ),
)
def events_vacuum(
    context: dg.AssetExecutionContext, event_assets: EventAssetsResource
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    settings = event_assets.settings()
    lake = event_assets.lake()
    result = vacuum(
        events_target(lake),
        lake,
        retention_hours=settings.VACUUM_RETENTION_HOURS,
        allow_below_default=settings.VACUUM_ALLOW_BELOW_DEFAULT,
        max_attempts=settings.WRITE_MAX_ATTEMPTS,
    )
    context.log.info(f"vacuum deleted {result.files_deleted} files")
    return dg.MaterializeResult(
        metadata={
            "files_before": result.files_before,
            "files_after": result.files_after,
            "bytes_before": result.bytes_before,
            "bytes_after": result.bytes_after,
            "files_deleted": result.files_deleted,
            "retention_hours": result.retention_hours,
            "checkpoint_version": result.checkpoint_version,
            "seconds": result.seconds,
        }
    )


events_compaction_job = dg.define_asset_job(
    "events_compaction_job", selection=dg.AssetSelection.assets(events_compaction)
)
events_vacuum_job = dg.define_asset_job(
    "events_vacuum_job", selection=dg.AssetSelection.assets(events_vacuum)
)
events_compaction_schedule = dg.ScheduleDefinition(
    name="events_compaction_schedule",
    job=events_compaction_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: compact partitions written in the last COMPACTION_LOOKBACK_HOURS.",
)
events_vacuum_schedule = dg.ScheduleDefinition(
    name="events_vacuum_schedule",
    job=events_vacuum_job,
    cron_schedule="30 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily: vacuum, checkpoint, expired-log cleanup.",
)
