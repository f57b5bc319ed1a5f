"""The identity rule: an event's id is the SHA-256 of its canonical JSON.

This is the only place the hash is computed. The canonical form is exactly the
seed's ``json.dumps(value, sort_keys=True)`` (keys sorted, ``", "`` and ``": "``
separators, ``ensure_ascii=True``) so ids already written by the seed stay valid
and a redelivered or re-published event always maps to the same id. Because the
text is pure ASCII, lone surrogates and other odd code points stay escaped and
encoding it to UTF-8 never fails.

What is hashed for each message shape is decided in :mod:`event_assets.events.decode`.
"""

from __future__ import annotations

import hashlib
import json

# One reusable encoder: ``json.dumps(value, sort_keys=True)`` builds an identical
# ``JSONEncoder`` on every call; reusing it gives the same bytes without the setup.
_CANONICAL_ENCODER = json.JSONEncoder(sort_keys=True)


def canonical_json(value: object) -> str:
    """Return ``value`` as canonical JSON text, byte-identical to the seed's form.

    Raises ``TypeError`` for values JSON cannot represent and ``RecursionError``
    for structures nested deeper than the interpreter stack allows.
    """
    return _CANONICAL_ENCODER.encode(value)


def event_id_of_canonical(text: str) -> str:
    """Return the event id (sha256 hex) of text that is already canonical JSON."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def event_id_of(value: object) -> str:
    """Return the event id of ``value``: sha256 hex of its canonical JSON (the seed's
    ``generate_unique_id``)."""
    return event_id_of_canonical(canonical_json(value))
