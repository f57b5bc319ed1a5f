"""A pull round's memory is bounded by PULL_MAX_BYTES, whatever the backlog: a fresh process
(the whole code location loaded, as in the code server) pulls one round of large non-ASCII
messages, and its peak RSS stays within the measured per-byte footprint of what a round
may hold. The footprint itself is measured by `python -m benchmarks --only round_memory`.
"""

from __future__ import annotations

from event_assets.ingest import PULLS_IN_FLIGHT
from event_assets.settings import Settings
from pubsub_emulator.emulator import DEFAULT_MAX_RESPONSE_BYTES

from .support.memory import measure_round, publish_backlog

MIB = 2**20
PULL_MAX_BYTES = 8 * MIB
BACKLOG_BYTES = 48 * MIB
MESSAGE_BYTES = 50_000
# Peak RSS of a round per payload byte, measured (BENCHMARKS.md, round_memory): up to
# ~17x for non-ASCII text in 50 KB messages; plus margin.
PEAK_PER_BYTE = 20


def test_a_round_holds_at_most_pull_max_bytes_whatever_the_backlog(settings: Settings) -> None:
    message_bytes = publish_backlog(settings, "non_ascii", BACKLOG_BYTES, MESSAGE_BYTES)
    figures = measure_round(
        {
            "PULL_MAX_BYTES": str(PULL_MAX_BYTES),
            "MAX_MESSAGE_BYTES": str(4 * MESSAGE_BYTES),
            "PULL_TIMEOUT_SECONDS": "60",
        }
    )
    held = figures["pulled"] * message_bytes
    # The round stopped on its byte budget, not on the backlog: only the Pulls already in
    # flight (each at most one response) could take it past PULL_MAX_BYTES.
    most = PULL_MAX_BYTES + PULLS_IN_FLIGHT * DEFAULT_MAX_RESPONSE_BYTES + message_bytes
    assert 0 < held <= most < BACKLOG_BYTES
    assert figures["round_bytes"] <= PEAK_PER_BYTE * most
