"""Sensor tick -> RunRequests -> partition runs -> table, through the real emulator."""

from __future__ import annotations

import io
import json
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import obstore
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster._core.test_utils import create_run_for_test
from deltalake import DeltaTable, write_deltalake

from event_assets.definitions import build_defs
from event_assets.defs.ingestion import INGEST_JOB, MERGE_DAY_TAG, merge_request
from event_assets.events.models import ReasonCode
from event_assets.ingest import lake_of, pull_round
from event_assets.pubsub.client import Subscription, publish
from event_assets.settings import Settings, load_settings
from event_assets.storage.lake import LANDING_DIR
from event_assets.storage.landing import PENDING_DIR, batch_time, pending_batches, pending_by_day

from ..corpus import mixed_corpus
from ..support.daemon import wait_for
from .conftest import check_results, run_partition, run_table_checks, sensor_tick

# The same tests against a local folder and against gs:// on the GCS fake.
LAKE_KINDS = ("local", "gcs")
PER_MERGE_CHECKS = {
    "event_id_unique",
    "required_columns_non_null",
    "landing_reconciliation",
    "cross_partition_duplicates",
}


def _ids(settings: Settings, partition: str) -> list[str]:
    dt = DeltaTable(lake_of(settings).events_uri)
    table = dt.to_pyarrow_dataset(file_pruning_predicate=[("event_date", "=", partition)]).to_table(
        columns=["event_id"]
    )
    return table["event_id"].to_pylist()


def _run_all(instance: dg.DagsterInstance, requests: Sequence[dg.RunRequest]) -> int:
    """Execute each request as a launched run would; the rows they inserted."""
    total = 0
    for request in requests:
        run = run_partition(instance, request.partition_key or "", dict(request.run_config))
        assert run.success
        total += int(
            run.asset_materializations_for_node("events")[0].metadata["rows_inserted"].value
        )
    return total


