"""Data-quality facts about one contract's day, for the Dagster asset checks to report."""

from __future__ import annotations

import pyarrow as pa

from event_assets.storage.checks import CheckOutcome
from event_assets.storage.delta import load_table
from event_assets.storage.lake import Lake

from .apply import contract_table_uri, read_events_of, violations_uri
from .contract import Contract

EXAMPLES = 5


def _ids(uri: str, lake: Lake, filters: list[tuple[str, str, str]]) -> pa.Array:
    dt = load_table(uri, lake.storage_options)
    if dt is None:
        return pa.array([], pa.string())
    dataset = dt.to_pyarrow_dataset(file_pruning_predicate=filters)
    return dataset.to_table(columns=["event_id"])["event_id"].combine_chunks()


def _day_ids(lake: Lake, contract: Contract, partition: str) -> tuple[pa.Array, pa.Array]:
    typed = _ids(contract_table_uri(lake, contract), lake, [("event_date", "=", partition)])
    violations = _ids(
        violations_uri(lake),
        lake,
        [("contract", "=", contract.name), ("event_date", "=", partition)],
    )
    return typed, violations


def violation_rate(lake: Lake, contract: Contract, partition: str) -> CheckOutcome:
    """Share of the day's events of the contract's types that failed validation."""
    typed, violations = _day_ids(lake, contract, partition)
    total = len(typed) + len(violations)
    rate = len(violations) / total if total else 0.0
    passed = rate <= contract.max_violation_rate
    return CheckOutcome(
        passed=passed,
        description=(
            f"{len(violations)} of {total} events violate {contract.name} ({rate:.2%}; "
            f"threshold {contract.max_violation_rate:.2%})"
        ),
        metadata={
            "events": total,
            "violations": len(violations),
            "violation_rate": round(rate, 6),
            "threshold": contract.max_violation_rate,
        },
    )


def reconciliation(
    lake: Lake, contract: Contract, partition: str, *, type_attribute: str
) -> CheckOutcome:
    """Typed rows + violations = the day's events of the contract's types, id for id."""
    typed, violations = _day_ids(lake, contract, partition)
    events = read_events_of(lake, contract.event_types, partition, type_attribute)["event_id"]
    expected = set(events.to_pylist())
    seen = typed.to_pylist() + violations.to_pylist()
    missing = sorted(expected - set(seen))
    unexpected = sorted(set(seen) - expected)
    repeated = len(seen) - len(set(seen))
    passed = not missing and not unexpected and repeated == 0
    description = (
        f"{len(typed)} typed rows + {len(violations)} violations = {len(events)} events"
        if passed
        else f"{len(typed)} typed rows + {len(violations)} violations != {len(events)} events "
        f"({len(missing)} missing, {len(unexpected)} not in events, {repeated} repeated)"
    )
    return CheckOutcome(
        passed=passed,
        description=description,
        metadata={
            "events": len(events),
            "rows": len(typed),
            "violations": len(violations),
            "missing": len(missing),
            "unexpected": len(unexpected),
            "repeated": repeated,
            "examples": ", ".join(missing[:EXAMPLES] + unexpected[:EXAMPLES]),
        },
    )
