"""Concurrent dedup-writers on gs://: GCS's create-only commit PUT is what keeps them safe.

delta-rs commits `_delta_log/<version>.json` with `x-goog-if-generation-match: 0`; the
fake answers 412 to the second writer of a version, delta-rs retries at the next
version, and the project's race repair removes the rows both writers inserted.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from deltalake import DeltaTable

from event_assets.storage.delta import dedup_write
from event_assets.storage.lake import Lake
from event_assets.storage.landing import land_batch, read_batches
from event_assets.storage.tables import events_target

from ..support.gcs_fake import GcsFake
from .conftest import make_events

DAY = date(2026, 11, 20)
_n = itertools.count()


def _lake(key_file: Path) -> Lake:
    return Lake.from_uri(
        f"gs://event-lake/writers-{os.getpid()}-{next(_n)}/lake",
        google_service_account=str(key_file),
    )


def _rows(lake: Lake, day: date, ids: range, tag: str = "") -> object:
    return read_batches(lake, [b.path for b in land_batch(lake, make_events(day, ids, tag=tag))])


def _ids(lake: Lake, day: date) -> list[str]:
    dt = DeltaTable(lake.events_uri, storage_options=lake.storage_options)
    dataset = dt.to_pyarrow_dataset(file_pruning_predicate=[("event_date", "=", day.isoformat())])
    return dataset.to_table(columns=["event_id"])["event_id"].to_pylist()


def test_refused_commit_is_retried_and_the_race_repaired(
    gcs_fake: GcsFake, gcs_key_file: Path
) -> None:
    lake = _lake(gcs_key_file)
    target = events_target(lake)
    dedup_write(target, _rows(lake, DAY, range(0, 10)), partition=DAY.isoformat())
    version = DeltaTable(lake.events_uri, storage_options=lake.storage_options).version()
    key = lake.events_uri.removeprefix("gs://")
    before = gcs_fake.stats()["precondition_failures"]
    held = gcs_fake.pause_on("PUT", f"/{key}/_delta_log/{version + 1:020d}.json")
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(
            dedup_write, target, _rows(lake, DAY, range(10, 40), "a"), partition=DAY.isoformat()
        )
        assert held.wait(30), "the slow writer never reached its commit"
        fast = dedup_write(target, _rows(lake, DAY, range(20, 50), "b"), partition=DAY.isoformat())
        assert fast.inserted == 30
        held.release()
        slowed = slow.result(timeout=120)
    assert gcs_fake.stats()["precondition_failures"] - before == 1  # the fake refused it
    assert slowed.inserted == 30  # both writers found ids 20..39 absent and inserted them
    assert slowed.repaired == 20  # ... and the later committer removed its copies
    ids = _ids(lake, DAY)
    assert len(ids) == len(set(ids)) == 50


def _writer(args: tuple[str, str, str, int, int]) -> tuple[int, int]:
    root, key_file, day, start, stop = args
    lake = Lake.from_uri(root, google_service_account=key_file)
    rows = _rows(lake, date.fromisoformat(day), range(start, stop))
    result = dedup_write(events_target(lake), rows, partition=day)
    return result.inserted, result.repaired


def test_processes_writing_one_and_several_partitions(
    gcs_fake: GcsFake, gcs_key_file: Path
) -> None:
    lake = _lake(gcs_key_file)
    other = date(2026, 11, 21)
    jobs = [
        (lake.root, str(gcs_key_file), DAY.isoformat(), 0, 600),
        (lake.root, str(gcs_key_file), DAY.isoformat(), 300, 900),
        (lake.root, str(gcs_key_file), DAY.isoformat(), 0, 900),
        (lake.root, str(gcs_key_file), other.isoformat(), 0, 500),
    ]
    before = gcs_fake.stats()["precondition_failures"]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_writer, jobs)
    ids = _ids(lake, DAY)
    assert len(ids) == len(set(ids)) == 900
    assert len(_ids(lake, other)) == 500
    inserted = sum(r[0] for r in results[:3])
    repaired = sum(r[1] for r in results[:3])
    assert inserted - repaired == 900
    refused = gcs_fake.stats()["precondition_failures"] - before
    print(f"412s from the fake: {refused}; rows repaired after races: {repaired}")