def test_sensor_tick_requests_runs_that_fill_the_table(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    publish(settings, corpus.messages)
    result = sensor_tick(instance)
    requests = result.run_requests or []
    today = datetime.now(UTC).date().isoformat()
    assert sorted(str(r.partition_key) for r in requests) == ["2026-11-20", today]
    for request in requests:
        assert request.run_key
        assert str(request.partition_key) in request.run_key
        assert request.run_config["ops"]["events"]["config"] == {"pending": True}
        # The run queue's one-merge-per-day limit keys on this tag (dagster.yaml).
        assert request.tags[MERGE_DAY_TAG] == request.partition_key
        # Routine merges queue behind runs launched from the UI (priority 0).
        assert int(request.tags["dagster/priority"]) < 0
    assert result.cursor is not None
    cursor = json.loads(result.cursor)
    assert cursor["pulled"] == 88
    assert cursor["quarantined"] == 8
    assert cursor["last_tick"]["backlog_left"] is False
    # The tick reports what it quarantined on `events_quarantine`, every reason listed.
    (reported,) = result.asset_events
    assert isinstance(reported, dg.AssetMaterialization)
    assert reported.asset_key == dg.AssetKey("events_quarantine")
    quarantine = {k: v.value for k, v in reported.metadata.items()}
    assert quarantine["rows_added"] == quarantine["dagster/row_count"] == 8
    for reason in ReasonCode:
        assert quarantine[f"reason/{reason.value}"] == corpus.bad.get(reason.value, 0)

    total = 0
    for request in requests:
        run = run_partition(instance, request.partition_key or "", dict(request.run_config))
        assert run.success
        metadata = run.asset_materializations_for_node("events")[0].metadata
        total += int(metadata["rows_inserted"].value)
        assert metadata["landing_batches"].value == 1
        assert int(metadata["table_version"].value) >= 0
        # The day's total rows (one run per day here: what it inserted), and the lags.
        assert metadata["dagster/row_count"].value == metadata["rows_inserted"].value
        assert 0 <= float(metadata["landing_lag_seconds"].value) < 600
        assert "event_lag_seconds" in metadata
        # Counters that are nearly always the same are left out when they are.
        assert not {"commit_attempts", "duplicates_repaired"} & set(metadata)
        checks = check_results(run)
        assert {name: c.passed for name, c in checks.items()} == dict.fromkeys(
            PER_MERGE_CHECKS, True
        )
        assert checks["event_id_unique"].partition == request.partition_key
    assert total == corpus.unique_events
    assert pending_batches(lake_of(settings)) == []
    # Next tick: nothing left to pull, nothing to merge.
    again = sensor_tick(instance, result.cursor)
    assert not again.run_requests
    assert again.skip_reason is not None


def test_one_tick_drains_the_backlog_in_rounds(
    settings: Settings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULL_MAX_MESSAGES", "20")
    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    publish(settings, corpus.messages)
    result = sensor_tick(instance)
    tick = json.loads(result.cursor or "{}")["last_tick"]
    assert tick["pulled"] == 88
    assert tick["rounds"] >= 5  # 88 messages, at most 20 a round, then an empty Pull
    assert tick["backlog_left"] is False
    # Many rounds, still one run per day.
    requests = result.run_requests or []
    assert len(requests) == 2
    assert _run_all(instance, requests) == corpus.unique_events


def test_a_tick_stops_on_its_budget_and_says_so(
    settings: Settings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULL_MAX_MESSAGES", "20")
    monkeypatch.setenv("SENSOR_TICK_BUDGET_SECONDS", "0.001")
    publish(settings, mixed_corpus(settings.MAX_MESSAGE_BYTES).messages)
    first = sensor_tick(instance)
    tick = json.loads(first.cursor or "{}")["last_tick"]
    assert tick == {**tick, "rounds": 1, "pulled": 20, "backlog_left": True}
    second = sensor_tick(instance, first.cursor)
    totals = json.loads(second.cursor or "{}")
    assert totals["pulled"] == 40
    assert totals["ticks"] == 2


def test_at_most_one_queued_run_per_day(settings: Settings, instance: dg.DagsterInstance) -> None:
    publish(settings, mixed_corpus(settings.MAX_MESSAGE_BYTES).messages)
    today = datetime.now(UTC).date().isoformat()
    create_run_for_test(
        instance,
        job_name=INGEST_JOB,
        status=dg.DagsterRunStatus.NOT_STARTED,
        tags={"dagster/partition": today},
    )
    result = sensor_tick(instance)
    # Today's queued run will take today's batches when it starts; only the other day.
    assert [r.partition_key for r in result.run_requests or []] == ["2026-11-20"]
    assert pending_batches(lake_of(settings), date.fromisoformat(today))


def test_a_running_run_gets_a_successor_only_for_batches_it_may_have_missed(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    publish(settings, mixed_corpus(settings.MAX_MESSAGE_BYTES).messages)
    lake = lake_of(settings)
    today = datetime.now(UTC).date()
    with Subscription(settings) as subscription:
        pull_round(settings, subscription, lake)
    pending = pending_by_day(lake)[today]
    landed = max(batch_time(p) for p in pending)
    run = create_run_for_test(
        instance, job_name=INGEST_JOB, tags={"dagster/partition": today.isoformat()}
    )
    now = datetime.now(UTC)
    # Started after every pending batch landed: it lists them all, no successor.
    _record(instance, run, dg.DagsterEventType.RUN_START, landed + timedelta(seconds=1))
    assert merge_request(instance, load_settings(), today, pending, now) is None
    # Started before the newest landed: it may have listed too early, one successor.
    _record(instance, run, dg.DagsterEventType.RUN_START, landed - timedelta(seconds=1))
    assert merge_request(instance, load_settings(), today, pending, now) is not None


def _record(
    instance: dg.DagsterInstance, run: dg.DagsterRun, kind: dg.DagsterEventType, when: datetime
) -> None:
    """Record a run's start or end at `when`, as its worker would."""
    event = dg.DagsterEvent(kind.value, job_name=run.job_name)
    instance.handle_run_event(run.run_id, event, update_timestamp=when)


def test_a_failed_run_is_retried_with_backoff_and_a_fresh_run_key(
    settings: Settings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUN_RETRY_BASE_SECONDS", "60")
    publish(settings, mixed_corpus(settings.MAX_MESSAGE_BYTES).messages)
    lake = lake_of(settings)
    with Subscription(settings) as subscription:
        pull_round(settings, subscription, lake)
    today = datetime.now(UTC).date()
    pending = pending_by_day(lake)[today]
    first = merge_request(instance, load_settings(), today, pending, datetime.now(UTC))
    assert first is not None
    failed_at = datetime.now(UTC)
    for n in range(2):
        run = create_run_for_test(
            instance,
            job_name=INGEST_JOB,
            tags={"dagster/partition": today.isoformat()},
            status=dg.DagsterRunStatus.STARTED,
        )
        _record(instance, run, dg.DagsterEventType.RUN_FAILURE, failed_at + timedelta(0, n))
    assert instance.get_run_records(dg.RunsFilter(job_name=INGEST_JOB))[0].end_time
    # Two failures in a row: wait 60 s * 2 after the last one, then a new key.
    soon = failed_at + timedelta(seconds=100)
    assert merge_request(instance, load_settings(), today, pending, soon) is None
    later = failed_at + timedelta(seconds=122)
    retry = merge_request(instance, load_settings(), today, pending, later)
    assert retry is not None
    assert retry.run_key != first.run_key


def test_unreachable_pubsub_is_a_skip_with_the_cause(
    settings: Settings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")
    result = sensor_tick(instance)
    assert not result.run_requests
    assert result.skip_reason is not None
    assert "UNAVAILABLE" in (result.skip_reason.skip_message or "")


def test_backfill_restores_deleted_rows_exactly(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    publish(settings, mixed_corpus(settings.MAX_MESSAGE_BYTES).messages)
    _run_all(instance, sensor_tick(instance).run_requests or [])
    today = datetime.now(UTC).date().isoformat()
    before = sorted(_ids(settings, today))
    DeltaTable(lake_of(settings).events_uri).delete(f"event_date = '{today}'")
    assert _ids(settings, today) == []
    # A backfill from the UI: the partition with no run config.
    backfill = run_partition(instance, today)
    assert backfill.success
    assert sorted(_ids(settings, today)) == before
    assert check_results(backfill)["landing_reconciliation"].passed


def test_scheduled_audit_passes_in_steady_state_and_fails_on_forged_faults(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    publish(settings, mixed_corpus(settings.MAX_MESSAGE_BYTES).messages)
    _run_all(instance, sensor_tick(instance).run_requests or [])
    steady = run_table_checks(instance)
    assert steady["recent_days_audit"].passed, steady["recent_days_audit"].description
    assert steady["accounting"].passed
    today = datetime.now(UTC).date()
    uri = lake_of(settings).events_uri
    table = (
        DeltaTable(uri)
        .to_pyarrow_dataset(file_pruning_predicate=[("event_date", "=", today.isoformat())])
        .to_table()
    )
    write_deltalake(uri, table.slice(0, 1), mode="append")  # a duplicate row
    audit = run_table_checks(instance)["recent_days_audit"]
    assert not audit.passed
    assert "occur more than once" in (audit.description or "")
    # Deleting merged rows is lost data.
    DeltaTable(uri).delete(f"event_date = '{today.isoformat()}'")
    audit = run_table_checks(instance)["recent_days_audit"]
    assert not audit.passed
    assert "missing" in (audit.description or "")
    # Re-running the partition (a backfill) heals what the audit saw.
    healed = check_results(run_partition(instance, today.isoformat()))
    assert all(healed[name].passed for name in PER_MERGE_CHECKS)
    assert run_table_checks(instance)["recent_days_audit"].passed


def test_in_flight_batches_are_not_a_failure_until_stuck(
    settings: Settings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(settings, mixed_corpus(settings.MAX_MESSAGE_BYTES).messages)
    with Subscription(settings) as subscription:
        pull_round(settings, subscription, lake_of(settings))  # landed, run not yet done
    audit = run_table_checks(instance)["recent_days_audit"]
    assert audit.passed, audit.description
    assert "in flight" in (audit.description or "")
    monkeypatch.setenv("PENDING_STUCK_MINUTES", "1")
    stuck = _audit_at(instance, datetime.now(UTC) + timedelta(minutes=2))
    assert not stuck.passed
    assert "pending for over 60 s" in (stuck.description or "")


def _audit_at(instance: dg.DagsterInstance, when: datetime) -> dg.AssetCheckEvaluation:
    from unittest import mock

    with mock.patch("event_assets.defs.checks.datetime") as clock:
        clock.now.return_value = when
        return run_table_checks(instance)["recent_days_audit"]


def test_per_merge_checks_fail_on_forged_faults(settings: Settings) -> None:
    from event_assets.ingest import recover_pending
    from event_assets.storage.checks import MergeAudit
    from event_assets.storage.landing import list_batches, read_batches
    from event_assets.storage.tables import events_target

    publish(settings, mixed_corpus(settings.MAX_MESSAGE_BYTES).messages)
    lake = lake_of(settings)
    with Subscription(settings) as subscription:
        pull_round(settings, subscription, lake)
    recover_pending(settings, lake)
    today = datetime.now(UTC).date()
    rows = read_batches(lake, list_batches(lake, today))
    target = events_target(lake)
    clean = MergeAudit(today.isoformat())
    clean.record(clean.inspect(target, rows))
    assert all(o.passed for o in clean.outcomes().values())
    uri = lake.events_uri
    stored = (
        DeltaTable(uri)
        .to_pyarrow_dataset(file_pruning_predicate=[("event_date", "=", today.isoformat())])
        .to_table()
    )
    write_deltalake(uri, stored.slice(0, 1), mode="append")  # a duplicate
    moved = stored.slice(1, 1).set_column(
        stored.schema.get_field_index("event_date"),
        "event_date",
        pa.array([today + timedelta(days=1)], pa.date32()),
    )
    write_deltalake(uri, moved, mode="append")  # the same event the next day
    DeltaTable(uri).delete(  # a lost row
        f"event_date = '{today.isoformat()}' AND event_id = '{stored['event_id'][2].as_py()}'"
    )
    nulls = rows.set_column(
        rows.schema.get_field_index("data"), "data", pa.nulls(rows.num_rows, pa.string())
    )
    forged = MergeAudit(today.isoformat())
    forged.record(forged.inspect(target, nulls))
    outcomes = forged.outcomes()
    assert {name: o.passed for name, o in outcomes.items()} == dict.fromkeys(
        PER_MERGE_CHECKS, False
    )
    assert outcomes["event_id_unique"].metadata["duplicate_ids"] == 1
    assert outcomes["landing_reconciliation"].metadata["missing"] == 1
    assert outcomes["cross_partition_duplicates"].metadata["in_next"] == 1


def _run_in_own_process(args: tuple[dg.InstanceRef, str, dict[str, object]]) -> str:
    """One partition run in a fresh process, as the run launcher would start it; "ok" or
    the error as text (a Dagster error does not survive the trip back through pickle)."""
    ref, partition, run_config = args
    try:
        with dg.DagsterInstance.from_ref(ref) as instance:
            return "ok" if run_partition(instance, partition, run_config).success else "failed"
    except Exception as exc:  # noqa: BLE001 - reported to the test as text
        return f"{type(exc).__name__}: {exc}"


def test_concurrent_runs_of_one_partition_leave_no_duplicates(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    publish(settings, mixed_corpus(settings.MAX_MESSAGE_BYTES).messages)
    requests = sensor_tick(instance).run_requests or []
    today = datetime.now(UTC).date().isoformat()
    (request,) = [r for r in requests if r.partition_key == today]
    ref = instance.get_ref()
    # A worker that dies raises BrokenProcessPool here rather than hanging the map.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=3, mp_context=spawn) as pool:
        runs = [(ref, today, dict(request.run_config))] * 3
        outcomes = list(pool.map(_run_in_own_process, runs, timeout=240))
    assert outcomes == ["ok", "ok", "ok"]
    ids = _ids(settings, today)
    assert len(ids) == len(set(ids)) == 50


def test_batches_landed_but_never_merged_get_a_run_on_the_next_tick(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    publish(settings, corpus.messages)
    lake = lake_of(settings)
    with Subscription(settings) as subscription:
        landed = pull_round(settings, subscription, lake)  # a tick that died before its runs
    assert landed.batches
    result = sensor_tick(instance)  # pulls nothing, finds the pending batches
    assert json.loads(result.cursor or "{}")["pulled"] == 0
    requests = result.run_requests or []
    assert sorted(str(r.partition_key) for r in requests) == sorted(
        {b.partition.isoformat() for b in landed.batches}
    )
    assert _run_all(instance, requests) == corpus.unique_events
    assert pending_batches(lake) == []


@pytest.mark.slow
def test_a_batch_unreadable_until_its_runs_fail_is_merged_once_restored(
    settings: Settings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No manual step: the failed run (after its step retries) is requested again after
    the back-off, with a fresh run key, and the restored batch is merged."""
    monkeypatch.setenv("RUN_RETRY_BASE_SECONDS", "1")
    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    publish(settings, corpus.messages)
    requests = sensor_tick(instance).run_requests or []
    lake = lake_of(settings)
    today = datetime.now(UTC).date()
    (path,) = pending_by_day(lake)[today]
    store = lake.store(LANDING_DIR)
    stored = f"{PENDING_DIR}/{path}"  # where a pending batch lives
    good = obstore.get(store, stored).bytes().to_bytes()
    obstore.put(store, stored, b"not parquet")  # a torn or corrupted object
    (request,) = [r for r in requests if r.partition_key == today.isoformat()]
    failed = (
        build_defs()
        .resolve_job_def(INGEST_JOB)
        .execute_in_process(
            partition_key=today.isoformat(),
            run_config=dict(request.run_config),
            instance=instance,
            raise_on_error=False,
        )
    )
    assert not failed.success
    assert pending_batches(lake, today) == [path]  # still pending: nothing marked merged
    obstore.put(store, stored, good)  # restored

    def retried() -> dg.RunRequest | None:
        tick = sensor_tick(instance)
        return next(
            (r for r in tick.run_requests or [] if r.partition_key == today.isoformat()), None
        )

    retry = wait_for(retried, timeout=30.0, what="the day requested again")
    assert retry.run_key != request.run_key
    assert run_partition(instance, today.isoformat(), dict(retry.run_config)).success
    assert pending_batches(lake, today) == []
    landed = pq.read_table(io.BytesIO(good))["event_id"]
    table = DeltaTable(lake.events_uri).to_pyarrow_table()
    merged = table.filter(pa.compute.equal(table["event_date"], pa.scalar(today)))
    assert sorted(merged["event_id"].to_pylist()) == sorted(set(landed.to_pylist()))
