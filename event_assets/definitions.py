"""The one Definitions object of the `event_assets` code location."""

import dagster as dg

from event_assets.defs.checks import (
    all_checks,
    events_audit,
    events_health_job,
    events_health_schedule,
)
from event_assets.defs.contracts import (
    contract_assets,
    contract_checks_defs,
    contracts_automation_sensor,
)
from event_assets.defs.ingestion import events, events_ingest_job, pubsub_events_sensor
from event_assets.defs.maintenance import (
    events_compaction,
    events_compaction_job,
    events_compaction_schedule,
    events_vacuum,
    events_vacuum_job,
    events_vacuum_schedule,
)
from event_assets.defs.quarantine import events_quarantine
from event_assets.defs.resources import EventAssetsResource
from event_assets.defs.sources import PUBSUB_SUBSCRIPTION
from event_assets.observability import configure_observability
from event_assets.settings import load_settings

# Spans and metrics of every process that loads the code location (webserver, daemon,
# run workers) go to Logfire when a token is configured; local otherwise.
configure_observability(load_settings())

defs = dg.Definitions(
    assets=[
        PUBSUB_SUBSCRIPTION,
        events,
        events_quarantine,
        events_audit,
        events_compaction,
        events_vacuum,
        *contract_assets,
    ],
    asset_checks=[*all_checks, *contract_checks_defs],
    jobs=[events_ingest_job, events_compaction_job, events_vacuum_job, events_health_job],
    sensors=[pubsub_events_sensor, contracts_automation_sensor],
    schedules=[events_compaction_schedule, events_vacuum_schedule, events_health_schedule],
    resources={"event_assets": EventAssetsResource()},
    # Every run (contract automation and UI launches included) executes its steps in the run
    # worker's own process: a subprocess per step would import the code location again.
    executor=dg.in_process_executor,
)
