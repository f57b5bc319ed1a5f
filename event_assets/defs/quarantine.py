"""The dead-letter asset `events_quarantine` and its report, shared by the sensor (which
reports a materialization on every tick that quarantines) and the health schedule."""

from collections.abc import Mapping

import dagster as dg
import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from event_assets.events.decode import ReasonCode
from event_assets.storage.lake import Lake

from .resources import EventAssetsResource
from .sources import OWNER, PUBSUB_SUBSCRIPTION

QUARANTINE_KEY = dg.AssetKey("events_quarantine")


def quarantine_report(
    lake: Lake, new: Mapping[str, int] | None = None
) -> dict[str, dg.MetadataValue | int]:
    """The quarantine table's rows by reason, every reason listed (zero included), and
    with `new` the counts a sensor tick just added."""
    try:
        table = DeltaTable(lake.quarantine_uri, storage_options=lake.storage_options or None)
        reasons = table.to_pyarrow_table(columns=["reason_code"])["reason_code"]
    except TableNotFoundError:
        reasons = None
    counts = dict.fromkeys((code.value for code in ReasonCode), 0)
    if reasons is not None and len(reasons):
        tallied = pc.value_counts(reasons)
        for code, n in zip(
            tallied.field("values").to_pylist(), tallied.field("counts").to_pylist(), strict=True
        ):
            counts[code] = n
    rows = "\n".join(
        f"| {code} | {n} |" + (f" {new.get(code, 0)} |" if new is not None else "")
        for code, n in counts.items()
    )
    header = "| reason | rows |" + (" new |" if new is not None else "")
    rule = "| --- | --- |" + (" --- |" if new is not None else "")
    metadata: dict[str, dg.MetadataValue | int] = {
        "dagster/row_count": sum(counts.values()),
        **{f"reason/{code}": n for code, n in counts.items()},
    }
    if new is not None:
        metadata["rows_added"] = sum(new.values())
    metadata["by_reason"] = dg.MetadataValue.md(f"{header}\n{rule}\n{rows}")
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
