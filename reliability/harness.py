"""The pieces every reliability scenario uses: a lab, child processes, a ledger, a verdict.

A `Lab` is one real Pub/Sub emulator (in this process, so the harness can inject
faults and move its clock), one lake (in a temporary folder, or on `gs://` through
the test suite's GCS fake), one Dagster home and the environment a child process
needs to use all three. A `Child` is an ingestion subprocess whose stderr is read
line by line, so the harness can wait for "paused at <point>" (a bounded wait on
a condition, never a sleep) and SIGKILL it; children are always reaped. A
`Ledger` remembers what was published and what each message must become;
`verify` compares the lake with it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from event_assets.events.decode import decode_message
from event_assets.events.models import DecodedEvent, PulledMessage, QuarantineRecord
from event_assets.events.timestamps import FixedClock, to_micros
from event_assets.faults import PAUSE_ENV
from event_assets.ingest import lake_of, merge_partition, pull_round
from event_assets.pubsub.client import (
    PubSubUnavailableError,
    Subscription,
    ensure_topic_and_subscription,
    publish,
)
from event_assets.settings import Settings, load_settings
from event_assets.storage import checks
from event_assets.storage.landing import parse_batch_path, pending_batches
from event_assets.storage.tables import events_target, quarantine_target
from pubsub_emulator.emulator import PubSubEmulator

Message = tuple[bytes, dict[str, str]]
_names = itertools.count()

LAB_SETTINGS: dict[str, str] = {
    "GCP_PROJECT_ID": "reliability",
    "MAX_MESSAGE_BYTES": "1048576",
    "PULL_TIMEOUT_SECONDS": "3",
    "PULL_MAX_MESSAGES": "400",
    "ACK_DEADLINE_SECONDS": "60",
    "WRITE_MAX_ATTEMPTS": "30",
    "RUN_RETRY_BASE_SECONDS": "1",
}
"""Small pull rounds (many batches, many commits) and fast recovery of pending batches."""

LAKES = ("local", "gcs")
"""Where a lab's lake lives: a local folder, or gs:// on `event_assets_tests.support.gcs_fake`."""

CHILD_TIMEOUT = 180.0
"""Longest a child may take to reach a pause point or to finish a drain."""


class ReliabilityError(AssertionError):
    """A scenario could not be carried out (not a verdict on the data)."""


@dataclass
class Lab:
    """One emulator, one lake, one Dagster home, and the settings that name them."""

    root: Path
    emulator: PubSubEmulator
    settings: Settings
    values: dict[str, str]
    lake: str = "local"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    def child_env(self, pause_at: str | None = None) -> dict[str, str]:
        """The environment of an ingestion child: the lab's settings, no Logfire token.

        Under `PYTHONDONTWRITEBYTECODE` (set in this project's sandbox, and in many
        containers) every child would compile Dagster and its dependencies from
        source again, ~5 s per process on 2 cores; instead the lab's children share
        a bytecode cache inside the lab, so still nothing is written next to a source.
        """
        env = {k: v for k, v in os.environ.items() if k != PAUSE_ENV}
        env.update(self.values)
        env["DAGSTER_HOME"] = str(self.dagster_home)
        env.pop("LOGFIRE_TOKEN", None)
        env.pop("LOGFIRE_SECRET_NAME", None)
        if env.get("PYTHONDONTWRITEBYTECODE") and "PYTHONPYCACHEPREFIX" not in env:
            del env["PYTHONDONTWRITEBYTECODE"]
            env["PYTHONPYCACHEPREFIX"] = str(self.root / "pycache")
        if pause_at:
            env[PAUSE_ENV] = pause_at
        return env

    def expire_deadlines(self) -> None:
        """Make every outstanding (pulled, unacked) message deliverable again."""
        self.emulator.advance_clock(self.settings.ACK_DEADLINE_SECONDS + 1)

    def subscription_stats(self) -> dict[str, int]:
        stats = self.emulator.stats()
        path = self.settings.subscription_path
        return {
            "backlog": stats.get(f"{path}/backlog", 0),
            "outstanding": stats.get(f"{path}/outstanding", 0),
            "delivered": stats.get(f"{path}/delivered", 0),
            "acked": stats.get(f"{path}/acked", 0),
        }

    def drained(self) -> bool:
        stats = self.subscription_stats()
        return stats["backlog"] == 0 and stats["outstanding"] == 0

    def wait_delivered(self, more_than: int, timeout: float) -> bool:
        key = f"{self.settings.subscription_path}/delivered"
        return self.emulator.wait_for_stats(lambda s: s.get(key, 0) > more_than, timeout)


