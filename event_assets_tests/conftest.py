"""Shared fixtures: a real Pub/Sub emulator and settings pointing at a temporary lake."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from event_assets.pubsub.client import ensure_topic_and_subscription
from event_assets.settings import Settings, load_settings
from pubsub_emulator.emulator import PubSubEmulator

from .support.gcs_fake import GcsFake, service_account_key

_names = itertools.count()

# The test corpora carry fixed dates (2026-11-20): give them partitions, whatever today is.
# Set before any test imports the code location, whose partitions are read at import.
os.environ.setdefault("PARTITIONS_START_DATE", "2020-01-01")


@pytest.fixture
def emulator() -> Iterator[PubSubEmulator]:
    with PubSubEmulator() as server:
        yield server


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a module's lake-using tests on each backend it lists in LAKE_KINDS."""
    if "lake_kind" in metafunc.fixturenames:
        metafunc.parametrize("lake_kind", getattr(metafunc.module, "LAKE_KINDS", ("local",)))


@pytest.fixture(scope="session")
def gcs_fake() -> Iterator[GcsFake]:
    with GcsFake() as fake:
        yield fake


@pytest.fixture(scope="session")
def gcs_key_file(gcs_fake: GcsFake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway service-account key pointing at the fake (never a real credential)."""
    path = tmp_path_factory.mktemp("gcs") / "service-account.json"
    path.write_text(service_account_key(gcs_fake.base_url))
    return path


@pytest.fixture
def lake_uri(
    lake_kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A local folder, or gs:// on the fake reached only through GOOGLE_SERVICE_ACCOUNT."""
    if lake_kind == "local":
        return str(tmp_path / "lake")
    key_file: Path = request.getfixturevalue("gcs_key_file")
    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT", str(key_file))
    return f"gs://event-lake/t{next(_names)}/lake"


@pytest.fixture
def settings(emulator: PubSubEmulator, lake_uri: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for one test, also exported to the environment for subprocesses."""
    n = next(_names)
    values = {
        "LAKE_URI": lake_uri,
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
