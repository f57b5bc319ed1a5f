"""Pydantic model -> Arrow schema and rows, and what an existing table can accept.

The mapping is deliberately small and explicit:

| model annotation | Arrow column |
| --- | --- |
| `str` | `string` |
| `int` | `int64` |
| `float` | `float64` |
| `bool` | `bool` |
| `datetime` | `timestamp[us, UTC]` (naive values are taken as UTC) |
| `date` | `date32` |
| `list[...]`, `dict[...]`, a nested `BaseModel` | `string` holding canonical JSON text |
| `X | None` | the column of `X`, nullable |

Nested values become JSON text rather than Arrow structs: a struct's fields would
each be a schema-evolution question of their own, while JSON text keeps the table
flat and is read with any engine's JSON functions. Anything else (Decimal, UUID,
unions of two types, ...) is refused when the contract is defined.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pyarrow as pa
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from event_assets.events.identity import canonical_json
from event_assets.events.schema import UTC_MICROS

SYSTEM_FIELDS: tuple[pa.Field, ...] = (
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("event_time", UTC_MICROS, nullable=False),
    pa.field("event_date", pa.date32(), nullable=False),
)
SYSTEM_COLUMNS: tuple[str, ...] = tuple(f.name for f in SYSTEM_FIELDS)

_SCALARS: dict[object, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    datetime: UTC_MICROS,
    date: pa.date32(),
}
_JSON = pa.string()


def _unwrap_optional(annotation: object) -> tuple[object, bool]:
    """(the annotation without `None`, whether `None` was allowed)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        if len(args) != 1:
            raise TypeError(f"unions of several types are not supported: {annotation}")
        return args[0], nullable
    return annotation, False


def _is_json(annotation: object) -> bool:
    origin = typing.get_origin(annotation) or annotation
    if origin in (list, dict):
        return True
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _arrow_type(name: str, annotation: object) -> tuple[pa.DataType, bool]:
    inner, nullable = _unwrap_optional(annotation)
    if inner in _SCALARS:
        return _SCALARS[inner], nullable
    if _is_json(inner):
        return _JSON, nullable
    raise TypeError(
        f"field {name!r}: {inner} has no column mapping; use str, int, float, bool, datetime, "
        "date, list[...], dict[...] or a nested model (optionally `| None`)"
    )


def json_fields(model: type[BaseModel]) -> frozenset[str]:
    """Fields stored as JSON text."""
    return frozenset(
        name
        for name, info in model.model_fields.items()
        if _is_json(_unwrap_optional(info.annotation)[0])
    )


def model_arrow_schema(model: type[BaseModel]) -> pa.Schema:
    """The contract table's schema: `event_id`, `event_time`, `event_date`, then the fields.

    A column is nullable exactly when its annotation allows `None`; a field with a
    non-None default is always present after validation, so its column is not.
    """
    fields = list(SYSTEM_FIELDS)
    for name, info in model.model_fields.items():
        arrow_type, nullable = _arrow_type(name, info.annotation)
        fields.append(pa.field(name, arrow_type, nullable=nullable))
    return pa.schema(fields)


def rows_to_table(
    schema: pa.Schema, model: type[BaseModel], system: pa.Table, instances: Sequence[BaseModel]
) -> pa.Table:
    """Rows of `schema`: the system columns as given, the fields from the validated models."""
    nested = json_fields(model)
    fields = schema.names[len(SYSTEM_COLUMNS) :]
    columns: dict[str, list[Any]] = {name: [] for name in fields}
    for instance in instances:
        values = instance.model_dump(mode="python")
        for name in fields:
            value = values.get(name)
            if name in nested and value is not None:
                value = canonical_json(to_jsonable_python(value))
            columns[name].append(value)
    arrays = [system[name].cast(schema.field(name).type) for name in SYSTEM_COLUMNS]
    arrays += [pa.array(columns[name], schema.field(name).type) for name in fields]
    return pa.Table.from_arrays(arrays, schema=schema)


@dataclass(frozen=True)
class SchemaPlan:
    """How rows of the model's schema go into an existing table (or why they cannot)."""

    write_schema: pa.Schema
    added: tuple[str, ...]
    problems: tuple[str, ...]


def _normal(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    return t


def plan_schema(table: pa.Schema, model: pa.Schema) -> SchemaPlan:
    """Compare the model's schema with the table's before writing anything.

    Compatible: new nullable columns (added by a schema merge, older rows null),
    columns the model no longer has but the table allows null in (written as
    null), a nullable column the model now always fills. Breaking: a changed
    type, a removed required column, a required column made optional, a new
    required column (older rows have no value).
    """
    problems: list[str] = []
    fields: list[pa.Field] = []
    for existing in table:
        if existing.name not in model.names:
            if not existing.nullable:
                problems.append(f"required column {existing.name!r} is no longer in the model")
            fields.append(existing)
            continue
        wanted = model.field(existing.name)
        if _normal(wanted.type) != _normal(existing.type):
            problems.append(
                f"column {existing.name!r} is {existing.type} in the table but "
                f"{wanted.type} in the model"
            )
        elif wanted.nullable and not existing.nullable:
            problems.append(f"column {existing.name!r} is required in the table, optional now")
        fields.append(existing)
    added = [f for f in model if f.name not in table.names]
    for new in added:
        if not new.nullable:
            problems.append(
                f"new required column {new.name!r}: existing rows have no value "
                f"(declare it `{new.name}: ... | None = None` to add it)"
            )
    return SchemaPlan(pa.schema([*fields, *added]), tuple(f.name for f in added), tuple(problems))


def conform(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """`rows` in the table's column order and types; columns it lacks are null."""
    columns = [
        rows[f.name] if f.name in rows.column_names else pa.nulls(rows.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)
