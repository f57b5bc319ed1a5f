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

import pyarrow as pa


def _unserializable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder behind ``json.dumps(value, sort_keys=True)``, built once with the
# very arguments json.dumps passes it (ASCII quoting, ": " and ", ", sorted keys,
# NaN allowed). ``JSONEncoder.encode`` builds a new one on every call, which was
# 40 % of the cost of a small event (2.8 -> 1.7 us, measured). No circular-reference
# markers: JSON-parsed values cannot be cyclic, and a cyclic value ends in
# RecursionError, like a too-deep one, instead of ValueError.
_CANONICAL_ENCODER = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None,
    _unserializable,
    json.encoder.encode_basestring_ascii,
    None,
    ": ",
    ", ",
    True,
    False,
    True,
)
_ID_HEX_CHARS = 64


def canonical_json(value: object) -> str:
    """Return ``value`` as canonical JSON text, byte-identical to the seed's form.

    Raises ``TypeError`` for values JSON cannot represent and ``RecursionError``
    for structures nested deeper than the interpreter stack allows.
    """
    return "".join(_CANONICAL_ENCODER(value, 0))


def event_id_of_canonical(text: str) -> str:
    """Return the event id (sha256 hex) of text that is already canonical JSON."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def event_id_of(value: object) -> str:
    """Return the event id of ``value``: sha256 hex of its canonical JSON (the seed's
    ``generate_unique_id``)."""
    return event_id_of_canonical(canonical_json(value))


def id_words(ids: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """The first 128 bits of each event id as two big-endian signed int64 words.

    The dedup-write compares these instead of the 64-character ids: reading 16
    bytes per row of a partition rather than ~70 is what keeps insert-if-absent
    near the cost of an append. Two distinct events share 128 leading bits of their
    SHA-256 with probability 2^-128 per pair (~1e-19 at 10^10 rows in one day), far
    below storage error rates, so the words decide identity exactly as the id does.

    Raises ``ValueError`` if an id is not 64 hex characters.
    """
    import polars as pl  # here, not at import: ~0.5 s the code location does not need

    series = pl.Series("id", ids, dtype=pl.String)
    if series.null_count() or not (series.str.len_bytes() == _ID_HEX_CHARS).all():
        raise ValueError("event ids must be 64-character sha256 hex")
    try:
        words = pl.select(
            series.str.slice(offset, 16)
            .str.decode("hex")
            .bin.reinterpret(dtype=pl.Int64, endianness="big")
            .alias(str(offset))
            for offset in (0, 16)
        )
    except pl.exceptions.ComputeError:
        raise ValueError("event ids must be 64-character sha256 hex") from None
    return words["0"].to_arrow(), words["16"].to_arrow()
