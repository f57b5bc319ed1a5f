"""Static checks of the Terraform under `infra/` (no terraform binary, no GCP).

Every `.tf` file must parse; the environment Cloud Run containers get must be names the app
(`event_assets.settings.Settings`) or the production instance (`deploy/dagster.yaml`) actually
reads; no project-level binding may grant admin/basic roles; the subscription's ack deadline
must match the app's default; both environments need a backend config and are thin callers
of `modules/stack` (the one composition of the modules), so they cannot drift apart.
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

from event_assets.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
MODULES = INFRA / "modules"
ENVS = ("dev", "prod")
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


def _env(env: str) -> dict[str, Any]:
    """All blocks of one environment root's files, merged by block kind."""
    merged: dict[str, Any] = {}
    for path in sorted((INFRA / "envs" / env).glob("*.tf")):
        for kind, value in _load(path).items():
            if isinstance(value, list):
                merged.setdefault(kind, []).extend(value)
    return merged


def _arguments(body: dict[str, Any]) -> dict[str, Any]:
    """A block body without python-hcl2's bookkeeping keys."""
    return {key: value for key, value in body.items() if not key.startswith("__")}


def _stack_call(env: str) -> dict[str, Any]:
    """Arguments of the env root's single `module "stack"` block."""
    modules = dict(_blocks(_load(INFRA / "envs" / env / "main.tf"), "module"))
    assert list(modules) == [STACK], f"envs/{env}/main.tf must call only module {STACK!r}"
    return _arguments(modules[STACK])


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


def test_three_cloud_run_workloads_get_the_same_environment() -> None:
    env = _container_env()
    assert set(env) == {
        "google_cloud_run_v2_service.webserver",
        "google_cloud_run_v2_worker_pool.daemon",
        "google_cloud_run_v2_job.run_worker",
    }
    first = next(iter(env.values()))
    for name, names in env.items():
        assert names == first, name
        assert names["secret"] == {"DAGSTER_PG_URL"}, f"{name}: the database URL is a secret"


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
    for env in ENVS:
        # The job name is the stack's default prefix: no environment may pass another one.
        assert "name_prefix" not in _stack_call(env), f"envs/{env} overrides name_prefix"
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


# --- 4. Pub/Sub --------------------------------------------------------------------------


def test_ack_deadline_default_matches_settings() -> None:
    expected = Settings.model_fields["ACK_DEADLINE_SECONDS"].default
    assert _variable_default(_module("pubsub"), "ack_deadline_seconds") == expected
    assert _variable_default(_module(STACK), "ack_deadline_seconds") == expected
    for env in ENVS:
        passed = _stack_call(env).get("ack_deadline_seconds", expected)
        assert passed == expected, f"envs/{env} passes ack_deadline_seconds = {passed}"


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


# --- 5. environments ---------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_env_has_backend_config(env: str) -> None:
    env_dir = INFRA / "envs" / env
    backend = _load(env_dir / "backend.tf")["terraform"][0]["backend"][0]
    assert list(map(_unquote, backend)) == ["gcs"]
    config = hcl2.loads((env_dir / "backend" / f"{env}.gcs.backend").read_text())
    assert {"bucket", "prefix"} <= set(config)
    assert (env_dir / "terraform.tfvars.example").is_file()


def test_stack_composes_every_module_once() -> None:
    stack = _module(STACK)
    sources = {name: _unquote(body["source"]) for name, body in _blocks(stack, "module")}
    assert sources == {name: f"../{name}" for name in STACK_PARTS}
    assert "provider" not in stack, "the env roots configure the provider, not the stack"
    terraform = _arguments(_load(MODULES / STACK / "versions.tf")["terraform"][0])
    assert "required_providers" in terraform


@pytest.mark.parametrize("env", ENVS)
def test_env_is_a_thin_caller_of_the_stack(env: str) -> None:
    """envs/<env> = backend + provider + one `module "stack"` with that env's values."""
    root = _env(env)
    assert not root.get("resource"), f"envs/{env}: resources belong in modules/"
    assert not root.get("data"), f"envs/{env}: data sources belong in modules/"
    call = _stack_call(env)
    assert _unquote(call.pop("source")) == f"../../modules/{STACK}"

    stack = _module(STACK)
    stack_variables = dict(_blocks(stack, "variable"))
    required = {name for name, body in stack_variables.items() if "default" not in body}
    assert set(call) <= set(stack_variables), sorted(set(call) - set(stack_variables))
    assert required <= set(call), f"envs/{env} does not pass {sorted(required - set(call))}"

    # Every env variable is per deployment: it reaches the stack unchanged, with the stack's
    # default (so tfvars behave the same in both envs); `labels` only feeds the provider.
    env_variables = dict(_blocks(root, "variable"))
    assert {"project_id", "region", "image"} <= set(env_variables)
    for name, body in env_variables.items():
        if name == "labels":
            continue
        assert call.get(name) == f"${{var.{name}}}", f"envs/{env}: var.{name} not passed as is"
        if "default" in body:
            assert body["default"] == stack_variables[name].get("default"), name
    for name in ("project_id", "region", "image"):
        assert "default" not in env_variables[name], f"envs/{env}: {name} must be given"

    # What makes the environment: env.tf's locals, each passed to the stack.
    (env_locals,) = _load(INFRA / "envs" / env / "env.tf")["locals"]
    env_locals = _arguments(env_locals)
    assert _unquote(env_locals.pop("environment")) == env
    for name in env_locals:
        assert call.get(name) == f"${{local.{name}}}", f"envs/{env}: local.{name} not passed"

    # Outputs are re-exports of the stack's.
    stack_outputs = {name for name, _ in _blocks(stack, "output")}
    for name, body in _blocks(root, "output"):
        assert body["value"] == f"${{module.stack.{name}}}", f"envs/{env}: output {name}"
        assert name in stack_outputs, f"envs/{env}: output {name} is not a stack output"


def test_envs_export_and_configure_alike() -> None:
    """The env roots differ in values only: same variables, outputs, provider and backend."""
    dev, prod = (_env(env) for env in ENVS)
    for kind in ("variable", "output"):
        assert [n for n, _ in _blocks(dev, kind)] == [n for n, _ in _blocks(prod, kind)], kind
    assert set(_stack_call("dev")) == set(_stack_call("prod"))
    for name in ("versions.tf", "backend.tf"):
        dev_file, prod_file = (
            {k: v for k, v in _load(INFRA / "envs" / env / name).items() if k != "__comments__"}
            for env in ENVS
        )
        assert dev_file == prod_file, f"envs/dev/{name} and envs/prod/{name} differ"


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
