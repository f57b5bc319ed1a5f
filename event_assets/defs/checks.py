"""Asset checks on `events`, per partition: wiring over `event_assets.storage.checks`."""

import warnings
from datetime import UTC, datetime, timedelta

import dagster as dg

from event_assets.storage import checks
from event_assets.storage.tables import events_target, quarantine_target

from .ingestion import events
from .partitions import daily_partitions
from .resources import EventAssetsResource

# Partitioned asset checks are "preview" in Dagster 1.13; they are exactly what a
# per-day dedup guarantee needs, and the warning would print on every code load.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, module=r"dagster\..*")


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


@dg.asset_check(
    asset=events,
    name="event_id_unique",
    blocking=True,
    partitions_def=daily_partitions,
    description="No event_id occurs twice in the partition (the dedup guarantee).",
)
def event_id_unique(
    context: dg.AssetCheckExecutionContext, event_assets: EventAssetsResource
) -> dg.AssetCheckResult:
    target = events_target(event_assets.lake())
    return check_result(checks.unique_event_ids(target, context.partition_key))


@dg.asset_check(
    asset=events,
    name="required_columns_non_null",
    partitions_def=daily_partitions,
    description="Identity, time, message and data columns are never null.",
)
def required_columns_non_null(
    context: dg.AssetCheckExecutionContext, event_assets: EventAssetsResource
) -> dg.AssetCheckResult:
    target = events_target(event_assets.lake())
    return check_result(checks.required_columns_non_null(target, context.partition_key))


@dg.asset_check(
    asset=events,
    name="landing_reconciliation",
    partitions_def=daily_partitions,
    description=(
        "Every event landed for the day is in the table, and the table holds nothing that "
        "did not come through landing (landing unique ids = table rows)."
    ),
)
def landing_reconciliation(
    context: dg.AssetCheckExecutionContext, event_assets: EventAssetsResource
) -> dg.AssetCheckResult:
    lake = event_assets.lake()
    return check_result(
        checks.landing_reconciliation(events_target(lake), lake, context.partition_key)
    )


@dg.asset_check(
    asset=events,
    name="cross_partition_duplicates",
    partitions_def=daily_partitions,
    description=(
        "Warns when an event_id of this day also occurs the day before or after: the same "
        "plain-JSON event re-published across midnight (dated by publish time)."
    ),
)
def cross_partition_duplicates(
    context: dg.AssetCheckExecutionContext, event_assets: EventAssetsResource
) -> dg.AssetCheckResult:
    target = events_target(event_assets.lake())
    return check_result(
        checks.cross_partition_duplicates(target, context.partition_key),
        dg.AssetCheckSeverity.WARN,
    )


@dg.asset_check(
    asset=events,
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
    asset=events,
    name="accounting",
    description=(
        "published = inserted + duplicates + quarantined, from storage alone: every landing "
        "row and quarantine row is either a row of `events`, a skipped duplicate, a quarantined "
        "message or in flight; nothing merged is missing, nothing is doubled."
    ),
)
def accounting(event_assets: EventAssetsResource) -> dg.AssetCheckResult:
    # ERROR: with in-flight batches accounted for, a failure is never transient; it is
    # lost or doubled data (or a hand-edited table), which someone must look at.
    lake = event_assets.lake()
    return check_result(checks.accounting(lake, events_target(lake), quarantine_target(lake)))


partition_checks = [
    event_id_unique,
    required_columns_non_null,
    landing_reconciliation,
    cross_partition_duplicates,
]
all_checks = [*partition_checks, events_freshness, accounting]
