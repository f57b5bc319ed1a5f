"""Apply a contract to one day of `events`: typed rows, violations, both replaced per day.

`apply_contract` reads the partition's events of the contract's types (only the
columns it needs, the partition named literally), validates each `data` with
the model, and replaces the day in two tables:

- `{LAKE_URI}/contracts/<name>`: the valid events as typed columns plus
  `event_id`, `event_time`, `event_date` (partitioned by `event_date`);
- `{LAKE_URI}/contract_violations`: the invalid ones with pydantic's errors as
  JSON and the raw data (partitioned by `contract`, `event_date`).

Each write is an overwrite with a predicate naming the partition, so re-running
a day gives the same rows, and days (and contracts) never conflict. Before
writing, the model's schema is compared with the table's: a new optional field
is added by a schema merge; a breaking change stops with `ContractSchemaError`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, write_deltalake
from pydantic import BaseModel, ValidationError

from event_assets.events.identity import canonical_json
from event_assets.events.schema import UTC_MICROS
from event_assets.storage.delta import (
    OPERATION_KEY,
    DeltaTarget,
    commit_retries,
    create_table,
    load_table,
    sql_literal,
)
from event_assets.storage.lake import Lake

from .arrow import SYSTEM_COLUMNS, conform, plan_schema, rows_to_table
from .contract import Contract, ContractError

CONTRACTS_DIR = "contracts"
VIOLATIONS_TABLE = "contract_violations"

VIOLATIONS_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("contract", pa.string(), nullable=False),
        pa.field("event_date", pa.date32(), nullable=False),
        pa.field("event_time", UTC_MICROS, nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("errors", pa.string(), nullable=False),
        pa.field("data", pa.string(), nullable=False),
        pa.field("checked_at", UTC_MICROS, nullable=False),
    ]
)
VIOLATIONS_PARTITION_BY = ["contract", "event_date"]
_EVENT_COLUMNS = ["event_id", "event_time", "event_date", "ce_type", "attributes", "data"]


class ContractSchemaError(ContractError):
    """The model no longer fits the rows already in its table; a new version is needed."""


def contract_table_uri(lake: Lake, contract: Contract) -> str:
    return lake.uri(CONTRACTS_DIR, contract.name)


def violations_uri(lake: Lake) -> str:
    return lake.uri(VIOLATIONS_TABLE)


def contract_target(lake: Lake, contract: Contract) -> DeltaTarget:
    """The contract's table for maintenance (compaction per day, vacuum)."""
    return DeltaTarget(
        uri=contract_table_uri(lake, contract),
        schema=contract.schema,
        key="event_id",
        partition_by="event_date",
        storage_options=lake.storage_options,
        log_upkeep=lake.can_delete,
    )


def violations_target(lake: Lake) -> DeltaTarget:
    """`contract_violations` for maintenance. It is partitioned by contract and day, so it
    is compacted whole: optimize rewrites only partitions that have several small files."""
    return DeltaTarget(
        uri=violations_uri(lake),
        schema=VIOLATIONS_SCHEMA,
        key="event_id",
        storage_options=lake.storage_options,
        log_upkeep=lake.can_delete,
    )


@dataclass(frozen=True)
class ContractResult:
    """One contract applied to one day."""

    contract: str
    partition: str
    events: int
    rows: int
    violations: int
    columns: tuple[str, ...]
    added_columns: tuple[str, ...]
    version: int
    seconds: float
    table_uri: str

    @property
    def violation_rate(self) -> float:
        return self.violations / self.events if self.events else 0.0


def read_events_of(
    lake: Lake, event_types: tuple[str, ...], partition: str, type_attribute: str
) -> pa.Table:
    """The day's events whose type is one of `event_types`.

    Columns: `event_id`, `event_time`, `event_date`, `event_type`, `data`. The type
    is the CloudEvent `type`, else (plain JSON) the Pub/Sub attribute `type_attribute`.
    Only the needed columns of the one partition are read; plain-JSON rows are
    narrowed by a substring filter on `attributes` before their JSON is parsed.
    """
    empty = pa.table(
        {
            "event_id": pa.array([], pa.string()),
            "event_time": pa.array([], UTC_MICROS),
            "event_date": pa.array([], pa.date32()),
            "event_type": pa.array([], pa.string()),
            "data": pa.array([], pa.string()),
        }
    )
    dt = load_table(lake.events_uri, lake.storage_options)
    if dt is None:
        return empty
    wanted = pa.array(list(event_types), pa.string())
    plain_json_candidate = pc.field("ce_type").is_null() & pc.match_substring(
        pc.field("attributes"), json.dumps(type_attribute)
    )
    dataset = dt.to_pyarrow_dataset(file_pruning_predicate=[("event_date", "=", partition)])
    table = dataset.to_table(
        columns=_EVENT_COLUMNS,
        filter=pc.field("ce_type").isin(wanted) | plain_json_candidate,
    )
    if table.num_rows == 0:
        return empty
    types = table["ce_type"].to_pylist()
    for i, (ce_type, attributes) in enumerate(
        zip(types, table["attributes"].to_pylist(), strict=True)
    ):
        if ce_type is None:
            value = json.loads(attributes).get(type_attribute)
            types[i] = value if isinstance(value, str) else None
    event_type = pa.array(types, pa.string())
    table = table.drop_columns(["ce_type", "attributes"]).append_column("event_type", event_type)
    table = table.filter(pc.is_in(event_type, value_set=wanted))
    return table.select(empty.column_names).cast(empty.schema)


