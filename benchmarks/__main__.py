"""Measure every figure of issue 7 against its reference in the same run.

    uv run python -m benchmarks                 # full size (see BENCHMARKS.md), ~5 min
    uv run python -m benchmarks --huge          # also peak RSS at a 20M-row partition
    uv run python -m benchmarks --small         # a few minutes, for a smoke test
    uv run python -m benchmarks --only dagster  # one section (repeatable; --skip too)

Figures: end to end (publish -> landed -> in table) vs publish; one sensor tick
(pull + land) vs publish; dedup-write vs plain append at a 5M-row partition with
peak RSS at 1M/5M(/20M) rows; dedup-write with 30 other 1M-row partitions vs
none; compaction of a day of ~1,000 small files vs a plain rewrite of its rows;
the Dagster path (the real `dagster-daemon` on a 500k backlog vs `ingest --once`
on the same backlog, runs launched and queued, publish-to-queryable latency
under a 2k events/s trickle; see `benchmarks/dagster_path.py`).

Each figure is the median of --repeats runs (min-max shown). Dedup-write and its
plain-append reference each run in a fresh subprocess so peak RSS is theirs alone.
The emulator runs in its own process so it does not share the GIL with ingestion.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from devtools.webserver import free_port

if TYPE_CHECKING:
    from event_assets.ingest import IngestSummary
    from event_assets.settings import Settings

DAY = date(2026, 1, 15)


def _synthetic_rows(start: int, count: int, *, day: date = DAY) -> pa.Table:
    from event_assets.events.identity import id_words
    from event_assets.events.schema import EVENTS_TABLE_SCHEMA

    when = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    ids = [hashlib.sha256(b"bench-%d" % i).hexdigest() for i in range(start, start + count)]
    n = len(ids)
    hi, lo = id_words(pa.array(ids))
    return pa.table(
        {
            "event_id": ids,
            "event_date": pa.array([day] * n, pa.date32()),
            "event_time": pa.array([when] * n, pa.timestamp("us", tz="UTC")),
            "message_id": [str(i) for i in range(start, start + count)],
            "publish_time": pa.array([when] * n, pa.timestamp("us", tz="UTC")),
            "ce_id": [None] * n,
            "ce_source": [None] * n,
            "ce_type": [None] * n,
            "ce_subject": [None] * n,
            "ce_specversion": [None] * n,
            "ce_datacontenttype": [None] * n,
            "attributes": ["{}"] * n,
            "data": [
                f'{{"customer": "c-{i % 977}", "i": {i}, "total": {i % 5000}}}'
                for i in range(start, start + count)
            ],
            "ingested_at": pa.array([when] * n, pa.timestamp("us", tz="UTC")),
            "batch_id": ["bench"] * n,
            "event_id_hi": hi,
            "event_id_lo": lo,
        },
        schema=EVENTS_TABLE_SCHEMA,
    )


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


@contextlib.contextmanager
def _emulator_lab(name: str, **overrides: Any) -> Iterator[Settings]:
    """An emulator in its own process (no GIL shared with ingestion) and settings for it."""
    from event_assets.pubsub.client import ensure_topic_and_subscription
    from event_assets.settings import load_settings

    port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "event_assets.cli", "emulator", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert emulator.stdout is not None
        emulator.stdout.readline()  # "listening on ..." once ready
        with tempfile.TemporaryDirectory() as tmp:
            settings = load_settings(
                **{
                    "LAKE_URI": f"{tmp}/lake",
                    "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{port}",
                    "PUBSUB_TOPIC": name,
                    "PUBSUB_SUBSCRIPTION": f"{name}-sub",
                    "PULL_TIMEOUT_SECONDS": 120,
                    **overrides,
                }
            )
            ensure_topic_and_subscription(settings)
            yield settings
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)


def bench_end_to_end(events: int, repeats: int, decode_workers: int = 0) -> dict[str, Any]:
    """Publish to the emulator, then time `ingest --once` (pull, decode, land, ack, merge)
    with the default round size, until every event is in the table.

    `ingest --once` ends with one more Pull that must come back empty to show the
    subscription is drained (the emulator holds an empty Pull for up to 1 s): that
    is reported as `process_seconds`, and the rate counts until the last event is in
    the table (the round callback reports it). With `decode_workers`, the decode pool
    is started (and its start-up timed) before the runs, as in a long-lived process.
    """
    from devtools.demo import demo_messages
    from event_assets import decode_pool
    from event_assets.ingest import ingest
    from event_assets.pubsub.client import publish

    rates: list[float] = []
    publish_rates: list[float] = []
    process_seconds: list[float] = []
    started = time.perf_counter()
    if decode_workers:
        pool = decode_pool.shared_pool(decode_workers)  # the one `ingest` will use
        assert pool is not None
        assert pool.start(timeout=300), "decode workers did not start"
    pool_start = time.perf_counter() - started
    for run in range(repeats):
        with _emulator_lab(
            f"bench-{decode_workers}-{run}", DECODE_WORKERS=decode_workers
        ) as settings:
            messages = list(demo_messages(events, offset=run * events))
            started = time.perf_counter()
            publish(settings, messages)
            publish_rates.append(events / (time.perf_counter() - started))
            in_table: list[float] = []
            started = time.perf_counter()
            summary = ingest(settings, once=True, on_round=partial(_in_table, events, in_table))
            process_seconds.append(time.perf_counter() - started)
            assert summary.inserted == events, summary
            rates.append(events / (in_table[0] - started))
    return {
        "events": events,
        "decode_workers": decode_workers,
        "pool_start_seconds": pool_start,
        "events_per_s": _stats(rates),
        "process_seconds": _stats(process_seconds),
        "publish_per_s": _stats(publish_rates),
    }


def _in_table(events: int, seen: list[float], summary: IngestSummary) -> None:
    """Round callback: note when the last of `events` is in the table."""
    if summary.inserted >= events and not seen:
        seen.append(time.perf_counter())


def bench_sensor_tick(messages: int, repeats: int) -> dict[str, Any]:
    """One sensor tick: `pull_round` (pull, decode, land, quarantine, ack) of `messages`."""
    from devtools.demo import demo_messages
    from event_assets.ingest import lake_of, pull_round
    from event_assets.pubsub.client import Subscription, publish

    seconds: list[float] = []
    publish_seconds: list[float] = []
    for run in range(repeats):
        with _emulator_lab(f"tick-{run}", PULL_MAX_MESSAGES=messages) as settings:
            batch = list(demo_messages(messages, offset=run * messages))
            started = time.perf_counter()
            publish(settings, batch)
            publish_seconds.append(time.perf_counter() - started)
            lake = lake_of(settings)
            with Subscription(settings) as subscription:
                started = time.perf_counter()
                landed = pull_round(settings, subscription, lake)
                seconds.append(time.perf_counter() - started)
            assert landed.pulled == messages, landed
            assert landed.landed == messages, landed
    return {
        "messages": messages,
        "tick_seconds": _stats(seconds),
        "publish_seconds": _stats(publish_seconds),
    }


def _child(mode: str, uri: str, batch: int, partition_rows: int) -> None:
    """Run one write in this fresh process; print seconds and peak RSS as JSON."""
    from deltalake import write_deltalake

    from event_assets.storage.lake import Lake
    from event_assets.storage.tables import events_target

    # Half the batch already in the partition, half new: the realistic redelivery mix.
    rows = _synthetic_rows(partition_rows - batch // 2, batch)
    started = time.perf_counter()
    if mode == "append":
        write_deltalake(uri, rows, mode="append", partition_by=["event_date"])
    else:
        from event_assets.storage.delta import dedup_write

        target = events_target(Lake.from_uri(str(Path(uri).parent)))
        result = dedup_write(target, rows, partition=DAY.isoformat())
        assert result.inserted == batch - batch // 2, result
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_rss_bytes": peak_rss_bytes()}))


def peak_rss_bytes() -> int:
    """This process's peak RSS since exec.

    Not getrusage's ru_maxrss: Linux carries it across fork+exec, so a child
    forked from the big parent that built the 5M-row table would report the
    parent's peak (1.6 GiB, measured) instead of its own. VmHWM starts afresh.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _build_partition(uri: str, rows: int, *, day: date = DAY) -> None:
    from deltalake import write_deltalake

    step = 1_000_000
    for start in range(0, rows, step):
        write_deltalake(
            uri,
            _synthetic_rows(start, min(step, rows - start), day=day),
            mode="append",
            partition_by=["event_date"],
        )


