"""`gs://` end to end: delta-rs and obstore against the local GCS XML fake.

Production sets `LAKE_URI=gs://...`; these tests drive the real Rust clients over
HTTP so a wrong request, status code or XML body fails here, not in the cloud.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

import obstore
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from obstore.exceptions import AlreadyExistsError, PreconditionError
from obstore.store import GCSStore

from event_assets.events import QUARANTINE_TABLE_SCHEMA
from event_assets.storage import landing
from event_assets.storage.deliveries import deliveries_target, record_landed
from event_assets.storage.delta import dedup_write
from event_assets.storage.lake import Lake, StorageRetry
from event_assets.storage.tables import events_target, quarantine_target
from event_assets_tests.storage.conftest import make_events
from event_assets_tests.support.gcs_fake import GcsFake, service_account_key, storage_options

if TYPE_CHECKING:
    from obstore.store import GCSConfig

MIB = 1024 * 1024


@pytest.fixture
def fake() -> Iterator[GcsFake]:
    with GcsFake() as server:
        yield server


@pytest.fixture
def store(fake: GcsFake) -> GCSStore:
    config = cast("GCSConfig", storage_options(fake.base_url))
    return GCSStore.from_url("gs://bkt/prefix", config=config)


# -- obstore -----------------------------------------------------------------------------


def test_obstore_object_roundtrip(fake: GcsFake, store: GCSStore) -> None:
    data = bytes(range(256)) * 4
    obstore.put(store, "a/event_date=2024-01-01/x.bin", data)
    obstore.put(store, "a/y.bin", b"y")
    obstore.put(store, "b/z.bin", b"z")

    assert obstore.get(store, "a/event_date=2024-01-01/x.bin").bytes().to_bytes() == data
    assert obstore.get_range(store, "a/y.bin", start=0, end=1).to_bytes() == b"y"
    assert (
        obstore.get_range(store, "a/event_date=2024-01-01/x.bin", start=10, end=20).to_bytes()
        == data[10:20]
    )
    tail = obstore.get(store, "a/event_date=2024-01-01/x.bin", options={"range": {"suffix": 7}})
    assert tail.bytes().to_bytes() == data[-7:]
    rest = obstore.get(store, "a/event_date=2024-01-01/x.bin", options={"range": {"offset": 1000}})
    assert rest.bytes().to_bytes() == data[1000:]
    meta = obstore.head(store, "a/event_date=2024-01-01/x.bin")
    assert meta["size"] == len(data)
    # the fake stores keys decoded: object_store's percent-encoding of "/" and "=" round-trips
    assert fake.object_keys("bkt") == [
        "prefix/a/event_date=2024-01-01/x.bin",
        "prefix/a/y.bin",
        "prefix/b/z.bin",
    ]

    listed = [m["path"] for chunk in obstore.list(store) for m in chunk]
    assert listed == ["a/event_date=2024-01-01/x.bin", "a/y.bin", "b/z.bin"]
    assert [m["path"] for chunk in obstore.list(store, prefix="a/") for m in chunk] == listed[:2]
    top = obstore.list_with_delimiter(store, "a")
    assert top["common_prefixes"] == ["a/event_date=2024-01-01"]
    assert [m["path"] for m in top["objects"]] == ["a/y.bin"]
    after = [m["path"] for chunk in obstore.list(store, offset="a/y.bin") for m in chunk]
    assert after == ["b/z.bin"]

    obstore.copy(store, "a/y.bin", "c/copy.bin")
    with pytest.raises(AlreadyExistsError):
        obstore.copy(store, "a/y.bin", "b/z.bin", overwrite=False)
    obstore.rename(store, "c/copy.bin", "c/renamed.bin", overwrite=False)
    assert obstore.get(store, "c/renamed.bin").bytes().to_bytes() == b"y"

    obstore.delete(store, "a/y.bin")
    with pytest.raises(FileNotFoundError):
        obstore.get(store, "a/y.bin")
    with pytest.raises(FileNotFoundError):
        obstore.head(store, "a/y.bin")
    stats = fake.stats()
    assert stats["list"] >= 4
    assert stats["copy"] == 3
    assert stats["precondition_failures"] == 1  # the refused copy-if-not-exists


def test_obstore_paginates_listings(fake: GcsFake, store: GCSStore) -> None:
    names = [f"many/{i:04d}.bin" for i in range(2500)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: obstore.put(store, n, b"x"), names))
    listed = [m["path"] for chunk in obstore.list(store, prefix="many/") for m in chunk]
    assert listed == names
    pages = [r for r in fake.requests() if r.operation == "list"]
    assert len(pages) == 3
    assert "continuation-token" in pages[-1].query


def test_obstore_conditional_puts(fake: GcsFake, store: GCSStore) -> None:
    first = obstore.put(store, "cond", b"1", mode="create")
    with pytest.raises(AlreadyExistsError):
        obstore.put(store, "cond", b"2", mode="create")
    second = obstore.put(
        store, "cond", b"2", mode={"e_tag": first["e_tag"], "version": first["version"]}
    )
    with pytest.raises(PreconditionError):  # stale generation
        obstore.put(
            store, "cond", b"3", mode={"e_tag": first["e_tag"], "version": first["version"]}
        )
    assert obstore.get(store, "cond").bytes().to_bytes() == b"2"
    assert second["version"] != first["version"]
    assert fake.stats()["precondition_failures"] == 2
    assert [r.generation_match for r in fake.requests() if r.operation == "put"] == [
        "0",
        "0",
        first["version"],
        first["version"],
    ]


def test_obstore_range_errors(store: GCSStore) -> None:
    obstore.put(store, "small", b"0123456789")
    assert obstore.get_range(store, "small", start=8, end=20).to_bytes() == b"89"
    with pytest.raises(Exception, match="416"):
        obstore.get_range(store, "small", start=10, end=12)


def test_multipart_object_appears_only_on_completion(fake: GcsFake, store: GCSStore) -> None:
    data = os.urandom(11 * MIB)
    completing = fake.pause_on("POST", "uploadId=")
    with ThreadPoolExecutor(1) as pool:
        upload = pool.submit(obstore.put, store, "big.bin", data, chunk_size=5 * MIB)
        assert completing.wait(20)
        # every part is stored, the completion request has arrived, nothing is visible yet
        assert fake.stats()["multipart_part"] == 3
        assert fake.open_uploads() == [("bkt", "prefix/big.bin")]
        assert fake.object_keys("bkt") == []
        assert list(obstore.list(store)) == []
        with pytest.raises(FileNotFoundError):
            obstore.get(store, "big.bin")
        completing.release()
        upload.result(timeout=20)
    assert obstore.get(store, "big.bin").bytes().to_bytes() == data
    assert fake.open_uploads() == []
    # logged in order of completion: the held POST finished after the test's 404 GET
    ops = [(r.operation, r.status) for r in fake.requests() if r.path == "/bkt/prefix/big.bin"]
    assert ops == [
        ("multipart_initiate", 200),
        *[("multipart_part", 200)] * 3,
        ("get", 404),
        ("multipart_complete", 200),
        ("get", 200),
    ]


def _abandoned_write(store: GCSStore, chunk: bytes) -> None:
    with obstore.open_writer(store, "w.bin", buffer_size=5 * MIB) as writer:
        writer.write(chunk)
        writer.write(chunk)
        raise RuntimeError("abandon the upload")


def test_aborted_or_failed_multipart_leaves_nothing(fake: GcsFake, store: GCSStore) -> None:
    chunk = os.urandom(6 * MIB)
    with pytest.raises(RuntimeError, match="abandon"):
        _abandoned_write(store, chunk)
    assert fake.stats()["multipart_abort"] == 1

    fake.fail_next("POST", "/bkt/prefix/f.bin?uploadId=", 400)
    with pytest.raises(Exception, match="400"):
        obstore.put(store, "f.bin", chunk * 2, chunk_size=5 * MIB)
    assert fake.stats()["multipart_part"] >= 2
    assert fake.object_keys("bkt") == []
    assert list(obstore.list(store)) == []


# -- delta-rs ----------------------------------------------------------------------------


def _rows(start: int, n: int, part: str) -> pa.Table:
    return pa.table({"id": list(range(start, start + n)), "p": [part] * n})


def test_delta_lifecycle_on_gs(fake: GcsFake) -> None:
    options = storage_options(fake.base_url)
    uri = "gs://bkt/lake/t"
    write_deltalake(uri, _rows(0, 3, "a"), partition_by=["p"], storage_options=options)
    write_deltalake(uri, _rows(3, 3, "a"), mode="append", storage_options=options)
    write_deltalake(uri, _rows(6, 3, "b"), mode="append", storage_options=options)

    dt = DeltaTable(uri, storage_options=options)
    assert dt.version() == 2
    assert sorted(dt.to_pyarrow_table()["id"].to_pylist()) == list(range(9))

    metrics = dt.optimize.compact()
    assert metrics["numFilesRemoved"] == 2
    removed = dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    assert len(removed) == 2
    dt.create_checkpoint()
    dt.cleanup_metadata()
    version = dt.version()  # optimize and vacuum each commit
    log = fake.object_keys("bkt", "lake/t/_delta_log/")
    assert f"lake/t/_delta_log/{version:020d}.checkpoint.parquet" in log
    assert "lake/t/_delta_log/_last_checkpoint" in log

    reopened = DeltaTable(uri, storage_options=options)
    assert reopened.version() == version
    assert sorted(reopened.to_pyarrow_table()["id"].to_pylist()) == list(range(9))
    assert len(reopened.file_uris()) == 2
    log_puts = [r for r in fake.requests() if r.operation == "put" and r.path.endswith(".json")]
    assert log_puts
    assert all(r.generation_match == "0" for r in log_puts), "commits must be put-if-absent"
    assert fake.stats()["delete"] == 2


def test_racing_delta_commits_are_refused_and_retried(fake: GcsFake) -> None:
    """The fake's 412 on an existing `_delta_log/N.json` is what makes racing commits safe."""
    options = storage_options(fake.base_url)
    uri = "gs://bkt/lake/race"
    write_deltalake(uri, _rows(0, 2, "a"), storage_options=options)
    slow = DeltaTable(uri, storage_options=options)
    fast = DeltaTable(uri, storage_options=options)
    # delta-rs lists the log for newer commits just before its PUT, so a real race needs
    # the loser's PUT held until the winner has committed the same version.
    held = fake.pause_on("PUT", "/bkt/lake/race/_delta_log/00000000000000000001.json")
    with ThreadPoolExecutor(1) as pool:
        loser = pool.submit(write_deltalake, slow, _rows(100, 2, "a"), mode="append")
        assert held.wait(20)
        write_deltalake(fast, _rows(200, 2, "a"), mode="append")
        assert fast.version() == 1
        held.release()
        loser.result(timeout=20)

    assert fake.stats()["precondition_failures"] == 1
    refused = [r for r in fake.requests() if r.status == 412]
    assert [(r.path, r.generation_match) for r in refused] == [
        ("/bkt/lake/race/_delta_log/00000000000000000001.json", "0")
    ]
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 2
    assert sorted(table.to_pyarrow_table()["id"].to_pylist()) == [0, 1, 100, 101, 200, 201]
    retried = table.history()[0]
    assert retried["version"] == 2
    assert retried["operationMetrics"]["num_retries"] >= 1