@contextlib.contextmanager
def _lake_settings(root: Path, lake: str) -> Iterator[dict[str, str]]:
    """`LAKE_URI` (and credentials) of a lab's lake, serving it while the lab lives.

    On `gcs` the lab gets its own GCS fake (a child process) and a throwaway
    service-account key that points at it, exactly as the test suite reaches it:
    every process, parent or child, finds the fake only through
    `GOOGLE_SERVICE_ACCOUNT`. The fake lives in `event_assets_tests` (imported only
    here), so the harness and the tests share one model of GCS.
    """
    if lake == "local":
        yield {"LAKE_URI": str(root / "lake")}
        return
    if lake != "gcs":
        raise ValueError(f"lake must be one of {LAKES}, not {lake!r}")
    from event_assets_tests.support.gcs_fake import GcsFake, service_account_key

    with GcsFake() as fake:
        key = root / "gcs-service-account.json"
        key.write_text(service_account_key(fake.base_url))
        yield {"LAKE_URI": "gs://reliability/lake", "GOOGLE_SERVICE_ACCOUNT": str(key)}


@contextlib.contextmanager
def lab(root: Path, lake: str = "local", **overrides: str) -> Iterator[Lab]:
    """A fresh emulator + lake under `root` (which must be empty or absent)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dagster_home").mkdir(exist_ok=True)
    n = next(_names)
    with _lake_settings(root, lake) as lake_values, PubSubEmulator(max_pull_wait=0.2) as emulator:
        values = {
            **LAB_SETTINGS,
            **lake_values,
            "PUBSUB_EMULATOR_HOST": emulator.address,
            "PUBSUB_TOPIC": f"events-{n}",
            "PUBSUB_SUBSCRIPTION": f"events-ingest-{n}",
            **overrides,
        }
        settings = load_settings(**values)
        ensure_topic_and_subscription(settings)
        yield Lab(root=root, emulator=emulator, settings=settings, values=values, lake=lake)


# ---------------------------------------------------------------------------- children


class Child:
    """A subprocess whose stderr lines can be waited for; always reaped by `close`."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout, False)),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr, True)),
        ]
        for pump in self._pumps:
            pump.daemon = True
            pump.start()

    def _pump(self, stream: object, sink: list[str], announce: bool) -> None:
        for line in stream:  # type: ignore[attr-defined]
            sink.append(line)
            if announce:
                self._lines.put(line)
        if announce:
            self._lines.put(None)

    def wait_for(self, needle: str, timeout: float = CHILD_TIMEOUT) -> bool:
        """True once a stderr line contains `needle`; False if the child exits first."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ReliabilityError(f"{self.argv} never printed {needle!r} in {timeout} s")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                return False
            if needle in line:
                return True

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.close()

    def finish(self, timeout: float = CHILD_TIMEOUT) -> int:
        """Wait for a normal exit (killing it if it overruns) and return the exit code."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ReliabilityError(f"{self.argv} did not finish in {timeout} s") from None
        self.close()
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        for pump in self._pumps:
            pump.join(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)


@contextlib.contextmanager
def child(argv: Sequence[str], env: dict[str, str]) -> Iterator[Child]:
    started = Child(argv, env)
    try:
        yield started
    finally:
        started.close()


def cli_ingest_argv() -> list[str]:
    return [sys.executable, "-m", "event_assets.cli", "ingest", "--once"]


def worker_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "reliability.worker", *args]


# ---------------------------------------------------------------------------- ledger


@dataclass
class Ledger:
    """What was published, and what every message must have become."""

    messages: int = 0
    event_messages: int = 0
    expected_ids: set[str] = field(default_factory=set)
    bad: dict[str, str] = field(default_factory=dict)  # message id -> reason code

    def publish(self, lab: Lab, messages: Sequence[Message]) -> list[str]:
        """Publish through the real client and record each message's documented outcome."""
        if not messages:
            return []
        ids = publish(lab.settings, messages)
        now = datetime.now(UTC)
        for message_id, (data, attributes) in zip(ids, messages, strict=True):
            outcome = expected_outcome(lab.settings, data, attributes, message_id, now)
            self.messages += 1
            if isinstance(outcome, DecodedEvent):
                self.event_messages += 1
                self.expected_ids.add(outcome.event_id)
            else:
                self.bad[message_id] = outcome.reason_code
        return ids


def expected_outcome(
    settings: Settings, data: bytes, attributes: dict[str, str], message_id: str, now: datetime
) -> DecodedEvent | QuarantineRecord:
    """The decoder's verdict on one message, as the documented identity rule defines it."""
    message = PulledMessage(
        data=data, attributes=attributes, message_id=message_id, publish_time=now
    )
    return decode_message(
        message,
        max_bytes=settings.MAX_MESSAGE_BYTES,
        earliest_date=settings.PARTITIONS_START_DATE,
        future_skew_seconds=settings.FUTURE_SKEW_SECONDS,
        event_time_field=settings.EVENT_TIME_FIELD,
        clock=FixedClock(to_micros(now)),
    )


# ---------------------------------------------------------------------------- verdict


