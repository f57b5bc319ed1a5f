"""Sensor tick -> RunRequests -> partition runs -> table, through the real emulator."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from event_assets.defs.ingestion import recovery_requests
from event_assets.ingest import lake_of, pull_round
from event_assets.pubsub.client import Subscription, publish
from event_assets.settings import Settings

from ..corpus import mixed_corpus
from .conftest import check_results, run_checks, run_partition, sensor_tick

# The same tests against a local folder and against gs:// on the GCS fake.
LAKE_KINDS = ("local", "gcs")


def _ids(settings: Settings, partition: str) -> list[str]:
    dt = DeltaTable(lake_of(settings).events_uri)
    table = dt.to_pyarrow_dataset(file_pruning_predicate=[("event_date", "=", partition)]).to_table(
        columns=["event_id"]
    )
    return table["event_id"].to_pylist()


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
        paths = request.run_config["ops"]["events"]["config"]["batch_paths"]
        assert paths
        assert all(p.startswith(f"event_date={request.partition_key}/") for p in paths)
    assert result.cursor is not None
    assert '"pulled": 88' in result.cursor
    assert '"quarantined": 8' in result.cursor

    total = 0
    for request in requests:
        run = run_partition(instance, request.partition_key or "", dict(request.run_config))
        assert run.success
        materialization = run.asset_materializations_for_node("events")[0]
        metadata = materialization.metadata
        total += int(metadata["rows_inserted"].value)
        assert metadata["landing_batches"].value == 1
        assert int(metadata["table_version"].value) >= 0
        checks = check_results(run)
        assert {name: c.passed for name, c in checks.items()} == {
            "event_id_unique": True,
            "required_columns_non_null": True,
            "landing_reconciliation": True,
            "cross_partition_duplicates": True,
        }
    assert total == corpus.unique_events
    # Next tick: nothing left to pull, nothing to merge.
    again = sensor_tick(instance, result.cursor)
    assert not again.run_requests
    assert again.skip_reason is not None


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
    for request in sensor_tick(instance).run_requests or []:
        assert run_partition(
            instance, request.partition_key or "", dict(request.run_config)
        ).success
    today = datetime.now(UTC).date().isoformat()
    before = sorted(_ids(settings, today))
    DeltaTable(lake_of(settings).events_uri).delete(f"event_date = '{today}'")
    assert _ids(settings, today) == []
    # A backfill from the UI: the partition with no run config.
    backfill = run_partition(instance, today)
    assert backfill.success
    assert sorted(_ids(settings, today)) == before
    assert check_results(backfill)["landing_reconciliation"].passed


def test_checks_fail_on_corrupted_partitions(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    publish(settings, mixed_corpus(settings.MAX_MESSAGE_BYTES).messages)
    for request in sensor_tick(instance).run_requests or []:
        run_partition(instance, request.partition_key or "", dict(request.run_config))
    today = datetime.now(UTC).date()
    uri = lake_of(settings).events_uri
    table = (
        DeltaTable(uri)
        .to_pyarrow_dataset(file_pruning_predicate=[("event_date", "=", today.isoformat())])
        .to_table()
    )
    # A duplicate row, and the same event in yesterday's partition.
    write_deltalake(uri, table.slice(0, 1), mode="append")
    moved = table.slice(1, 1).set_column(
        table.schema.get_field_index("event_date"),
        "event_date",
        dg_date_array(today - timedelta(days=1)),
    )
    write_deltalake(uri, moved, mode="append")
    checks = run_checks(instance, today.isoformat())
    assert not checks["event_id_unique"].passed
    assert not checks["cross_partition_duplicates"].passed
    assert checks["cross_partition_duplicates"].severity == dg.AssetCheckSeverity.WARN
    assert not checks["landing_reconciliation"].passed  # table rows != landed unique ids
    # Deleting landed rows is caught too.
    DeltaTable(uri).delete(f"event_date = '{today.isoformat()}'")
    assert not run_checks(instance, today.isoformat())["landing_reconciliation"].passed
    # Re-running the partition (a backfill) heals everything the checks saw.
    healed = check_results(run_partition(instance, today.isoformat()))
    for name in ("event_id_unique", "required_columns_non_null", "landing_reconciliation"):
        assert healed[name].passed, healed[name]
    assert not healed["cross_partition_duplicates"].passed  # yesterday still has the copy


def dg_date_array(day: date) -> pa.Array:
    return pa.array([day], pa.date32())


def _run_in_own_process(args: tuple[dg.InstanceRef, str, dict[str, object]]) -> bool:
    """One partition run in a fresh process, as the run launcher would start it."""
    ref, partition, run_config = args
    with dg.DagsterInstance.from_ref(ref) as instance:
        return run_partition(instance, partition, run_config).success


def test_concurrent_runs_of_one_partition_leave_no_duplicates(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    publish(settings, mixed_corpus(settings.MAX_MESSAGE_BYTES).messages)
    requests = sensor_tick(instance).run_requests or []
    today = datetime.now(UTC).date().isoformat()
    (request,) = [r for r in requests if r.partition_key == today]
    ref = instance.get_ref()
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        outcomes = pool.map(_run_in_own_process, [(ref, today, dict(request.run_config))] * 3)
    assert outcomes == [True, True, True]
    ids = _ids(settings, today)
    assert len(ids) == len(set(ids)) == 50


def test_batches_landed_but_never_merged_are_recovered(settings: Settings) -> None:
    publish(settings, mixed_corpus(settings.MAX_MESSAGE_BYTES).messages)
    lake = lake_of(settings)
    with Subscription(settings) as subscription:
        landed = pull_round(settings, subscription, lake)  # a tick that died before its runs
    assert landed.batches
    soon = recovery_requests(lake, older_than=timedelta(minutes=10), now=datetime.now(UTC))
    assert soon == []  # too young: its own runs may still be queued
    later = datetime.now(UTC) + timedelta(minutes=11)
    recovered = recovery_requests(lake, older_than=timedelta(minutes=10), now=later)
    assert sorted(str(r.partition_key) for r in recovered) == sorted(
        {b.partition.isoformat() for b in landed.batches}
    )