def test_transient_errors_are_retried_by_the_client(fake: GcsFake) -> None:
    options = storage_options(fake.base_url)
    uri = "gs://bkt/lake/flaky"
    write_deltalake(uri, _rows(0, 1, "a"), storage_options=options)
    fake.fail_next("PUT", "_delta_log/00000000000000000001.json", 503, count=2)
    write_deltalake(uri, _rows(1, 1, "a"), mode="append", storage_options=options)
    assert fake.stats()["injected_failures"] == 2
    assert DeltaTable(uri, storage_options=options).version() == 1


def test_stop_is_prompt_with_pooled_connections(fake: GcsFake, store: GCSStore) -> None:
    obstore.put(store, "k", b"v")  # leaves a keep-alive connection open
    started = time.perf_counter()
    fake.stop()
    assert time.perf_counter() - started < 2


# -- the project's storage code ----------------------------------------------------------


def test_project_landing_and_dedup_write_on_gs(fake: GcsFake) -> None:
    lake = Lake(root="gs://bkt/lake", storage_options=storage_options(fake.base_url))
    day = date(2024, 5, 1)
    now = datetime(2024, 5, 1, 13, tzinfo=UTC)
    first = landing.land_batch(lake, make_events(day, range(0, 50)), batch_id="b1", now=now)
    second = landing.land_batch(
        lake, make_events(day, range(25, 80), tag="r"), batch_id="b2", now=now
    )
    assert [b.rows for b in first + second] == [50, 55]
    paths = landing.list_batches(lake, day)
    assert paths == [b.path for b in first + second]
    assert fake.object_keys("bkt", "lake/landing/") == [f"lake/landing/_pending/{p}" for p in paths]
    assert landing.pending_batches(lake, day) == paths

    target = events_target(lake)
    written = dedup_write(target, landing.read_batches(lake, paths[:1]), partition=day.isoformat())
    assert (written.inserted, written.duplicates, written.files_added) == (50, 0, 1)
    again = dedup_write(target, landing.read_batches(lake, paths), partition=day.isoformat())
    assert (again.inserted, again.duplicates) == (30, 75)
    assert again.bytes_added > 0

    landing.mark_merged(lake, paths)  # a server-side copy, then the delete
    assert landing.pending_batches(lake, day) == []
    assert fake.object_keys("bkt", "lake/landing/") == [f"lake/landing/_merged/{p}" for p in paths]
    assert landing.list_batches(lake, day) == paths  # a backfill still finds them
    assert landing.read_batches(lake, paths).num_rows == 105
    table = DeltaTable(lake.events_uri, storage_options=lake.storage_options).to_pyarrow_table()
    assert table.num_rows == 80
    assert len(set(table["event_id"].to_pylist())) == 80


