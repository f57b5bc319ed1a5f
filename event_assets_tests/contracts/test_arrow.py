"""The model -> Arrow mapping and the schema comparison, without any table."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from pydantic import BaseModel

from event_assets.contracts import Contract, ContractError, discover, model_arrow_schema
from event_assets.contracts.arrow import plan_schema


class Inner(BaseModel):
    a: int


class Everything(BaseModel):
    s: str
    i: int
    f: float
    b: bool
    ts: datetime
    d: date
    items: list[Inner]
    mapping: dict[str, int]
    nested: Inner
    maybe: str | None = None
    defaulted: int = 0


def test_mapping_is_small_and_explicit() -> None:
    schema = model_arrow_schema(Everything)
    assert [(f.name, str(f.type), f.nullable) for f in schema] == [
        ("event_id", "string", False),
        ("event_time", "timestamp[us, tz=UTC]", False),
        ("event_date", "date32[day]", False),
        ("s", "string", False),
        ("i", "int64", False),
        ("f", "double", False),
        ("b", "bool", False),
        ("ts", "timestamp[us, tz=UTC]", False),
        ("d", "date32[day]", False),
        ("items", "string", False),  # JSON text
        ("mapping", "string", False),
        ("nested", "string", False),
        ("maybe", "string", True),
        ("defaulted", "int64", False),
    ]


def test_unsupported_types_and_bad_contracts_are_refused_at_definition() -> None:
    class Money(BaseModel):
        amount: Decimal

    class Clash(BaseModel):
        event_id: str

    with pytest.raises(ContractError, match=r"'amount'.*no column mapping"):
        Contract(name="money_v1", model=Money, event_types=("t",))
    with pytest.raises(ContractError, match="clash"):
        Contract(name="clash_v1", model=Clash, event_types=("t",))
    with pytest.raises(ContractError, match="must match"):
        Contract(name="Bad-Name", model=Inner, event_types=("t",))
    with pytest.raises(ContractError, match="non-empty tuple"):
        Contract(name="inner_v1", model=Inner, event_types="t")  # type: ignore[arg-type]


def test_shipped_contracts_are_discovered() -> None:
    contracts = {c.name: c for c in discover()}
    assert set(contracts) == {"order_created_v1", "person_v1"}
    assert contracts["person_v1"].event_types == ("com.example.person.v1",)
    assert contracts["person_v1"].schema.names[3:] == ["name", "lastname"]
    assert contracts["order_created_v1"].event_types == ("com.example.order.created.v1",)
    assert contracts["order_created_v1"].schema.names[3:] == [
        "order_id",
        "customer_id",
        "items",
        "total_cents",
        "currency",
    ]
    assert "properties" in contracts["order_created_v1"].json_schema()


TABLE = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("age", pa.int64(), nullable=True),
        pa.field("event_date", pa.date32(), nullable=False),
    ]
)


def _model(*fields: pa.Field) -> pa.Schema:
    return pa.schema([TABLE.field("event_id"), TABLE.field("event_date"), *fields])


def test_plan_schema_compatible_changes() -> None:
    same = plan_schema(TABLE, _model(TABLE.field("name"), TABLE.field("age")))
    assert (same.added, same.problems) == ((), ())
    added = plan_schema(
        TABLE,
        _model(TABLE.field("name"), TABLE.field("age"), pa.field("nick", pa.string(), True)),
    )
    assert added.added == ("nick",)
    assert not added.problems
    assert added.write_schema.names == ["event_id", "name", "age", "event_date", "nick"]
    # An optional column dropped from the model stays in the table (written as null);
    # a nullable column the model now always fills keeps the table's nullability.
    dropped = plan_schema(TABLE, _model(TABLE.field("name")))
    assert not dropped.problems
    tightened = plan_schema(
        TABLE, _model(TABLE.field("name"), pa.field("age", pa.int64(), nullable=False))
    )
    assert not tightened.problems
    assert tightened.write_schema.field("age").nullable


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ((pa.field("name", pa.int64(), False),), "'name' is string in the table but int64"),
        ((TABLE.field("age"),), "required column 'name' is no longer in the model"),
        ((pa.field("name", pa.string(), True),), "'name' is required in the table, optional"),
        (
            (TABLE.field("name"), pa.field("must", pa.string(), False)),
            "new required column 'must'",
        ),
    ],
)
def test_plan_schema_breaking_changes(fields: tuple[pa.Field, ...], problem: str) -> None:
    plan = plan_schema(TABLE, _model(*fields))
    assert any(problem in p for p in plan.problems), plan.problems
