"""Event contracts: typed tables on top of the raw `events` table (no Dagster imports).

A contract (`Contract`) is a pydantic model, the event types it applies to and a
table name; each lives in its own module under `catalog/` and is found by
`discover()`. `apply_contract` validates one day of events and replaces that day
in the contract's table and in `contract_violations`; `checks` holds the facts
the asset checks report.
"""

from .apply import (
    VIOLATIONS_SCHEMA,
    ContractResult,
    ContractSchemaError,
    apply_contract,
    contract_table_uri,
    contract_target,
    read_events_of,
    validate,
    violations_target,
    violations_uri,
)
from .arrow import model_arrow_schema, plan_schema
from .contract import Contract, ContractError
from .registry import discover

__all__ = [
    "VIOLATIONS_SCHEMA",
    "Contract",
    "ContractError",
    "ContractResult",
    "ContractSchemaError",
    "apply_contract",
    "contract_table_uri",
    "contract_target",
    "discover",
    "model_arrow_schema",
    "plan_schema",
    "read_events_of",
    "validate",
    "violations_target",
    "violations_uri",
]
