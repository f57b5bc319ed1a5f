"""One asset per event contract, downstream of `events`, with its checks: wiring only.

The contracts themselves (models, event types, validation, tables) are in
`event_assets.contracts`; this module turns each into a daily-partitioned asset
kept up to date by declarative automation, plus two checks per partition.
"""

import dagster as dg

from event_assets.contracts import (
    Contract,
    ContractSchemaError,
    apply_contract,
    discover,
)
from event_assets.contracts import checks as contract_checks
from event_assets.settings import load_settings

from .checks import check_result
from .ingestion import events
from .partitions import daily_partitions
from .resources import EventAssetsResource
from .sources import OWNER

GROUP = "contracts"

# At most one refresh of a contract day per this cron's ticks (CONTRACT_REFRESH_MINUTES): a
# contract run re-validates its whole day, and under a steady trickle `events` changes every
# tick, so unthrottled eager runs would take most of a core from the merges on a big day.
CONTRACT_REFRESH_CRON = f"*/{load_settings().CONTRACT_REFRESH_MINUTES} * * * *"

# `eager()` restricted to the latest day would miss late events and backfills of older
# days of `events`; without that restriction a contract day is re-materialized whenever
# its `events` day is updated (and not in progress), whatever the date, at the first
# refresh tick after the update.
_REFRESH_DUE: dg.AutomationCondition[dg.AssetKey] = dg.AutomationCondition.cron_tick_passed(
    CONTRACT_REFRESH_CRON, cron_timezone="UTC"
)
CONTRACT_AUTOMATION = (
    dg.AutomationCondition.eager().without(dg.AutomationCondition.in_latest_time_window())
    & _REFRESH_DUE.since_last_handled()  # type: ignore[misc, operator]  # typed for checks
).with_label(f"eager, at most once per {CONTRACT_REFRESH_CRON}")

_ARROW_TO_LABEL = {"timestamp[us, tz=UTC]": "timestamp", "date32[day]": "date"}


def _column_schema(contract: Contract) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name,
                type=_ARROW_TO_LABEL.get(str(f.type), str(f.type)),
                constraints=dg.TableColumnConstraints(nullable=f.nullable),
            )
            for f in contract.schema
        ]
    )


def contract_asset(contract: Contract) -> dg.AssetsDefinition:
    """The asset `contract.name`: the day's events of its types, validated and typed."""
    types = ", ".join(f"`{t}`" for t in contract.event_types)

    @dg.asset(
        name=contract.name,
        partitions_def=daily_partitions,
        deps=[events],
        group_name=GROUP,
        kinds={"deltalake", "pydantic"},
        owners=[OWNER],
        automation_condition=CONTRACT_AUTOMATION,
        description=(
            f"{contract.description} Events of type {types} validated with "
            f"`{contract.model.__name__}`, as typed columns in `contracts/{contract.name}`; "
            "invalid ones go to `contract_violations`. Replaces its day on every run."
        ).strip(),
        metadata={
            "event_types": ", ".join(contract.event_types),
            "model": f"{contract.model.__module__}.{contract.model.__qualname__}",
            "json_schema": dg.MetadataValue.json(contract.json_schema()),
            "max_violation_rate": contract.max_violation_rate,
            "dagster/column_schema": _column_schema(contract),
        },
    )
    def _contract(
        context: dg.AssetExecutionContext, event_assets: EventAssetsResource
    ) -> dg.MaterializeResult:  # type: ignore[type-arg]
        settings = event_assets.settings()
        try:
            result = apply_contract(
                event_assets.lake(),
                contract,
                context.partition_key,
                type_attribute=settings.CONTRACT_TYPE_ATTRIBUTE,
                max_attempts=settings.WRITE_MAX_ATTEMPTS,
            )
        except ContractSchemaError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        context.log.info(
            f"{contract.name} {result.partition}: {result.rows} rows, {result.violations} "
            f"violations of {result.events} events in {result.seconds}s"
            + (
                f"; columns added: {', '.join(result.added_columns)}"
                if result.added_columns
                else ""
            )
        )
        return dg.MaterializeResult(
            metadata={
                "rows": result.rows,
                "violations": result.violations,
                "events": result.events,
                "violation_rate": round(result.violation_rate, 6),
                "columns": len(result.columns),
                "column_names": ", ".join(result.columns),
                "columns_added": ", ".join(result.added_columns) or "none",
                "seconds": result.seconds,
                "table_version": result.version,
                "table_uri": dg.MetadataValue.path(result.table_uri),
            }
        )

    return _contract


def contract_checks_for(
    contract: Contract, asset: dg.AssetsDefinition
) -> list[dg.AssetChecksDefinition]:
    """`violation_rate` (WARN) and `events_reconciliation` (ERROR), per partition."""

    @dg.asset_check(
        asset=asset,
        name="violation_rate",
        partitions_def=daily_partitions,
        description=(
            f"At most {contract.max_violation_rate:.2%} of the day's events of the contract's "
            "types fail validation."
        ),
    )
    def _violation_rate(
        context: dg.AssetCheckExecutionContext, event_assets: EventAssetsResource
    ) -> dg.AssetCheckResult:
        outcome = contract_checks.violation_rate(
            event_assets.lake(), contract, context.partition_key
        )
        return check_result(outcome, dg.AssetCheckSeverity.WARN)

    @dg.asset_check(
        asset=asset,
        name="events_reconciliation",
        partitions_def=daily_partitions,
        description=(
            "Typed rows + violations = the day's events of the contract's types, id for id "
            "(nothing dropped, nothing doubled)."
        ),
    )
    def _reconciliation(
        context: dg.AssetCheckExecutionContext, event_assets: EventAssetsResource
    ) -> dg.AssetCheckResult:
        outcome = contract_checks.reconciliation(
            event_assets.lake(),
            contract,
            context.partition_key,
            type_attribute=event_assets.settings().CONTRACT_TYPE_ATTRIBUTE,
        )
        return check_result(outcome)

    return [_violation_rate, _reconciliation]


def build_contract_defs(
    contracts: tuple[Contract, ...],
) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    """Assets and checks of the given contracts."""
    assets: list[dg.AssetsDefinition] = []
    checks: list[dg.AssetChecksDefinition] = []
    for contract in contracts:
        asset = contract_asset(contract)
        assets.append(asset)
        checks.extend(contract_checks_for(contract, asset))
    return assets, checks


CONTRACTS = discover()
contract_assets, contract_checks_defs = build_contract_defs(CONTRACTS)

contracts_automation_sensor = dg.AutomationConditionSensorDefinition(
    name="contracts_automation_sensor",
    target=dg.AssetSelection.groups(GROUP),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Declarative automation of the contract assets: re-materializes a contract's day "
        "when that day of `events` was updated."
    ),
)
