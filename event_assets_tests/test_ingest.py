"""End to end through the real client: publish -> pull -> decode -> land -> ack -> dedup-write."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from deltalake import DeltaTable

from event_assets.ingest import ingest, lake_of
from event_assets.pubsub.client import Subscription, messages_of, publish
from event_assets.settings import Settings
from event_assets.storage.landing import list_batches, pending_batches, read_batches
from pubsub_emulator.emulator import PubSubEmulator

from .corpus import mixed_corpus

# The same tests against a local folder and against gs:// on the GCS fake.
LAKE_KINDS = ("local", "gcs")


def _table(uri: str) -> dict[str, list[object]]:
    return DeltaTable(uri).to_pyarrow_table().to_pydict()


def test_mixed_corpus_lands_once_with_bad_input_quarantined(settings: Settings) -> None:
    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    ids = publish(settings, corpus.messages)
    summary = ingest(settings, once=True)

    events = _table(lake_of(settings).events_uri)
    assert len(events["event_id"]) == corpus.unique_events
    assert len(set(events["event_id"])) == corpus.unique_events
    quarantine = _table(lake_of(settings).quarantine_uri)
    assert Counter(quarantine["reason_code"]) == Counter(corpus.bad)
    assert sorted(map(str, quarantine["message_id"])) == sorted(ids[80:])
    assert summary.pulled == len(corpus.messages)
    assert summary.inserted == corpus.unique_events
    assert summary.duplicates == corpus.duplicates
    assert summary.quarantined == sum(corpus.bad.values())
    assert summary.inserted + summary.duplicates + summary.quarantined == len(ids)
    # Binary and structured CloudEvents collapsed: 10 CloudEvent rows, dated by ce time (UTC).
    ce_dates = [d for d, t in zip(events["event_date"], events["ce_id"], strict=True) if t]
    assert ce_dates == [date(2026, 11, 20)] * 10
    # Every landed batch is merged; nothing left pending; nothing left to pull.
    assert list_batches(lake_of(settings))
    assert pending_batches(lake_of(settings)) == []
    with Subscription(settings) as sub:
        assert list(messages_of(sub.pull(100, timeout=1).payload)) == []


def test_second_ingest_of_the_same_events_adds_nothing(settings: Settings) -> None:
    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    publish(settings, corpus.messages)
    ingest(settings, once=True)
    publish(settings, corpus.messages)
    again = ingest(settings, once=True)
    assert again.inserted == 0
    assert again.duplicates == corpus.unique_events + corpus.duplicates
    events = _table(lake_of(settings).events_uri)
    assert len(events["event_id"]) == len(set(events["event_id"])) == corpus.unique_events
    # Re-published bad messages get new message ids: quarantined again, once each.
    quarantine = _table(lake_of(settings).quarantine_uri)
    assert len(quarantine["message_id"]) == 2 * sum(corpus.bad.values())
    assert len(set(quarantine["message_id"])) == len(quarantine["message_id"])


def test_a_round_stops_at_its_byte_budget(settings: Settings, monkeypatch) -> None:
    from event_assets.ingest import pull_round
    from event_assets.settings import load_settings

    publish(settings, [(b'{"pad": "%s", "i": %d}' % (b"x" * 5000, i), {}) for i in range(50)])
    monkeypatch.setenv("PULL_MAX_BYTES", "20000")
    monkeypatch.setenv("PULL_BATCH_SIZE", "2")
    small = load_settings()
    with Subscription(small) as sub:
        first = pull_round(small, sub, lake_of(small))
    assert 4 <= first.pulled <= 6  # stops once 20 kB are held (2 messages per pull)
    assert first.landed == first.pulled


def test_a_round_takes_exactly_its_message_budget_with_pulls_in_flight(
    settings: Settings, emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several Pull RPCs are in flight at once, but their requests never add up past
    PULL_MAX_MESSAGES: nothing is leased that the round will not land and ack."""
    from event_assets.ingest import PULLS_IN_FLIGHT, pull_round
    from event_assets.settings import load_settings

    assert PULLS_IN_FLIGHT > 1
    publish(settings, [(b'{"i": %d}' % i, {}) for i in range(100)])
    monkeypatch.setenv("PULL_MAX_MESSAGES", "25")
    monkeypatch.setenv("PULL_BATCH_SIZE", "10")
    small = load_settings()
    with Subscription(small) as sub:
        first = pull_round(small, sub, lake_of(small))
        assert first.pulled == first.landed == 25
        assert emulator.stats()["delivered"] == 25
        second = pull_round(small, sub, lake_of(small))
    assert second.pulled == 25
    assert emulator.stats()["delivered"] == emulator.stats()["acked"] == 50


