"""Daily partitions of `events`, in UTC, ending with today's (end_offset=1).

By default Dagster's last daily partition is yesterday; events arrive today, so
today's partition must exist. Events dated before PARTITIONS_START_DATE, or later
than the clock plus FUTURE_SKEW_SECONDS, are quarantined; one dated tomorrow within
that allowance waits, landed, until its partition exists (the sensor asks for
runs of existing partitions only).
"""

import warnings

import dagster as dg

from event_assets.settings import load_settings

# Partitioned asset checks are "preview" in Dagster 1.13; they are exactly what a
# per-day dedup guarantee needs, and the warning would print on every code load.
# Every defs module imports this one first.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, module=r"(dagster|event_assets)\..*")

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=load_settings().PARTITIONS_START_DATE.isoformat(), end_offset=1, timezone="UTC"
)
