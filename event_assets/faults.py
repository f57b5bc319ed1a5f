"""Pause points for crash tests.

`EVENT_ASSETS_PAUSE_AT=<name>` makes the process announce itself on stderr and
block forever when it reaches that point, so a test can SIGKILL it exactly
there from outside. A pause never changes what the code does; unset, it costs a
dictionary lookup.
"""

from __future__ import annotations

import os
import sys
import threading

PAUSE_ENV = "EVENT_ASSETS_PAUSE_AT"
_forever = threading.Event()


def checkpoint(name: str) -> None:
    """Block here if a test asked to pause at `name`."""
    if os.environ.get(PAUSE_ENV) == name:
        sys.stderr.write(f"event-assets: paused at {name}\n")
        sys.stderr.flush()
        _forever.wait()
