"""Event time: microseconds since the epoch, RFC 3339 parsing, the decode clock and the
accepted date range.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from event_assets.events.models import ReasonCode, RejectedError, _to_utc

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_MICROSECOND = timedelta(microseconds=1)
DAY_US = 86_400_000_000
_MIN_US = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND
_MAX_US = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return (_to_utc(value) - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    """The aware UTC datetime of microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=micros)


def _epoch_day(value: date | None) -> int | None:
    return None if value is None else value.toordinal() - _EPOCH_ORDINAL


def date_of_day(day: int) -> date:
    return date.fromordinal(day + _EPOCH_ORDINAL)


_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)


def parse_rfc3339_micros(text: str) -> int:
    """Parse an RFC 3339 timestamp to microseconds since the epoch (UTC).

    Accepts ``Z`` or a numeric offset and any number of fractional digits
    (truncated to microseconds, the table's precision). A leap second ``:60``
    becomes ``:59.999999``. Raises ``ValueError`` for anything else, including
    instants outside years 1-9999 in UTC.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError("not an RFC 3339 timestamp")
    if text[-1] == "Z":
        # The usual form. Once the pattern has matched, the C ISO parser reads a
        # "Z" timestamp as the rules below do (fraction truncated; always in range)
        # at half the cost; what it refuses (a leap second, 30 February) takes the
        # long way, which accepts or explains it.
        try:
            return (datetime.fromisoformat(text) - _EPOCH) // _MICROSECOND
        except ValueError:
            pass
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
    seconds = int(second)
    if seconds == 60:
        seconds, micros = 59, 999_999
    if zulu:
        tz: timezone = UTC
    else:
        if int(off_h) > 23 or int(off_m) > 59:
            raise ValueError("offset out of range")
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        tz = timezone(-offset if sign == "-" else offset)
    local = datetime(
        int(year), int(month), int(day), int(hour), int(minute), seconds, micros, tzinfo=tz
    )
    # Aware subtraction converts to UTC without the overflow astimezone raises
    # near year 1 / 9999; the range check then refuses what UTC cannot hold.
    since_epoch = (local - _EPOCH) // _MICROSECOND
    if not _MIN_US <= since_epoch <= _MAX_US:  # e.g. 0001-01-01T00:00:00+01:00
        raise ValueError("timestamp out of range in UTC")
    return since_epoch


def parse_rfc3339(text: str) -> datetime:
    """:func:`parse_rfc3339_micros` as an aware UTC datetime."""
    return from_micros(parse_rfc3339_micros(text))


def _iso_micros(micros: int) -> str:
    try:
        return from_micros(micros).isoformat().replace("+00:00", "Z")
    except OverflowError:
        return f"{micros} us since the epoch"


Clock = Callable[[], int]
"""Reads the current time, in microseconds since the epoch (UTC)."""


def wall_clock_us() -> int:
    """The system clock in microseconds since the epoch: the decoder's default clock."""
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class FixedClock:
    """A clock that always reads ``micros``: for tests, and for a round given an
    explicit ``now``. Picklable, so it reaches decode worker processes."""

    micros: int

    def __call__(self) -> int:
        return self.micros


_UNBOUNDED_US = 1 << 64  # beyond any representable event time


class Limits:
    """What, besides the message, decides its fate; built once per batch.

    ``latest_us`` is the clock plus the future skew as last read. It is read when
    the batch starts and read again before an event is refused as too late
    (:meth:`too_late`), so every refusal is judged against the time the event was
    decoded at, and an accepted event was at most the skew ahead of a reading taken
    no later than its decode. Events under the bound never read the clock.
    """

    __slots__ = ("clock", "earliest_us", "latest_us", "max_bytes", "skew_us", "time_field")

    def __init__(
        self,
        max_bytes: int,
        earliest_date: date | None,
        future_skew_seconds: float | None,
        clock: Clock,
        time_field: str | None,
    ) -> None:
        if future_skew_seconds is not None and future_skew_seconds < 0:
            raise ValueError(f"future_skew_seconds must be >= 0, got {future_skew_seconds}")
        self.max_bytes = max_bytes
        self.earliest_us = (
            -_UNBOUNDED_US
            if earliest_date is None
            else (earliest_date.toordinal() - _EPOCH_ORDINAL) * DAY_US
        )
        self.skew_us = None if future_skew_seconds is None else round(future_skew_seconds * 1e6)
        self.clock = clock
        self.time_field = time_field
        self.latest_us = _UNBOUNDED_US if self.skew_us is None else clock() + self.skew_us

    def too_late(self, event_us: int) -> bool:
        """Whether ``event_us`` is more than the skew after the clock, read now."""
        if self.skew_us is None:
            return False
        self.latest_us = self.clock() + self.skew_us
        return event_us > self.latest_us

    def out_of_range(self, event_us: int) -> RejectedError:
        event_day = event_us // DAY_US
        if event_us < self.earliest_us:
            earliest = date_of_day(self.earliest_us // DAY_US).isoformat()
            return RejectedError(
                ReasonCode.EVENT_DATE_OUT_OF_RANGE,
                f"event_date {date_of_day(event_day).isoformat()} is before the earliest "
                f"accepted date {earliest}",
            )
        return RejectedError(
            ReasonCode.EVENT_DATE_OUT_OF_RANGE,
            f"event_time {_iso_micros(event_us)} is after the latest accepted time "
            f"{_iso_micros(self.latest_us)} (the clock + {(self.skew_us or 0) / 1e6:g} s "
            "of future skew)",
        )
