"""Seeded workloads: good events of every shape, re-publishes, and bad messages.

Each call makes distinct events (the seed and a running number are in the data),
in the three message shapes, dated over the last few days so several partitions
are written, with ~10% exact re-publishes, ~5% re-encoded re-publishes and ~4%
bad messages of every kind the decoder quarantines.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

from reliability.harness import Message

BAD_KINDS = (
    b"\xff\xfe\x00not utf-8",
    b"{not json",
    b'{"x": NaN}',
    b'{"x": Infinity}',
    b"[1, 2, 3]",
    b'"a string"',
    b"[" * 300 + b"]" * 300,
)


def _ce_time(rng: random.Random, days: int) -> str:
    now = datetime.now(UTC)
    back = timedelta(days=rng.randrange(days), seconds=rng.randrange(3600))
    return (now - back).replace(microsecond=0).isoformat()


def messages(
    rng: random.Random, n: int, *, tag: str, days: int = 3, bad_rate: float = 0.04
) -> list[Message]:
    """`n` unique good events plus re-publishes and bad messages, shuffled."""
    out: list[Message] = []
    for i in range(n):
        data = {"tag": tag, "i": i, "v": rng.random(), "s": "ü€😀"[: rng.randrange(4)]}
        shape = rng.randrange(3)
        if shape == 0:
            message: Message = (json.dumps(data).encode(), {"event_type": "reliability.v1"})
        elif shape == 1:
            attrs = {
                "ce-specversion": "1.0",
                "ce-id": f"{tag}-{i}",
                "ce-source": "//reliability",
                "ce-type": "reliability.v1",
                "ce-time": _ce_time(rng, days),
                "content-type": "application/json",
            }
            message = (json.dumps(data).encode(), attrs)
        else:
            event = {
                "specversion": "1.0",
                "id": f"{tag}-{i}",
                "source": "//reliability",
                "type": "reliability.v1",
                "time": _ce_time(rng, days),
                "data": data,
            }
            message = (json.dumps(event).encode(), {"content-type": "application/cloudevents+json"})
        out.append(message)
        roll = rng.random()
        if roll < 0.10:
            out.append(message)
        elif roll < 0.15 and shape == 0:
            out.append((json.dumps(data, indent=1, sort_keys=True).encode(), {}))
        if rng.random() < bad_rate:
            out.append((rng.choice(BAD_KINDS), {"n": f"{tag}-{i}"}))
        if rng.random() < bad_rate / 4:
            out.append((b"{}", {"ce-specversion": "1.0", "ce-source": "//x", "ce-type": "t"}))
    rng.shuffle(out)
    return out


def one_partition(rng: random.Random, n: int, *, tag: str, day: datetime) -> list[Message]:
    """Binary-mode CloudEvents all dated `day`, with ~20% exact re-publishes."""
    out: list[Message] = []
    for i in range(n):
        attrs = {
            "ce-specversion": "1.0",
            "ce-id": f"{tag}-{i}",
            "ce-source": "//reliability",
            "ce-type": "reliability.v1",
            "ce-time": (day + timedelta(seconds=rng.randrange(80_000))).isoformat(),
        }
        message = (json.dumps({"tag": tag, "i": i}).encode(), attrs)
        out.append(message)
        if rng.random() < 0.2:
            out.append(message)
    rng.shuffle(out)
    return out
