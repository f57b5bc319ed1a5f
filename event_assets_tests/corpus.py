"""A mixed corpus of Pub/Sub messages with known outcomes, for end-to-end tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class Corpus:
    messages: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    unique_events: int = 0
    duplicates: int = 0
    bad: dict[str, int] = field(default_factory=dict)

    def add(self, data: bytes, attributes: dict[str, str] | None = None) -> None:
        self.messages.append((data, attributes or {}))

    def add_bad(self, reason: str, data: bytes, attributes: dict[str, str] | None = None) -> None:
        self.add(data, attributes)
        self.bad[reason] = self.bad.get(reason, 0) + 1


def _ce_attrs(i: int, **extra: str) -> dict[str, str]:
    return {
        "ce-specversion": "1.0",
        "ce-id": f"ce-{i}",
        "ce-source": "//test/source",
        "ce-type": "com.example.test.v1",
        "ce-time": "2026-11-20T23:30:00+02:00",
        "content-type": "application/json",
        **extra,
    }


def mixed_corpus(max_bytes: int) -> Corpus:
    """50 plain + 10 CloudEvents, 20 duplicates of them, and every bad-input kind."""
    corpus = Corpus()
    plain = [{"name": f"n{i}", "lastname": "Doe", "i": i, "tags": ["a", i]} for i in range(50)]
    for obj in plain:
        corpus.add(json.dumps(obj).encode(), {"event_type": "com.example.person.v1"})
    for obj in plain[:10]:  # exact re-publish
        corpus.add(json.dumps(obj).encode(), {"event_type": "com.example.person.v1"})
    for obj in plain[10:15]:  # re-encoded: other key order and whitespace, same content
        text = json.dumps(dict(reversed(list(obj.items()))), indent=2)
        corpus.add(text.encode())
    for i in range(10):  # binary-mode CloudEvents
        corpus.add(
            json.dumps({"order": i, "total": i * 10}).encode(), _ce_attrs(i, **{"ce-tenant": "t1"})
        )
    for i in range(5):  # the same events in structured mode
        event = {
            "specversion": "1.0",
            "id": f"ce-{i}",
            "source": "//test/source",
            "type": "com.example.test.v1",
            "time": "2026-11-20T23:30:00+02:00",
            "datacontenttype": "application/json",
            "tenant": "t1",
            "data": {"total": i * 10, "order": i},
        }
        corpus.add(json.dumps(event).encode(), {"content-type": "application/cloudevents+json"})
    corpus.unique_events = 60
    corpus.duplicates = 20
    corpus.add_bad("not_utf8", b"\xff\xfe\x00garbage")
    corpus.add_bad("invalid_json", b"{not json")
    corpus.add_bad("json_too_deep", b"[" * 5000 + b"]" * 5000)
    corpus.add_bad("not_an_object", b"[1, 2, 3]")
    corpus.add_bad("empty_payload", b"", {"only": "attributes"})
    missing_id = _ce_attrs(99)
    del missing_id["ce-id"]
    corpus.add_bad("invalid_cloudevent", b"{}", missing_id)
    corpus.add_bad("payload_too_large", json.dumps({"x": "y" * max_bytes}).encode())
    corpus.add_bad("invalid_json", b'{"nan": NaN}')
    return corpus
