"""Run `dagster-webserver` on our workspace and talk GraphQL to it, as the UI does.

Shared by the webserver test and the screenshot script: start it on a free port
with a given DAGSTER_HOME, wait (bounded) until the code location is LOADED, query,
stop. Failures carry the tail of the server's log.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT = 10.0

WORKSPACE_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
    ... on PythonError { message }
  }
}
"""


class WebserverError(RuntimeError):
    """The webserver exited, did not load the workspace in time, or answered an error."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Webserver:
    """A `dagster-webserver` child process serving workspace.yaml on 127.0.0.1."""

    def __init__(
        self,
        env: Mapping[str, str],
        log: Path,
        port: int | None = None,
        *,
        executable: Sequence[str] = (sys.executable, "-m", "dagster_webserver"),
        cwd: Path = ROOT,
    ) -> None:
        """`executable` and `cwd` default to this environment's webserver on the checkout;
        the rehearsal passes the image's `dagster-webserver` and app folder."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [*executable, "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)],
                cwd=cwd,
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def __enter__(self) -> Webserver:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def graphql(
        self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": dict(variables or {})}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = json.loads(response.read())
        if "errors" in body:
            raise WebserverError(f"GraphQL errors: {body['errors']}")
        data: dict[str, Any] = body["data"]
        return data

    def wait_until_loaded(self, timeout: float) -> None:
        """Poll until every code location is LOADED; raise with the log on error or timeout."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise WebserverError(
                    f"webserver exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                workspace = self.graphql(WORKSPACE_QUERY, timeout=2.0)["workspaceOrError"]
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                last = exc
            else:
                last = workspace
                entries = workspace.get("locationEntries") or []
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    errors = [
                        e
                        for e in entries
                        if e["locationOrLoadError"]["__typename"] == "PythonError"
                    ]
                    if errors:
                        raise WebserverError(f"code location failed to load: {errors}")
                    return
            time.sleep(0.2)  # poll interval, bounded by the deadline
        raise WebserverError(f"webserver not ready after {timeout}s ({last!r}):\n{self.log_tail()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)
