"""One scenario's result: what was tried, how often, and what was lost or doubled."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from reliability.harness import Ledger, Verdict


@dataclass
class Outcome:
    """A row of the RELIABILITY.md table (several scenarios of one kind and lake add up)."""

    kind: str
    lake: str = "local"
    """Where the lake lived: `local`, `gcs` (the GCS fake) or `-` (no lake involved)."""
    runs: int = 0
    kills: int = 0
    messages: int = 0
    events: int = 0
    lost: int = 0
    duplicated: int = 0
    quarantine_errors: int = 0
    orphaned_batches: int = 0
    accounting_failures: int = 0
    failed_runs: int = 0
    """Scenario steps the harness could not carry out (not Dagster runs that failed)."""
    blocked_days: int = 0
    """Days still pending, or with a run in flight, when the final drain's deadline passed."""
    seconds: float = 0.0
    kill_points: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    dagster_runs: Counter[str] = field(default_factory=Counter)
    """Dagster runs by final status (real-daemon chains)."""

    def add(self, ledger: Ledger, verdict: Verdict) -> None:
        self.messages += ledger.messages
        self.events += ledger.event_messages
        self.lost += verdict.lost
        self.duplicated += verdict.duplicated + verdict.unexpected
        self.quarantine_errors += (
            verdict.quarantine_missing
            + verdict.quarantine_wrong_reason
            + verdict.quarantine_duplicated
        )
        self.orphaned_batches += verdict.orphaned_batches + verdict.undrained
        self.accounting_failures += 0 if verdict.accounting_passed else 1
        if not verdict.ok:
            self.notes.append(repr(verdict))

    def merge(self, other: Outcome) -> None:
        for name in (
            "runs",
            "kills",
            "messages",
            "events",
            "lost",
            "duplicated",
            "quarantine_errors",
            "orphaned_batches",
            "accounting_failures",
            "failed_runs",
            "blocked_days",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds = round(self.seconds + other.seconds, 1)
        self.kill_points.update(other.kill_points)
        self.dagster_runs.update(other.dagster_runs)
        self.notes.extend(other.notes)

    @property
    def ok(self) -> bool:
        return (
            self.lost
            == self.duplicated
            == self.quarantine_errors
            == self.orphaned_batches
            == self.accounting_failures
            == self.failed_runs
            == self.blocked_days
            == 0
        )
