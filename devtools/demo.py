"""Realistic demo events, deterministic per day so re-publishing adds no new rows.

A mix of the three shapes the decoder accepts: CloudEvents in binary mode
(orders), in structured mode (payments), and the seed's plain JSON (people).
No event is timed in the future, so none is quarantined whenever it is run.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

ORDER_TYPE = "com.example.order.created.v1"
PAYMENT_TYPE = "com.example.payment.captured.v1"
PERSON_TYPE = "com.example.person.v1"
_NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken"]
_LASTNAMES = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton"]
_SKUS = ["SKU-1001", "SKU-2002", "SKU-3003", "SKU-4004"]


def demo_messages(
    count: int, *, day: datetime | None = None, offset: int = 0
) -> Iterator[tuple[bytes, dict[str, str]]]:
    """Yield `count` (payload, attributes) pairs; the same arguments give the same events."""
    today = (day or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    for i in range(offset, offset + count):
        # CloudEvents over the two days before `day`, at any time of those days: an event
        # timed later today than now (plus FUTURE_SKEW_SECONDS) would be quarantined.
        # People are plain JSON, dated by publish time (today): three partitions in all.
        start = today - timedelta(days=1 + (i // 3) % 2)
        rng = random.Random(f"{today.date()}-{i}")
        when = (start + timedelta(seconds=i % 86_000)).isoformat().replace("+00:00", "Z")
        kind = i % 3
        if kind == 0:
            order = {
                "order_id": f"o-{start:%Y%m%d}-{i}",
                "customer_id": f"c-{rng.randint(1, 500)}",
                "items": [
                    {"sku": rng.choice(_SKUS), "quantity": rng.randint(1, 4)}
                    for _ in range(rng.randint(1, 3))
                ],
                "total_cents": rng.randint(500, 50_000),
                "currency": "EUR",
            }
            attributes = {
                "ce-specversion": "1.0",
                "ce-id": f"order-{start:%Y%m%d}-{i}",
                "ce-source": "//shop.example.com/checkout",
                "ce-type": ORDER_TYPE,
                "ce-time": when,
                "content-type": "application/json",
            }
            yield json.dumps(order).encode(), attributes
        elif kind == 1:
            event = {
                "specversion": "1.0",
                "id": f"payment-{start:%Y%m%d}-{i}",
                "source": "//payments.example.com",
                "type": PAYMENT_TYPE,
                "time": when,
                "subject": f"o-{start:%Y%m%d}-{i - 1}",
                "datacontenttype": "application/json",
                "data": {"amount_cents": rng.randint(500, 50_000), "method": "card"},
            }
            yield json.dumps(event).encode(), {"content-type": "application/cloudevents+json"}
        else:
            person = {
                "name": rng.choice(_NAMES),
                "lastname": rng.choice(_LASTNAMES),
                "signup_day": start.date().isoformat(),
                "n": i,
            }
            yield json.dumps(person).encode(), {"event_type": PERSON_TYPE}


def demo_bad_message(n: int) -> tuple[bytes, dict[str, str]]:
    """A message that cannot become an event (truncated JSON): what the quarantine shows."""
    return f'{{"name": "Broken", "n": {n}'.encode(), {"event_type": PERSON_TYPE}