def _run_child(mode: str, work: Path, batch: int, partition_rows: int) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--child",
            mode,
            str(work),
            str(batch),
            str(partition_rows),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def bench_dedup_write(partition_rows: int, batch: int, repeats: int) -> dict[str, Any]:
    """Dedup-write `batch` rows (half new) into a `partition_rows` partition vs plain append."""
    figures: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base" / "events"
        _build_partition(str(base), partition_rows)
        for mode in ("append", "dedup_write"):
            secs: list[float] = []
            rss: list[float] = []
            for i in range(repeats):
                work = Path(tmp) / f"{mode}-{i}" / "events"
                shutil.copytree(base, work)
                result = _run_child(mode, work, batch, partition_rows)
                secs.append(result["seconds"])
                rss.append(result["peak_rss_bytes"] / 2**30)
            figures[mode] = {"seconds": secs, "peak_rss_gib": rss}
    append_s = statistics.median(figures["append"]["seconds"])
    dedup_s = statistics.median(figures["dedup_write"]["seconds"])
    return {
        "partition_rows": partition_rows,
        "batch": batch,
        "append_seconds": _stats(figures["append"]["seconds"]),
        "dedup_write_seconds": _stats(figures["dedup_write"]["seconds"]),
        "dedup_write_peak_rss_gib": _stats(figures["dedup_write"]["peak_rss_gib"]),
        "append_peak_rss_gib": _stats(figures["append"]["peak_rss_gib"]),
        "dedup_over_append": dedup_s / append_s,
    }


