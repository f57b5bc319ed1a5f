"""Pause points for crash tests.

A process reaching a pause point announces itself on stderr and blocks forever, so a
test can SIGKILL it exactly there from outside. Two ways to ask:

- `EVENT_ASSETS_PAUSE_AT=<name>`: every process of that environment pauses at `name`.
- `EVENT_ASSETS_PAUSE_DIR=<dir>`: a test arms a point with `arm(dir, name)` (a file
  `<dir>/<name>.armed`), at any time; the first process to reach it claims it by
  renaming the file to `<dir>/<name>.<pid>` (atomic: one winner) and pauses; the rest go
  on until the point is armed again. So one long-lived daemon's code server and run
  workers can be paused, killed and paused again without a restart.

A pause never changes what the code does; with neither set, it costs two dictionary
lookups.
"""

from __future__ import annotations

import os
import sys
import threading
from enum import StrEnum
from pathlib import Path

PAUSE_ENV = "EVENT_ASSETS_PAUSE_AT"
PAUSE_DIR_ENV = "EVENT_ASSETS_PAUSE_DIR"
_ARMED = ".armed"
_forever = threading.Event()


class PausePoint(StrEnum):
    """Every pause point; the code, the crash harness and the tests name them from here."""

    AFTER_PULL = "after_pull"  # a round pulled and decoded, nothing landed
    BEFORE_LANDING = "before_landing"  # the round's lease is being held
    AFTER_LANDING = "after_landing"  # batches durable; no quarantine, receipt or ack yet
    BEFORE_ACK = "before_ack"  # everything durable and receipted, not acked
    AFTER_ACK = "after_ack"  # acked; the sensor has not returned its run requests
    BEFORE_COMMIT = "before_commit"  # a merge read its batches, nothing committed
    AFTER_COMMIT = "after_commit"  # committed; not receipted as merged, not moved
    BEFORE_COMPACT_COMMIT = "before_compact_commit"
    BEFORE_VACUUM = "before_vacuum"


def checkpoint(name: PausePoint) -> None:
    """Block here if a test asked to pause at `name`."""
    if os.environ.get(PAUSE_ENV) != name:
        directory = os.environ.get(PAUSE_DIR_ENV)
        if not directory:
            return
        try:
            os.rename(Path(directory, name + _ARMED), Path(directory, f"{name}.{os.getpid()}"))
        except FileNotFoundError:
            return  # not armed, or somebody else claimed it
    sys.stderr.write(f"event-assets: paused at {name}\n")
    sys.stderr.flush()
    _forever.wait()


def arm(directory: Path, name: PausePoint) -> None:
    """Make the next process (of those with `PAUSE_DIR_ENV=directory`) to reach `name` pause."""
    directory.mkdir(parents=True, exist_ok=True)
    Path(directory, name + _ARMED).touch()


def paused(directory: Path, name: PausePoint) -> int | None:
    """The pid of the process paused at `name` (claimed, not yet disarmed), if any."""
    for path in directory.glob(f"{name}.*"):
        suffix = path.name.removeprefix(f"{name}.")
        if suffix.isdigit():
            return int(suffix)
    return None


def disarm(directory: Path, name: PausePoint) -> None:
    """Forget a claim or an armed point (after killing the paused process)."""
    for path in directory.glob(f"{name}.*"):
        path.unlink(missing_ok=True)
