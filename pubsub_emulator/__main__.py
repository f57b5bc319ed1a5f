"""`python -m pubsub_emulator [--host H] [--port P]`: serve until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading

from pubsub_emulator.emulator import PubSubEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pubsub_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8085)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with PubSubEmulator(args.host, args.port) as emulator:
        print(f"Pub/Sub emulator listening on {emulator.address}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
