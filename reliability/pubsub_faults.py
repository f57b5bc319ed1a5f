"""Pub/Sub misbehaving: errors, timeouts, slow pulls, duplicates, redelivery storms.

Each fault kind gets a fresh lab; the harness publishes a seeded workload, arms
the fault in the emulator (or, for late acks, in a `Subscription` subclass on the
client side) and drains with the real `pull_round` / `merge_partition` in this
process. A round whose Pub/Sub call fails after the client's retries is
abandoned, as a sensor tick would be skipped; its messages come back after the
ack deadline (the harness moves the emulator's clock). A fault that never fired
fails its run: a scenario that tested nothing must not count as passed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from event_assets.pubsub.client import Subscription
from reliability import workload
from reliability.harness import Lab, Ledger, drain_in_process, lab, verify
from reliability.outcome import Outcome


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
            while sub.pull(1000, timeout=1.0).ack_ids:
                pass
            lb.expire_deadlines()


Arm = Callable[[Lab, random.Random], Subscription | None]
Stats = Mapping[str, int]


@dataclass(frozen=True)
class Fault:
    """How to arm one fault kind, the lab settings it needs, and how to tell it fired."""

    arm: Arm
    fired: Callable[[Stats], bool]
    settings: dict[str, str] = field(default_factory=dict)


def _inject(method: str, code: grpc.StatusCode, count: int) -> Fault:
    def arm(lb: Lab, rng: random.Random) -> None:
        lb.emulator.inject_faults(method, code, count)

    return Fault(arm, lambda s: s["faults_triggered"] == count)


def _duplicates(lb: Lab, rng: random.Random) -> None:
    lb.emulator.duplicate_next_deliveries(10_000)


def _slow(lb: Lab, rng: random.Random) -> None:
    """Every pull answers 0-0.4 s late on the server, eating into the round's budget."""
    lb.emulator.delay_pulls(10_000, (0.0, 0.4), seed=rng.randrange(2**32))


EXPIRED_PULLS = 3
SLOW_PULL_TIMEOUT = 0.8
"""The round budget (so the longest Pull timeout) where pulls outlast it; kept short
because every expired pull costs a full timeout of wall time."""


def _slower_than_timeout(lb: Lab, rng: random.Random) -> None:
    """The next pulls answer only after the client gave up: DEADLINE_EXCEEDED, then retry."""
    lo = SLOW_PULL_TIMEOUT + 0.2
    lb.emulator.delay_pulls(EXPIRED_PULLS, (lo, 2 * lo), seed=rng.randrange(2**32))


def _late_acks(lb: Lab, rng: random.Random) -> Subscription:
    sub = LateAckSubscription(lb.settings)
    sub.lab = lb
    return sub


def _storm3(lb: Lab, rng: random.Random) -> None:
    _storm(lb, 3)


FAULTS: dict[str, Fault] = {
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
    "duplicate deliveries": Fault(_duplicates, lambda s: s["duplicated"] > 0),
    "slow pulls (server side, 0-0.4 s)": Fault(_slow, lambda s: s["pull_delays_triggered"] > 0),
    f"slow pulls beyond the pull timeout (x{EXPIRED_PULLS}, DEADLINE_EXCEEDED)": Fault(
        _slower_than_timeout,
        lambda s: s["pull_delays_expired"] == EXPIRED_PULLS,
        {"PULL_TIMEOUT_SECONDS": str(SLOW_PULL_TIMEOUT)},
    ),
    "acks after deadline expiry (3 rounds)": Fault(_late_acks, lambda s: s["redelivered"] > 0),
    "redelivery storm (3 expiries of everything)": Fault(_storm3, lambda s: s["redelivered"] > 0),
}


def fault_run(root: Path, *, name: str, seed: int, events: int) -> Outcome:
    started = time.perf_counter()
    rng = random.Random(seed)
    outcome = Outcome(kind=f"pubsub: {name}")
    fault = FAULTS[name]
    with lab(root, **{"PULL_TIMEOUT_SECONDS": "2", **fault.settings}) as lb:
        ledger = Ledger()
        ledger.publish(lb, workload.messages(rng, events, tag=f"f{seed}"))
        sub = fault.arm(lb, rng)
        try:
            drain_in_process(lb, sub)
        finally:
            if sub is not None:
                sub.close()
        outcome.runs += 1
        stats = lb.emulator.stats()
        if not fault.fired(stats):
            outcome.failed_runs += 1
            totals = {k: v for k, v in stats.items() if "/" not in k}
            outcome.notes.append(f"{name}: the fault did not fire as armed: {totals}")
        outcome.add(ledger, verify(lb, ledger))
    outcome.seconds = round(time.perf_counter() - started, 1)
    return outcome
