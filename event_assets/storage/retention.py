"""Delta's vacuum safety rule in one place: settings check it as they load (a clear error
at start) and `maintenance.vacuum` again for any caller (no imports: settings load it)."""

from __future__ import annotations

SAFE_RETENTION_HOURS = 168
"""Delta's default `delta.deletedFileRetentionDuration`: older snapshots stay readable a
week, and a slow reader or a concurrent writer keeps its files."""


def retention_problem(hours: float, allow_below_default: bool) -> str | None:
    """Why vacuuming with this retention is unsafe, or None."""
    if hours < SAFE_RETENTION_HOURS and not allow_below_default:
        return (
            f"vacuum retention of {hours:g} h is below Delta's safe default of "
            f"{SAFE_RETENTION_HOURS} h: readers of older snapshots and concurrent writers "
            "could lose files"
        )
    return None
