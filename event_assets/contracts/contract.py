"""What a contract is: a pydantic model, the event types it applies to, and a table.

A contract turns the raw events of some types into typed rows. Its `name` is the
asset key and the table name (`{LAKE_URI}/contracts/<name>`); once rows are
written, the model may only evolve compatibly (new optional fields). Anything
else is a new contract with a new name, conventionally the next `_vN`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from .arrow import SYSTEM_COLUMNS, model_arrow_schema

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
DEFAULT_MAX_VIOLATION_RATE = 0.01


class ContractError(ValueError):
    """A contract is malformed, or the table it writes cannot take its rows."""


@dataclass(frozen=True)
class Contract:
    """A pydantic model applied to the events of `event_types`, written to table `name`.

    `event_types` are matched against the CloudEvent `type` (`ce_type`) or, for
    plain JSON messages, the Pub/Sub attribute named by CONTRACT_TYPE_ATTRIBUTE.
    `max_violation_rate` is the share of invalid events above which the
    `<name>_violation_rate` check warns.
    """

    name: str
    model: type[BaseModel]
    event_types: tuple[str, ...]
    description: str = ""
    max_violation_rate: float = DEFAULT_MAX_VIOLATION_RATE
    schema: pa.Schema = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ContractError(f"contract name {self.name!r} must match {NAME_PATTERN.pattern}")
        if isinstance(self.event_types, str) or not self.event_types:
            raise ContractError(f"contract {self.name}: event_types must be a non-empty tuple")
        if not 0.0 <= self.max_violation_rate <= 1.0:
            raise ContractError(f"contract {self.name}: max_violation_rate must be in [0, 1]")
        clash = sorted(set(self.model.model_fields) & set(SYSTEM_COLUMNS))
        if clash:
            raise ContractError(
                f"contract {self.name}: model fields {clash} clash with the columns every "
                f"contract table has ({', '.join(SYSTEM_COLUMNS)})"
            )
        try:
            schema = model_arrow_schema(self.model)
        except TypeError as exc:
            raise ContractError(f"contract {self.name}: {exc}") from None
        object.__setattr__(self, "schema", schema)

    def json_schema(self) -> dict[str, Any]:
        """The model's JSON schema, for the UI."""
        return self.model.model_json_schema()
