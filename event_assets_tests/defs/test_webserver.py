"""The real `dagster-webserver` serves our code location: what the UI shows is what we defined.

`test_definitions.py` checks the Definitions object in-process; this checks the path an
operator uses — workspace.yaml loaded by the webserver in its own process (with the code
server it spawns), queried over HTTP GraphQL like the UI does.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

WORKSPACE_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

ASSETS_QUERY = """
{
  assetNodes {
    assetKey { path }
    assetChecksOrError {
      __typename
      ... on AssetChecks { checks { name } }
    }
  }
}
"""

INSTIGATORS_QUERY = """
{
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        sensors { name }
        schedules { name cronSchedule }
      }
    }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Webserver:
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def graphql(self, query: str, timeout: float = 10.0) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
            f"{self.url}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = json.loads(response.read())
        assert "errors" not in body, body["errors"]
        return body["data"]


def _wait_until_loaded(server: Webserver) -> None:
    """Poll until the code location is LOADED; fail with the server log on error or timeout."""
    deadline = time.monotonic() + START_TIMEOUT
    last: object = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"webserver exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            workspace = server.graphql(WORKSPACE_QUERY, timeout=2.0)["workspaceOrError"]
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = exc
        else:
            last = workspace
            entries = workspace.get("locationEntries") or []
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [
                    e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"
                ]
                assert not errors, errors
                return
        time.sleep(0.2)  # poll interval, bounded by the deadline
    pytest.fail(f"webserver not ready after {START_TIMEOUT}s ({last!r}):\n{server.log_tail()}")


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webserver]:
    tmp = tmp_path_factory.mktemp("webserver")
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "LAKE_URI": str(tmp / "lake")}
    port = _free_port()
    log = tmp / "webserver.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster_webserver",
                "-w",
                "workspace.yaml",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Webserver(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_until_loaded(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


def test_webserver_lists_assets(webserver: Webserver) -> None:
    nodes = webserver.graphql(ASSETS_QUERY)["assetNodes"]
    assert sorted("/".join(n["assetKey"]["path"]) for n in nodes) == [
        "events",
        "events_compaction",
        "events_quarantine",
        "events_vacuum",
    ]


def test_webserver_lists_checks_of_events(webserver: Webserver) -> None:
    nodes = webserver.graphql(ASSETS_QUERY)["assetNodes"]
    checks: dict[str, list[str]] = {}
    for node in nodes:
        result = node["assetChecksOrError"]
        assert result["__typename"] == "AssetChecks", result
        checks["/".join(node["assetKey"]["path"])] = sorted(c["name"] for c in result["checks"])
    assert checks == {
        "events": [
            "cross_partition_duplicates",
            "event_id_unique",
            "events_freshness",
            "landing_reconciliation",
            "required_columns_non_null",
        ],
        "events_compaction": [],
        "events_quarantine": [],
        "events_vacuum": [],
    }


def test_webserver_lists_sensor_and_schedules(webserver: Webserver) -> None:
    repositories = webserver.graphql(INSTIGATORS_QUERY)["repositoriesOrError"]
    assert repositories["__typename"] == "RepositoryConnection", repositories
    (repo,) = repositories["nodes"]
    assert repo["location"]["name"] == "event_assets"
    assert [s["name"] for s in repo["sensors"]] == ["pubsub_events_sensor"]
    assert {s["name"]: s["cronSchedule"] for s in repo["schedules"]} == {
        "events_compaction_schedule": "5 * * * *",
        "events_vacuum_schedule": "30 3 * * *",
        "events_health_schedule": "*/15 * * * *",
    }
