"""The `accounting` check: published = inserted + duplicates + quarantined, from storage alone."""

from __future__ import annotations

from datetime import UTC, datetime

from deltalake import DeltaTable, write_deltalake

from event_assets.ingest import ingest, lake_of, pull_round
from event_assets.pubsub.client import Subscription, publish
from event_assets.settings import Settings
from event_assets.storage.checks import accounting
from event_assets.storage.tables import events_target, quarantine_target

from ..corpus import mixed_corpus


def _accounting(settings: Settings):
    lake = lake_of(settings)
    return accounting(lake, events_target(lake), quarantine_target(lake))


def test_empty_lake_balances(settings: Settings) -> None:
    outcome = _accounting(settings)
    assert outcome.passed
    assert outcome.metadata["published"] == 0


def test_corpus_balances_and_detects_loss_and_doubling(settings: Settings) -> None:
    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    publish(settings, corpus.messages)
    ingest(settings)
    outcome = _accounting(settings)
    assert outcome.passed, outcome.description
    meta = outcome.metadata
    assert meta["inserted"] == corpus.unique_events
    assert meta["duplicates"] == corpus.duplicates
    assert meta["quarantined"] == sum(corpus.bad.values())
    assert meta["published"] == len(corpus.messages)
    assert meta["published"] == meta["inserted"] + meta["duplicates"] + meta["quarantined"]

    uri = lake_of(settings).events_uri
    today = datetime.now(UTC).date().isoformat()
    table = DeltaTable(uri).to_pyarrow_table()
    write_deltalake(uri, table.slice(0, 1), mode="append")
    doubled = _accounting(settings)
    assert not doubled.passed
    assert doubled.metadata["duplicated_rows"] == 1

    DeltaTable(uri).delete(f"event_date = '{today}'")
    lost = _accounting(settings)
    assert not lost.passed
    assert int(lost.metadata["lost"]) > 0


def test_landed_but_unmerged_is_in_flight_not_lost(settings: Settings) -> None:
    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    publish(settings, corpus.messages)
    lake = lake_of(settings)
    with Subscription(settings) as subscription:
        landed = pull_round(settings, subscription, lake)
    outcome = _accounting(settings)
    assert outcome.passed, outcome.description
    assert outcome.metadata["in_flight"] == landed.landed
    assert outcome.metadata["inserted"] == 0