def bench_other_partitions(
    partition_rows: int, others: int, other_rows: int, batch: int, repeats: int
) -> dict[str, Any]:
    """Dedup-write into one partition of a table that also holds `others` other days.

    Each repeat writes a fresh batch (half already present) into the same two
    tables, alternating between them, so both grow alike and neither is copied.
    """
    from datetime import timedelta

    secs: dict[str, list[float]] = {"alone": [], "with_others": []}
    with tempfile.TemporaryDirectory() as tmp:
        alone = Path(tmp) / "alone" / "events"
        crowded = Path(tmp) / "crowded" / "events"
        _build_partition(str(alone), partition_rows)
        _build_partition(str(crowded), partition_rows)
        for i in range(others):
            _build_partition(str(crowded), other_rows, day=DAY + timedelta(days=i + 1))
        for run in range(repeats):
            present = partition_rows + run * (batch - batch // 2)
            for name, work in (("alone", alone), ("with_others", crowded)):
                secs[name].append(_run_child("dedup_write", work, batch, present)["seconds"])
    return {
        "partition_rows": partition_rows,
        "other_partitions": others,
        "other_partition_rows": other_rows,
        "batch": batch,
        "alone_seconds": _stats(secs["alone"]),
        "with_others_seconds": _stats(secs["with_others"]),
        "with_others_over_alone": statistics.median(secs["with_others"])
        / statistics.median(secs["alone"]),
    }


def _build_small_files(uri: str, files: int) -> int:
    """One day written as ~`files` small files (about 1,000 rows each) in one commit."""
    from deltalake import WriterProperties, write_deltalake

    rows = _synthetic_rows(0, files * 1024)
    write_deltalake(
        uri,
        rows.to_batches(max_chunksize=1000),
        partition_by=["event_date"],
        target_file_size=1,
        writer_properties=WriterProperties(max_row_group_size=1000, write_batch_size=1000),
    )
    return rows.num_rows


def bench_compaction(files: int, repeats: int) -> dict[str, Any]:
    """`compact` of a day of small files vs a plain rewrite (read all, overwrite the day)."""
    from deltalake import DeltaTable, write_deltalake

    from event_assets.storage.lake import Lake
    from event_assets.storage.maintenance import compact
    from event_assets.storage.tables import events_target

    secs: dict[str, list[float]] = {"compact": [], "rewrite": []}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base" / "events"
        rows = _build_small_files(str(base), files)
        actual_files = len(DeltaTable(str(base)).file_uris())
        for run in range(repeats):
            for mode in ("compact", "rewrite"):
                work = Path(tmp) / f"{mode}-{run}" / "events"
                shutil.copytree(base, work)
                started = time.perf_counter()
                if mode == "compact":
                    target = events_target(Lake.from_uri(str(work.parent)))
                    result = compact(target, [DAY.isoformat()])
                    assert result.files_after < result.files_before, result
                else:
                    dt = DeltaTable(str(work))
                    day = dt.to_pyarrow_dataset(
                        file_pruning_predicate=[("event_date", "=", DAY.isoformat())]
                    ).to_table()
                    write_deltalake(
                        dt,
                        day,
                        mode="overwrite",
                        predicate=f"event_date = '{DAY.isoformat()}'",
                        partition_by=["event_date"],
                    )
                secs[mode].append(time.perf_counter() - started)
                shutil.rmtree(work.parent)
    return {
        "files": actual_files,
        "rows": rows,
        "compact_seconds": _stats(secs["compact"]),
        "rewrite_seconds": _stats(secs["rewrite"]),
        "compact_over_rewrite": statistics.median(secs["compact"])
        / statistics.median(secs["rewrite"]),
    }


ROUND_ENV = (
    "LAKE_URI",
    "PUBSUB_EMULATOR_HOST",
    "PUBSUB_TOPIC",
    "PUBSUB_SUBSCRIPTION",
    "PULL_MAX_BYTES",
    "PULL_MAX_MESSAGES",
    "PULL_TIMEOUT_SECONDS",
    "MAX_MESSAGE_BYTES",
)


def bench_round_memory(total_bytes: int, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    """Peak RSS of one pull round per pulled payload byte, ASCII and non-ASCII text: what
    PULL_MAX_BYTES must be derived from (a round is held whole while it is landed)."""
    from event_assets_tests.support.memory import MESSAGE_KINDS, measure_round, publish_backlog

    figures = []
    for kind, size in ((k, s) for s in sizes for k in MESSAGE_KINDS):
        overrides = {
            "PULL_MAX_BYTES": 4 * total_bytes,  # the whole backlog in one round
            "PULL_MAX_MESSAGES": 1_000_000,
            "MAX_MESSAGE_BYTES": 4 * size,
        }
        with _emulator_lab(f"memory-{kind}-{size}", **overrides) as settings:
            message_bytes = publish_backlog(settings, kind, total_bytes, size)
            env = {name: str(getattr(settings, name)) for name in ROUND_ENV}
            round_ = measure_round(env)
        payload = round_["pulled"] * message_bytes
        figures.append(
            {
                "kind": kind,
                "message_bytes": message_bytes,
                "pulled": round_["pulled"],
                "payload_mib": round(payload / 2**20, 1),
                "rss_before_mib": round(round_["rss_before"] / 2**20, 1),
                "round_peak_mib": round(round_["round_bytes"] / 2**20, 1),
                "peak_per_payload_byte": round(round_["round_bytes"] / payload, 2),
            }
        )
    return figures


def bench_dagster(
    backlog: int, trickle_rate: int, trickle_seconds: float, timeout: float, logs: Path
) -> dict[str, Any]:
    """The real daemon on a backlog and a trickle, and `ingest --once` on the same backlog.

    The daemon and emulator logs are kept in `logs` (the lab's temp dir goes away).
    """
    from benchmarks.dagster_path import bench_daemon

    daemon = bench_daemon(backlog, trickle_rate, trickle_seconds, timeout=timeout, keep_logs=logs)
    daemon["logs"] = str(logs)
    reference = bench_end_to_end(backlog, 1)
    daemon["ingest_once"] = reference
    daemon["daemon_over_ingest_once"] = daemon["events_per_s"] / reference["events_per_s"]["median"]
    return daemon


def _goal(met: bool) -> str:
    return "met" if met else "NOT met"


def _print_dagster(d: dict[str, Any]) -> None:
    """The Dagster path's figures, each beside its goal."""
    queue, trickle = d["queue"], d["trickle"]
    days = d["days_touched"]
    rows = [
        (
            f"dagster-daemon: start -> last of {d['backlog']} in table, events/s",
            f"{d['events_per_s']:,.0f}",
            ">= 20,000",
            _goal(d["events_per_s"] >= 20_000),
        ),
        (
            "  ingest --once on the same backlog, events/s",
            f"{d['ingest_once']['events_per_s']['median']:,.0f}",
            "",
            "",
        ),
        (
            "  daemon / ingest --once",
            f"{d['daemon_over_ingest_once']:.2f}",
            ">= 0.5",
            _goal(d["daemon_over_ingest_once"] >= 0.5),
        ),
        ("  daemon start -> first event in table (s)", f"{d['first_event_seconds']:.1f}", "", ""),
        ("  publish of the backlog, events/s", f"{d['publish_per_s']:,.0f}", "", ""),
        (
            "  ingest runs launched (all runs)",
            f"{d['ingest_runs']} ({sum(d['runs_launched'].values())})",
            "",
            "",
        ),
        (
            f"  most ingest runs queued at once ({days} days)",
            f"{queue['max_queued']} (one day: {queue['max_queued_one_partition']})",
            "<= 1 per day",
            _goal(queue["max_queued"] <= days and queue["max_queued_one_partition"] <= 1),
        ),
        (
            f"trickle {trickle['published_per_s']:,.0f} events/s for {trickle['seconds']:.0f} s: "
            "latency p50 (s)",
            f"{trickle['latency_p50_s']:.1f}",
            "",
            "",
        ),
        (
            "  publish -> queryable latency p95 (s)",
            f"{trickle['latency_p95_s']:.1f} (max {trickle['latency_max_s']:.1f})",
            "<= 45",
            _goal(trickle["latency_p95_s"] <= 45),
        ),
        (
            "  ingest runs; most queued at once",
            f"{trickle['ingest_runs']}; {trickle['queue']['max_queued']}",
            "",
            "",
        ),
        (
            "  failed runs; daemon log warning/error lines",
            f"{len(d['run_failures'])}; {sum(d['daemon_log_problems'].values())}",
            "",
            "",
        ),
    ]
    print()
    print(f"{'Dagster path (real dagster-daemon)':<58} {'value':>22} {'goal':>14} {'':>8}")
    for label, value, goal, met in rows:
        print(f"{label:<58} {value:>22} {goal:>14} {met:>8}")
    print(f"  daemon and emulator logs in {d['logs']}")
    for line in d["run_failures"][:5]:
        print(f"  failed run: {line}")
    for line, count in sorted(d["daemon_log_problems"].items(), key=lambda kv: -kv[1])[:8]:
        print(f"  daemon log x{count}: {line[:160]}")


def fmt(s: dict[str, float], unit: str = "") -> str:
    return f"{s['median']:.2f}{unit} ({s['min']:.2f}-{s['max']:.2f})"


def _print_table(results: dict[str, Any]) -> None:
    print(f"{'figure':<48} {'median (min-max)':>30}")
    for tick in results.get("empty_tick", []):
        label = f"empty tick, {tick['history_batches']} old batches / fresh ({tick['backend']})"
        ratio = f"{tick['history_seconds']:.2f} / {tick['fresh_seconds']:.2f} s"
        print(f"{label:<48} {ratio:>22} = {tick['history_over_fresh']:.2f}x (goal <= 1.2)")
    if "end_to_end" in results:
        _print_end_to_end(results)
    if "dedup_write" in results:
        _print_dedup_write(results)
    if "sensor_tick" in results:
        tick = results["sensor_tick"]
        label = f"sensor tick: pull + land {tick['messages']} (s)"
        print(f"{label:<48} {fmt(tick['tick_seconds']):>30}")
        print(f"{'  publish of the same messages (s)':<48} {fmt(tick['publish_seconds']):>30}")
    if "other_partitions" in results:
        op = results["other_partitions"]
        label = f"dedup-write, {op['other_partitions']} other days of {op['other_partition_rows']}"
        label += " rows (s)"
        print(f"{label:<48} {fmt(op['with_others_seconds']):>30}")
        print(f"{'  same, no other partitions (s)':<48} {fmt(op['alone_seconds']):>30}")
        print(f"{'  with others / alone':<48} {op['with_others_over_alone']:>30.2f}")
    if "compaction" in results:
        comp = results["compaction"]
        label = f"compaction of {comp['files']} small files (s)"
        print(f"{label:<48} {fmt(comp['compact_seconds']):>30}")
        print(f"{'  plain rewrite of the same rows (s)':<48} {fmt(comp['rewrite_seconds']):>30}")
        print(f"{'  compaction / rewrite':<48} {comp['compact_over_rewrite']:>30.2f}")
    if "startup" in results:
        _print_startup(results["startup"])
    for m in results.get("round_memory", []):
        label = f"round peak RSS / payload, {m['kind']} {m['message_bytes']} B messages"
        print(f"{label:<48} {m['peak_per_payload_byte']:>29.2f}x")
    if "dagster" in results:
        _print_dagster(results["dagster"])


def _print_startup(startup: dict[str, Any]) -> None:
    """Fresh-process start-up against its goals (issue 13)."""
    for name, label in (
        ("import_dagster", "start-up: python -c 'import dagster' (s)"),
        ("code_location", "  python -c 'import event_assets.definitions' (s)"),
        ("cli_help", "  event-assets --help (s)"),
    ):
        print(f"{label:<48} {fmt(startup[name]):>30}")
    over = startup["code_location_over_dagster_seconds"]
    met = "met" if over <= 1.0 else "NOT met"
    print(f"{'  code location - import dagster (s)':<48} {over:>30.2f}  goal <= 1.0 {met}")
    cli = startup["cli_help"]["median"]
    print(f"{'  CLI goal <= 1.5 s':<48} {'met' if cli <= 1.5 else 'NOT met':>30}")


def _print_end_to_end(results: dict[str, Any]) -> None:
    e2e = results["end_to_end"]
    label = f"end to end events/s ({e2e['events']} events in table)"
    print(f"{label:<48} {fmt(e2e['events_per_s']):>30}")
    print(
        f"{'  ingest --once, incl. its empty last Pull (s)':<48} {fmt(e2e['process_seconds']):>30}"
    )
    print(f"{'publish events/s':<48} {fmt(e2e['publish_per_s']):>30}")
    pool = results["end_to_end_pool"]
    label = f"  same, DECODE_WORKERS={pool['decode_workers']} (warm pool)"
    print(f"{label:<48} {fmt(pool['events_per_s']):>30}")
    print(
        f"{'  ingest --once, incl. its empty last Pull (s)':<48} {fmt(pool['process_seconds']):>30}"
    )
    print(f"{'  decode pool start-up, once (s)':<48} {pool['pool_start_seconds']:>30.2f}")


def _print_dedup_write(results: dict[str, Any]) -> None:
    dw = results["dedup_write"]
    label = f"dedup-write {dw['batch']} into {dw['partition_rows']} rows"
    print(f"{label + ' (s)':<48} {fmt(dw['dedup_write_seconds']):>30}")
    print(f"{'plain append of the same batch (s)':<48} {fmt(dw['append_seconds']):>30}")
    print(f"{'dedup-write / append':<48} {dw['dedup_over_append']:>30.2f}")
    print(f"{'dedup-write peak RSS (GiB)':<48} {fmt(dw['dedup_write_peak_rss_gib']):>30}")
    for rss in results["dedup_rss_by_partition"]:
        label = f"  peak RSS at {rss['partition_rows']} rows (GiB) dedup / append"
        print(
            f"{label:<48} {fmt(rss['dedup_write_peak_rss_gib'])} / "
            f"{fmt(rss['append_peak_rss_gib'])}"
        )


SECTIONS = (
    "end_to_end",
    "sensor_tick",
    "empty_tick",
    "dedup_write",
    "other_partitions",
    "compaction",
    "dagster",
    "startup",
    "round_memory",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partition-rows", type=int, default=5_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tick-messages", type=int, default=50_000)
    parser.add_argument("--other-partitions", type=int, default=30)
    parser.add_argument("--small-files", type=int, default=1_000)
    parser.add_argument("--small", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument(
        "--huge", action="store_true", help="also peak RSS at a 20M-row partition (slow)"
    )
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only this section (repeatable)"
    )
    parser.add_argument(
        "--skip", action="append", choices=SECTIONS, default=[], help="skip this section"
    )
    parser.add_argument(
        "--dagster-backlog", type=int, help="messages before the daemon starts (500,000)"
    )
    parser.add_argument(
        "--dagster-trickle-rate", type=int, help="trickle events/s for the latency (2,000)"
    )
    parser.add_argument("--dagster-trickle-seconds", type=float, help="trickle length (120)")
    parser.add_argument(
        "--dagster-timeout",
        type=float,
        default=1800.0,
        help="bound on each wait for the daemon (s); a hang fails with its log",
    )

    parser.add_argument(
        "--json", type=Path, help="results file (benchmarks/results/latest[-SECTIONS].json)"
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, uri, batch, partition_rows = args.child
        _child(mode, uri, int(batch), int(partition_rows))
        return 0
    rss_sizes = [1_000_000]
    backlog, trickle_rate, trickle_seconds = 500_000, 2_000, 120.0
    if args.small:
        args.events, args.partition_rows, args.batch, args.repeats = 2_000, 20_000, 2_000, 1
        args.tick_messages, args.other_partitions, args.small_files = 2_000, 2, 20
        rss_sizes = [10_000]
        backlog, trickle_rate, trickle_seconds = 20_000, 200, 30.0
    if args.huge:
        rss_sizes.append(20_000_000)
    backlog = args.dagster_backlog or backlog
    trickle_rate = args.dagster_trickle_rate or trickle_rate
    trickle_seconds = args.dagster_trickle_seconds or trickle_seconds
    sections = [s for s in (args.only or SECTIONS) if s not in args.skip]
    if args.json is None:
        suffix = "" if sections == list(SECTIONS) else "-" + "+".join(sections)
        args.json = Path(f"benchmarks/results/latest{suffix}.json")
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "sections": sections,
    }
    if "end_to_end" in sections:
        results["end_to_end"] = bench_end_to_end(args.events, args.repeats)
        results["end_to_end_pool"] = bench_end_to_end(args.events, args.repeats, decode_workers=2)
    if "sensor_tick" in sections:
        results["sensor_tick"] = bench_sensor_tick(args.tick_messages, args.repeats)
    if "empty_tick" in sections:
        from benchmarks.empty_tick import bench_empty_tick

        history = 2_000 if args.small else 100_000
        results["empty_tick"] = [
            bench_empty_tick(history, args.repeats, backend) for backend in ("local", "gcs")
        ]
    if "dedup_write" in sections:
        results["dedup_write"] = bench_dedup_write(args.partition_rows, args.batch, args.repeats)
        # Memory bounded with partition size: the same dedup-write at other sizes.
        by_size = [results["dedup_write"]]
        by_size += [bench_dedup_write(rows, args.batch, args.repeats) for rows in rss_sizes]
        results["dedup_rss_by_partition"] = sorted(by_size, key=lambda r: r["partition_rows"])
    if "other_partitions" in sections:
        other_rows = min(args.partition_rows, 1_000_000)
        results["other_partitions"] = bench_other_partitions(
            other_rows, args.other_partitions, other_rows, args.batch, args.repeats
        )
    if "compaction" in sections:
        results["compaction"] = bench_compaction(args.small_files, args.repeats)
    if "startup" in sections:
        from benchmarks.startup import bench_startup

        # Five samples at full size: one start-up swings by ~0.5 s on this host.
        results["startup"] = bench_startup(1 if args.small else max(args.repeats, 5))
    if "round_memory" in sections:
        total = 4 * 2**20 if args.small else 64 * 2**20
        results["round_memory"] = bench_round_memory(total, (500, 5_000, 50_000))
    if "dagster" in sections:
        results["dagster"] = bench_dagster(
            backlog,
            trickle_rate,
            trickle_seconds,
            args.dagster_timeout,
            args.json.parent / f"{args.json.stem}-daemon-logs",
        )
    _print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"\nwritten {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
