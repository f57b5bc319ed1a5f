"""What a data engineer sees in the Dagster UI, read through the webserver's GraphQL API:
the figures the screenshots show, for tests and for the screenshot script to assert."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devtools.webserver import Webserver, WebserverError

ASSETS_QUERY = """
query {
  assetNodes {
    assetKey { path }
    partitionStats { numMaterialized numPartitions numFailed numMaterializing }
    assetChecksOrError { __typename ... on AssetChecks { checks { name } } }
  }
}
"""
EXECUTIONS_QUERY = """
query ($key: AssetKeyInput!, $check: String!) {
  assetCheckExecutions(assetKey: $key, checkName: $check, limit: 1000) {
    status partition timestamp evaluation { description }
  }
}
"""
LAUNCH_MUTATION = """
mutation ($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
RUNS_QUERY = """
query ($statuses: [RunStatus!]) {
  runsOrError(filter: {statuses: $statuses}) { __typename ... on Runs { count } }
}
"""


@dataclass(frozen=True)
class PartitionStats:
    materialized: int
    partitions: int
    failed: int
    materializing: int


@dataclass
class UiState:
    """The latest execution of every check (per partition), partition health, the queue."""

    partitions: dict[str, PartitionStats] = field(default_factory=dict)
    # "asset:check[partition]" -> (status, description) of its latest execution
    latest_checks: dict[str, tuple[str, str]] = field(default_factory=dict)
    queued_runs: int = 0
    in_progress_runs: int = 0

    def checks_with(self, *statuses: str) -> dict[str, str]:
        return {k: d for k, (s, d) in self.latest_checks.items() if s in statuses}


def read_ui(webserver: Webserver) -> UiState:
    state = UiState()
    for node in webserver.graphql(ASSETS_QUERY)["assetNodes"]:
        path = node["assetKey"]["path"]
        name = "/".join(path)
        stats = node["partitionStats"]
        if stats is not None:
            state.partitions[name] = PartitionStats(
                stats["numMaterialized"],
                stats["numPartitions"],
                stats["numFailed"],
                stats["numMaterializing"],
            )
        checks = node["assetChecksOrError"]
        for check in checks.get("checks", []) if checks["__typename"] == "AssetChecks" else []:
            executions = webserver.graphql(
                EXECUTIONS_QUERY, {"key": {"path": path}, "check": check["name"]}
            )["assetCheckExecutions"]
            for execution in executions:  # newest first
                key = f"{name}:{check['name']}[{execution['partition'] or ''}]"
                evaluation = execution["evaluation"] or {}
                state.latest_checks.setdefault(
                    key, (execution["status"], evaluation.get("description") or "")
                )
    for statuses, attribute in (
        (["QUEUED"], "queued_runs"),
        (["STARTING", "STARTED"], "in_progress_runs"),
    ):
        runs = webserver.graphql(RUNS_QUERY, {"statuses": statuses})["runsOrError"]
        setattr(state, attribute, int(runs["count"]))
    return state


def asset_checks(webserver: Webserver, asset: str) -> list[str]:
    """The checks an asset's page lists: what its Materialize button selects with it."""
    nodes = webserver.graphql(ASSETS_QUERY)["assetNodes"]
    (node,) = [n for n in nodes if n["assetKey"]["path"] == [asset]]
    return sorted(c["name"] for c in node["assetChecksOrError"]["checks"])


def materialize_like_the_ui(webserver: Webserver, asset: str, partition: str | None) -> str:
    """What *Assets -> <asset> -> Materialize* sends: the hidden asset job, the asset and
    every check its page lists, the partition tag, no run config. Returns the run id."""
    tags = [{"key": "dagster/partition", "value": partition}] if partition else []
    return _launch(
        webserver,
        {
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [{"path": [asset]}],
            "assetCheckSelection": [
                {"assetKey": {"path": [asset]}, "name": name}
                for name in asset_checks(webserver, asset)
            ],
        },
        tags,
    )


def launch_job(webserver: Webserver, job: str) -> str:
    """*Jobs -> <job> -> Launch run* with its default config. Returns the run id."""
    return _launch(webserver, {"pipelineName": job}, [])


def _launch(webserver: Webserver, selector: dict[str, Any], tags: list[dict[str, str]]) -> str:
    params = {
        "selector": {
            "repositoryLocationName": "event_assets",
            "repositoryName": "__repository__",
            **selector,
        },
        "mode": "default",
        "executionMetadata": {"tags": tags},
    }
    result = webserver.graphql(LAUNCH_MUTATION, {"params": params})["launchPipelineExecution"]
    if result["__typename"] != "LaunchRunSuccess":
        raise WebserverError(f"launch failed: {result}")
    return str(result["run"]["runId"])