def validate(contract: Contract, events: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(typed rows, violations) of `events` (as `read_events_of` returns them)."""
    valid_at: list[int] = []
    instances: list[BaseModel] = []
    invalid_at: list[int] = []
    errors: list[str] = []
    for i, data in enumerate(events["data"].to_pylist()):
        try:
            instances.append(contract.model.model_validate_json(data))
            valid_at.append(i)
        except ValidationError as exc:
            invalid_at.append(i)
            errors.append(
                canonical_json(
                    exc.errors(include_url=False, include_context=False, include_input=False)
                )
            )
    rows = rows_to_table(
        contract.schema,
        contract.model,
        events.take(pa.array(valid_at, pa.int64())).select(list(SYSTEM_COLUMNS)),
        instances,
    )
    bad = events.take(pa.array(invalid_at, pa.int64()))
    n = bad.num_rows
    violations = pa.table(
        {
            "event_id": bad["event_id"],
            "contract": pa.array([contract.name] * n, pa.string()),
            "event_date": bad["event_date"],
            "event_time": bad["event_time"],
            "event_type": bad["event_type"],
            "errors": pa.array(errors, pa.string()),
            "data": bad["data"],
            "checked_at": pa.array([datetime.now(UTC)] * n, UTC_MICROS),
        }
    ).cast(VIOLATIONS_SCHEMA)
    return rows, violations


def _write_rows(
    lake: Lake, contract: Contract, rows: pa.Table, partition: str
) -> tuple[tuple[str, ...], tuple[str, ...], int]:
    """Replace the day in the contract table; (columns, added columns, version)."""
    uri = contract_table_uri(lake, contract)
    dt = create_table(uri, contract.schema, ["event_date"], lake.storage_options)
    plan = plan_schema(pa.schema(dt.schema().to_arrow()), contract.schema)
    if plan.problems:
        raise ContractSchemaError(
            f"contract {contract.name}: the model no longer fits its table {uri}: "
            + "; ".join(plan.problems)
            + ". Rows already written cannot change shape: keep this contract's model as it "
            f"was and add a new contract version (a new module, e.g. {_next_version(contract)}, "
            "with its own name and table), then backfill it."
        )
    write_deltalake(
        dt,
        conform(rows, plan.write_schema),
        mode="overwrite",
        predicate=f"event_date = {sql_literal(partition)}",
        partition_by=["event_date"],
        schema_mode="merge" if plan.added else None,
        commit_properties=CommitProperties(
            custom_metadata={OPERATION_KEY: f"contract:{contract.name}"}
        ),
    )
    dt.update_incremental()
    return tuple(plan.write_schema.names), plan.added, dt.version()


def _next_version(contract: Contract) -> str:
    base, sep, version = contract.name.rpartition("_v")
    if sep and version.isdigit():
        return f"{base}_v{int(version) + 1}"
    return f"{contract.name}_v2"


def _write_violations(lake: Lake, contract: Contract, violations: pa.Table, partition: str) -> None:
    uri = violations_uri(lake)
    dt = create_table(uri, VIOLATIONS_SCHEMA, VIOLATIONS_PARTITION_BY, lake.storage_options)
    write_deltalake(
        dt,
        violations,
        mode="overwrite",
        predicate=(
            f"contract = {sql_literal(contract.name)} AND event_date = {sql_literal(partition)}"
        ),
        partition_by=VIOLATIONS_PARTITION_BY,
        commit_properties=CommitProperties(
            custom_metadata={OPERATION_KEY: f"contract_violations:{contract.name}"}
        ),
    )


def apply_contract(
    lake: Lake,
    contract: Contract,
    partition: str,
    *,
    type_attribute: str,
    max_attempts: int = 12,
) -> ContractResult:
    """Validate the day's events of the contract's types; replace the day's rows and violations.

    Raises `ContractSchemaError` (before writing anything) when the model's schema
    would break the rows already in the contract table.
    """
    started = time.perf_counter()
    events = read_events_of(lake, contract.event_types, partition, type_attribute)
    rows, violations = validate(contract, events)
    # A commit another writer beat (e.g. a schema merge racing another day's write) is retried.
    for attempt in commit_retries(max_attempts):
        with attempt:
            columns, added, version = _write_rows(lake, contract, rows, partition)
    for attempt in commit_retries(max_attempts):
        with attempt:
            _write_violations(lake, contract, violations, partition)
    return ContractResult(
        contract=contract.name,
        partition=partition,
        events=events.num_rows,
        rows=rows.num_rows,
        violations=violations.num_rows,
        columns=columns,
        added_columns=added,
        version=version,
        seconds=round(time.perf_counter() - started, 3),
        table_uri=contract_table_uri(lake, contract),
    )
