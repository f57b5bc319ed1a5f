"""Contracts applied to real `events` days: publish -> ingest -> apply_contract."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from pydantic import BaseModel

from event_assets.contracts import (
    Contract,
    ContractSchemaError,
    apply_contract,
    contract_table_uri,
    discover,
    violations_uri,
)
from event_assets.contracts import checks as contract_checks
from event_assets.contracts.catalog.order_created_v1 import OrderCreated
from event_assets.ingest import ingest, lake_of
from event_assets.pubsub.client import publish
from event_assets.settings import Settings
from event_assets.storage.lake import Lake

from .messages import ContractMessages, contract_messages

# The same tests against a local folder and against gs:// on the GCS fake.
LAKE_KINDS = ("local", "gcs")

CONTRACTS = {c.name: c for c in discover()}
ORDERS = CONTRACTS["order_created_v1"]
PEOPLE = CONTRACTS["person_v1"]


@pytest.fixture
def published(settings: Settings) -> ContractMessages:
    messages = contract_messages()
    publish(settings, messages.messages)
    summary = ingest(settings, once=True)
    assert summary.inserted == len(messages.messages)
    return messages


def _day(lake: Lake, contract: Contract, day: str) -> pa.Table:
    dt = DeltaTable(contract_table_uri(lake, contract))
    return (
        dt.to_pyarrow_dataset(file_pruning_predicate=[("event_date", "=", day)])
        .to_table()
        .sort_by("event_id")
    )


def test_valid_rows_are_typed_and_violations_kept(
    settings: Settings, published: ContractMessages
) -> None:
    lake = lake_of(settings)
    for (name, day), (rows, violations) in sorted(published.expected.items()):
        contract = CONTRACTS[name]
        result = apply_contract(lake, contract, day, type_attribute="event_type")
        assert (result.rows, result.violations) == (rows, violations), (name, day)
        assert result.events == rows + violations
        reconciled = contract_checks.reconciliation(
            lake, contract, day, type_attribute="event_type"
        )
        assert reconciled.passed, reconciled.description
        rate = contract_checks.violation_rate(lake, contract, day)
        assert rate.passed == (violations == 0), rate.description

    today = datetime.now(UTC).date().isoformat()
    people = _day(lake, PEOPLE, today)
    assert people.schema.field("name").type == pa.string()
    assert all(people["name"].to_pylist())
    assert all(people["lastname"].to_pylist())
    orders = _day(lake, ORDERS, today)
    assert orders.schema.field("total_cents").type == pa.int64()
    structured = orders.filter(pa.compute.equal(orders["order_id"], "o-structured")).to_pylist()[0]
    assert json.loads(structured["items"]) == [{"quantity": 2, "sku": "SKU-9"}]
    assert structured["currency"] == "USD"

    violations = DeltaTable(violations_uri(lake)).to_pyarrow_table().to_pylist()
    by_contract = sorted((v["contract"], v["event_type"]) for v in violations)
    assert by_contract == [
        *[("order_created_v1", "com.example.order.created.v1")] * 3,
        *[("person_v1", "com.example.person.v1")] * 2,
    ]
    locations = sorted(tuple(error["loc"]) for v in violations for error in json.loads(v["errors"]))
    assert locations == [
        ("items",),
        ("items", 0, "quantity"),
        ("lastname",),
        ("name",),
        ("total_cents",),
    ]
    assert all(json.loads(v["data"]) for v in violations)  # the raw data, kept


def test_reapplying_a_day_is_idempotent(settings: Settings, published: ContractMessages) -> None:
    lake = lake_of(settings)
    today = datetime.now(UTC).date().isoformat()
    first = apply_contract(lake, ORDERS, today, type_attribute="event_type")
    before = _day(lake, ORDERS, today).to_pylist()
    second = apply_contract(lake, ORDERS, today, type_attribute="event_type")
    assert (second.rows, second.violations) == (first.rows, first.violations)
    assert second.version == first.version + 1
    assert _day(lake, ORDERS, today).to_pylist() == before
    violations = DeltaTable(violations_uri(lake)).to_pyarrow_table()
    assert violations.num_rows == first.violations
    assert contract_checks.reconciliation(lake, ORDERS, today, type_attribute="event_type").passed
    # A day with no events of the contract's types replaces that day with nothing.
    empty = apply_contract(lake, PEOPLE, "2020-01-01", type_attribute="event_type")
    assert (empty.events, empty.rows, empty.violations) == (0, 0, 0)


def test_reconciliation_fails_on_a_lost_or_doubled_row(
    settings: Settings, published: ContractMessages
) -> None:
    lake = lake_of(settings)
    today = datetime.now(UTC).date().isoformat()
    apply_contract(lake, ORDERS, today, type_attribute="event_type")
    assert contract_checks.reconciliation(lake, ORDERS, today, type_attribute="event_type").passed
    table = DeltaTable(contract_table_uri(lake, ORDERS), storage_options=lake.storage_options)
    row = _day(lake, ORDERS, today).slice(0, 1)
    # Forged: the row appended twice over.
    write_deltalake(table, row, mode="append", storage_options=lake.storage_options)
    doubled = contract_checks.reconciliation(lake, ORDERS, today, type_attribute="event_type")
    assert not doubled.passed
    assert doubled.metadata["repeated"] == 1
    # Forged: every copy of it deleted.
    (event_id,) = row["event_id"].to_pylist()
    DeltaTable(table.table_uri, storage_options=lake.storage_options).delete(
        f"event_date = '{today}' AND event_id = '{event_id}'"
    )
    lost = contract_checks.reconciliation(lake, ORDERS, today, type_attribute="event_type")
    assert not lost.passed
    assert lost.metadata["missing"] == 1
    assert event_id in str(lost.metadata["examples"])


class OrderCreatedWithCoupon(OrderCreated):
    coupon: str | None = None
    discount_cents: int | None = None


def test_adding_an_optional_field_adds_a_column(
    settings: Settings, published: ContractMessages
) -> None:
    lake = lake_of(settings)
    today = datetime.now(UTC).date()
    older = (today - timedelta(days=2)).isoformat()
    expected_rows = published.expected[(ORDERS.name, older)][0]
    assert expected_rows > 0
    assert apply_contract(lake, ORDERS, older, type_attribute="event_type").rows == expected_rows
    evolved = Contract(
        name=ORDERS.name, model=OrderCreatedWithCoupon, event_types=ORDERS.event_types
    )
    result = apply_contract(lake, evolved, today.isoformat(), type_attribute="event_type")
    assert result.added_columns == ("coupon", "discount_cents")
    schema = DeltaTable(contract_table_uri(lake, ORDERS)).schema().to_arrow()
    assert "coupon" in pa.schema(schema).names
    assert _day(lake, ORDERS, older)["coupon"].null_count == expected_rows  # written before
    assert _day(lake, ORDERS, today.isoformat()).num_rows == result.rows
    # The old model still writes (the new columns null): evolving is not a one-way door.
    again = apply_contract(lake, ORDERS, older, type_attribute="event_type")
    assert again.added_columns == ()
    assert _day(lake, ORDERS, older)["discount_cents"].null_count == expected_rows


class TotalAsText(BaseModel):
    order_id: str
    customer_id: str
    items: list[dict[str, object]]
    total_cents: str
    currency: str


class NoCustomer(BaseModel):
    order_id: str
    items: list[dict[str, object]]
    total_cents: int
    currency: str


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        (TotalAsText, "column 'total_cents' is int64 in the table but string in the model"),
        (NoCustomer, "required column 'customer_id' is no longer in the model"),
    ],
)
def test_a_breaking_change_fails_before_writing(
    settings: Settings, published: ContractMessages, model: type[BaseModel], problem: str
) -> None:
    lake = lake_of(settings)
    today = datetime.now(UTC).date().isoformat()
    apply_contract(lake, ORDERS, today, type_attribute="event_type")
    version = DeltaTable(contract_table_uri(lake, ORDERS)).version()
    broken = Contract(name=ORDERS.name, model=model, event_types=ORDERS.event_types)
    with pytest.raises(ContractSchemaError) as raised:
        apply_contract(lake, broken, today, type_attribute="event_type")
    message = str(raised.value)
    assert problem in message
    assert "new contract version" in message
    assert "order_created_v2" in message
    assert DeltaTable(contract_table_uri(lake, ORDERS)).version() == version


def test_plain_json_type_comes_from_the_named_attribute(settings: Settings) -> None:
    person = json.dumps({"name": "Ada", "lastname": "Lovelace"}).encode()
    publish(
        settings,
        [(person, {"kind": "com.example.person.v1"}), (b'{"name": "B", "lastname": "C"}', {})],
    )
    ingest(settings, once=True)
    today = datetime.now(UTC).date().isoformat()
    lake = lake_of(settings)
    assert apply_contract(lake, PEOPLE, today, type_attribute="event_type").events == 0
    assert apply_contract(lake, PEOPLE, today, type_attribute="kind").rows == 1