@dataclass(frozen=True)
class Verdict:
    """The lake compared with the ledger; every count but `rows` must be 0."""

    rows: int
    lost: int
    duplicated: int
    unexpected: int
    quarantine_missing: int
    quarantine_wrong_reason: int
    quarantine_duplicated: int
    orphaned_batches: int
    undrained: int
    accounting_passed: bool
    accounting: str

    @property
    def ok(self) -> bool:
        return (
            self.lost
            == self.duplicated
            == self.unexpected
            == self.quarantine_missing
            == self.quarantine_wrong_reason
            == self.quarantine_duplicated
            == self.orphaned_batches
            == self.undrained
            == 0
        ) and self.accounting_passed


def _read(uri: str, columns: list[str], storage_options: dict[str, str]) -> pa.Table | None:
    try:
        return DeltaTable(uri, storage_options=storage_options or None).to_pyarrow_table(
            columns=columns
        )
    except TableNotFoundError:
        return None


def verify(lab: Lab, ledger: Ledger) -> Verdict:
    """Table rows = unique events published, no duplicates, bad messages quarantined once."""
    lake = lake_of(lab.settings)
    options = dict(lake.storage_options)
    events = _read(lake.events_uri, ["event_date", "event_id"], options)
    quarantine = _read(lake.quarantine_uri, ["message_id", "reason_code"], options)
    rows = 0 if events is None else events.num_rows
    ids: list[str] = [] if events is None else events["event_id"].to_pylist()
    found = set(ids)
    q_ids: list[str] = [] if quarantine is None else quarantine["message_id"].to_pylist()
    q_reasons: dict[str, str] = (
        {}
        if quarantine is None
        else dict(zip(q_ids, quarantine["reason_code"].to_pylist(), strict=True))
    )
    accounting = checks.accounting(lake, events_target(lake), quarantine_target(lake))
    stats = lab.subscription_stats()
    return Verdict(
        rows=rows,
        lost=len(ledger.expected_ids - found),
        duplicated=rows - len(found),  # an id in two days is a duplicate too
        unexpected=len(found - ledger.expected_ids),
        quarantine_missing=sum(1 for m in ledger.bad if m not in q_reasons),
        quarantine_wrong_reason=sum(
            1 for m, r in ledger.bad.items() if m in q_reasons and q_reasons[m] != r
        ),
        quarantine_duplicated=len(q_ids) - len(set(q_ids)),
        orphaned_batches=len(pending_batches(lake)),
        undrained=stats["backlog"] + stats["outstanding"],
        accounting_passed=accounting.passed,
        accounting=accounting.description,
    )


def count_in(table: pa.Table, column: str, values: Sequence[str]) -> int:
    return int(pc.sum(pc.is_in(table[column], value_set=pa.array(values))).as_py() or 0)


# ---------------------------------------------------------------------------- draining


def drain_in_process(lab: Lab, subscription: Subscription | None = None, rounds: int = 200) -> int:
    """Pull -> land -> ack -> merge here until the subscription is empty and nothing pends.

    Pub/Sub errors that outlast the client's retries end a round (as a sensor tick
    would be skipped); the next round retries. Returns the rounds it took.
    """
    settings = lab.settings
    lake = lake_of(settings)
    own = subscription is None
    sub = subscription or Subscription(settings)
    try:
        for n in range(1, rounds + 1):
            for path in pending_batches(lake):
                day, _ = parse_batch_path(path)
                merge_partition(settings, lake, day, [path])
            if lab.drained() and not pending_batches(lake):
                return n
            try:
                landed = pull_round(settings, sub, lake)
            except PubSubUnavailableError:
                lab.expire_deadlines()
                continue
            for day, paths in landed.by_partition().items():
                merge_partition(settings, lake, day, paths)
            if landed.pulled == 0 and not lab.drained():
                lab.expire_deadlines()
        raise ReliabilityError(f"not drained after {rounds} rounds: {lab.subscription_stats()}")
    finally:
        if own:
            sub.close()


def drain_cli(lab: Lab, attempts: int = 5) -> None:
    """Run `event-assets ingest --once` until the subscription is empty and nothing pends."""
    lake = lake_of(lab.settings)
    for _ in range(attempts):
        lab.expire_deadlines()
        with child(cli_ingest_argv(), lab.child_env()) as proc:
            code = proc.finish()
            if code != 0:
                raise ReliabilityError(f"recovery ingest failed ({code}): {proc.output()[-2000:]}")
        if lab.drained() and not pending_batches(lake):
            return
    raise ReliabilityError(f"CLI drain left work: {lab.subscription_stats()}")


def drain_sensor(lab: Lab, attempts: int = 3) -> None:
    """Tick the sensor and run its requests in a fresh process until everything is merged."""
    lake = lake_of(lab.settings)
    for _ in range(attempts):
        lab.expire_deadlines()
        with child(worker_argv("sensor"), lab.child_env()) as proc:
            code = proc.finish()
            if code != 0:
                raise ReliabilityError(f"sensor drain failed ({code}): {proc.output()[-3000:]}")
        if lab.drained() and not pending_batches(lake):
            return
    raise ReliabilityError(f"sensor drain left work: {lab.subscription_stats()}")
