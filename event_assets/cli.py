"""`event-assets`: run the emulator, publish events, ingest them, replay and redrive.

Each sub-command only calls the domain functions the Dagster layer uses too. A
user's mistake (bad setting, missing file, unreachable Pub/Sub) ends with one
line on stderr and a non-zero exit, never a stack trace.

Everything past argparse is imported by the sub-command that needs it (settings
with pydantic, the Pub/Sub client, Arrow, Delta Lake, Logfire), so `--help` and
a mistyped command answer at once; Dagster is never imported.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import importlib
import json
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from event_assets.settings import Settings

EXIT_USAGE = 2


class UsageError(Exception):
    """A mistake in the command line or its input; printed as one line."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="event-assets", description="Land Pub/Sub CloudEvents in a deduplicated Delta table."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    emu = sub.add_parser("emulator", help="run the local Pub/Sub emulator in the foreground")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=8085)

    pub = sub.add_parser("publish", help="publish messages to PUBSUB_TOPIC")
    group = pub.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--file",
        type=Path,
        help='JSON lines {"data": "<base64>", "attributes": {...}}; other lines go as raw bytes',
    )
    group.add_argument("--demo", type=int, metavar="N", help="publish N realistic demo events")

    ing = sub.add_parser("ingest", help="pull -> decode -> land -> ack -> dedup-write")
    ing.add_argument("--once", action="store_true", help="drain the subscription, then exit")

    quarantine = sub.add_parser("quarantine", help="work on the quarantine (dead-letter) table")
    actions = quarantine.add_subparsers(dest="action", required=True)
    replay = actions.add_parser(
        "replay",
        help="re-decode quarantined messages (after a fix), land and merge those that now "
        "decode, and remove them from the quarantine; idempotent",
    )
    replay.add_argument(
        "--reason",
        action="append",
        default=[],
        metavar="CODE",
        help="only this reason code (repeatable), e.g. event_date_out_of_range",
    )
    replay.add_argument(
        "--since", metavar="TIME", help="only rows quarantined at or after this RFC 3339 time"
    )

    dlq = sub.add_parser("dlq", help="work on the dead-letter subscription")
    dlq_actions = dlq.add_subparsers(dest="action", required=True)
    redrive = dlq_actions.add_parser(
        "redrive",
        help="publish dead-lettered messages back to PUBSUB_TOPIC, then ack them there",
    )
    redrive.add_argument(
        "--subscription",
        metavar="NAME",
        help="dead-letter subscription (default: PUBSUB_SUBSCRIPTION-dead-letter, as Terraform "
        "names it)",
    )
    redrive.add_argument("--limit", type=int, metavar="N", help="move at most N messages")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from event_assets.settings import SettingsError, load_settings

    try:
        settings = load_settings()
        if args.command == "emulator":
            return _emulator(settings, args.host, args.port)
        if args.command == "publish":
            return _publish(settings, args.file, args.demo)
        if args.command == "quarantine":
            return _replay(settings, args.reason, args.since)
        if args.command == "dlq":
            return _redrive(settings, args.subscription, args.limit)
        return _ingest(settings, once=args.once)
    except (SettingsError, UsageError) as exc:
        print(f"event-assets: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from event_assets.observability import SecretAccessError
        from event_assets.pubsub.client import PubSubUnavailableError

        if isinstance(exc, PubSubUnavailableError | SecretAccessError | OSError):
            print(f"event-assets: {exc}", file=sys.stderr)
            return 1
        raise


def _dev_tool(module: str, what: str) -> Any:
    """Import a dev-tooling module (`pubsub_emulator`, `devtools`: in a checkout's dev
    install, not in the image), or say where `what` is available."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(
            f"{what} is dev tooling, not installed here (the image holds the product "
            "only): run it from a checkout (uv sync; see README's quick start)"
        ) from None


def _emulator(settings: Settings, host: str, port: int) -> int:
    from event_assets.pubsub.client import ensure_topic_and_subscription

    PubSubEmulator = _dev_tool("pubsub_emulator", "the emulator").PubSubEmulator  # noqa: N806

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with PubSubEmulator(host, port) as emulator:
        local = settings.model_copy(update={"PUBSUB_EMULATOR_HOST": emulator.address})
        ensure_topic_and_subscription(local)
        print(
            f"Pub/Sub emulator listening on {emulator.address} "
            f"(topic {local.topic_path}, subscription {local.subscription_path}); "
            f"export PUBSUB_EMULATOR_HOST={emulator.address}",
            flush=True,
        )
        stop.wait()
    return 0


def _file_messages(path: Path) -> Iterator[tuple[bytes, dict[str, str]]]:
    """Pub/Sub REST-form lines; a line that is not one is published as its raw bytes."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            message = _rest_form(line)
            if message is None:
                yield line, {}
                continue
            data, attributes = message
            if not data and not attributes:
                raise UsageError(f"{path}:{number}: a message needs data or attributes")
            yield data, attributes


def _rest_form(line: bytes) -> tuple[bytes, dict[str, str]] | None:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or not obj or set(obj) - {"data", "attributes", "orderingKey"}:
        return None
    attributes = obj.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        return None
    try:
        data = base64.b64decode(obj.get("data", ""), validate=True)
    except (binascii.Error, TypeError, ValueError):
        return None
    return data, attributes


def _publish(settings: Settings, file: Path | None, demo: int | None) -> int:
    from event_assets.pubsub.client import ensure_topic_and_subscription, publish

    if demo is not None and demo < 0:
        raise UsageError("--demo needs a count >= 0")
    if file:
        messages = list(_file_messages(file))
    else:
        messages = list(_dev_tool("devtools.demo", "--demo").demo_messages(demo or 0))
    if settings.PUBSUB_EMULATOR_HOST:
        ensure_topic_and_subscription(settings)
    ids = publish(settings, messages)
    print(json.dumps({"published": len(ids), "topic": settings.topic_path}))
    return 0


def _ingest(settings: Settings, *, once: bool) -> int:
    from event_assets.ingest import ingest, lake_of
    from event_assets.observability import configure_observability

    configure_observability(settings)

    stop = threading.Event()
    if not once:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    summary = ingest(
        settings,
        once=once,
        stop=stop,
        on_round=None
        if once
        else lambda s: print(f"event-assets: {json.dumps(asdict(s))}", file=sys.stderr),
    )
    print(json.dumps({**asdict(summary), "table": lake_of(settings).events_uri}))
    return 0


def _replay(settings: Settings, reasons: list[str], since: str | None) -> int:
    from event_assets.events.models import ReasonCode
    from event_assets.events.timestamps import parse_rfc3339
    from event_assets.replay import replay_quarantine

    known = {code.value for code in ReasonCode}
    unknown = sorted(set(reasons) - known)
    if unknown:
        raise UsageError(
            f"unknown reason code {', '.join(unknown)}; one of: {', '.join(sorted(known))}"
        )
    start = None
    if since is not None:
        try:
            start = parse_rfc3339(since)
        except ValueError:
            raise UsageError(
                f"--since {since!r} is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)"
            ) from None
    result = replay_quarantine(settings, reasons=tuple(reasons), since=start)
    print(json.dumps(result.summary()))
    return 0


def _redrive(settings: Settings, subscription: str | None, limit: int | None) -> int:
    from event_assets.replay import redrive_dead_letters

    if limit is not None and limit < 1:
        raise UsageError("--limit needs a count >= 1")
    result = redrive_dead_letters(settings, subscription=subscription, limit=limit)
    print(json.dumps(result.summary()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
