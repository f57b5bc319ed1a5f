"""Static checks of the Terraform under `infra/` (no terraform binary, no GCP).

Every `.tf` file must parse; the environment Cloud Run containers get must be names the app
(`event_assets.settings.Settings`) or the production instance (`deploy/dagster.yaml`) actually
reads; no project-level binding may grant admin/basic roles; each workload runs as its own
service account with only its own grants (`modules/iam`); the subscription's ack deadline
must match the app's default. There is one root module, `infra/live`, a thin caller of
`modules/stack` (the one composition of the modules), run once per environment with that
environment's `environments/<env>.tfvars` and `backend/<env>.gcs.backend`, which the deploy
workflow must pass as a matching pair; so the environments differ in those values only.
python-hcl2 keeps the quotes of string literals and block labels (`'"name"'`), hence
`_unquote`, and adds `__is_block__` / `__comments__` keys, hence `_arguments`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from event_assets.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
MODULES = INFRA / "modules"
# The one root module: every environment is it, run with that environment's var-file and
# backend config.
LIVE = INFRA / "live"
ENVS = ("dev", "prod")
# The root's variables that make the environment, set by environments/<env>.tfvars and by
# nothing else.
ENV_VARIABLES = {
    "environment",
    "sql_tier",
    "sql_availability_type",
    "sql_retained_backups",
    "webserver_min_instances",
}
# What each environment's tfvars must say: prod's Cloud SQL is HA and keeps a month of backups.
EXPECTED_ENV_VALUES: dict[str, dict[str, Any]] = {
    "dev": {"environment": "dev", "sql_availability_type": "ZONAL", "sql_retained_backups": 7},
    "prod": {
        "environment": "prod",
        "sql_availability_type": "REGIONAL",
        "sql_retained_backups": 30,
    },
}
# The backend prefixes the existing states live under (as before infra/live, when each env
# had its own root): changing one would make Terraform start from an empty state.
STATE_PREFIXES = {"dev": "event-assets/dev", "prod": "event-assets/prod"}
DEPLOY_WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"
STACK = "stack"
# Modules the stack composes (each called once from modules/stack/main.tf).
STACK_PARTS = (
    "network",
    "pubsub",
    "storage",
    "iam",
    "secrets",
    "artifact_registry",
    "cloud_sql",
    "cloud_run",
)
TF_FILES = sorted(INFRA.rglob("*.tf"))

# Names passed to the containers that are not Settings fields, each with who reads it.
NON_SETTINGS_ENV = {
    "DAGSTER_HOME": "Dagster's instance directory (the Dockerfile puts deploy/dagster.yaml there)",
    "DAGSTER_PG_URL": "Postgres URL of the Dagster instance, read by deploy/dagster.yaml",
    "GCP_REGION": "region of the run-worker job, read by deploy/dagster.yaml's run launcher",
    "DAGSTER_COMPUTE_LOGS_BUCKET": "compute log bucket, read by deploy/dagster.yaml",
    "LOGFIRE_SECRET_NAME": "Secret Manager name of the Logfire token (until it is a setting)",
}
# Settings the production app cannot run without (their defaults are local-only values).
REQUIRED_IN_PRODUCTION = {"LAKE_URI", "GCP_PROJECT_ID", "PUBSUB_TOPIC", "PUBSUB_SUBSCRIPTION"}
# Settings that must never be set in the cloud: an emulator, a key file, a plain-text token.
FORBIDDEN_IN_PRODUCTION = {"PUBSUB_EMULATOR_HOST", "GOOGLE_SERVICE_ACCOUNT", "LOGFIRE_TOKEN"}
FORBIDDEN_PROJECT_ROLES = {
    "roles/storage.admin",
    "roles/pubsub.admin",
    "roles/owner",
    "roles/editor",
}
PUBLIC_MEMBERS = {"allUsers", "allAuthenticatedUsers"}

# The three workloads: each runs as its own service account (modules/iam), keyed by these
# labels, on its own Cloud Run resource (modules/cloud_run).
WORKLOADS = ("webserver", "daemon", "run_worker")
CLOUD_RUN_RESOURCES = {
    "webserver": "google_cloud_run_v2_service.webserver",
    "daemon": "google_cloud_run_v2_worker_pool.daemon",
    "run_worker": "google_cloud_run_v2_job.run_worker",
}
OBJECT_ADMIN = "roles/storage.objectAdmin"
# Roles holding storage.objects.delete (which GCS also checks for an overwrite).
STORAGE_DELETE_ROLES = {
    "roles/storage.objectUser",
    OBJECT_ADMIN,
    "roles/storage.admin",
    "roles/storage.legacyBucketWriter",
    "roles/storage.legacyBucketOwner",
}
# What each workload's account is granted in modules/iam: {workload: {(on, role)}}.
EXPECTED_GRANTS = {
    "webserver": {
        ("lake bucket", "roles/storage.objectViewer"),
        ("compute-logs bucket", "roles/storage.objectViewer"),
        ("run-worker job", "roles/run.jobsExecutor"),  # cancel from the UI
    },
    "daemon": {
        ("ingest subscription", "roles/pubsub.subscriber"),
        ("lake bucket", "roles/storage.objectCreator"),
        ("lake bucket", "roles/storage.objectViewer"),
        ("compute-logs bucket", "roles/storage.objectUser"),
        ("run-worker job", "roles/run.jobsExecutorWithOverrides"),  # launch, cancel
        ("run-worker job", "roles/run.viewer"),  # run monitoring's get_execution
    },
    "run_worker": {
        ("lake bucket", "roles/storage.objectUser"),
        ("compute-logs bucket", "roles/storage.objectUser"),
    },
}
COMMON_GRANTS = {
    ("compute-logs bucket", "roles/storage.legacyBucketReader"),
    ("project", "roles/cloudsql.client"),
    ("project", "roles/logging.logWriter"),
}


def _load(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        parsed: dict[str, Any] = hcl2.load(handle)
    return parsed


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _blocks(parsed: dict[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, body) of every one-label block of `kind` (variable, output, module)."""
    for entry in parsed.get(kind, []):
        for label, body in entry.items():
            yield _unquote(label), body


