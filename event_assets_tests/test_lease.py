"""A round whose landing is slow keeps its lease: the messages being landed are never
redelivered to another consumer, however long the store takes (the emulator's virtual
clock moves the ack deadline past while the landing is held)."""

from __future__ import annotations

from typing import Any

import pytest

import event_assets.ingest as ingest_module
from event_assets.ingest import lake_of, pull_round
from event_assets.pubsub.client import Subscription, ensure_topic_and_subscription, publish
from event_assets.settings import Settings
from event_assets.storage.landing import LandedBatch
from pubsub_emulator.emulator import PubSubEmulator

from .corpus import mixed_corpus

ACK_DEADLINE = 10  # Pub/Sub's minimum
STALLS = 3  # the landing holds the round this many times 0.8 deadlines of virtual time


@pytest.mark.parametrize("kept", [True, False], ids=["leased", "not-leased"])
def test_a_slow_landing_keeps_its_messages_leased(
    settings: Settings,
    emulator: PubSubEmulator,
    monkeypatch: pytest.MonkeyPatch,
    kept: bool,
) -> None:
    slow = settings.model_copy(
        update={
            "PUBSUB_SUBSCRIPTION": f"{settings.PUBSUB_SUBSCRIPTION}-slow",
            "ACK_DEADLINE_SECONDS": ACK_DEADLINE,
        }
    )
    ensure_topic_and_subscription(slow)
    corpus = mixed_corpus(slow.MAX_MESSAGE_BYTES)
    publish(slow, corpus.messages)
    stats_key = f"projects/{slow.GCP_PROJECT_ID}/subscriptions/{slow.PUBSUB_SUBSCRIPTION}"
    # Extensions every 50 ms of real time (a third of the deadline in production); with
    # `kept` False, none (the interval outlasts the test).
    monkeypatch.setattr(ingest_module, "lease_interval", lambda _: 0.05 if kept else 3600.0)
    real_land = ingest_module._land_batch  # type: ignore[attr-defined]
    redelivered: list[int] = []

    def slow_land(lake: Any, events: Any, *, now: Any = None) -> list[LandedBatch]:
        """The store stalls: each stall waits for an extension, then moves the clock."""
        with Subscription(slow) as other:
            for _ in range(STALLS):
                seen = emulator.stats().get("deadlines_modified", 0)

                def extended_since(stats: dict[str, int], seen: int = seen) -> bool:
                    return stats.get("deadlines_modified", 0) > seen

                extended = emulator.wait_for_stats(extended_since, timeout=2.0)
                assert extended == kept
                emulator.advance_clock(0.8 * ACK_DEADLINE)
            # Another consumer pulling now gets nothing if the lease held.
            redelivered.append(len(other.pull(100, timeout=1.0).ack_ids))
        batches: list[LandedBatch] = real_land(lake, events, now=now)
        return batches

    monkeypatch.setattr(ingest_module, "_land_batch", slow_land)
    with Subscription(slow) as subscription:
        landed = pull_round(slow, subscription, lake_of(slow))
    assert landed.pulled == len(corpus.messages)
    if kept:
        assert redelivered == [0]
        assert emulator.stats()[f"{stats_key}/backlog"] == 0
    else:
        # Without extensions the deadline passed mid-landing: another consumer got them.
        assert redelivered == [len(corpus.messages)]
