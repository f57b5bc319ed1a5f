"""The `event-assets` command as a user runs it: real processes, real emulator."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from deltalake import DeltaTable

from event_assets.ingest import lake_of
from event_assets.settings import Settings


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "event_assets.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_publish_file_then_ingest_once(settings: Settings, tmp_path: Path) -> None:
    lines = [
        json.dumps({"data": base64.b64encode(b'{"name": "John", "lastname": "Doe"}').decode()}),
        json.dumps(
            {"data": base64.b64encode(b'{"a": 1}').decode(), "attributes": {"event_type": "x"}}
        ),
        '{"raw": "line published as its bytes"}',
        "not json at all",
    ]
    messages = tmp_path / "messages.jsonl"
    messages.write_text("\n".join(lines) + "\n")
    published = _cli("publish", "--file", str(messages))
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["published"] == 4

    ingested = _cli("ingest", "--once")
    assert ingested.returncode == 0, ingested.stderr
    summary = json.loads(ingested.stdout)
    assert summary["pulled"] == 4
    assert (summary["inserted"], summary["duplicates"], summary["quarantined"]) == (3, 0, 1)
    table = DeltaTable(lake_of(settings).events_uri).to_pyarrow_table().to_pydict()
    seed_ids = [i for i, d in zip(table["event_id"], table["data"], strict=True) if "John" in d]
    # The seed's generate_unique_id of {"name": "John", "lastname": "Doe"}.
    assert seed_ids == [hashlib.sha256(b'{"lastname": "Doe", "name": "John"}').hexdigest()]


def test_publish_demo_is_deterministic(settings: Settings) -> None:
    first = _cli("publish", "--demo", "30")
    assert first.returncode == 0, first.stderr
    assert _cli("ingest", "--once").returncode == 0
    assert _cli("publish", "--demo", "30").returncode == 0
    again = json.loads(_cli("ingest", "--once").stdout)
    assert (again["inserted"], again["duplicates"]) == (0, 30)


def test_user_mistakes_are_one_line_and_exit_2(settings: Settings, tmp_path: Path) -> None:
    missing = _cli("publish", "--file", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0
    assert "cannot read" in missing.stderr

    bad_setting = _cli("ingest", "--once", env={"MAX_MESSAGE_BYTES": "zero"})
    assert bad_setting.returncode == 2
    assert bad_setting.stderr.strip() == (
        "event-assets: invalid setting MAX_MESSAGE_BYTES: "
        "Input should be a valid integer, unable to parse string as an integer"
    )


def test_unreachable_pubsub_is_one_line_and_exit_1(settings: Settings) -> None:
    down = _cli("ingest", "--once", env={"PUBSUB_EMULATOR_HOST": "127.0.0.1:9"})
    assert down.returncode == 1
    assert "Traceback" not in down.stderr
    assert down.stderr.startswith("event-assets: Pub/Sub pull on ")


def test_help_imports_no_dagster_and_nothing_a_command_loads_later() -> None:
    """Start-up: `--help` and a sub-command's help load argparse and little else."""
    heavy = ["dagster", "logfire", "opentelemetry", "pydantic", "grpc", "google", "pyarrow"]
    heavy += ["deltalake", "polars"]
    probe = (
        "import sys\n"
        "from event_assets import cli\n"
        "try:\n"
        "    cli.main(['publish', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(heavy)!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert "usage: event-assets publish" in done.stdout
    assert done.stdout.splitlines()[-1] == "[]"
