"""The dead-letter asset `events_quarantine` and its report, shared by the sensor (which
reports a materialization on every tick that quarantines) and the health schedule."""

from collections.abc import Mapping

import dagster as dg

from event_assets.events.models import ReasonCode
from event_assets.storage.delta import existing_table
from event_assets.storage.lake import Lake
from event_assets.storage.tables import quarantine_target, reason_counts

from .metadata import md_table
from .resources import EventAssetsResource
from .sources import OWNER, PUBSUB_SUBSCRIPTION

QUARANTINE_KEY = dg.AssetKey("events_quarantine")


def quarantine_report(
    lake: Lake, new: Mapping[str, int] | None = None
) -> dict[str, dg.MetadataValue | int]:
    """The quarantine table's rows by reason, every reason listed (zero included), and
    with `new` the counts a sensor tick just added."""
    table = existing_table(quarantine_target(lake))
    stored = reason_counts(table.to_pyarrow_table(columns=["reason_code"])) if table else {}
    counts = {code.value: stored.get(code.value, 0) for code in ReasonCode}
    metadata: dict[str, dg.MetadataValue | int] = {
        "dagster/row_count": sum(counts.values()),
        **{f"reason/{code}": n for code, n in counts.items()},
    }
    if new is None:
        metadata["by_reason"] = md_table(("reason", "rows"), counts.items())
    else:
        metadata["rows_added"] = sum(new.values())
        metadata["by_reason"] = md_table(
            ("reason", "rows", "new"), ((c, n, new.get(c, 0)) for c, n in counts.items())
        )
    metadata["table_uri"] = dg.MetadataValue.path(lake.quarantine_uri)
    return metadata


@dg.asset(
    name=QUARANTINE_KEY.to_user_string(),
    deps=[PUBSUB_SUBSCRIPTION],
    group_name="ingestion",
    kinds={"deltalake", "polars"},
    owners=[OWNER],
    description=(
        "The dead-letter table: every message that could not become an event, with its raw "
        "bytes and reason. The sensor writes its rows and reports a materialization (counts "
        "by reason) on every tick that quarantines; the health schedule re-counts it."
    ),
)
def events_quarantine(event_assets: EventAssetsResource) -> dg.MaterializeResult:  # type: ignore[type-arg]
    return dg.MaterializeResult(metadata=quarantine_report(event_assets.lake()))
