"""Screenshot the Dagster UI after a few minutes of `make dev`-like load, and say what it shows.

For the README and for reviewing the UI by eye, on throw-away state: a temp DAGSTER_HOME
with our dagster.yaml, a temp lake, the emulator in its own process, the real
`dagster-daemon` and `dagster-webserver` (the developer's `.dagster_home` and `.data`
are never touched). Steps: start both, run `make dev`'s trickle (demo events and a bad
message every 5 s) for `--minutes`, launch the health and compaction jobs and a day of
`events` as the UI would, wait for the queue to drain, then read what the UI shows
through its GraphQL API (failed checks, partitions, queue) and take headless Chromium
screenshots of the pages a data engineer opens. Exits 1 if the UI shows a failed or
never-ending check.

    uv run python scripts/screenshot_ui.py [--minutes 4] [--out screenshots]

Needs Debian's Chromium (`apt-get install chromium`); exits 2 with a message without it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devtools.run_dev import trickle
from devtools.webserver import ROOT, Webserver, WebserverError

CHROMIUM = Path("/usr/bin/chromium")
START_TIMEOUT = 120.0
SETTLE_TIMEOUT = 300.0
SHOT_TIMEOUT = 120.0
RECENT_DAYS = 6
PAGES = {
    "catalog.png": "/assets",
    "events_overview.png": "/assets/events",
    "events_partitions.png": "/assets/events?view=partitions&partition={today}",
    "events_checks.png": "/assets/events?view=checks",
    "events_history.png": "/assets/events?view=events",
    "events_lineage.png": "/assets/events?view=lineage",
    "events_audit_checks.png": "/assets/events_audit?view=checks",
    "contract_person_v1.png": "/assets/person_v1?view=partitions",
    "quarantine.png": "/assets/events_quarantine",
    "maintenance.png": "/assets/events_compaction",
    "runs.png": "/runs",
    "automation.png": "/automation",
}


def _screenshot(url: str, path: Path, budget_ms: int) -> None:
    """One headless Chromium screenshot with a fresh profile (no state between shots)."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        subprocess.run(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--window-size=1600,1000",
                f"--virtual-time-budget={budget_ms}",
                f"--screenshot={path}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=SHOT_TIMEOUT,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="trickle before the shots")
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--budget-ms", type=int, default=15000, help="Chromium virtual time")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print(
            f"screenshot_ui: {CHROMIUM} not found; install it with "
            "`sudo apt-get install -y chromium`",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True, exist_ok=True)

    from event_assets_tests.support.daemon import DaemonLab
    from event_assets_tests.support.ui import launch_job, materialize_like_the_ui, read_ui

    today = datetime.now(UTC).date()
    start = (today - timedelta(days=RECENT_DAYS)).isoformat()
    with (
        tempfile.TemporaryDirectory(prefix="screenshot-ui-") as tmp,
        DaemonLab(Path(tmp), name="screenshots", PARTITIONS_START_DATE=start) as lab,
    ):
        lab.start_daemon()
        with Webserver(lab.env, Path(tmp) / "webserver.log") as webserver:
            try:
                webserver.wait_until_loaded(START_TIMEOUT)
            except WebserverError as exc:
                print(f"screenshot_ui: webserver did not come up: {exc}", file=sys.stderr)
                return 1
            # What the UI's "Skip" does: without it a "Join the Dagster community" dialog
            # covers every page served on localhost (stored under the temp DAGSTER_HOME).
            webserver.graphql("mutation { setNuxSeen }")
            stop = threading.Event()
            publisher = threading.Thread(target=trickle, args=(lab.settings, stop), daemon=True)
            publisher.start()
            print(f"trickle for {args.minutes} min into {lab.home} (UI {webserver.url})")
            time.sleep(args.minutes * 60)  # the load itself, not a synchronization
            stop.set()
            publisher.join(timeout=60)
            launch_job(webserver, "events_health_job")
            launch_job(webserver, "events_compaction_job")
            yesterday = (today - timedelta(days=1)).isoformat()
            materialize_like_the_ui(webserver, "events", yesterday)
            lab.wait_until_idle(timeout=SETTLE_TIMEOUT)
            ui = read_ui(webserver)
            for name, page in PAGES.items():
                path = args.out / name
                page = page.format(today=today.isoformat())
                _screenshot(webserver.url + page, path, args.budget_ms)
                print(f"{path} ({path.stat().st_size // 1024} KB) <- {page}")
    bad = ui.checks_with("FAILED", "EXECUTION_FAILED", "IN_PROGRESS")
    for name, stats in sorted(ui.partitions.items()):
        print(f"{name}: {stats.materialized} of {stats.partitions} partitions materialized")
    print(f"checks: {len(ui.latest_checks)} latest executions, {len(bad)} failed or running")
    for key, description in sorted(bad.items()):
        print(f"  {key}: {description}")
    print(f"runs queued at the end: {ui.queued_runs}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
