"""Drive the real `dagster-daemon` on a throwaway DAGSTER_HOME, as users run the product.

Shared by `event_assets_tests/defs/test_daemon.py` and the benchmark's Dagster
section (`python -m benchmarks --only dagster`), so it lives with the tests and
does not ship in the wheel. A `DaemonLab` owns a temp dir with:

- a Pub/Sub emulator in its own process (no GIL shared with the caller),
- `dagster_home/` holding the project's `dagster.yaml` (run queue limits and all),
- `lake/` (LAKE_URI), and `daemon.log` / `emulator.log`.

`start_daemon()` runs `dagster-daemon run -w workspace.yaml` in its own session
(process group) so stopping it reaches the code server and run workers it spawned.
Every wait polls a condition against a deadline and fails with the daemon log tail.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import dagster as dg
import polars as pl
from dagster._core.events import DagsterEventType
from deltalake import DeltaTable

from devtools.webserver import free_port
from event_assets.defs.ingestion import INGEST_JOB as INGEST_JOB
from event_assets.ingest import lake_of
from event_assets.pubsub.client import ensure_topic_and_subscription
from event_assets.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
EVENTS_KEY = dg.AssetKey("events")
PARTITION_TAG = "dagster/partition"
POLL_INTERVAL = 0.25
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
LOG_TAIL_CHARS = 6000
# The console script of the running interpreter's environment (what users run).
DAEMON = str(Path(sys.executable).with_name("dagster-daemon"))

# A run in any of these may still write to the table or record check evaluations.
IN_FLIGHT = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)

T = TypeVar("T")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PROBLEM = re.compile(r" - (WARNING|ERROR|CRITICAL) - ")
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} - ")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PID = re.compile(r" - \d+ - ")


class DaemonError(RuntimeError):
    """The daemon (or emulator) exited, or a wait ran out; the message carries the log tail."""


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = POLL_INTERVAL,
    describe: Callable[[], str] | None = None,
) -> T:
    """Poll `condition` until it returns something truthy (returned), or raise at the deadline.

    `condition` may raise DaemonError to fail at once (e.g. the daemon died).
    """
    deadline = time.monotonic() + timeout
    last = condition()
    while last is None or not last:
        if time.monotonic() >= deadline:
            extra = f"\n{describe()}" if describe else ""
            raise DaemonError(f"{what}: not reached within {timeout:.0f}s (last {last!r}){extra}")
        time.sleep(interval)  # poll interval, bounded by the deadline
        last = condition()
    return last


def _tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no {path.name})"
    return f"--- last {min(chars, len(text))} chars of {path} ---\n{text[-chars:]}"


def stop_group(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process's group (its session), wait bounded, then SIGKILL what is left."""
    pgid = process.pid  # start_new_session=True: the leader's pid is the group id
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    # Children (code server, run workers) may outlive the leader for a moment.
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.1)  # poll interval, bounded by the deadline
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def spawn_daemon(
    env: Mapping[str, str], log: Path, *, daemon: str = DAEMON, cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    """`dagster-daemon run -w workspace.yaml` in its own session (process group), so one
    signal reaches its code server and run workers; output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [daemon, "run", "-w", str(cwd / "workspace.yaml")],
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class EmulatorProcess:
    """`event-assets emulator` on a free port in its own process group, logging to a file."""

    def __init__(self, log: Path, timeout: float = START_TIMEOUT) -> None:
        self.log = log
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "event_assets.cli", "emulator", "--port", str(self.port)],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for(self._listening, timeout=timeout, what="emulator listening")
        except BaseException:
            self.stop()
            raise

    def _listening(self) -> bool:
        if self.process.poll() is not None:
            raise DaemonError(f"emulator exited with {self.process.returncode}\n{_tail(self.log)}")
        return "listening on" in self.log.read_text(errors="replace")

    def stop(self) -> None:
        stop_group(self.process)


@dataclass(frozen=True)
class TableCounts:
    rows: int
    unique_ids: int
    partitions: tuple[str, ...]


def table_rows(uri: str) -> int:
    """Rows of a Delta table from its log statistics (cheap enough to poll); 0 if absent."""
    if not DeltaTable.is_deltatable(uri):
        return 0
    return int(DeltaTable(uri).count())


def table_counts(uri: str) -> TableCounts:
    """Rows, unique event_id and partitions of the `events` table, read with polars."""
    if not DeltaTable.is_deltatable(uri):
        return TableCounts(0, 0, ())
    frame = pl.read_delta(uri, columns=["event_id", "event_date"])
    days = sorted(str(d) for d in frame["event_date"].unique().to_list())
    return TableCounts(frame.height, frame["event_id"].n_unique(), tuple(days))


def first_visible(uri: str, since: float = 0.0) -> pl.DataFrame:
    """When each event became visible in a local Delta table: its first commit's time.

    Columns `event_id`, `publish_time` (Pub/Sub's, epoch seconds) and `visible_at`
    (epoch seconds): the mtime of the first `_delta_log` commit at or after `since`
    that added a file holding the event (a commit file appears once, when it is
    complete). Files removed since (compaction, repair) are still on disk until a
    vacuum, so a later rewrite never hides the first time an event was visible.
    """
    log = Path(uri) / "_delta_log"
    frames = []
    for commit in sorted(log.glob("*.json")):
        at = commit.stat().st_mtime
        if at < since:
            continue
        for line in commit.read_text().splitlines():
            add = json.loads(line).get("add") if line.strip() else None
            if add is None:
                continue
            path = Path(uri) / urllib.parse.unquote(add["path"])
            frame = pl.read_parquet(
                path, columns=["event_id", "publish_time"], hive_partitioning=False
            )
            frames.append(frame.with_columns(visible_at=pl.lit(at)))
    if not frames:
        return pl.DataFrame(
            schema={"event_id": pl.String, "publish_time": pl.Float64, "visible_at": pl.Float64}
        )
    return (
        pl.concat(frames)
        .group_by("event_id")
        .agg(
            (pl.col("publish_time").min().dt.epoch("us") / 1e6).alias("publish_time"),
            pl.col("visible_at").min(),
        )
    )


def run_counts(instance: dg.DagsterInstance, job_name: str | None = None) -> dict[str, int]:
    """Runs by status name (only non-zero ones), of one job or all."""
    counts: Counter[str] = Counter()
    for run in instance.get_runs(dg.RunsFilter(job_name=job_name) if job_name else None):
        counts[run.status.value] += 1
    return dict(counts)


def in_flight(counts: Mapping[str, int]) -> int:
    return sum(counts.get(status.value, 0) for status in IN_FLIGHT)


@dataclass(frozen=True)
class CheckEvaluation:
    check_name: str
    partition: str | None
    passed: bool
    severity: str
    description: str | None
    run_id: str
    timestamp: float


def latest_check_evaluations(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey = EVENTS_KEY
) -> dict[tuple[str, str | None], CheckEvaluation]:
    """The latest evaluation of each (check name, partition) of `asset_key`, over all runs.

    Read from each run's event log, so it names no check and follows whichever job
    evaluates them. Ordered by event timestamp: SQLite storage ids restart per run.
    """
    latest: dict[tuple[str, str | None], CheckEvaluation] = {}
    for run in instance.get_runs():
        records = instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        for record in records:
            event = record.event_log_entry.dagster_event
            data = event.event_specific_data if event else None
            if not isinstance(data, dg.AssetCheckEvaluation) or data.asset_key != asset_key:
                continue
            found = CheckEvaluation(
                check_name=data.check_name,
                partition=data.partition,
                passed=data.passed,
                severity=data.severity.value,
                description=data.description,
                run_id=run.run_id,
                timestamp=record.event_log_entry.timestamp,
            )
            key = (found.check_name, found.partition)
            if key not in latest or latest[key].timestamp <= found.timestamp:
                latest[key] = found
    return latest


def partition_check_names(asset_key: dg.AssetKey = EVENTS_KEY) -> set[str]:
    """Names of the partitioned checks of `asset_key` in the code location, whatever they are."""
    from event_assets.definitions import build_defs

    graph = build_defs().resolve_asset_graph()
    return {
        key.name
        for key in graph.get_check_keys_for_assets({asset_key})
        if graph.get(key).partitions_def is not None
    }


def run_failures(instance: dg.DagsterInstance) -> list[str]:
    """One line per failed run: job, partition and the first error message of its log."""
    lines = []
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE])):
        errors = []
        for entry in instance.all_logs(
            run.run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}
        ):
            event = entry.dagster_event
            error = getattr(event.event_specific_data, "error", None) if event else None
            errors.append(error.message.strip() if error else entry.message)
        partition = run.tags.get(PARTITION_TAG)
        lines.append(f"{run.job_name}[{partition}] {run.run_id}: {' | '.join(errors)[:500]}")
    return lines


@dataclass
class QueueStats:
    samples: int = 0
    errors: int = 0
    max_queued: int = 0
    max_queued_one_partition: int = 0
    max_in_flight: int = 0


class QueueSampler:
    """A thread recording the most runs (of one job) queued at once, and of one partition.

    It opens its own instance so its reads never share a connection with the caller's.
    `take()` returns the figures so far and starts afresh (one figure per phase).
    """

    def __init__(self, home: Path, job_name: str | None = INGEST_JOB, interval: float = 0.25):
        self.home = home
        self.job_name = job_name
        self.interval = interval
        self._stats = QueueStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-sampler", daemon=True)

    def __enter__(self) -> QueueSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def take(self) -> QueueStats:
        with self._lock:
            stats, self._stats = self._stats, QueueStats()
        return stats

    def _run(self) -> None:
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            runs_filter = dg.RunsFilter(job_name=self.job_name, statuses=list(IN_FLIGHT))
            while not self._stop.is_set():
                try:
                    runs = instance.get_runs(runs_filter)
                except Exception:  # noqa: BLE001 (SQLite busy while the daemon writes)
                    with self._lock:
                        self._stats.errors += 1
                else:
                    queued = [r for r in runs if r.status == dg.DagsterRunStatus.QUEUED]
                    one_day = max(
                        Counter(r.tags.get(PARTITION_TAG) for r in queued).values(), default=0
                    )
                    with self._lock:
                        stats = self._stats
                        stats.samples += 1
                        stats.max_queued = max(stats.max_queued, len(queued))
                        stats.max_in_flight = max(stats.max_in_flight, len(runs))
                        stats.max_queued_one_partition = max(
                            stats.max_queued_one_partition, one_day
                        )
                self._stop.wait(self.interval)


class DaemonLab:
    """Emulator process + temp DAGSTER_HOME + lake; `start_daemon()` adds the real daemon.

    `settings` are the ones the daemon sees: every override is also exported to its
    environment, so tests and benchmarks can set any knob of `Settings`.
    `instance_yaml` replaces the project's `dagster.yaml` in the lab's home. With
    `keep_logs`, the daemon and emulator logs are copied there on exit (the temp dir
    goes away).
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        name: str = "daemon",
        keep_logs: Path | None = None,
        instance_yaml: str | None = None,
        **overrides: object,
    ):
        self._stack = contextlib.ExitStack()
        self.keep_logs = keep_logs
        if workdir is None:
            workdir = Path(self._stack.enter_context(tempfile.TemporaryDirectory()))
        self.workdir = workdir
        self.home = workdir / "dagster_home"
        self.home.mkdir(parents=True, exist_ok=True)
        if instance_yaml is None:
            shutil.copy(ROOT / "dagster.yaml", self.home / "dagster.yaml")
        else:
            (self.home / "dagster.yaml").write_text(instance_yaml)
        self.log = workdir / "daemon.log"
        self.daemon: subprocess.Popen[bytes] | None = None
        self.daemon_started = 0.0
        try:
            self.emulator = EmulatorProcess(workdir / "emulator.log")
            self._stack.callback(self.emulator.stop)
            values: dict[str, object] = {
                "LAKE_URI": str(workdir / "lake"),
                "PUBSUB_EMULATOR_HOST": self.emulator.address,
                "PUBSUB_TOPIC": f"{name}-events",
                "PUBSUB_SUBSCRIPTION": f"{name}-events-ingest",
                **overrides,
            }
            self.settings = load_settings(**values)
            ensure_topic_and_subscription(self.settings)
            self.env = {
                **os.environ,
                **{k: str(v) for k, v in values.items()},
                "DAGSTER_HOME": str(self.home),
            }
            # Storage is created here, before the daemon opens it: no two processes race
            # to create the SQLite schemas.
            self.instance = self._stack.enter_context(
                dg.DagsterInstance.from_config(str(self.home))
            )
            self.instance.get_runs_count()
        except BaseException:
            self._stack.close()
            raise

    def __enter__(self) -> DaemonLab:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc is not None and self.daemon is not None:
                print(self.log_tail(), file=sys.stderr)
            self.stop_daemon()
            if self.keep_logs is not None:
                self.keep_logs.mkdir(parents=True, exist_ok=True)
                for log in (self.log, self.emulator.log):
                    if log.exists():
                        shutil.copy(log, self.keep_logs / log.name)
        finally:
            self._stack.close()

    @property
    def events_uri(self) -> str:
        return lake_of(self.settings).events_uri

    @property
    def quarantine_uri(self) -> str:
        return lake_of(self.settings).quarantine_uri

    def start_daemon(self) -> float:
        """Start `dagster-daemon run`; returns the wall-clock time (time.time()) of the start."""
        assert self.daemon is None, "daemon already running"
        self.daemon_started = time.time()
        self.daemon = self.spawn_daemon(self.log)
        return self.daemon_started

    def spawn_daemon(self, log: Path) -> subprocess.Popen[bytes]:
        """A `dagster-daemon run` on this lab's instance, in its own session, logging to
        `log`; the caller stops it (`stop_group`). `start_daemon` runs the lab's own."""
        return spawn_daemon(self.env, log)

    def stop_daemon(self) -> int | None:
        """Stop the daemon and everything it spawned; returns its exit code (None if not run)."""
        if self.daemon is None:
            return None
        stop_group(self.daemon)
        code = self.daemon.returncode
        self.daemon = None
        return code

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        return _tail(self.log, chars)

    def log_problems(self) -> dict[str, int]:
        """WARNING/ERROR/CRITICAL lines of the daemon log so far, without time and ids, counted."""
        counts: Counter[str] = Counter()
        text = _ANSI.sub("", self.log.read_text(errors="replace")) if self.log.exists() else ""
        for line in text.splitlines():
            if _PROBLEM.search(line):
                line = _PID.sub(" - <pid> - ", _UUID.sub("<id>", _STAMP.sub("", line)))
                counts[line.strip()[:300]] += 1
        return dict(counts)

    def describe(self) -> str:
        """Where things stand, for a failed wait: table, runs, failures, daemon log tail."""
        lines = [f"table: {table_counts(self.events_uri)}"]
        with contextlib.suppress(Exception):
            lines.append(f"runs: {run_counts(self.instance)}")
            lines += [f"failed: {line}" for line in run_failures(self.instance)]
        lines.append(self.log_tail())
        return "\n".join(lines)

    def _alive(self) -> None:
        if self.daemon is not None and self.daemon.poll() is not None:
            raise DaemonError(
                f"dagster-daemon exited with {self.daemon.returncode}\n{self.describe()}"
            )

    def wait_for(
        self, condition: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.5
    ) -> T:
        """`wait_for`, failing at once if the daemon died, describing the lab on timeout."""

        def checked() -> T | None:
            self._alive()
            return condition()

        return wait_for(
            checked, timeout=timeout, what=what, interval=interval, describe=self.describe
        )

    def wait_for_rows(self, rows: int, *, timeout: float) -> int:
        """Until the `events` table holds at least `rows` rows (from the log's statistics)."""
        return self.wait_for(
            lambda: (n := table_rows(self.events_uri)) >= rows and n,
            timeout=timeout,
            what=f"{rows} rows in events",
        )

    def wait_until_idle(self, *, timeout: float, job_name: str | None = None) -> dict[str, int]:
        """Until no run (of `job_name`, or any) is queued or in progress; the run counts."""

        def idle() -> dict[str, int] | None:
            counts = run_counts(self.instance, job_name)
            return counts if counts and not in_flight(counts) else None

        return self.wait_for(idle, timeout=timeout, what="runs settled")
