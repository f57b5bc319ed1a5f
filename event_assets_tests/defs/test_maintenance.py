"""Compaction, vacuum and the quarantine report, run as their scheduled jobs would."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from event_assets.definitions import build_defs
from event_assets.events.models import ReasonCode
from event_assets.pubsub.client import publish
from event_assets.settings import Settings

from ..corpus import mixed_corpus
from .conftest import run_partition, sensor_tick

# The same tests against a local folder and against gs:// on the GCS fake.
LAKE_KINDS = ("local", "gcs")


def _metadata(result: dg.ExecuteInJobResult, node: str) -> dict[str, object]:
    (materialization,) = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in materialization.metadata.items()}


def _ingest_rounds(settings: Settings, instance: dg.DagsterInstance, rounds: int) -> None:
    """Several sensor ticks, each landing its own batch: many small files per partition."""
    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    for n in range(rounds):
        # Distinct events each round (a round marker in the data changes every id).
        messages = [
            (data.replace(b'"lastname": "Doe"', b'"lastname": "Doe%d"' % n), attrs)
            for data, attrs in corpus.messages
        ]
        publish(settings, messages)
        for request in sensor_tick(instance).run_requests or []:
            assert run_partition(
                instance, request.partition_key or "", dict(request.run_config)
            ).success


def test_compaction_and_vacuum_report_before_and_after(
    settings: Settings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ingest_rounds(settings, instance, 4)
    # Each round also quarantined its bad messages (one file each); the contract days
    # are applied once (a contract run replaces its day: one file per day).
    contracts = [dg.AssetKey("person_v1"), dg.AssetKey("order_created_v1")]
    job = build_defs().resolve_implicit_global_asset_job_def()
    for day in ("2026-11-20", datetime.now(UTC).date().isoformat()):
        run = job.execute_in_process(
            instance=instance, partition_key=day, asset_selection=contracts
        )
        assert run.success
    compaction = (
        build_defs().resolve_job_def("events_compaction_job").execute_in_process(instance=instance)
    )
    assert compaction.success
    meta = _metadata(compaction, "events_compaction")
    assert meta["partitions"] == 2
    assert meta["files_before"] > meta["files_after"]  # type: ignore[operator]
    # Every table of the lake: the two days of `events` and of each contract table, and
    # the unpartitioned quarantine, each down to one file per partition.
    assert meta["events/files_after"] == 2
    assert meta["events_quarantine/files_before"] == 4
    assert meta["events_quarantine/files_after"] == 1
    assert meta["person_v1/files_after"] == 1  # people are plain JSON: dated today
    # Every table is reported, written or not (the corpus has no order), so each plots.
    assert meta["order_created_v1/files_after"] == 0
    assert "contract_violations/files_after" in meta
    assert meta["tables"] == 6  # events, quarantine, 2 contracts, violations, deliveries

    # Vacuum keeps 7 days by default: nothing the compaction replaced is deleted yet.
    kept = build_defs().resolve_job_def("events_vacuum_job").execute_in_process(instance=instance)
    kept_meta = _metadata(kept, "events_vacuum")
    assert kept_meta["files_deleted"] == 0
    assert kept_meta["tables"] == 6
    # Explicitly allowed below the safe default, the replaced files go.
    monkeypatch.setenv("VACUUM_RETENTION_HOURS", "1")
    monkeypatch.setenv("VACUUM_ALLOW_BELOW_DEFAULT", "true")
    meta = _metadata(
        build_defs().resolve_job_def("events_vacuum_job").execute_in_process(instance=instance),
        "events_vacuum",
    )
    assert meta["retention_hours"] == 1
    assert meta["bytes_before"] >= meta["bytes_after"]  # type: ignore[operator]


def test_vacuum_below_safe_default_without_permission_fails_the_run(
    settings: Settings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ingest_rounds(settings, instance, 1)
    monkeypatch.setenv("VACUUM_RETENTION_HOURS", "1")
    result = (
        build_defs()
        .resolve_job_def("events_vacuum_job")
        .execute_in_process(instance=instance, raise_on_error=False)
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None
    assert "VACUUM_ALLOW_BELOW_DEFAULT=true" in str(failure.to_string())


def test_health_job_reports_quarantine_by_reason_and_freshness(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    _ingest_rounds(settings, instance, 1)
    result = build_defs().resolve_job_def("events_health_job").execute_in_process(instance=instance)
    meta = _metadata(result, "events_quarantine")
    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    assert meta["dagster/row_count"] == sum(corpus.bad.values())
    # Every reason is listed, zero included, so each plots as a series.
    for reason in ReasonCode:
        assert meta[f"reason/{reason.value}"] == corpus.bad.get(reason.value, 0)
    audit = _metadata(result, "events_audit")
    assert audit["dagster/row_count"] == corpus.unique_events
    evaluations = {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and isinstance(e.event_specific_data, dg.AssetCheckEvaluation)
    }
    assert set(evaluations) == {"events_freshness", "accounting", "recent_days_audit"}
    assert evaluations["recent_days_audit"].passed
    assert evaluations["events_freshness"].passed
    assert evaluations["accounting"].passed
