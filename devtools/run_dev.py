"""`make dev`: emulator + a steady trickle of demo events (and a few bad messages) + `dagster dev`.

The emulator and the trickle run in this process; `dagster dev` (webserver and
daemon) runs as a child with PUBSUB_EMULATOR_HOST pointing here and DAGSTER_HOME
at `.dagster_home` (our dagster.yaml, so the run queue limits apply). Partitions
of `events` fill within a minute of start; Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from devtools.demo import demo_bad_message, demo_messages
from event_assets.pubsub.client import ensure_topic_and_subscription, publish
from event_assets.settings import Settings, SettingsError, load_settings
from pubsub_emulator.emulator import PubSubEmulator

TRICKLE_EVENTS = int(os.environ.get("DEV_TRICKLE_EVENTS", "200"))
TRICKLE_SECONDS = float(os.environ.get("DEV_TRICKLE_SECONDS", "5"))
PORT = int(os.environ.get("DAGSTER_PORT", "3000"))


def trickle(
    settings: Settings,
    stop: threading.Event,
    *,
    events: int = TRICKLE_EVENTS,
    seconds: float = TRICKLE_SECONDS,
) -> None:
    """Publish `events` demo events and one bad message every `seconds` until stopped."""
    offset = 0
    while not stop.is_set():
        publish(settings, [*demo_messages(events, offset=offset), demo_bad_message(offset)])
        offset += events
        stop.wait(seconds)


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    home = Path(os.environ.get("DAGSTER_HOME", root / ".dagster_home")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "dagster.yaml", home / "dagster.yaml")
    stop = threading.Event()
    with PubSubEmulator(port=int(os.environ.get("EMULATOR_PORT", "8085"))) as emulator:
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.address
        os.environ["DAGSTER_HOME"] = str(home)
        try:
            ensure_topic_and_subscription(load_settings())
        except SettingsError as exc:
            print(f"dev: {exc}", file=sys.stderr)
            return 2
        threading.Thread(target=trickle, args=(load_settings(), stop), daemon=True).start()
        print(f"Pub/Sub emulator on {emulator.address}; Dagster UI on http://127.0.0.1:{PORT}")
        dagster = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster",
                "dev",
                "-w",
                str(root / "workspace.yaml"),
                "-p",
                str(PORT),
            ],
            # From DAGSTER_HOME, where our dagster.yaml is: run from the repository,
            # `dagster dev` warns that the dagster.yaml it sees there "will not be used".
            cwd=home,
            # `dagster dev` still works on our pin; its "use dg dev" notice is noise here.
            env={**os.environ, "PYTHONWARNINGS": "ignore::FutureWarning"},
        )
        signal.signal(signal.SIGTERM, lambda *_: dagster.send_signal(signal.SIGINT))
        try:
            return dagster.wait()
        except KeyboardInterrupt:
            dagster.send_signal(signal.SIGINT)
            return dagster.wait()
        finally:
            stop.set()


if __name__ == "__main__":
    sys.exit(main())
