"""Shared fixtures: a real Pub/Sub emulator and settings pointing at a temporary lake."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from event_assets.pubsub.client import ensure_topic_and_subscription
from event_assets.pubsub.emulator import PubSubEmulator
from event_assets.settings import Settings, load_settings

_names = itertools.count()


@pytest.fixture
def emulator() -> Iterator[PubSubEmulator]:
    with PubSubEmulator() as server:
        yield server


@pytest.fixture
def settings(emulator: PubSubEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for one test, also exported to the environment for subprocesses."""
    n = next(_names)
    values = {
        "LAKE_URI": str(tmp_path / "lake"),
        "PUBSUB_EMULATOR_HOST": emulator.address,
        "GCP_PROJECT_ID": "test-project",
        "PUBSUB_TOPIC": f"events-{n}",
        "PUBSUB_SUBSCRIPTION": f"events-ingest-{n}",
        "MAX_MESSAGE_BYTES": "20000",
        "PULL_TIMEOUT_SECONDS": "5",
        "ACK_DEADLINE_SECONDS": "60",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    result = load_settings()
    ensure_topic_and_subscription(result)
    return result
