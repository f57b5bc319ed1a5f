"""Pause points for crash tests.

`EVENT_ASSETS_PAUSE_AT=<name>` makes the process announce itself on stderr and
block forever when it reaches that point, so a test can SIGKILL it exactly
there from outside. With `EVENT_ASSETS_PAUSE_ONCE=<file>` too, only the first process
to reach the point pauses (it creates the file and writes its pid there); the one that
replaces it after the kill (a retried Dagster run) goes on. A pause never changes what
the code does; unset, it costs a dictionary lookup.
"""

from __future__ import annotations

import os
import sys
import threading

PAUSE_ENV = "EVENT_ASSETS_PAUSE_AT"
PAUSE_ONCE_ENV = "EVENT_ASSETS_PAUSE_ONCE"
_forever = threading.Event()


def checkpoint(name: str) -> None:
    """Block here if a test asked to pause at `name`."""
    if os.environ.get(PAUSE_ENV) == name:
        once = os.environ.get(PAUSE_ONCE_ENV)
        if once:
            try:
                fd = os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return  # somebody paused here already
            with os.fdopen(fd, "w") as out:  # who paused, for the test that kills it
                out.write(str(os.getpid()))
        sys.stderr.write(f"event-assets: paused at {name}\n")
        sys.stderr.flush()
        _forever.wait()
