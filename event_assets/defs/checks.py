"""The scheduled whole-table audit of `events`: wiring over `event_assets.storage.checks`.

The per-merge checks are reported by the `events` asset itself (its check_specs), from
what each merge read and wrote. The checks of whole days and of the whole table belong
to `events_audit`, an asset of their own: the UI runs every check of an asset with each
materialization of one of its partitions, so on `events` a backfill of one day would
re-audit the whole table.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from event_assets.storage import checks
from event_assets.storage.landing import pending_by_day
from event_assets.storage.maintenance import recently_touched_partitions, table_file_stats
from event_assets.storage.tables import events_target, quarantine_target

from .ingestion import events
from .quarantine import events_quarantine
from .resources import EventAssetsResource
from .sources import OWNER


def check_result(
    outcome: checks.CheckOutcome,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    """A domain check outcome as Dagster's result (shared by the events and contract checks)."""
    return dg.AssetCheckResult(
        passed=outcome.passed,
        severity=severity,
        description=outcome.description,
        metadata=dict(outcome.metadata),
    )


AUDIT_LOOKBACK = timedelta(hours=2)


@dg.asset(
    name="events_audit",
    deps=[events, events_quarantine],
    group_name="ingestion",
    kinds={"deltalake"},
    owners=[OWNER],
    description=(
        "The health schedule's audit of `events` as a whole: table totals here, and its "
        "checks over recent days, freshness and accounting (delivered = inserted + "
        "duplicates + quarantined + in flight)."
    ),
)
def events_audit(event_assets: EventAssetsResource) -> dg.MaterializeResult:  # type: ignore[type-arg]
    lake = event_assets.lake()
    stats = table_file_stats(events_target(lake))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stats.rows,
            "files": stats.files,
            "table_bytes": stats.bytes,
            "table_uri": dg.MetadataValue.path(lake.events_uri),
        }
    )


@dg.asset_check(
    asset=events_audit,
    name="recent_days_audit",
    description=(
        "Whole-day audit of today, yesterday, every day written in the last 2 hours and "
        "every day with pending batches: "
        "no event_id twice in a day, no nulls in required columns, every id of a merged "
        "landing batch in the table (pending ones count as in flight until "
        "PENDING_STUCK_MINUTES), no table id that was never landed. The per-merge checks "
        "verify what each run merged; this re-reads the days, on the health schedule."
    ),
)
def recent_days_audit(event_assets: EventAssetsResource) -> dg.AssetCheckResult:
    settings = event_assets.settings()
    lake = event_assets.lake()
    target = events_target(lake)
    now = datetime.now(UTC)
    days = sorted(
        {now.date().isoformat(), (now.date() - timedelta(days=1)).isoformat()}
        | set(recently_touched_partitions(target, now - AUDIT_LOOKBACK))
        | {d.isoformat() for d in pending_by_day(lake)}
    )
    failed: list[str] = []
    in_flight = 0
    metadata: dict[str, int | str] = {"days": len(days)}
    for day in days:
        outcomes = {
            "unique": checks.unique_event_ids(target, day),
            "non_null": checks.required_columns_non_null(target, day),
            "landing": checks.landing_reconciliation(
                target,
                lake,
                day,
                now=now,
                stuck_after=timedelta(minutes=settings.PENDING_STUCK_MINUTES),
                window_days=settings.DEDUP_WINDOW_DAYS,
            ),
        }
        failed.extend(f"{day} {o.description}" for o in outcomes.values() if not o.passed)
        metadata[f"{day}/rows"] = int(outcomes["unique"].metadata.get("rows", 0))
        day_in_flight = int(outcomes["landing"].metadata.get("in_flight", 0))
        metadata[f"{day}/in_flight"] = day_in_flight
        in_flight += day_in_flight
    outcome = checks.CheckOutcome(
        passed=not failed,
        description="; ".join(failed)
        if failed
        else f"{len(days)} days audited, all consistent; {in_flight} ids in flight",
        metadata={**metadata, "failed": len(failed)},
    )
    return check_result(outcome)


@dg.asset_check(
    asset=events_audit,
    name="events_freshness",
    description="Something landed within FRESHNESS_MAX_LAG_MINUTES (newest ingested_at).",
)
def events_freshness(event_assets: EventAssetsResource) -> dg.AssetCheckResult:
    settings = event_assets.settings()
    outcome = checks.freshness(
        events_target(event_assets.lake()),
        datetime.now(UTC),
        timedelta(minutes=settings.FRESHNESS_MAX_LAG_MINUTES),
    )
    return check_result(outcome, dg.AssetCheckSeverity.WARN)


@dg.asset_check(
    asset=events_audit,
    name="accounting",
    description=(
        "delivered = inserted + duplicates + quarantined + in flight, from the receipts the "
        "rounds wrote before acking and the merges after committing (`deliveries`): fails "
        "when a receipted batch is neither merged nor pending (lost), when a day holds rows "
        "nobody delivered, or when anything is doubled."
    ),
)
def accounting(event_assets: EventAssetsResource) -> dg.AssetCheckResult:
    # ERROR: with in-flight batches accounted for, a failure is never transient; it is
    # lost or doubled data (or a hand-edited table), which someone must look at.
    lake = event_assets.lake()
    return check_result(checks.accounting(lake, events_target(lake), quarantine_target(lake)))


all_checks = [recent_days_audit, events_freshness, accounting]

events_health_job = dg.define_asset_job(
    "events_health_job",
    selection=dg.AssetSelection.assets(events_quarantine, events_audit),
    description="Quarantine report, table totals, and the audit, freshness and accounting checks.",
)
events_health_schedule = dg.ScheduleDefinition(
    name="events_health_schedule",
    job=events_health_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 15 minutes: quarantine counts, table totals, audit, freshness, accounting.",
)