def test_overlapping_rounds_count_every_message_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ingest` lands/acks/merges one round while pulling the next: the summary and
    the table still account for every message exactly once, round by round."""
    from event_assets.settings import load_settings

    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    publish(settings, corpus.messages)
    monkeypatch.setenv("PULL_MAX_MESSAGES", "7")
    small = load_settings()
    seen: list[tuple[int, int]] = []
    summary = ingest(small, once=True, on_round=lambda s: seen.append((s.rounds, s.pulled)))
    assert summary.pulled == len(corpus.messages)
    assert summary.inserted == corpus.unique_events
    assert summary.duplicates == corpus.duplicates
    assert summary.quarantined == sum(corpus.bad.values())
    assert summary.rounds == len(corpus.messages) // 7 + 2  # full rounds, the rest, empty
    assert seen == sorted(seen)  # reported as rounds finish, never going back
    assert seen[-1][1] == len(corpus.messages)
    assert len(set(_table(lake_of(settings).events_uri)["event_id"])) == corpus.unique_events
    assert pending_batches(lake_of(settings)) == []


def test_a_failed_merge_in_the_background_stops_ingest_and_is_recovered(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round merged in the background that fails fails `ingest` (not swallowed by
    the thread); what it landed and acked is merged by the next run."""
    import event_assets.ingest as ingest_module
    from event_assets.settings import load_settings

    corpus = mixed_corpus(settings.MAX_MESSAGE_BYTES)
    publish(settings, corpus.messages)
    monkeypatch.setenv("PULL_MAX_MESSAGES", "20")
    small = load_settings()
    real_merge = ingest_module.merge_partition
    calls = 0

    def failing_merge(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("storage went away")
        return real_merge(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "merge_partition", failing_merge)
    with pytest.raises(RuntimeError, match="storage went away"):
        ingest(small, once=True)
    assert pending_batches(lake_of(settings))
    monkeypatch.setattr(ingest_module, "merge_partition", real_merge)
    again = ingest(small, once=True)
    assert again.recovered_batches >= 1
    assert pending_batches(lake_of(settings)) == []
    events = _table(lake_of(settings).events_uri)
    assert len(events["event_id"]) == len(set(events["event_id"])) == corpus.unique_events


def test_attributes_named_like_publish_parameters_are_published(settings: Settings) -> None:
    """`data`, `topic`, ... are legal Pub/Sub attribute names."""
    attributes = {"data": "d", "topic": "t", "ordering_key": "o", "retry": "r", "timeout": "x"}
    ids = publish(settings, [(b'{"a": 1}', attributes), (b'{"a": 2}', {"event_type": "e"})])
    assert len(set(ids)) == 2
    with Subscription(settings) as sub:
        pulled = sub.pull(10, timeout=5)
    assert {frozenset(m.attributes.items()) for m in messages_of(pulled.payload)} == {
        frozenset(attributes.items()),
        frozenset({"event_type": "e"}.items()),
    }


def _timed(i: int, occurred_at: str | None) -> tuple[bytes, dict[str, str]]:
    payload: dict[str, Any] = {"i": i}
    if occurred_at is not None:
        payload["occurred_at"] = occurred_at
    return json.dumps(payload).encode(), {}


def test_a_round_just_before_midnight_takes_tomorrows_events_within_the_skew(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round at 23:59:58 (its `now`): an event of 00:00:03 tomorrow, dated by
    EVENT_TIME_FIELD or by ce-time, lands in tomorrow's partition (the old date bound,
    fixed at round start, quarantined it); one past now + FUTURE_SKEW_SECONDS is
    quarantined; a missing or invalid field dates by publish time."""
    from event_assets.ingest import pull_round
    from event_assets.settings import load_settings

    monkeypatch.setenv("EVENT_TIME_FIELD", "occurred_at")
    timed = load_settings()
    assert timed.FUTURE_SKEW_SECONDS == 300
    now = datetime.combine(datetime.now(UTC).date(), time(23, 59, 58), UTC)
    tomorrow = now.date() + timedelta(days=1)
    just_after = f"{tomorrow}T00:00:03Z"
    ce_attributes = {
        "ce-specversion": "1.0",
        "ce-id": "ce-after-midnight",
        "ce-source": "//test",
        "ce-type": "t",
        "ce-time": just_after,
    }
    publish(
        timed,
        [
            _timed(1, just_after),
            _timed(2, f"{tomorrow}T00:04:59Z"),  # 301 s after `now`
            _timed(3, "not a time"),
            _timed(4, None),
            (b'{"i": 5}', ce_attributes),
        ],
    )
    with Subscription(timed) as sub:
        landed = pull_round(timed, sub, lake_of(timed), now=now)
    assert (landed.pulled, landed.landed, landed.quarantined) == (5, 4, 1)
    assert landed.quarantine_reasons == {"event_date_out_of_range": 1}
    rows = read_batches(lake_of(timed), [b.path for b in landed.batches]).to_pylist()
    dates = {json.loads(row["data"])["i"]: row["event_date"] for row in rows}
    assert dates[1] == dates[5] == tomorrow
    by_publish = {json.loads(r["data"])["i"]: r["publish_time"].date() for r in rows}
    assert dates[3] == by_publish[3]
    assert dates[4] == by_publish[4]
    assert {b.partition for b in landed.batches} == {tomorrow, by_publish[3], by_publish[4]}
    quarantine = DeltaTable(lake_of(timed).quarantine_uri).to_pyarrow_table().to_pylist()
    assert [json.loads(q["payload"])["i"] for q in quarantine] == [2]
    assert "is after the latest accepted time" in quarantine[0]["reason"]


def test_a_round_reads_the_clock_as_it_decodes_not_as_it_starts(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no skew allowance, a round whose clock first reads 23:59:58 and then
    00:00:05 accepts an event of 00:00:03 and refuses one of 00:00:06."""
    from event_assets import decode_pool
    from event_assets.events.timestamps import to_micros
    from event_assets.ingest import pull_round
    from event_assets.settings import load_settings

    midnight = datetime(2026, 11, 25, tzinfo=UTC)
    readings = [
        to_micros(midnight - timedelta(seconds=2)),
        to_micros(midnight + timedelta(seconds=5)),
    ]

    def clock() -> int:
        return readings.pop(0) if len(readings) > 1 else readings[0]

    monkeypatch.setattr(decode_pool, "wall_clock_us", clock)
    monkeypatch.setenv("EVENT_TIME_FIELD", "occurred_at")
    monkeypatch.setenv("FUTURE_SKEW_SECONDS", "0")
    strict = load_settings()
    publish(strict, [_timed(1, "2026-11-25T00:00:03Z"), _timed(2, "2026-11-25T00:00:06Z")])
    with Subscription(strict) as sub:
        landed = pull_round(strict, sub, lake_of(strict))
    assert (landed.pulled, landed.landed, landed.quarantined) == (2, 1, 1)
    assert landed.by_partition().keys() == {date(2026, 11, 25)}
    assert readings == [to_micros(midnight + timedelta(seconds=5))]  # both were read
