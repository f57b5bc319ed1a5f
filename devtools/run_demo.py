"""`make demo`: emulator -> publish demo events -> ingest -> show the table.

Runs the real commands (`event-assets publish`, `event-assets ingest --once`) as
subprocesses against an emulator this process hosts. The lake persists under
`LAKE_URI`, so a second run finds every event already there and adds none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import polars as pl
from deltalake import DeltaTable

from event_assets.ingest import lake_of
from event_assets.settings import SettingsError, load_settings
from pubsub_emulator.emulator import PubSubEmulator

DEMO_EVENTS = int(os.environ.get("DEMO_EVENTS", "3000"))


def _run(args: list[str], env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "event_assets.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"demo: `event-assets {' '.join(args)}` failed ({done.returncode})")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"$ event-assets {' '.join(args)}\n  {json.dumps(result)}")
    return result


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    lake = lake_of(settings)
    with PubSubEmulator() as emulator:
        env = {**os.environ, "PUBSUB_EMULATOR_HOST": emulator.address}
        print(f"Pub/Sub emulator on {emulator.address}; lake at {lake.root}")
        _run(["publish", "--demo", str(DEMO_EVENTS)], env)
        _run(["ingest", "--once"], env)
    table = pl.from_arrow(DeltaTable(lake.events_uri).to_pyarrow_table())
    assert isinstance(table, pl.DataFrame)
    per_day = table.group_by("event_date").len().sort("event_date")
    print(
        f"\nevents table: {lake.events_uri}\n"
        f"  rows={table.height} unique event_id={table['event_id'].n_unique()} "
        f"partitions={per_day.height}"
    )
    print(per_day)
    print(
        "\nQuery it, e.g.:\n"
        '  uv run python -c "import polars as pl; '
        f"print(pl.read_delta('{lake.events_uri}').group_by('ce_type').len())\""
    )
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is written and closed: skip the interpreter's teardown, where a native
    # thread pool (seen once in ~12 runs on a loaded machine) can abort the process
    # ("terminate called without an active exception") after a successful demo.
    os._exit(code)