def test_lake_from_uri_with_key_file(fake: GcsFake, tmp_path) -> None:
    """Production's path: `Lake.from_uri(LAKE_URI, google_service_account=<key file>)`."""
    key_file = tmp_path / "key.json"
    key_file.write_text(service_account_key(fake.base_url))
    lake = Lake.from_uri("gs://bkt/prod-lake/", google_service_account=str(key_file))
    assert lake.root == "gs://bkt/prod-lake"
    day = date(2024, 5, 2)
    landed = landing.land_batch(lake, make_events(day, range(10)), batch_id="b1")
    result = dedup_write(
        events_target(lake), landing.read_batches(lake, [landed[0].path]), partition=day.isoformat()
    )
    assert result.inserted == 10
    assert landing.list_batches(lake) == [landed[0].path]
    assert any(k.startswith("prod-lake/events/_delta_log/") for k in fake.object_keys("bkt"))


def test_storage_retries_are_bounded_for_landing_and_delta(fake: GcsFake, tmp_path: Path) -> None:
    """A store that keeps failing fails the write after the configured retries, for
    obstore (landing) and delta-rs (a commit) alike, instead of object_store's default
    10 retries over up to 3 minutes; the round or run fails and its work is retried."""
    retry = StorageRetry(max_retries=2, retry_timeout_seconds=5, request_timeout_seconds=10)
    key_file = tmp_path / "key.json"
    key_file.write_text(service_account_key(fake.base_url))
    lake = Lake.from_uri("gs://bkt/bounded", google_service_account=str(key_file), retry=retry)
    day = date(2024, 5, 3)
    events = make_events(day, range(10))
    # Three failures: the first attempt and both retries take one each, and nothing is
    # left for a fourth attempt (which would succeed).
    fake.fail_next("PUT", "bounded/landing", 503, count=3)
    with pytest.raises(Exception, match="after 2 retries"):
        landing.land_batch(lake, events)
    assert fake.stats()["injected_failures"] == 3
    rows = landing.read_batches(lake, [b.path for b in landing.land_batch(lake, events)])
    fake.reset_stats()
    fake.fail_next("PUT", "_delta_log", 503, count=3)
    with pytest.raises(OSError, match="after 2 retries"):
        dedup_write(events_target(lake), rows, partition=day.isoformat(), max_attempts=1)
    assert fake.stats()["injected_failures"] == 3
    # Unbounded (object_store's defaults), the same three failures are retried through.
    fake.fail_next("PUT", "unbounded/landing", 503, count=3)
    default = Lake(root="gs://bkt/unbounded", storage_options=storage_options(fake.base_url))
    assert landing.land_batch(default, events)


