"""A Google Cloud Pub/Sub emulator (gRPC, modelled on Go's `pstest`) for tests, benchmarks,
the reliability harness and `make dev`. Dev tooling: not part of the production wheel.

Run it with `event-assets emulator` from a checkout (also creates the topic and the
subscription the settings name) or `python -m pubsub_emulator` (the bare server).
"""

from pubsub_emulator.emulator import PubSubEmulator

__all__ = ["PubSubEmulator"]
