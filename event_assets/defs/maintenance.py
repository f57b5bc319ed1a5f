"""Scheduled upkeep of every table of the lake: compaction and vacuum."""

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from pydantic import Field

from event_assets.contracts import contract_target, violations_target
from event_assets.storage.deliveries import deliveries_target
from event_assets.storage.delta import DeltaTarget
from event_assets.storage.lake import Lake
from event_assets.storage.maintenance import (
    CompactResult,
    compact,
    recently_touched_partitions,
    vacuum,
)
from event_assets.storage.tables import events_target, quarantine_target

from .contracts import CONTRACTS
from .ingestion import events
from .metadata import md_table
from .resources import EventAssetsResource
from .sources import OWNER

COMPACT_FIELDS = ("files_before", "files_after", "bytes_before", "bytes_after")
VACUUM_FIELDS = ("files_before", "files_after", "bytes_before", "bytes_after", "files_deleted")


class CompactionConfig(dg.Config):
    """Days to compact in the day-partitioned tables; empty means those written in the last
    COMPACTION_LOOKBACK_HOURS. Tables without day partitions are compacted whole."""

    partitions: list[str] = Field(default_factory=list)


def lake_tables(lake: Lake) -> list[tuple[str, DeltaTarget]]:
    """Every Delta table of the lake, by the name the UI knows it by."""
    return [
        ("events", events_target(lake)),
        ("events_quarantine", quarantine_target(lake)),
        *((contract.name, contract_target(lake, contract)) for contract in CONTRACTS),
        ("contract_violations", violations_target(lake)),
        ("deliveries", deliveries_target(lake)),
    ]


def _by_table(results: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Totals over the tables, each table's figures under `<table>/`, and a summary table."""
    metadata: dict[str, Any] = {
        name: sum(getattr(r, name) for r in results.values()) for name in fields
    }
    for table, result in results.items():
        metadata.update({f"{table}/{name}": getattr(result, name) for name in fields})
    metadata["by_table"] = md_table(
        ("table", *fields), ((t, *(getattr(r, f) for f in fields)) for t, r in results.items())
    )
    return metadata


@dg.asset(
    name="events_compaction",
    deps=[events],
    group_name="maintenance",
    kinds={"deltalake"},
    owners=[OWNER],
    description=(
        "Rewrites the many small files of every table of the lake into few large ones: "
        "recently written days of `events` and of each contract table, and "
        "`events_quarantine` and `contract_violations` whole (optimize.compact, "
        "dataChange=false, so it never conflicts with ingestion; partitions already compact "
        "are left alone)."
    ),
)
def events_compaction(
    context: dg.AssetExecutionContext, config: CompactionConfig, event_assets: EventAssetsResource
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    settings = event_assets.settings()
    since = datetime.now(UTC) - timedelta(hours=settings.COMPACTION_LOOKBACK_HOURS)
    results: dict[str, CompactResult] = {}
    days: set[str] = set()
    for name, target in lake_tables(event_assets.lake()):
        if target.partition_by is None:
            partitions: list[str] = []
        else:
            partitions = config.partitions or recently_touched_partitions(target, since)
            days.update(partitions)
        results[name] = compact(target, partitions, max_attempts=settings.WRITE_MAX_ATTEMPTS)
    metadata = _by_table(results, COMPACT_FIELDS)
    context.log.info(
        f"compacted {len(results)} tables ({len(days)} days): files "
        f"{metadata['files_before']} -> {metadata['files_after']}"
    )
    return dg.MaterializeResult(
        metadata={
            "tables": len(results),
            "partitions": len(days),
            "partition_keys": ", ".join(sorted(days)) or "none",
            **metadata,
            "seconds": round(sum(r.seconds for r in results.values()), 3),
        }
    )


@dg.asset(
    name="events_vacuum",
    deps=[events_compaction],
    group_name="maintenance",
    kinds={"deltalake"},
    owners=[OWNER],
    description=(
        "For every table of the lake: deletes files no longer referenced by versions younger "
        "than VACUUM_RETENTION_HOURS (never below Delta's safe 168 h unless "
        "VACUUM_ALLOW_BELOW_DEFAULT), then writes a checkpoint and removes expired log entries."
    ),
)
def events_vacuum(
    context: dg.AssetExecutionContext, event_assets: EventAssetsResource
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    settings = event_assets.settings()
    lake = event_assets.lake()
    results = {
        name: vacuum(
            target,
            lake,
            retention_hours=settings.VACUUM_RETENTION_HOURS,
            allow_below_default=settings.VACUUM_ALLOW_BELOW_DEFAULT,
            max_attempts=settings.WRITE_MAX_ATTEMPTS,
        )
        for name, target in lake_tables(lake)
    }
    metadata = _by_table(results, VACUUM_FIELDS)
    context.log.info(f"vacuum deleted {metadata['files_deleted']} files in {len(results)} tables")
    return dg.MaterializeResult(
        metadata={
            "tables": len(results),
            **metadata,
            "retention_hours": settings.VACUUM_RETENTION_HOURS,
            "seconds": round(sum(r.seconds for r in results.values()), 3),
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
