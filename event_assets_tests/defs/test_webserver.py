"""The real `dagster-webserver` serves our code location: what the UI shows is what we defined.

`test_definitions.py` checks the Definitions object in-process; this checks the path an
operator uses — workspace.yaml loaded by the webserver in its own process (with the code
server it spawns), queried over HTTP GraphQL like the UI does.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from devtools.webserver import ROOT, Webserver, WebserverError

START_TIMEOUT = 30.0

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


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webserver]:
    tmp = tmp_path_factory.mktemp("webserver")
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "LAKE_URI": str(tmp / "lake")}
    with Webserver(env, tmp / "webserver.log") as server:
        try:
            server.wait_until_loaded(START_TIMEOUT)
        except WebserverError as exc:
            pytest.fail(str(exc))
        yield server


def test_webserver_lists_assets(webserver: Webserver) -> None:
    nodes = webserver.graphql(ASSETS_QUERY)["assetNodes"]
    assert sorted("/".join(n["assetKey"]["path"]) for n in nodes) == [
        "events",
        "events_audit",
        "events_compaction",
        "events_quarantine",
        "events_vacuum",
        "order_created_v1",
        "person_v1",
        "pubsub_subscription",
    ]


def test_webserver_lists_checks_of_events(webserver: Webserver) -> None:
    nodes = webserver.graphql(ASSETS_QUERY)["assetNodes"]
    checks: dict[str, list[str]] = {}
    for node in nodes:
        result = node["assetChecksOrError"]
        assert result["__typename"] == "AssetChecks", result
        checks["/".join(node["assetKey"]["path"])] = sorted(c["name"] for c in result["checks"])
    assert checks == {
        # Only per-day checks on `events`: the UI runs them all with a day's materialization.
        "events": [
            "cross_partition_duplicates",
            "event_id_unique",
            "landing_reconciliation",
            "required_columns_non_null",
        ],
        "events_audit": ["accounting", "events_freshness", "recent_days_audit"],
        "events_compaction": [],
        "events_quarantine": [],
        "events_vacuum": [],
        "order_created_v1": ["events_reconciliation", "violation_rate"],
        "person_v1": ["events_reconciliation", "violation_rate"],
        "pubsub_subscription": [],
    }


def test_webserver_lists_sensor_and_schedules(webserver: Webserver) -> None:
    repositories = webserver.graphql(INSTIGATORS_QUERY)["repositoriesOrError"]
    assert repositories["__typename"] == "RepositoryConnection", repositories
    (repo,) = repositories["nodes"]
    assert repo["location"]["name"] == "event_assets"
    assert sorted(s["name"] for s in repo["sensors"]) == [
        "contracts_automation_sensor",
        "pubsub_events_sensor",
    ]
    assert {s["name"]: s["cronSchedule"] for s in repo["schedules"]} == {
        "events_compaction_schedule": "5 * * * *",
        "events_vacuum_schedule": "30 3 * * *",
        "events_health_schedule": "*/15 * * * *",
    }