# -- identities: the daemon's storage role ------------------------------------------------


def test_an_identity_is_held_to_its_object_role(fake: GcsFake) -> None:
    """The fake's stand-in for IAM refuses what the object roles do not grant."""
    fake.grant("daemon", "creator")
    fake.grant("webserver", "viewer")

    def as_(identity: str) -> GCSStore:
        key = service_account_key(fake.identity_url(identity))
        config = cast("GCSConfig", {"google_service_account_key": key})
        return GCSStore.from_url("gs://bkt/roles", config=config)

    creator, viewer = as_("daemon"), as_("webserver")
    obstore.put(creator, "new", b"1")  # create: granted
    assert obstore.get(viewer, "new").bytes().to_bytes() == b"1"
    for refused in (
        lambda: obstore.put(creator, "new", b"2"),  # an overwrite needs objects.delete
        lambda: obstore.delete(creator, "new"),
        lambda: obstore.rename(creator, "new", "moved"),  # copy, then the refused delete
        lambda: obstore.put(viewer, "other", b"1"),
    ):
        with pytest.raises(Exception, match=r"(?i)privileges|denied|403"):
            refused()
    assert fake.stats()["denied"] == 4
    assert fake.get_object("bkt", "roles/new") is not None
    obstore.put(as_("run-worker"), "new", b"3")  # never granted: the default may do anything


