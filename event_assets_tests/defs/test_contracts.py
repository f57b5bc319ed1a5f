"""Contract assets in Dagster: publish -> sensor -> `events` runs -> automation -> contract runs."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg
import pytest
from deltalake import DeltaTable
from pydantic import BaseModel

from event_assets.contracts import Contract, contract_table_uri
from event_assets.contracts.catalog.order_created_v1 import OrderCreated
from event_assets.definitions import build_defs
from event_assets.defs.contracts import CONTRACTS, contract_asset
from event_assets.defs.resources import EventAssetsResource
from event_assets.ingest import lake_of
from event_assets.pubsub.client import publish
from event_assets.settings import Settings, load_settings

from ..contracts.messages import contract_messages
from .conftest import run_partition, sensor_tick

if TYPE_CHECKING:
    from dagster._core.definitions.asset_daemon_cursor import AssetDaemonCursor

# evaluate_automation_conditions selects with a beta parameter of its own.
pytestmark = pytest.mark.filterwarnings("ignore::dagster.BetaWarning")

BY_NAME = {c.name: c for c in CONTRACTS}
NAMES = sorted(BY_NAME)
Checks = dict[tuple[str, str], dg.AssetCheckEvaluation]


def _ingest(instance: dg.DagsterInstance, cursor: str | None = None) -> str | None:
    """One sensor tick and the `events` runs it requests, as the daemon would launch them."""
    tick = sensor_tick(instance, cursor)
    for request in tick.run_requests or []:
        assert run_partition(
            instance, request.partition_key or "", dict(request.run_config)
        ).success
    return tick.cursor


def _materialize(
    instance: dg.DagsterInstance, partition: str, names: list[str]
) -> tuple[dict[str, dict[str, object]], Checks]:
    """One run of contract assets for a partition, as an automation run request would be."""
    job = build_defs().resolve_implicit_global_asset_job_def()
    run = job.execute_in_process(
        asset_selection=[dg.AssetKey(n) for n in names], partition_key=partition, instance=instance
    )
    assert run.success
    metadata: dict[str, dict[str, object]] = {
        n: {k: v.value for k, v in run.asset_materializations_for_node(n)[0].metadata.items()}
        for n in names
    }
    checks: Checks = {}
    for event in run.all_events:
        data = event.event_specific_data
        if isinstance(data, dg.AssetCheckEvaluation):
            checks[(data.asset_key.to_user_string(), data.check_name)] = data
    return metadata, checks


def _requested(result: dg.EvaluateAutomationConditionsResult) -> dict[str, list[str]]:
    by_partition: dict[str, list[str]] = defaultdict(list)
    for name in NAMES:
        for partition in result.get_requested_partitions(dg.AssetKey(name)):
            by_partition[str(partition)].append(name)
    return dict(by_partition)


REFRESH = timedelta(minutes=load_settings().CONTRACT_REFRESH_MINUTES)  # the cron's period


def _after_refresh_tick(now: datetime) -> datetime:
    """A second after the next refresh tick (every REFRESH, on the minute)."""
    minutes = int(REFRESH.total_seconds() // 60)
    tick = now.replace(second=0, microsecond=0) + timedelta(minutes=minutes - now.minute % minutes)
    return tick + timedelta(seconds=1)


def _evaluate(
    instance: dg.DagsterInstance, at: datetime, cursor: AssetDaemonCursor | None
) -> dg.EvaluateAutomationConditionsResult:
    return dg.evaluate_automation_conditions(
        defs=build_defs(), instance=instance, evaluation_time=at, cursor=cursor
    )


def test_events_flow_into_contract_assets_automatically(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    # The automation sensor has been ticking before any event arrived. Evaluations run on
    # a clock of their own, from just after a refresh tick (CONTRACT_REFRESH_CRON).
    start = _after_refresh_tick(datetime.now(UTC))
    idle = _evaluate(instance, start, None)
    assert idle.total_requested == 0
    messages = contract_messages()
    publish(settings, messages.messages)
    cursor = _ingest(instance)

    # The update waits for the next refresh tick, then every updated day is requested.
    throttled = _evaluate(instance, start + timedelta(seconds=30), idle.cursor)
    assert throttled.total_requested == 0
    updated = _evaluate(instance, start + REFRESH + timedelta(seconds=1), throttled.cursor)
    requested = _requested(updated)
    days = sorted({day for _, day in messages.expected})
    assert sorted(requested) == days
    assert all(sorted(names) == NAMES for names in requested.values())

    for day, names in sorted(requested.items()):
        metadata, checks = _materialize(instance, day, names)
        for name in names:
            rows, violations = messages.expected.get((name, day), (0, 0))
            assert (metadata[name]["rows"], metadata[name]["violations"]) == (rows, violations)
            assert metadata[name]["events"] == rows + violations
            reconciled = checks[(name, "events_reconciliation")]
            assert reconciled.passed, reconciled.description
            rate = checks[(name, "violation_rate")]
            assert rate.passed == (violations == 0), rate.description
            assert rate.severity == dg.AssetCheckSeverity.WARN

    # Nothing changed upstream: nothing to do.
    settled = _evaluate(instance, start + REFRESH + timedelta(seconds=30), updated.cursor)
    assert settled.total_requested == 0

    # Re-materializing a day is idempotent.
    today = datetime.now(UTC).date().isoformat()
    table = DeltaTable(contract_table_uri(lake_of(settings), BY_NAME["person_v1"]))
    rows_before = table.to_pyarrow_table().num_rows
    again, _ = _materialize(instance, today, ["person_v1"])
    assert again["person_v1"]["rows"] == messages.expected[("person_v1", today)][0]
    table.update_incremental()
    assert table.to_pyarrow_table().num_rows == rows_before
    ticked = _evaluate(instance, start + 2 * REFRESH + timedelta(seconds=1), settled.cursor)
    assert ticked.total_requested == 0  # a manual run is not a reason for another

    # A new event on today's `events` partition brings today's contract days up to date.
    late = (b'{"name": "Late", "lastname": "Comer"}', {"event_type": "com.example.person.v1"})
    publish(settings, [late])
    _ingest(instance, cursor)
    refreshed = _evaluate(instance, start + 3 * REFRESH + timedelta(seconds=1), ticked.cursor)
    assert _requested(refreshed) == {today: NAMES}
    metadata, _ = _materialize(instance, today, ["person_v1"])
    assert metadata["person_v1"]["rows"] == messages.expected[("person_v1", today)][0] + 1


class OrderCreatedWithCoupon(OrderCreated):
    coupon: str | None = None


class OrderTotalAsText(BaseModel):
    order_id: str
    customer_id: str
    items: list[dict[str, object]]
    total_cents: str
    currency: str


def test_schema_evolves_and_a_breaking_change_fails_the_run_clearly(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    publish(settings, contract_messages().messages)
    _ingest(instance)
    today = datetime.now(UTC).date().isoformat()
    orders = BY_NAME["order_created_v1"]
    resources = {"event_assets": EventAssetsResource()}

    def run(model: type[BaseModel]) -> dg.ExecuteInProcessResult:
        contract = Contract(name=orders.name, model=model, event_types=orders.event_types)
        return dg.materialize(
            [contract_asset(contract)],
            partition_key=today,
            instance=instance,
            resources=resources,
            raise_on_error=False,
        )

    assert run(OrderCreated).success
    evolved = run(OrderCreatedWithCoupon)
    assert evolved.success
    metadata = evolved.asset_materializations_for_node(orders.name)[0].metadata
    assert metadata["columns_added"].value == "coupon"
    assert "coupon" in str(metadata["column_names"].value)

    broken = run(OrderTotalAsText)
    assert not broken.success
    (failure,) = [e for e in broken.all_events if e.is_step_failure]
    data = failure.step_failure_data
    assert data is not None
    assert data.user_failure_data is not None
    message = data.user_failure_data.description or ""
    assert "'total_cents' is int64 in the table but string in the model" in message
    assert "new contract version" in message
    assert "order_created_v2" in message
