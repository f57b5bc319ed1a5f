"""Daily partitions of `events`, in UTC, ending with today's (end_offset=1).

By default Dagster's last daily partition is yesterday; events arrive today, so
today's partition must exist. Events dated outside the range are quarantined.
"""

import dagster as dg

from event_assets.settings import load_settings

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=load_settings().PARTITIONS_START_DATE.isoformat(), end_offset=1, timezone="UTC"
)
