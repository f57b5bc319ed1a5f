"""An empty sensor tick on a fresh lake vs one whose landing zone holds many merged
batches, on local disk and on the GCS fake: a tick must not cost what history costs.

The history is written as the merge leaves it (each batch under `_merged/`, none under
`_pending/`); the objects are empty because a tick never opens a merged batch. Each
tick is a real `pubsub_events_sensor` evaluation against an empty subscription on the
emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import obstore

from event_assets.storage.lake import LANDING_DIR, Lake
from event_assets.storage.landing import MERGED_DIR, batch_path, new_batch_id

PUT_CONCURRENCY = 64


def _write_history(lake: Lake, batches: int, days: int = 30) -> None:
    """`batches` merged batches spread over `days` days (under `_merged/`)."""
    store = lake.store(LANDING_DIR)
    start = datetime.now(UTC) - timedelta(days=days)
    keys = []
    for n in range(batches):
        when = start + timedelta(seconds=n * days * 86_400 / batches)
        key = batch_path(when.date(), new_batch_id(when))
        keys.append(f"{MERGED_DIR}/{key}")

    async def put_all() -> None:
        limit = asyncio.Semaphore(PUT_CONCURRENCY)

        async def put(key: str) -> None:
            async with limit:
                await obstore.put_async(store, key, b"")

        await asyncio.gather(*(put(k) for k in keys))

    asyncio.run(put_all())


@contextlib.contextmanager
def _gcs_lake(root: Path) -> Iterator[tuple[str, str]]:
    """(LAKE_URI, GOOGLE_SERVICE_ACCOUNT) of a lake on a fresh GCS fake."""
    from event_assets_tests.support.gcs_fake import GcsFake, service_account_key

    with GcsFake() as fake:
        key = root / "service-account.json"
        key.write_text(service_account_key(fake.base_url))
        yield "gs://event-lake/bench/lake", str(key)


def _tick_seconds(repeats: int) -> list[float]:
    """Time `repeats` evaluations of the sensor with what the environment configures."""
    import dagster as dg

    from event_assets.defs.ingestion import pubsub_events_sensor
    from event_assets.defs.resources import EventAssetsResource

    seconds = []
    with dg.instance_for_test() as instance:
        cursor = None
        for _ in range(repeats + 1):  # the first tick warms the code path up
            context = dg.build_sensor_context(
                instance=instance, cursor=cursor, resources={"event_assets": EventAssetsResource()}
            )
            started = time.perf_counter()
            result = pubsub_events_sensor(context)
            seconds.append(time.perf_counter() - started)
            assert isinstance(result, dg.SensorResult)
            assert not result.run_requests, "an empty tick requested runs"
            cursor = result.cursor
    return seconds[1:]


def bench_empty_tick(history: int, repeats: int, backend: str) -> dict[str, Any]:
    """Median empty tick, fresh lake vs `history` merged batches, on `backend`."""
    import os

    from benchmarks.__main__ import _emulator_lab

    medians: dict[str, float] = {}
    write_seconds = 0.0
    uri = ""
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if backend == "gcs":
            uri, key = stack.enter_context(_gcs_lake(Path(tmp)))
            os.environ["GOOGLE_SERVICE_ACCOUNT"] = key
            stack.callback(os.environ.pop, "GOOGLE_SERVICE_ACCOUNT", None)
        for label in ("fresh", "history"):
            lake_uri = f"{uri}-{label}" if backend == "gcs" else f"{tmp}/lake-{label}"
            with _emulator_lab(f"empty-{backend}-{label}", LAKE_URI=lake_uri) as settings:
                lake = Lake.from_uri(
                    settings.LAKE_URI, google_service_account=settings.GOOGLE_SERVICE_ACCOUNT
                )
                if label == "history":
                    started = time.perf_counter()
                    _write_history(lake, history)
                    write_seconds = time.perf_counter() - started
                env = {
                    "LAKE_URI": settings.LAKE_URI,
                    "PUBSUB_EMULATOR_HOST": settings.PUBSUB_EMULATOR_HOST or "",
                    "PUBSUB_TOPIC": settings.PUBSUB_TOPIC,
                    "PUBSUB_SUBSCRIPTION": settings.PUBSUB_SUBSCRIPTION,
                }
                saved = {k: os.environ.get(k) for k in env}
                os.environ.update(env)
                try:
                    medians[label] = statistics.median(_tick_seconds(repeats))
                finally:
                    for k, v in saved.items():
                        if v is None:
                            os.environ.pop(k, None)
                        else:
                            os.environ[k] = v
    return {
        "backend": backend,
        "history_batches": history,
        "fresh_seconds": medians["fresh"],
        "history_seconds": medians["history"],
        "history_over_fresh": medians["history"] / medians["fresh"],
        "history_write_seconds": write_seconds,
        "goal": "<= 1.2",
        "met": medians["history"] / medians["fresh"] <= 1.2,
    }
