"""Fixtures running the in-process Pub/Sub emulator behind the real client library."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.cloud import pubsub_v1  # type: ignore[attr-defined]
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from pubsub_emulator.emulator import PubSubEmulator

PROJECT = "test-project"


@pytest.fixture
def pubsub_emulator() -> Iterator[PubSubEmulator]:
    """A fresh emulator per test on an ephemeral port, so tests share no state."""
    with PubSubEmulator() as emulator:
        yield emulator


@pytest.fixture
def emulator_env(pubsub_emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point clients created afterwards at the emulator, the way users do it."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.address)
    return pubsub_emulator.address


@pytest.fixture
def publisher(emulator_env: str) -> Iterator[pubsub_v1.PublisherClient]:
    client = pubsub_v1.PublisherClient()
    yield client
    client.stop()


@pytest.fixture
def subscriber(emulator_env: str) -> Iterator[pubsub_v1.SubscriberClient]:
    """Client as PUBSUB_EMULATOR_HOST builds it: gRPC's default 4 MiB receive limit."""
    client = pubsub_v1.SubscriberClient()
    yield client
    client.close()


@pytest.fixture
def unlimited_subscriber(pubsub_emulator: PubSubEmulator) -> Iterator[pubsub_v1.SubscriberClient]:
    """Client whose channel accepts responses of any size (needed for ~10 MB messages)."""
    channel = grpc.insecure_channel(
        pubsub_emulator.address, options=[("grpc.max_receive_message_length", -1)]
    )
    client = pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))
    yield client
    client.close()
