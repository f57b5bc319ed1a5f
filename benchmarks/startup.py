"""Start-up every run pays: fresh-process import times, as the daemon's children see them.

Each sample is a new interpreter of this environment (`python -c "import X"`, and the
`event-assets --help` console script), the three kinds interleaved so that a busy
moment of the machine hits all of them alike. The goal compares the code location
with Dagster's own import: what we add on top of it is ours to keep small.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PYTHON = sys.executable
CLI = str(Path(sys.executable).with_name("event-assets"))
COMMANDS = {
    "import_dagster": [PYTHON, "-c", "import dagster"],
    "code_location": [PYTHON, "-c", "import event_assets.definitions"],
    "cli_help": [CLI, "--help"],
}


def _seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def bench_startup(repeats: int) -> dict[str, Any]:
    """Median (min-max) seconds per command over `repeats` interleaved samples."""
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(max(repeats, 1)):
        for name, command in COMMANDS.items():
            samples[name].append(_seconds(command))
    result: dict[str, Any] = {
        name: {"median": statistics.median(s), "min": min(s), "max": max(s)}
        for name, s in samples.items()
    }
    result["code_location_over_dagster_seconds"] = (
        result["code_location"]["median"] - result["import_dagster"]["median"]
    )
    return result
