"""The `accounting` check: delivered = inserted + duplicates + quarantined + in flight,
from the delivery receipts, so it fails when storage loses what a round acked."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from event_assets.ingest import ingest, lake_of, pull_round
from event_assets.pubsub.client import Subscription, publish
from event_assets.settings import Settings
from event_assets.storage.checks import CheckOutcome, accounting
from event_assets.storage.landing import MERGED_DIR, PENDING_DIR
from event_assets.storage.tables import events_target, quarantine_target

from ..corpus import mixed_corpus


def _accounting(settings: Settings) -> CheckOutcome:
    lake = lake_of(settings)
    return accounting(lake, events_target(lake), quarantine_target(lake))


def _local_landing(settings: Settings) -> Path:
    """The local lake's landing folder (these tests remove batches behind the system's back)."""
    return Path(lake_of(settings).landing_uri)


def test_empty_lake_balances(settings: Settings) -> None:
    outcome = _accounting(settings)
    assert outcome.passed
    assert outcome.metadata["delivered"] == 0


def test_corpus_balances_and_detects_doubling(settings: Settings) -> None:
    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    publish(settings, corpus.messages)
    ingest(settings)
    outcome = _accounting(settings)
    assert outcome.passed, outcome.description
    meta = {k: int(v) for k, v in outcome.metadata.items() if k != "examples"}
    assert meta["inserted"] == corpus.unique_events
    assert meta["duplicates"] == corpus.duplicates
    assert meta["quarantined"] == meta["bad_copies"] == sum(corpus.bad.values())
    assert meta["delivered"] == len(corpus.messages)  # counted by the rounds, not the tables
    assert meta["delivered"] + meta["unacked"] == (
        meta["inserted"] + meta["duplicates"] + meta["bad_copies"] + meta["in_flight"]
    )

    uri = lake_of(settings).events_uri
    table = DeltaTable(uri).to_pyarrow_table()
    write_deltalake(uri, table.slice(0, 1), mode="append")
    doubled = _accounting(settings)
    assert not doubled.passed
    assert doubled.metadata["duplicated_rows"] == 1


def test_a_landed_batch_dropped_behind_the_systems_back_fails(settings: Settings) -> None:
    """Acked, landed, then deleted before any run merged it: storage alone balances
    (nothing of it is anywhere), the round's receipt does not."""
    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    publish(settings, corpus.messages)
    lake = lake_of(settings)
    with Subscription(settings) as subscription:
        landed = pull_round(settings, subscription, lake)
    assert landed.batches
    outcome = _accounting(settings)
    assert outcome.passed, outcome.description
    assert outcome.metadata["in_flight"] == landed.landed
    assert outcome.metadata["inserted"] == 0

    (_local_landing(settings) / PENDING_DIR / landed.batches[0].path).unlink()
    lost = _accounting(settings)
    assert not lost.passed
    assert lost.metadata["lost_batches"] == 1
    assert "lost" in lost.description


def test_rows_nobody_delivered_fail(settings: Settings) -> None:
    """Rows appended behind the system's back, under a real batch id: a day then holds
    more rows than the copies merged into it."""
    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    publish(settings, corpus.messages)
    ingest(settings)
    uri = lake_of(settings).events_uri
    table = DeltaTable(uri).to_pyarrow_table()
    forged = table.set_column(
        table.schema.get_field_index("event_id"),
        "event_id",
        pc.binary_join_element_wise(table["event_id"], pa.scalar("-forged"), ""),
    )
    write_deltalake(uri, forged, mode="append")
    outcome = _accounting(settings)
    assert not outcome.passed
    assert int(outcome.metadata["undelivered_days"]) >= 1
    assert "nobody delivered" in outcome.description


def test_no_false_alarm_after_landing_retention(settings: Settings) -> None:
    """Retention deletes merged batches (the lifecycle rule on `_merged/`): the receipts
    still say what was delivered and merged."""
    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    publish(settings, corpus.messages)
    ingest(settings)
    before = _accounting(settings)
    shutil.rmtree(_local_landing(settings) / MERGED_DIR)
    after = _accounting(settings)
    assert after.passed, after.description
    assert after.metadata == before.metadata
