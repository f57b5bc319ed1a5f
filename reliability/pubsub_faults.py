"""Pub/Sub misbehaving: errors, timeouts, slow pulls, duplicates, redelivery storms.

Each fault kind gets a fresh lab; the harness publishes a seeded workload, arms
the fault in the emulator (or, for slow pulls and late acks, in a `Subscription`
subclass on the client side) and drains with the real `pull_round` /
`merge_partition` in this process. A round whose Pub/Sub call fails after the
client's retries is abandoned, as a sensor tick would be skipped; its messages
come back after the ack deadline (the harness moves the emulator's clock).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc

from event_assets.pubsub.client import Pulled, Subscription
from reliability import workload
from reliability.harness import Lab, Ledger, drain_in_process, lab, verify
from reliability.outcome import Outcome


class SlowSubscription(Subscription):
    """Every pull answers late (0-0.4 s), eating into the round's time budget."""

    rng = random.Random(0)

    def pull(self, max_messages: int, timeout: float = 5.0) -> Pulled:
        time.sleep(self.rng.uniform(0.0, 0.4))  # the fault itself, not synchronisation
        return super().pull(max_messages, timeout)


class LateAckSubscription(Subscription):
    """The first `late` ack calls arrive after the ack deadline expired: redelivered."""

    lab: Lab
    late = 3

    def acknowledge(self, ack_ids: Sequence[str], timeout: float = 30.0) -> None:
        if self.late > 0:
            self.late -= 1
            self.lab.expire_deadlines()
        super().acknowledge(ack_ids, timeout)


def _storm(lb: Lab, rounds: int) -> None:
    """Consumers that pull everything and die: each round's deadline expiry redelivers it all."""
    with Subscription(lb.settings) as sub:
        for _ in range(rounds):
            while sub.pull(1000, timeout=1.0).messages:
                pass
            lb.expire_deadlines()


Arm = Callable[[Lab, random.Random], Subscription | None]


def _inject(method: str, code: grpc.StatusCode, count: int) -> Arm:
    def arm(lb: Lab, rng: random.Random) -> None:
        lb.emulator.inject_faults(method, code, count)

    return arm


def _duplicates(lb: Lab, rng: random.Random) -> None:
    lb.emulator.duplicate_next_deliveries(10_000)


def _slow(lb: Lab, rng: random.Random) -> Subscription:
    SlowSubscription.rng = rng
    return SlowSubscription(lb.settings)


def _late_acks(lb: Lab, rng: random.Random) -> Subscription:
    sub = LateAckSubscription(lb.settings)
    sub.lab = lb
    return sub


def _storm3(lb: Lab, rng: random.Random) -> None:
    _storm(lb, 3)


FAULTS: dict[str, Arm] = {
    "UNAVAILABLE on Pull (x3, retried)": _inject("Pull", grpc.StatusCode.UNAVAILABLE, 3),
    "UNAVAILABLE on Pull (x20, rounds fail)": _inject("Pull", grpc.StatusCode.UNAVAILABLE, 20),
    "DEADLINE_EXCEEDED on Pull (x10)": _inject("Pull", grpc.StatusCode.DEADLINE_EXCEEDED, 10),
    "UNAVAILABLE on Acknowledge (x3, retried)": _inject(
        "Acknowledge", grpc.StatusCode.UNAVAILABLE, 3
    ),
    "UNAVAILABLE on Acknowledge (x12, acks lost)": _inject(
        "Acknowledge", grpc.StatusCode.UNAVAILABLE, 12
    ),
    "DEADLINE_EXCEEDED on Acknowledge (x12)": _inject(
        "Acknowledge", grpc.StatusCode.DEADLINE_EXCEEDED, 12
    ),
    "duplicate deliveries": _duplicates,
    "slow pulls (client side, 0-0.4 s)": _slow,
    "acks after deadline expiry (3 rounds)": _late_acks,
    "redelivery storm (3 expiries of everything)": _storm3,
}


def fault_run(root: Path, *, name: str, seed: int, events: int) -> Outcome:
    started = time.perf_counter()
    rng = random.Random(seed)
    outcome = Outcome(kind=f"pubsub: {name}")
    with lab(root, PULL_TIMEOUT_SECONDS="2") as lb:
        ledger = Ledger()
        ledger.publish(lb, workload.messages(rng, events, tag=f"f{seed}"))
        sub = FAULTS[name](lb, rng)
        try:
            drain_in_process(lb, sub)
        finally:
            if sub is not None:
                sub.close()
        outcome.runs += 1
        outcome.add(ledger, verify(lb, ledger))
    outcome.seconds = round(time.perf_counter() - started, 1)
    return outcome