def test_a_writer_that_cannot_delete_lands_and_appends_past_a_checkpoint(
    fake: GcsFake, tmp_path: Path
) -> None:
    """Production's daemon may create objects only (`STORAGE_CAN_DELETE=false`): its
    landing, quarantine and receipt writes must never overwrite or delete one, not even
    at a commit that falls due for a checkpoint (`_last_checkpoint` is overwritten)."""
    fake.grant("daemon", "creator")
    key_file = tmp_path / "daemon.json"
    key_file.write_text(service_account_key(fake.identity_url("daemon")))

    def daemon_lake(can_delete: bool) -> Lake:
        return Lake.from_uri(
            "gs://bkt/lake", google_service_account=str(key_file), can_delete=can_delete
        )

    admin = Lake(root="gs://bkt/lake", storage_options=storage_options(fake.base_url))
    for target in (quarantine_target(admin), deliveries_target(admin)):
        DeltaTable.create(  # a checkpoint falls due every second commit
            target.uri,
            target.schema,
            configuration={"delta.checkpointInterval": "2"},
            storage_options=target.storage_options,
        )
    day = date(2024, 5, 4)
    lake = daemon_lake(can_delete=False)
    for n in range(3):
        landed = landing.land_batch(lake, make_events(day, range(n * 10, n * 10 + 10)))
        record_landed(lake, landed, 0, max_attempts=1)
        dedup_write(quarantine_target(lake), _quarantine_rows(n), max_attempts=1)
    assert fake.stats()["denied"] == 0
    assert not [k for k in fake.object_keys("bkt", "lake/") if "checkpoint" in k]
    assert (
        DeltaTable(quarantine_target(admin).uri, storage_options=admin.storage_options).version()
        == 3
    )

    # The same writes with checkpoints: the second one overwrites `_last_checkpoint`, and
    # the write fails after its commit landed (a round would not ack, and re-land).
    def receipts_with_checkpoints() -> None:
        for _ in range(4):
            record_landed(daemon_lake(can_delete=True), [], 1, max_attempts=1)

    with pytest.raises(OSError, match="lacked the necessary privileges"):
        receipts_with_checkpoints()
    assert fake.stats()["denied"] >= 1


def _quarantine_rows(n: int) -> pa.Table:
    row = {
        "message_id": f"m{n}",
        "publish_time": None,
        "attributes": "{}",
        "payload": b"not json",
        "reason_code": "invalid_json",
        "reason": "not JSON",
        "quarantined_at": datetime(2024, 5, 4, tzinfo=UTC),
    }
    return pa.Table.from_pylist([row], schema=QUARANTINE_TABLE_SCHEMA)
