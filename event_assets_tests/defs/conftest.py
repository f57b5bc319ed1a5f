from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from event_assets.definitions import build_defs


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def run_partition(
    instance: dg.DagsterInstance, partition: str, run_config: dict[str, object] | None = None
) -> dg.ExecuteInJobResult:
    """Execute the sensor's job for one partition, as a launched run would."""
    job = build_defs().resolve_job_def("events_ingest_job")
    return job.execute_in_process(
        partition_key=partition, run_config=run_config or {}, instance=instance
    )


def check_results(result: dg.ExecuteInJobResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.check_name: e
        for e in (
            ev.event_specific_data
            for ev in result.all_events
            if ev.event_type_value == "ASSET_CHECK_EVALUATION"
        )
        if isinstance(e, dg.AssetCheckEvaluation)
    }


def run_table_checks(instance: dg.DagsterInstance) -> dict[str, dg.AssetCheckEvaluation]:
    """Run the scheduled checks of `events` (the health job), as the schedule would."""
    job = build_defs().resolve_job_def("events_health_job")
    return check_results(job.execute_in_process(instance=instance, raise_on_error=False))


def sensor_tick(instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    """Evaluate `pubsub_events_sensor` once, as the daemon would."""
    from event_assets.defs.ingestion import pubsub_events_sensor
    from event_assets.defs.resources import EventAssetsResource

    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"event_assets": EventAssetsResource()}
    )
    result = pubsub_events_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result
