"""A snapshot of the code location, so an accidental change to keys or schedules is caught."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import yaml

from event_assets.definitions import build_defs
from event_assets.defs.ingestion import MERGE_DAY_TAG

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_snapshot() -> None:
    repo = build_defs().get_repository_def()
    assert sorted(k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()) == [
        "events",
        "events_audit",
        "events_compaction",
        "events_quarantine",
        "events_vacuum",
        "order_created_v1",
        "person_v1",
        "pubsub_subscription",
    ]
    assert sorted(c.to_user_string() for c in repo.asset_graph.asset_check_keys) == [
        "events:cross_partition_duplicates",
        "events:event_id_unique",
        "events:landing_reconciliation",
        "events:required_columns_non_null",
        "events_audit:accounting",
        "events_audit:events_freshness",
        "events_audit:recent_days_audit",
        "order_created_v1:events_reconciliation",
        "order_created_v1:violation_rate",
        "person_v1:events_reconciliation",
        "person_v1:violation_rate",
    ]
    assert sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")) == [
        "events_compaction_job",
        "events_health_job",
        "events_ingest_job",
        "events_vacuum_job",
    ]
    assert sorted(s.name for s in repo.sensor_defs) == [
        "contracts_automation_sensor",
        "pubsub_events_sensor",
    ]
    assert {s.name: s.cron_schedule for s in repo.schedule_defs} == {
        "events_compaction_schedule": "5 * * * *",
        "events_vacuum_schedule": "30 3 * * *",
        "events_health_schedule": "*/15 * * * *",
    }
    events = repo.assets_defs_by_key[dg_key("events")]
    partitions = events.partitions_def
    assert partitions is not None
    assert partitions.get_first_partition_key() == "2020-01-01"
    spec = events.specs_by_key[dg_key("events")]
    assert {"deltalake", "polars", "gcp"} <= set(spec.kinds)
    assert spec.group_name == "ingestion"
    assert spec.owners


def dg_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(name)


def test_todays_partition_exists() -> None:
    from datetime import UTC, datetime

    events = build_defs().get_repository_def().assets_defs_by_key[dg_key("events")]
    assert events.partitions_def is not None
    today = datetime.now(UTC).date().isoformat()
    assert events.partitions_def.get_last_partition_key() == today


def test_code_location_does_not_import_what_only_runs_need() -> None:
    """Every process that loads the code location would pay for these at start-up."""
    run_time_only = ["polars", "pandas", "pyarrow.dataset", "google.cloud.pubsub_v1"]
    run_time_only += ["google.pubsub_v1", "google.cloud.secretmanager"]
    probe = (
        "import sys\nfrom event_assets.definitions import build_defs\n"
        "build_defs().get_repository_def()\n"
        f"print(sorted(m for m in {run_time_only!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=ROOT,
    )
    assert done.stdout.splitlines()[-1] == "[]"


def test_importing_the_location_never_fails_loading_it_names_the_bad_setting() -> None:
    """Tools import the module first: only Dagster's load (`defs()`) validates settings."""
    probe = (
        "import event_assets.definitions as location\n"
        "from event_assets.settings import SettingsError\n"
        "try:\n    location.defs()\nexcept SettingsError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PARTITIONS_START_DATE": "yesterday-ish"},
    )
    assert done.stdout.splitlines()[-1].startswith("invalid setting PARTITIONS_START_DATE")


def test_dagster_definitions_validate() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_run_queue_serializes_the_sensors_merges_of_one_day() -> None:
    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    limits = config["run_queue"]["tag_concurrency_limits"]
    assert {
        "key": MERGE_DAY_TAG,
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 1,
    } in limits
