"""Daily partitions of `events`, in UTC, ending with today's (end_offset=1).

By default Dagster's last daily partition is yesterday; events arrive today, so
today's partition must exist. Events dated before PARTITIONS_START_DATE, or later
than the clock plus FUTURE_SKEW_SECONDS, are quarantined; one dated tomorrow within
that allowance waits, landed, until its partition exists (the sensor asks for
runs of existing partitions only).
"""

import warnings

import dagster as dg

from event_assets.settings import Settings, SettingsError, load_settings

# Partitioned asset checks are "preview" in Dagster 1.13; they are exactly what a
# per-day dedup guarantee needs, and the warning would print on every code load.
# Every defs module imports this one first.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, module=r"(dagster|event_assets)\..*")


def _start_date() -> str:
    """PARTITIONS_START_DATE; never raises at import: with any invalid setting the default
    stands in, and `event_assets.definitions.defs` reports the error when Dagster loads
    the location (importing a module for tooling must not fail on the environment)."""
    try:
        return load_settings().PARTITIONS_START_DATE.isoformat()
    except SettingsError:
        return Settings.model_construct().PARTITIONS_START_DATE.isoformat()


daily_partitions = dg.DailyPartitionsDefinition(
    start_date=_start_date(), end_offset=1, timezone="UTC"
)
