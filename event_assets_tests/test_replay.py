"""`event-assets quarantine replay`: after a fix, quarantined messages become events once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from deltalake import DeltaTable

import event_assets.replay as replay_module
from event_assets.ingest import ingest, lake_of
from event_assets.pubsub.client import (
    Subscription,
    ensure_topic_and_subscription,
    messages_of,
    publish,
)
from event_assets.replay import dead_letter_subscription, redrive_dead_letters, replay_quarantine
from event_assets.settings import Settings, load_settings

OLD_EVENTS = 5  # CloudEvents dated before PARTITIONS_START_DATE (2020-01-01 in tests)


def _old_event(i: int) -> tuple[bytes, dict[str, str]]:
    return json.dumps({"i": i}).encode(), {
        "ce-specversion": "1.0",
        "ce-id": f"old-{i}",
        "ce-source": "//test/replay",
        "ce-type": "com.example.old.v1",
        "ce-time": "2019-12-30T12:00:00Z",
        "content-type": "application/json",
    }


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`event-assets ...` as a user runs it, with this test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "event_assets.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )


def _reasons(settings: Settings) -> Counter[str]:
    table = DeltaTable(lake_of(settings).quarantine_uri).to_pyarrow_table()
    return Counter(table["reason_code"].to_pylist())


def _rows(settings: Settings) -> int:
    return DeltaTable(lake_of(settings).events_uri).to_pyarrow_table().num_rows


@pytest.fixture
def quarantined(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Old events and a broken message quarantined; the settings after the fix."""
    messages = [_old_event(i) for i in range(OLD_EVENTS)]
    messages += [(b'{"broken": ', {}), (b'{"fresh": 1}', {})]
    publish(settings, messages)
    ingest(settings, once=True)
    assert _reasons(settings) == {"event_date_out_of_range": OLD_EVENTS, "invalid_json": 1}
    # The fix: an earlier first partition.
    monkeypatch.setenv("PARTITIONS_START_DATE", "2019-01-01")
    return load_settings()


def test_replay_lands_what_now_decodes_once_and_leaves_the_rest(quarantined: Settings) -> None:
    before = _rows(quarantined)
    result = replay_quarantine(quarantined, reasons=("event_date_out_of_range",))
    assert (result.considered, result.decoded, result.still_bad) == (OLD_EVENTS, OLD_EVENTS, 0)
    assert (result.inserted, result.released) == (OLD_EVENTS, OLD_EVENTS)
    assert _rows(quarantined) == before + OLD_EVENTS
    days = DeltaTable(lake_of(quarantined).events_uri).to_pyarrow_table()["event_date"]
    assert Counter(map(str, days.to_pylist()))["2019-12-30"] == OLD_EVENTS
    assert _reasons(quarantined) == {"invalid_json": 1}
    # Again: nothing left to replay for that reason; the still-bad one stays put.
    assert replay_quarantine(quarantined, reasons=("event_date_out_of_range",)).considered == 0
    everything = replay_quarantine(quarantined)
    assert (everything.considered, everything.still_bad, everything.released) == (1, 1, 0)
    assert everything.still_bad_by_reason == {"invalid_json": 1}
    assert _rows(quarantined) == before + OLD_EVENTS


def test_a_replay_cut_short_before_the_release_is_finished_by_the_next(
    quarantined: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _rows(quarantined)

    def crash(*args: object, **kwargs: object) -> int:
        raise RuntimeError("killed before the release")

    with monkeypatch.context() as patched:
        patched.setattr(replay_module, "delete_keys", crash)
        with pytest.raises(RuntimeError):
            replay_quarantine(quarantined)
    assert _rows(quarantined) == before + OLD_EVENTS  # landed and merged, not released
    again = replay_quarantine(quarantined)
    assert (again.inserted, again.duplicates, again.released) == (0, OLD_EVENTS, OLD_EVENTS)
    assert _rows(quarantined) == before + OLD_EVENTS
    assert _reasons(quarantined) == {"invalid_json": 1}


def test_cli_replay_prints_a_summary_and_refuses_bad_filters(quarantined: Settings) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return _cli("quarantine", "replay", *args)

    done = cli("--reason", "event_date_out_of_range", "--since", "2020-01-01T00:00:00Z")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["considered"], summary["inserted"]) == (OLD_EVENTS, OLD_EVENTS)
    for args, says in (
        (("--reason", "nope"), "unknown reason code nope"),
        (("--since", "yesterday"), "is not an RFC 3339 time"),
    ):
        refused = cli(*args)
        assert refused.returncode == 2
        assert says in refused.stderr
        assert "Traceback" not in refused.stderr


def test_redrive_moves_dead_letters_back_to_the_topic_once(settings: Settings) -> None:
    dead = load_settings(
        PUBSUB_TOPIC=f"{settings.PUBSUB_TOPIC}-dead-letter",
        PUBSUB_SUBSCRIPTION=dead_letter_subscription(settings),
    )
    ensure_topic_and_subscription(dead)
    letters = [
        (b'{"n": %d}' % i, {"event_type": "x", "CloudPubSubDeadLetterSourceDeliveryCount": "5"})
        for i in range(3)
    ]
    publish(dead, letters)  # as Pub/Sub dead-letters them

    moved = redrive_dead_letters(settings)
    assert moved.moved == 3
    assert moved.subscription.endswith(f"/{dead.PUBSUB_SUBSCRIPTION}")
    with Subscription(settings) as main:
        pulled = main.pull(10, timeout=5.0)
        main.acknowledge(pulled.ack_ids)
    messages = list(messages_of(pulled.payload))
    assert sorted(m.data for m in messages) == sorted(d for d, _ in letters)
    # The producer's attributes go back; the ones Pub/Sub added when dead-lettering do not.
    assert all(dict(m.attributes) == {"event_type": "x"} for m in messages)
    assert redrive_dead_letters(settings).moved == 0


def test_cli_redrive_refuses_bad_input_in_one_line(settings: Settings) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return _cli("dlq", "redrive", *args)

    refused = cli("--limit", "0")
    assert refused.returncode == 2
    assert "--limit needs a count >= 1" in refused.stderr
    missing = cli("--subscription", "no-such-subscription")
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr
    assert "no-such-subscription" in missing.stderr
