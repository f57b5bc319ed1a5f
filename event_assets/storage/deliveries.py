"""Delivery receipts: what each round made durable and each merge took in, counted
apart from the tables they fill, so that the `accounting` check can fail.

A round appends one `landed` receipt per landing batch (its path, day and row count)
and one `quarantined` receipt (bad copies it kept) after landing them and before
acking: an acked message is always receipted. A merge appends one `merged` receipt
per batch after its rows are committed and before the batch moves to `_merged/`.
Receipts outlive landing retention, so the check never needs a merged batch's data.

Crash windows and what they leave:

- after landing, before the receipt: a pending batch with no `landed` receipt; its
  messages were never acked and come again. When it is merged, its `merged` receipt
  counts it as `unacked` copies.
- after the receipt, before the ack: receipted copies that come again and are
  receipted again; their second landing is counted as duplicates.
- after the commit, before the `merged` receipt: the batch is still pending; the
  next run merges it again (no row added) and writes the receipt.

Receipts are a plain Delta append (one small commit per round and per merge chunk),
maintained like every table of the lake.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from event_assets.storage.delta import DeltaTarget, append, existing_table
from event_assets.storage.lake import Lake
from event_assets.storage.landing import LandedBatch, parse_batch_path

LANDED, MERGED, QUARANTINED = "landed", "merged", "quarantined"
DELIVERIES_SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),
        pa.field("batch", pa.string(), nullable=False),  # landing path; "" for quarantined
        pa.field("event_date", pa.date32()),  # the batch's day; null for quarantined
        pa.field("messages", pa.int64(), nullable=False),
        pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def deliveries_target(lake: Lake) -> DeltaTarget:
    """`deliveries`: the receipts log (append-only, no key)."""
    return DeltaTarget(
        uri=lake.deliveries_uri,
        schema=DELIVERIES_SCHEMA,
        key="batch",
        storage_options=lake.storage_options,
        log_upkeep=lake.can_delete,
    )


Receipt = tuple[str, str, date | None, int]
"""(kind, batch, day, messages)."""


def _append(lake: Lake, receipts: Sequence[Receipt], attempts: int) -> None:
    """Append (kind, batch, day, messages) receipts, all stamped now."""
    if not receipts:
        return
    now = datetime.now(UTC)
    rows = pa.Table.from_pylist(
        [
            {"kind": k, "batch": b, "event_date": d, "messages": n, "recorded_at": now}
            for k, b, d, n in receipts
        ],
        schema=DELIVERIES_SCHEMA,
    )
    append(deliveries_target(lake), rows, max_attempts=attempts)


def record_landed(
    lake: Lake, batches: Sequence[LandedBatch], quarantined: int, *, max_attempts: int
) -> None:
    """Receipt a round's durable copies: call after landing them, before the ack."""
    receipts: list[Receipt] = [(LANDED, b.path, b.partition, b.rows) for b in batches]
    if quarantined:
        receipts.append((QUARANTINED, "", None, quarantined))
    _append(lake, receipts, max_attempts)


def record_merged(lake: Lake, rows_by_batch: Mapping[str, int], *, max_attempts: int) -> None:
    """Receipt the batches a merge committed: call after the commit, before `mark_merged`."""
    receipts: list[Receipt] = [
        (MERGED, p, parse_batch_path(p)[0], n) for p, n in rows_by_batch.items()
    ]
    _append(lake, receipts, max_attempts)


@dataclass
class Receipts:
    """Receipts folded: each batch once, whatever was written twice."""

    landed: dict[str, int] = field(default_factory=dict)  # path -> rows
    merged: dict[str, int] = field(default_factory=dict)  # path -> rows
    quarantined: int = 0  # bad copies kept by rounds


def read_receipts(lake: Lake) -> Receipts:
    """Every receipt so far (empty before the first round)."""
    table = existing_table(deliveries_target(lake))
    out = Receipts()
    if table is None:
        return out
    rows = table.to_pyarrow_table(columns=["kind", "batch", "messages"])
    for kind, into in ((LANDED, out.landed), (MERGED, out.merged)):
        part = rows.filter(pc.equal(rows["kind"], kind))
        into.update(zip(part["batch"].to_pylist(), part["messages"].to_pylist(), strict=True))
    bad = rows.filter(pc.equal(rows["kind"], QUARANTINED))["messages"]
    out.quarantined = int(pc.sum(bad).as_py() or 0)
    return out
