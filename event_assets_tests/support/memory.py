"""Peak memory of one pull round, measured in a fresh process as the sensor runs it.

Shared by the memory test and the benchmark's `round_memory` section (it lives with the
tests and does not ship). The child imports the whole code location first (the sensor
runs in the code server, which holds it), resets the kernel's peak-RSS mark
(`/proc/self/clear_refs`), pulls, lands and acks one round, and prints its RSS before,
its peak during the round, and the payload bytes it pulled, as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from event_assets.pubsub.client import publish
from event_assets.settings import Settings

MESSAGE_KINDS = ("ascii", "non_ascii")


def payloads(kind: str, count: int, size: int, *, tag: str = "m") -> Iterator[bytes]:
    """`count` distinct JSON objects of about `size` bytes: ASCII text, or text whose every
    character is 2-4 bytes in UTF-8 (what multiplies a decoded round's footprint)."""
    unit = "x" if kind == "ascii" else "ü€😀"
    unit_bytes = len(unit.encode())
    for i in range(count):
        text = unit * max(1, (size - 40) // unit_bytes)
        yield json.dumps({"tag": tag, "i": i, "text": text}, ensure_ascii=False).encode()


def publish_backlog(settings: Settings, kind: str, total_bytes: int, size: int) -> int:
    """Publish about `total_bytes` of `kind` messages of about `size` bytes; returns the
    bytes of one message (all are that long, give or take the digits of their index)."""
    count = max(1, total_bytes // size)
    messages: list[tuple[bytes, dict[str, str]]] = [
        (p, {}) for p in payloads(kind, count, size, tag=kind)
    ]
    for start in range(0, count, 5_000):
        publish(settings, messages[start : start + 5_000])
    return len(messages[-1][0])


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def child_main() -> None:
    """In the child: one round with the environment's settings; print the figures."""
    import event_assets.definitions  # noqa: F401  (the code server holds the location)
    from event_assets.ingest import lake_of, pull_round
    from event_assets.pubsub.client import Subscription
    from event_assets.settings import load_settings

    settings = load_settings()
    with Subscription(settings) as subscription:
        before = _status_bytes("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        landed = pull_round(settings, subscription, lake_of(settings))
        peak = _status_bytes("VmHWM")
    print(
        json.dumps(
            {
                "rss_before": before,
                "peak_rss": peak,
                "round_bytes": peak - before,
                "pulled": landed.pulled,
            }
        )
    )


def measure_round(env: Mapping[str, str]) -> dict[str, Any]:
    """Run one round in a fresh process with `env` (the settings); its figures."""
    out = subprocess.run(
        [sys.executable, "-m", "event_assets_tests.support.memory"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"round child failed ({out.returncode}): {out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    child_main()