def _resources(parsed: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(type, name, body) of every resource block."""
    for entry in parsed.get("resource", []):
        for rtype, named in entry.items():
            for name, body in named.items():
                yield _unquote(rtype), _unquote(name), body


def _all_resources() -> Iterator[tuple[Path, str, str, dict[str, Any]]]:
    for path in TF_FILES:
        for rtype, name, body in _resources(_load(path)):
            yield path, rtype, name, body


def _module(name: str) -> dict[str, Any]:
    """All blocks of one module's files, merged by block kind."""
    merged: dict[str, Any] = {}
    for path in sorted((MODULES / name).glob("*.tf")):
        for kind, value in _load(path).items():
            if isinstance(value, list):
                merged.setdefault(kind, []).extend(value)
    return merged


def _root() -> dict[str, Any]:
    """All blocks of the root module's files (infra/live), merged by block kind."""
    merged: dict[str, Any] = {}
    for path in sorted(LIVE.glob("*.tf")):
        for kind, value in _load(path).items():
            if isinstance(value, list):
                merged.setdefault(kind, []).extend(value)
    return merged


def _arguments(body: dict[str, Any]) -> dict[str, Any]:
    """A block body without python-hcl2's bookkeeping keys."""
    return {key: value for key, value in body.items() if not key.startswith("__")}


def _stack_call() -> dict[str, Any]:
    """Arguments of the root's single `module "stack"` block."""
    modules = dict(_blocks(_load(LIVE / "main.tf"), "module"))
    assert list(modules) == [STACK], f"live/main.tf must call only module {STACK!r}"
    return _arguments(modules[STACK])


def _tfvars(env: str) -> dict[str, Any]:
    """What environments/<env>.tfvars sets: name -> value (strings unquoted)."""
    parsed = hcl2.loads((LIVE / "environments" / f"{env}.tfvars").read_text())
    return {name: _unquote(value) for name, value in _arguments(parsed).items()}


def _variable_default(parsed: dict[str, Any], name: str) -> Any:
    variables = dict(_blocks(parsed, "variable"))
    assert name in variables, f"variable {name} is missing"
    return _unquote(variables[name].get("default"))


# --- 1. every file parses --------------------------------------------------------------


def test_infra_has_terraform() -> None:
    assert len(TF_FILES) > 20
    assert {p.name for p in MODULES.iterdir() if p.is_dir()} >= {STACK, *STACK_PARTS}


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_tf_file_parses(path: Path) -> None:
    assert isinstance(_load(path), dict)


def test_variables_typed_and_described_and_modules_have_outputs() -> None:
    for path in TF_FILES:
        for name, body in _blocks(_load(path), "variable"):
            where = f"{path.relative_to(INFRA)}: variable {name}"
            assert "type" in body, f"{where} has no type"
            assert _unquote(body.get("description", "")).strip(), f"{where} has no description"
        for name, body in _blocks(_load(path), "output"):
            assert _unquote(body.get("description", "")).strip(), f"{path}: output {name}"
    for module in (p for p in MODULES.iterdir() if p.is_dir()):
        assert list(_blocks(_module(module.name), "output")), f"module {module.name} has no output"


# --- 2. container environment ----------------------------------------------------------


def _containers(value: Any) -> Iterator[dict[str, Any]]:
    """Every `containers` block anywhere under a resource body."""
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "containers":
                yield from child
            else:
                yield from _containers(child)
    elif isinstance(value, list):
        for child in value:
            yield from _containers(child)


def _app_env_keys() -> set[str]:
    for entry in _module("cloud_run").get("locals", []):
        if "app_env" in entry:
            return set(entry["app_env"])
    raise AssertionError("modules/cloud_run has no local.app_env")


def _container_env() -> dict[str, dict[str, set[str]]]:
    """Per Cloud Run resource: plain env names and names taken from Secret Manager."""
    app_env = _app_env_keys()
    found: dict[str, dict[str, set[str]]] = {}
    for rtype, name, body in _resources(_module("cloud_run")):
        if not rtype.startswith("google_cloud_run_v2_") or rtype.endswith("_iam_member"):
            continue
        containers = list(_containers(body))
        assert len(containers) == 1, f"{rtype}.{name}: expected one container"
        container = containers[0]
        plain: set[str] = set()
        secret: set[str] = set()
        for env in container.get("env", []):
            target = secret if "value_source" in env else plain
            target.add(_unquote(env["name"]))
        for dynamic in container.get("dynamic", []):
            for label, block in dynamic.items():
                if _unquote(label) == "env":
                    assert block["for_each"] == "${local.app_env}", f"{rtype}.{name}"
                    plain |= app_env
        found[f"{rtype}.{name}"] = {"plain": plain, "secret": secret}
    return found


def _explicit_env(address: str) -> dict[str, Any]:
    """Plain env blocks written out in one Cloud Run resource's container: name -> value."""
    for rtype, name, body in _resources(_module("cloud_run")):
        if f"{rtype}.{name}" == address:
            (container,) = _containers(body)
            return {
                _unquote(env["name"]): _unquote(env.get("value"))
                for env in container.get("env", [])
                if "value_source" not in env
            }
    raise AssertionError(f"modules/cloud_run has no {address}")


def test_three_cloud_run_workloads_get_the_same_environment() -> None:
    """Same app_env and secret for all three; only the daemon's STORAGE_CAN_DELETE differs."""
    env = _container_env()
    assert set(env) == set(CLOUD_RUN_RESOURCES.values())
    app_env = _app_env_keys()
    for name, names in env.items():
        assert names["plain"] - {"STORAGE_CAN_DELETE"} == app_env, name
        assert names["secret"] == {"DAGSTER_PG_URL"}, f"{name}: the database URL is a secret"


def test_only_the_daemon_runs_without_storage_delete() -> None:
    """The daemon's account may not delete (or overwrite) lake objects, so its Delta commits
    must not checkpoint or expire logs: STORAGE_CAN_DELETE=false there, the default
    (true) for the webserver and the run worker, which does that upkeep."""
    assert Settings.model_fields["STORAGE_CAN_DELETE"].default is True
    assert "STORAGE_CAN_DELETE" not in _app_env_keys(), "must not reach every container"
    for workload, address in CLOUD_RUN_RESOURCES.items():
        value = _explicit_env(address).get("STORAGE_CAN_DELETE")
        expected = "false" if workload == "daemon" else None
        assert value == expected, f"{address}: STORAGE_CAN_DELETE = {value!r}"


def test_container_env_names_are_settings_or_explained() -> None:
    env = _container_env()
    names = set().union(*(n["plain"] | n["secret"] for n in env.values()))
    fields = set(Settings.model_fields)
    allowed = {name for name in NON_SETTINGS_ENV if name not in fields}
    unknown = names - fields - allowed
    assert not unknown, f"not Settings fields and not allow-listed: {sorted(unknown)}"
    assert REQUIRED_IN_PRODUCTION <= names, sorted(REQUIRED_IN_PRODUCTION - names)
    assert not names & FORBIDDEN_IN_PRODUCTION, sorted(names & FORBIDDEN_IN_PRODUCTION)
    assert "LOGFIRE_SECRET_NAME" in names


def test_containers_pass_what_the_production_instance_reads() -> None:
    instance_env = set(re.findall(r"env: (\w+)", (ROOT / "deploy" / "dagster.yaml").read_text()))
    for name, names in _container_env().items():
        missing = instance_env - names["plain"] - names["secret"]
        assert not missing, f"{name} lacks {sorted(missing)} (read by deploy/dagster.yaml)"


def test_dagster_home_matches_the_dockerfile() -> None:
    match = re.search(r"DAGSTER_HOME=(\S+)", (ROOT / "Dockerfile").read_text())
    assert match is not None
    assert _variable_default(_module("cloud_run"), "dagster_home") == match.group(1)


def test_run_worker_job_name_matches_the_run_launcher() -> None:
    text = (ROOT / "deploy" / "dagster.yaml").read_text()
    prefix = _variable_default(_module("cloud_run"), "name_prefix")
    assert _variable_default(_module(STACK), "name_prefix") == prefix
    # The job name is the stack's default prefix: no environment may pass another one.
    assert "name_prefix" not in _stack_call(), "live/main.tf overrides name_prefix"
    for env in ENVS:
        assert "name_prefix" not in _tfvars(env), f"environments/{env}.tfvars sets name_prefix"
    assert f"event_assets: {prefix}-run-worker" in text


def test_run_worker_job_leaves_command_to_the_launcher() -> None:
    for rtype, name, body in _resources(_module("cloud_run")):
        for container in _containers(body):
            assert "command" not in container, f"{rtype}.{name}: the image has no ENTRYPOINT"
            assert container.get("args"), f"{rtype}.{name}: args are the whole command"


# --- 3. no project-wide admin ------------------------------------------------------------


def test_no_admin_or_basic_roles_at_project_level() -> None:
    project_bindings = [
        (path, rtype, name, body)
        for path, rtype, name, body in _all_resources()
        if rtype.startswith("google_project_iam_")
    ]
    assert project_bindings, "expected the logWriter / cloudsql.client project bindings"
    for path, rtype, name, body in project_bindings:
        assert path.is_relative_to(MODULES), f"{path}: resources belong in modules/"
        role = _unquote(body.get("role", ""))
        assert role not in FORBIDDEN_PROJECT_ROLES, f"{path}: {rtype}.{name} grants {role}"
        assert "policy_data" not in body, f"{path}: {rtype}.{name} sets a whole policy"


def test_nothing_is_granted_to_the_public() -> None:
    for path, rtype, name, body in _all_resources():
        members = [body.get("member", ""), *body.get("members", [])]
        for member in map(_unquote, members):
            assert member not in PUBLIC_MEMBERS, f"{path}: {rtype}.{name} grants {member}"


# --- 3b. one service account per workload, each with only its grants ----------------------

# What a binding in modules/iam is on, by the variable naming that resource.
IAM_TARGETS = {
    "${var.lake_bucket_name}": "lake bucket",
    "${var.compute_logs_bucket_name}": "compute-logs bucket",
    "${var.subscription_name}": "ingest subscription",
    "${var.run_worker_job_name}": "run-worker job",
    "${var.webserver_service_name}": "webserver service",
    "${var.daemon_worker_pool_name}": "daemon worker pool",
}
TARGET_ARGUMENT = {
    "google_storage_bucket_iam_member": "bucket",
    "google_pubsub_subscription_iam_member": "subscription",
    "google_cloud_run_v2_job_iam_member": "name",
    "google_cloud_run_v2_service_iam_member": "name",
    "google_cloud_run_v2_worker_pool_iam_member": "name",
}


def _iam_locals() -> dict[str, Any]:
    return {
        key: value
        for entry in _module("iam").get("locals", [])
        for key, value in _arguments(entry).items()
    }


def _iam_target(address: str, rtype: str, body: dict[str, Any]) -> str:
    if rtype == "google_project_iam_member":
        return "project"
    if rtype == "google_service_account_iam_member":
        return f"service account {body['service_account_id']}"
    assert rtype in TARGET_ARGUMENT, f"{address}: unexpected binding type"
    target = body[TARGET_ARGUMENT[rtype]]
    assert target in IAM_TARGETS, f"{address}: on {target}, not a resource of this stack"
    return IAM_TARGETS[target]


def _iam_grantees(address: str, body: dict[str, Any]) -> set[str]:
    """Which accounts a binding is for: a workload, "deploy", or all three workloads."""
    member = body["member"]
    if member == "${each.value}":
        assert body.get("for_each") == "${local.workload_members}", f"{address}: for_each"
        return set(WORKLOADS)
    match = re.fullmatch(r"\$\{local\.(\w+)_member\}", member)
    assert match, f"{address}: member {member} is not one of the accounts' locals"
    return {match.group(1)}


def _iam_grants() -> dict[str, set[tuple[str, str]]]:
    """{account: {(on, role)}} of every binding in modules/iam."""
    grants: dict[str, set[tuple[str, str]]] = {name: set() for name in (*WORKLOADS, "deploy")}
    for rtype, name, body in _resources(_module("iam")):
        address = f"{rtype}.{name}"
        if rtype == "google_service_account":
            continue
        # Authoritative _iam_binding / _iam_policy resources would replace other members.
        assert rtype.endswith("_iam_member"), f"{address}: only additive _iam_member bindings"
        grant = (_iam_target(address, rtype, body), _unquote(body["role"]))
        for account in _iam_grantees(address, body):
            assert account in grants, f"{address}: unknown account {account}"
            assert grant not in grants[account], f"{address}: {grant} granted twice"
            grants[account].add(grant)
    return grants


def test_one_service_account_per_workload() -> None:
    iam = _module("iam")
    accounts = {
        name: _unquote(body["account_id"])
        for rtype, name, body in _resources(iam)
        if rtype == "google_service_account"
    }
    assert set(accounts) == {*WORKLOADS, "deploy"}
    assert len(set(accounts.values())) == len(accounts), f"account ids repeat: {accounts}"

    # Each workload's member is its own account's email.
    locals_ = _iam_locals()
    assert locals_["workload_accounts"] == {
        workload: f"${{google_service_account.{workload}}}" for workload in WORKLOADS
    }
    assert "local.workload_accounts" in locals_["workload_members"]
    assert '"serviceAccount:${account.email}"' in locals_["workload_members"]
    for workload in WORKLOADS:
        member = locals_[f"{workload}_member"]
        assert member == f'${{local.workload_members["{workload}"]}}', workload

    # Exported per workload, by modules/iam, the stack and the root; no shared account left.
    outputs = {name: body["value"] for name, body in _blocks(iam, "output")}
    for workload in WORKLOADS:
        email = f"{workload}_service_account_email"
        assert outputs[email] == f"${{google_service_account.{workload}.email}}", email
        assert outputs[f"{workload}_service_account_member"] == f"${{local.{workload}_member}}"
    for root in (_module(STACK), _root()):
        names = {name for name, _ in _blocks(root, "output")}
        assert {f"{w}_service_account_email" for w in WORKLOADS} <= names
        assert not {name for name in names if "runtime" in name}, sorted(names)


def test_each_workload_gets_only_its_grants() -> None:
    grants = _iam_grants()
    for workload in WORKLOADS:
        expected = EXPECTED_GRANTS[workload] | COMMON_GRANTS
        assert grants[workload] == expected, (
            f"{workload}: extra {sorted(grants[workload] - expected)}, "
            f"missing {sorted(expected - grants[workload])}"
        )
    # The Cloud SQL binding stays narrowed to the Dagster instance.
    (cloudsql,) = [
        body
        for rtype, _, body in _resources(_module("iam"))
        if _unquote(body.get("role")) == "roles/cloudsql.client"
    ]
    (condition,) = cloudsql["condition"]
    assert "instances/${var.sql_instance_name}" in condition["expression"]


def test_no_object_admin_anywhere() -> None:
    for path, rtype, name, body in _all_resources():
        roles = [body.get("role"), *body.get("roles", [])]
        assert OBJECT_ADMIN not in map(_unquote, roles), f"{path}: {rtype}.{name}"


def test_only_the_run_worker_may_delete_lake_objects() -> None:
    """Webserver and daemon get no role with storage.objects.delete on the lake (nor any
    storage role at project level, which would reach it); the run worker does."""
    grants = _iam_grants()
    for workload in ("webserver", "daemon"):
        lake_roles = {role for on, role in grants[workload] if on == "lake bucket"}
        assert lake_roles, f"{workload} has no lake access at all"
        assert not lake_roles & STORAGE_DELETE_ROLES, f"{workload} may delete: {lake_roles}"
    for workload in WORKLOADS:
        project_roles = {role for on, role in grants[workload] if on == "project"}
        storage = {role for role in project_roles if role.startswith("roles/storage.")}
        assert not storage, f"{workload}: project-level {storage}"
    assert ("lake bucket", "roles/storage.objectUser") in grants["run_worker"]
    # No bucket binding outside modules/iam could add one behind this test's back.
    for path, rtype, name, _ in _all_resources():
        if rtype.startswith("google_storage_bucket_iam_"):
            assert path.parent == MODULES / "iam", f"{path}: {rtype}.{name}"


def test_only_the_daemon_subscribes() -> None:
    grants = _iam_grants()
    pubsub = {
        account: {grant for grant in account_grants if grant[1].startswith("roles/pubsub.")}
        for account, account_grants in grants.items()
    }
    assert pubsub.pop("daemon") == {("ingest subscription", "roles/pubsub.subscriber")}
    assert not any(pubsub.values()), pubsub


def test_cloud_run_roles_fit_what_each_workload_calls() -> None:
    """The daemon launches with per-run args; the webserver only cancels (no overrides, so no
    Dagster run); a run launches nothing."""
    grants = _iam_grants()

    def run_roles(account: str) -> set[str]:
        return {role for _, role in grants[account] if role.startswith("roles/run.")}

    assert "roles/run.jobsExecutorWithOverrides" in run_roles("daemon")
    assert run_roles("webserver") == {"roles/run.jobsExecutor"}
    assert run_roles("run_worker") == set()


def test_each_cloud_run_resource_runs_as_its_own_account() -> None:
    def service_accounts(value: Any) -> Iterator[Any]:
        if isinstance(value, dict):
            for key, child in value.items():
                yield from [child] if key == "service_account" else service_accounts(child)
        elif isinstance(value, list):
            for child in value:
                yield from service_accounts(child)

    cloud_run = _module("cloud_run")
    resources = {f"{rtype}.{name}": body for rtype, name, body in _resources(cloud_run)}
    variables = dict(_blocks(cloud_run, "variable"))
    assert "service_account_email" not in variables, "one shared account variable is back"
    stack_modules = dict(_blocks(_module(STACK), "module"))
    cloud_run_call = _arguments(stack_modules["cloud_run"])
    for workload, address in CLOUD_RUN_RESOURCES.items():
        variable = f"{workload}_service_account_email"
        assert variable in variables, variable
        found = list(service_accounts(resources[address]))
        assert found == [f"${{var.{variable}}}"], f"{address} runs as {found}"
        assert cloud_run_call[variable] == f"${{module.iam.{variable}}}", variable

    # Both secrets are readable by the three accounts, keyed by static labels.
    accessors = _arguments(stack_modules["secrets"])["accessor_members"]
    assert accessors == {
        workload: f"${{module.iam.{workload}_service_account_member}}" for workload in WORKLOADS
    }


def test_deploy_acts_as_the_three_workload_accounts_only() -> None:
    grants = _iam_grants()
    acts_as = {grant for grant in grants["deploy"] if grant[0].startswith("service account")}
    assert acts_as == {("service account ${each.value.name}", "roles/iam.serviceAccountUser")}
    (binding,) = [
        body
        for rtype, _, body in _resources(_module("iam"))
        if rtype == "google_service_account_iam_member"
    ]
    assert binding["for_each"] == "${local.workload_accounts}"
    for workload in WORKLOADS:
        assert not {g for g in grants[workload] if g[0].startswith("service account")}, workload


# --- 4. Pub/Sub --------------------------------------------------------------------------


def test_ack_deadline_default_matches_settings() -> None:
    expected = Settings.model_fields["ACK_DEADLINE_SECONDS"].default
    assert _variable_default(_module("pubsub"), "ack_deadline_seconds") == expected
    assert _variable_default(_module(STACK), "ack_deadline_seconds") == expected
    passed = _stack_call().get("ack_deadline_seconds", expected)
    assert passed == expected, f"live/main.tf passes ack_deadline_seconds = {passed}"
    for env in ENVS:
        assert "ack_deadline_seconds" not in _tfvars(env), f"environments/{env}.tfvars"


def test_subscription_is_pull_with_dead_letter_and_backoff() -> None:
    subscriptions = {
        name: body
        for rtype, name, body in _resources(_module("pubsub"))
        if rtype == "google_pubsub_subscription"
    }
    ingest = subscriptions["ingest"]
    assert "push_config" not in ingest
    assert ingest["ack_deadline_seconds"] == "${var.ack_deadline_seconds}"
    assert ingest["dead_letter_policy"]
    assert ingest["retry_policy"]
    assert all("push_config" not in body for body in subscriptions.values())


# --- 5. environments: one root, configured per environment ----------------------------


def test_live_is_the_only_root_module() -> None:
    """No per-environment copy of the root can come back: every .tf outside modules/ is
    infra/live's own."""
    roots = {path.parent for path in TF_FILES if not path.is_relative_to(MODULES)}
    assert roots == {LIVE}, sorted(str(root.relative_to(INFRA)) for root in roots)
    assert (LIVE / "local.tfvars.example").is_file()


@pytest.mark.parametrize("env", ENVS)
def test_env_has_backend_config(env: str) -> None:
    backend = _load(LIVE / "backend.tf")["terraform"][0]["backend"][0]
    assert list(map(_unquote, backend)) == ["gcs"]
    config = hcl2.loads((LIVE / "backend" / f"{env}.gcs.backend").read_text())
    assert {"bucket", "prefix"} <= set(config)
    # Where the environment's existing state is: the prefix must not move with the root.
    assert _unquote(config["prefix"]) == STATE_PREFIXES[env], f"backend/{env}.gcs.backend"


@pytest.mark.parametrize("env", ENVS)
def test_env_tfvars_set_what_makes_the_environment(env: str) -> None:
    values = _tfvars(env)
    assert set(values) == ENV_VARIABLES, (
        f"environments/{env}.tfvars: extra {sorted(set(values) - ENV_VARIABLES)}, "
        f"missing {sorted(ENV_VARIABLES - set(values))}"
    )
    for name, expected in EXPECTED_ENV_VALUES[env].items():
        assert values[name] == expected, f"environments/{env}.tfvars: {name} = {values[name]!r}"
    assert str(values["sql_tier"]).startswith("db-"), values["sql_tier"]
    for name in ("sql_retained_backups", "webserver_min_instances"):
        assert isinstance(values[name], int), f"environments/{env}.tfvars: {name}"


def test_stack_composes_every_module_once() -> None:
    stack = _module(STACK)
    sources = {name: _unquote(body["source"]) for name, body in _blocks(stack, "module")}
    assert sources == {name: f"../{name}" for name in STACK_PARTS}
    assert "provider" not in stack, "the root configures the provider, not the stack"
    terraform = _arguments(_load(MODULES / STACK / "versions.tf")["terraform"][0])
    assert "required_providers" in terraform


def test_root_is_a_thin_caller_of_the_stack() -> None:
    """live = backend + provider + one `module "stack"` fed only by the root's variables."""
    root = _root()
    assert not root.get("resource"), "live: resources belong in modules/"
    assert not root.get("data"), "live: data sources belong in modules/"
    assert not root.get("locals"), "live: what makes an environment is its tfvars, not locals"
    call = _stack_call()
    assert _unquote(call.pop("source")) == f"../modules/{STACK}"

    stack = _module(STACK)
    stack_variables = dict(_blocks(stack, "variable"))
    required = {name for name, body in stack_variables.items() if "default" not in body}
    assert set(call) <= set(stack_variables), sorted(set(call) - set(stack_variables))
    assert required <= set(call), f"live does not pass {sorted(required - set(call))}"

    # Every root variable reaches the stack unchanged, under its own name; `labels` and
    # `environment` only feed the provider's default labels.
    root_variables = dict(_blocks(root, "variable"))
    passed = set(root_variables) - {"labels", "environment"}
    assert call == {name: f"${{var.{name}}}" for name in passed}, "live/main.tf: var.<name> only"
    for name, body in root_variables.items():
        if "default" in body and name in stack_variables:
            assert body["default"] == stack_variables[name].get("default"), name

    # Per deployment (TF_VAR_* / local tfvars): these must be given.
    assert {"project_id", "region", "image"} <= set(root_variables)
    for name in ("project_id", "region", "image"):
        assert "default" not in root_variables[name], f"live: {name} must be given"
    # Per environment (environments/<env>.tfvars): no default, so a plan without the
    # var-file fails instead of building a default environment.
    assert ENV_VARIABLES <= set(root_variables), sorted(ENV_VARIABLES - set(root_variables))
    for name in ENV_VARIABLES:
        assert "default" not in root_variables[name], f"live: {name} comes from the tfvars"

    # Outputs are re-exports of the stack's.
    stack_outputs = {name for name, _ in _blocks(stack, "output")}
    for name, body in _blocks(root, "output"):
        assert body["value"] == f"${{module.stack.{name}}}", f"live: output {name}"
        assert name in stack_outputs, f"live: output {name} is not a stack output"


def test_environment_variables_are_validated() -> None:
    variables = dict(_blocks(_root(), "variable"))
    expected_values = {
        "environment": {f'"{env}"' for env in ENVS},
        "sql_availability_type": {'"ZONAL"', '"REGIONAL"'},
    }
    for name in ENV_VARIABLES:
        validations = variables[name].get("validation", [])
        assert validations, f"live: variable {name} has no validation"
        conditions = " ".join(v["condition"] for v in validations)
        assert f"var.{name}" in conditions, f"live: {name}'s validation does not test it"
        for value in expected_values.get(name, set()):
            assert value in conditions, f"live: {name}'s validation does not admit {value}"


def test_provider_labels_name_the_environment() -> None:
    (provider,) = [body for name, body in _blocks(_root(), "provider") if name == "google"]
    labels = provider["default_labels"]
    assert re.search(r"\benvironment = var\.environment\b", labels), labels
    assert "var.labels" in labels, labels


TERRAFORM_COMMANDS = ("terraform init", "terraform plan", "terraform apply")


def _terraform_commands() -> Iterator[tuple[str, str, str | None, str]]:
    """(job, environment, working directory, command) of every `terraform init|plan|apply`
    line in deploy.yml, once per environment a job runs for (its matrix, else its GitHub
    environment), with `${{ matrix.environment }}` filled in."""
    jobs: dict[str, dict[str, Any]] = yaml.safe_load(DEPLOY_WORKFLOW.read_text())["jobs"]
    for job_name, job in jobs.items():
        default_dir = job.get("defaults", {}).get("run", {}).get("working-directory")
        matrix = job.get("strategy", {}).get("matrix", {}).get("environment")
        for env in matrix or [job.get("environment")]:
            for step in job.get("steps", []):
                run = str(step.get("run", "")).replace("${{ matrix.environment }}", str(env))
                for line in run.splitlines():
                    if line.strip().startswith(TERRAFORM_COMMANDS):
                        workdir = step.get("working-directory", default_dir)
                        yield job_name, str(env), workdir, line.strip()


def test_workflow_passes_each_environment_its_var_file_and_backend() -> None:
    """Every init names backend/<env>.gcs.backend and every plan environments/<env>.tfvars of
    the environment its job is for, both existing files of infra/live; applies take the plan."""
    assert "infra/envs" not in DEPLOY_WORKFLOW.read_text()
    commands = list(_terraform_commands())
    jobs = {job for job, _, _, _ in commands}
    assert jobs == {"terraform-plan", "release-dev", "release-prod"}, sorted(jobs)
    planned: list[str] = []
    applied: list[str] = []
    for job, env, workdir, command in commands:
        where = f"{job} ({env}): {command}"
        assert env in ENVS, where
        assert workdir == str(LIVE.relative_to(ROOT)), f"{where} runs in {workdir}"
        for other in set(ENVS) - {env}:
            assert f"backend/{other}." not in command, where
            assert f"environments/{other}." not in command, where
        if command.startswith("terraform init"):
            backend = f"backend/{env}.gcs.backend"
            assert f"-backend-config={backend}" in command, where
            assert (LIVE / backend).is_file(), where
        elif command.startswith("terraform plan"):
            var_file = f"environments/{env}.tfvars"
            assert f"-var-file={var_file}" in command, where
            assert (LIVE / var_file).is_file(), where
            planned.append(env)
        else:
            # A saved plan carries its variables; terraform refuses -var-file with one.
            assert "-var-file" not in command, where
            assert command.endswith(" tfplan"), where
            applied.append(env)
    # Each environment planned by the plan job and again by its release job, applied once.
    assert sorted(planned) == sorted([*ENVS, *ENVS]), planned
    assert sorted(applied) == sorted(ENVS), applied


def test_landing_lifecycle_deletes_merged_batches_only() -> None:
    """The age rule may only see `landing/_merged/`: a batch whose run keeps failing sits
    under `landing/_pending/` and must outlive any retention (it is acked data)."""
    from event_assets.storage.landing import MERGED_DIR, PENDING_DIR

    storage = _module("storage")
    (lake,) = [b for t, n, b in _resources(storage) if t == "google_storage_bucket" and n == "lake"]
    locals_ = {k: _unquote(v) for entry in storage.get("locals", []) for k, v in entry.items()}
    age_rules = [
        rule["condition"][0]
        for rule in lake["lifecycle_rule"]
        if "age" in rule["condition"][0] and rule["action"][0]["type"] in ('"Delete"', "Delete")
    ]
    assert len(age_rules) == 1
    (prefix,) = age_rules[0]["matches_prefix"]
    assert prefix == "${local.merged_prefix}"
    assert locals_["merged_prefix"] == "${var.lake_prefix}/landing/" + f"{MERGED_DIR}/"
    assert PENDING_DIR not in locals_["merged_prefix"]


def test_lake_bucket_keeps_deleted_objects_restorable() -> None:
    """Versioning and soft delete: no identity that can delete objects can destroy the lake
    for good within the retention."""
    storage = _module("storage")
    (lake,) = [b for t, n, b in _resources(storage) if t == "google_storage_bucket" and n == "lake"]
    assert lake["versioning"][0]["enabled"] is True
    (policy,) = lake["soft_delete_policy"]
    assert policy["retention_duration_seconds"] == "${var.soft_delete_retention_days * 86400}"
    assert _variable_default(storage, "soft_delete_retention_days") >= 7
