"""Screenshot the Dagster UI's `events` asset page after a few real materializations.

For the README and for reviewing UI regressions by eye: everything runs against throw-away
state (a temp DAGSTER_HOME with our dagster.yaml, a temp lake, the in-process Pub/Sub
emulator), so the developer's `.dagster_home` and `.data` are never touched.

Steps: publish demo events -> tick `pubsub_events_sensor` -> run each requested partition
in-process -> again with new events -> run the health job (quarantine + freshness) -> start
`dagster-webserver` on that instance -> headless Chromium screenshots.

    uv run python scripts/screenshot_ui.py [--events 3000] [--out screenshots]

Needs Debian's Chromium (`apt-get install chromium`); exits 2 with a message without it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from event_assets.dev.webserver import ROOT, Webserver, WebserverError

CHROMIUM = Path("/usr/bin/chromium")
START_TIMEOUT = 60.0
SHOT_TIMEOUT = 120.0
PAGES = {
    "events_asset.png": "/assets/events",
    "events_checks.png": "/assets/events?view=checks",
}


def _materialize(publish_rounds: list[int]) -> None:
    """Publish each round of demo events, tick the sensor, run every requested partition."""
    import dagster as dg

    from event_assets.definitions import defs
    from event_assets.defs.ingestion import pubsub_events_sensor
    from event_assets.defs.resources import EventAssetsResource
    from event_assets.demo import demo_messages
    from event_assets.pubsub.client import ensure_topic_and_subscription, publish
    from event_assets.settings import load_settings

    settings = load_settings()
    ensure_topic_and_subscription(settings)
    job = defs.resolve_job_def("events_ingest_job")
    cursor: str | None = None
    offset = 0
    with dg.DagsterInstance.get() as instance:
        for count in publish_rounds:
            publish(settings, list(demo_messages(count, offset=offset)))
            offset += count
            context = dg.build_sensor_context(
                instance=instance,
                cursor=cursor,
                resources={"event_assets": EventAssetsResource()},
            )
            result = pubsub_events_sensor(context)
            assert isinstance(result, dg.SensorResult)
            cursor = result.cursor
            for request in result.run_requests or []:
                run = job.execute_in_process(
                    partition_key=request.partition_key,
                    run_config=dict(request.run_config),
                    tags=dict(request.tags),
                    instance=instance,
                )
                inserted = run.asset_materializations_for_node("events")[0].metadata
                print(
                    f"  {request.partition_key}: "
                    f"{inserted['rows_inserted'].value} inserted (run {run.run_id[:8]})"
                )
        health = defs.resolve_job_def("events_health_job").execute_in_process(instance=instance)
        print(f"  events_health_job: {'ok' if health.success else 'FAILED'}")


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
    parser.add_argument("--events", type=int, default=3000, help="demo events, first round")
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

    from event_assets.pubsub.emulator import PubSubEmulator

    with tempfile.TemporaryDirectory(prefix="screenshot-ui-") as tmp, PubSubEmulator() as emulator:
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
        os.environ.update(
            {
                "DAGSTER_HOME": str(home),
                "LAKE_URI": str(Path(tmp) / "lake"),
                "PUBSUB_EMULATOR_HOST": emulator.address,
            }
        )
        print(f"materializing into {home} (lake {os.environ['LAKE_URI']})")
        # A second, smaller round re-materializes the same days, so they show history.
        _materialize([args.events, max(args.events // 3, 1)])

        with Webserver(dict(os.environ), Path(tmp) / "webserver.log") as webserver:
            try:
                webserver.wait_until_loaded(START_TIMEOUT)
            except WebserverError as exc:
                print(f"screenshot_ui: webserver did not come up: {exc}", file=sys.stderr)
                return 1
            # What the UI's "Skip" does: without it a "Join the Dagster community" dialog
            # covers every page served on localhost (stored under the temp DAGSTER_HOME).
            webserver.graphql("mutation { setNuxSeen }")
            for name, page in PAGES.items():
                path = args.out / name
                _screenshot(webserver.url + page, path, args.budget_ms)
                print(f"{path} ({path.stat().st_size // 1024} KB) <- {webserver.url}{page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
