"""JSON text: parsing (orjson first, the standard library whenever they could differ),
the nesting cap and the canonical form that identity hashes (see `events.decode`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from event_assets.events.identity import canonical_json
from event_assets.events.models import ReasonCode, RejectedError

# The quoting json.dumps applies to every str (ensure_ascii=True): the C function.
quote = json.encoder.encode_basestring_ascii


MAX_JSON_DEPTH = 200
"""Deepest accepted nesting of arrays/objects (of the hashed form). Far below the
interpreter's recursion limit, so parse and dump never depend on stack depth, and
below orjson's serialisation limit (254) should a faster path come later."""


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_reject_constant)


def json_type(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


# A run of 19+ digits may be an integer beyond 64 bits, which orjson reads as a
# float where the standard library keeps an int: such texts take the slow path.
# (Checked as "19 digits in a row once every digit is mapped to 9": two C passes,
# 5x cheaper than a regex search.)
_DIGITS_TO_NINE = bytes(0x39 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_DIGIT_RUN = b"9" * 19


def parse_json(data: bytes) -> Any:
    """Parse UTF-8 JSON text, rejecting what the ``data`` column cannot hold.

    The value is always what the standard library parser returns: orjson is only
    trusted where it agrees (a hypothesis test holds it to that); anything orjson
    refuses (NaN, infinities, lone surrogates, deep nesting, bad JSON) is handed to
    the standard library, which accepts it or gives the reason it always gave.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedError(ReasonCode.NOT_UTF8, str(exc)) from None
    if _LONG_DIGIT_RUN not in data.translate(_DIGITS_TO_NINE):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return _parse_json_stdlib(text)


def _parse_json_stdlib(text: str) -> Any:
    try:
        if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
            return _DECODER.decode(text)
        with no_collection():
            return _DECODER.decode(text)
    except RecursionError:
        raise RejectedError(
            ReasonCode.JSON_TOO_DEEP, f"nested deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    except ValueError as exc:  # JSONDecodeError, rejected constants, int digit limit
        raise RejectedError(ReasonCode.INVALID_JSON, str(exc)) from None


@contextlib.contextmanager
def no_collection() -> Iterator[None]:
    """No garbage collection for a while: while the parser may recurse to the
    interpreter's limit (a finalizer run at that depth fails with an 'unraisable'
    RecursionError, seen once in the hostile-input suite), and while a batch is
    decoded (see `decode_batch`). Process-wide, so only around brief work that makes
    no reference cycles; nests."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _nesting_depth_exceeds(value: object, limit: int) -> bool:
    """Breadth-first, so it cannot itself recurse too deep."""
    level: list[dict[str, Any] | list[Any]] = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        children: list[dict[str, Any] | list[Any]] = []
        for container in level:
            items = container.values() if isinstance(container, dict) else container
            children.extend(item for item in items if isinstance(item, dict | list))
        level = children
    return False


def bounded_canonical(value: object, bracket_bound: int, limit: int = MAX_JSON_DEPTH) -> str:
    """Canonical JSON of ``value``, whose nesting is at most ``bracket_bound``,
    refused if nested deeper than ``limit``.

    The bound (a count of ``[``/``{`` bytes) is cheap; the exact depth is only
    computed when the bound exceeds the limit.
    """
    if bracket_bound > limit and _nesting_depth_exceeds(value, limit):
        raise RejectedError(ReasonCode.JSON_TOO_DEEP, f"nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return canonical_json(value)
    except RecursionError:
        raise RejectedError(
            ReasonCode.JSON_TOO_DEEP, f"nested deeper than {MAX_JSON_DEPTH} levels"
        ) from None


def canonical_object(value_texts: Mapping[str, str]) -> str:
    """``canonical_json`` of an object whose values are already canonical text.

    Byte for byte what ``json.dumps(sort_keys=True)`` writes for the object (sorted
    keys quoted by the same C function, ``": "`` and ``", "``), so a CloudEvent's
    data is serialised once for both the ``data`` column and the hashed form.
    """
    items = ", ".join([f"{quote(key)}: {value_texts[key]}" for key in sorted(value_texts)])
    return "{" + items + "}"


def bracket_count(data: bytes) -> int:
    return data.count(b"[") + data.count(b"{")
