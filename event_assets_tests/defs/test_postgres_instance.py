"""The sensor and partition runs against a Postgres-backed instance (production's storage).

Skips when no Postgres is reachable at DAGSTER_TEST_PG_URL (default: the local
trust-auth server); CI sets EVENT_ASSETS_REQUIRE_POSTGRES=1, turning the skip into
a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml

from event_assets.pubsub.client import publish
from event_assets.settings import Settings

from ..corpus import mixed_corpus
from .conftest import run_partition, sensor_tick

PG_URL = os.environ.get("DAGSTER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parents[2]


def _reachable() -> str | None:
    try:
        psycopg2.connect(PG_URL, connect_timeout=3).close()
    except psycopg2.OperationalError as exc:
        return str(exc).strip().splitlines()[0]
    return None


@pytest.fixture
def pg_instance(monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    problem = _reachable()
    if problem:
        if os.environ.get("EVENT_ASSETS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"Postgres required but unreachable at {PG_URL}: {problem}")
        pytest.skip(f"no Postgres at {PG_URL} ({problem}); set DAGSTER_TEST_PG_URL")
    monkeypatch.setenv("DAGSTER_PG_URL", PG_URL)
    storage = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())["storage"]
    with dg.instance_for_test(overrides={"storage": storage}) as instance:
        instance.wipe()
        yield instance


def test_sensor_and_runs_on_postgres(settings: Settings, pg_instance: dg.DagsterInstance) -> None:
    assert type(pg_instance.run_storage).__name__ == "PostgresRunStorage"
    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    publish(settings, corpus.messages)
    requests = sensor_tick(pg_instance).run_requests or []
    assert len(requests) == 2
    inserted = 0
    for request in requests:
        run = run_partition(pg_instance, request.partition_key or "", dict(request.run_config))
        assert run.success
        inserted += int(
            run.asset_materializations_for_node("events")[0].metadata["rows_inserted"].value
        )
    assert inserted == corpus.unique_events
    runs = pg_instance.get_runs()
    assert {r.tags["dagster/partition"] for r in runs} == {str(r.partition_key) for r in requests}
    materialized = pg_instance.get_materialized_partitions(dg.AssetKey("events"))
    assert materialized == {str(r.partition_key) for r in requests}
