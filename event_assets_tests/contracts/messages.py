"""Valid and invalid events of both shipped contracts, with their known outcomes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from devtools.demo import ORDER_TYPE, PERSON_TYPE, demo_messages

Message = tuple[bytes, dict[str, str]]


@dataclass
class ContractMessages:
    """Messages to publish and, per (contract, day), how many rows and violations to expect."""

    messages: list[Message] = field(default_factory=list)
    expected: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    def expect(self, contract: str, day: str, *, rows: int = 0, violations: int = 0) -> None:
        got_rows, got_violations = self.expected.get((contract, day), (0, 0))
        self.expected[(contract, day)] = (got_rows + rows, got_violations + violations)


def _order_attrs(ce_id: str, when: datetime) -> dict[str, str]:
    return {
        "ce-specversion": "1.0",
        "ce-id": ce_id,
        "ce-source": "//test/checkout",
        "ce-type": ORDER_TYPE,
        "ce-time": when.isoformat(),
        "content-type": "application/json",
    }


def contract_messages(now: datetime | None = None) -> ContractMessages:
    """30 demo events (10 orders over the two days before today, 10 payments, 10 people
    today) plus bad ones."""
    now = now or datetime.now(UTC)
    today = now.date()
    out = ContractMessages(messages=list(demo_messages(30, day=now)))
    for i in range(0, 30, 3):  # demo orders: 1 + i // 3 % 2 days back
        day = today - timedelta(days=1 + (i // 3) % 2)
        out.expect("order_created_v1", day.isoformat(), rows=1)
    out.expect("person_v1", today.isoformat(), rows=10)  # plain JSON, dated by publish time

    early = datetime.combine(today, datetime.min.time(), UTC) + timedelta(minutes=1)
    bad_orders = [
        {"order_id": "o-bad-1", "customer_id": "c-1", "items": [], "total_cents": 1,
         "currency": "EUR"},  # no items
        {"order_id": "o-bad-2", "customer_id": "c-1", "items": [{"sku": "S", "quantity": 0}],
         "total_cents": 1, "currency": "EUR"},  # quantity 0
        {"order_id": "o-bad-3", "customer_id": "c-1", "items": [{"sku": "S", "quantity": 1}],
         "total_cents": "lots", "currency": "EUR"},  # total not a number
    ]  # fmt: skip
    for n, order in enumerate(bad_orders):
        out.messages.append((json.dumps(order).encode(), _order_attrs(f"bad-{n}", early)))
    out.expect("order_created_v1", today.isoformat(), violations=len(bad_orders))
    # A valid order in structured mode: a contract sees through the CloudEvent mode.
    structured = {
        "specversion": "1.0",
        "id": "structured-order",
        "source": "//test/checkout",
        "type": ORDER_TYPE,
        "time": early.isoformat(),
        "datacontenttype": "application/json",
        "data": {
            "order_id": "o-structured",
            "customer_id": "c-9",
            "items": [{"sku": "SKU-9", "quantity": 2}],
            "total_cents": 999,
            "currency": "USD",
        },
    }
    out.messages.append(
        (json.dumps(structured).encode(), {"content-type": "application/cloudevents+json"})
    )
    out.expect("order_created_v1", today.isoformat(), rows=1)

    person = {"event_type": PERSON_TYPE}
    out.messages += [
        (json.dumps({"name": "Ada"}).encode(), person),  # lastname missing
        (json.dumps({"name": 7, "lastname": "Seven"}).encode(), person),  # name not a string
        # Other types, and no type at all: not the person contract's business.
        (json.dumps({"name": "X", "lastname": "Y"}).encode(), {"event_type": "com.other.v1"}),
        (json.dumps({"name": "No", "lastname": "Type"}).encode(), {}),
    ]
    out.expect("person_v1", today.isoformat(), violations=2)
    return out
