"""Logfire token from Secret Manager (client replaced at the client level), never leaked."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import logfire
import pytest
from google.api_core import exceptions as gexc

from event_assets.ingest import ingest
from event_assets.observability import (
    SecretAccessError,
    configure_observability,
    logfire_span,
    resolve_logfire_token,
)
from event_assets.pubsub.client import publish
from event_assets.settings import Settings, load_settings

TOKEN = "pylf_v1_test_TOKEN_must_never_be_printed_0123456789"


@dataclass
class _Payload:
    data: bytes


@dataclass
class _Response:
    payload: _Payload


@dataclass
class FakeSecretManager:
    """Stands in for SecretManagerServiceClient: records requests, returns one secret."""

    secrets: dict[str, bytes]
    requests: list[dict[str, str]] = field(default_factory=list)

    def __call__(self) -> FakeSecretManager:
        return self

    def access_secret_version(self, request: dict[str, str]) -> _Response:
        self.requests.append(request)
        if request["name"] not in self.secrets:
            raise gexc.NotFound(f"Secret [{request['name']}] not found")  # type: ignore[no-untyped-call]
        return _Response(_Payload(self.secrets[request["name"]]))


PATH = "projects/p1/secrets/logfire-token/versions/latest"


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in ("LOGFIRE_SECRET_NAME", "LOGFIRE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GCP_PROJECT_ID", "p1")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def test_token_comes_from_secret_manager_when_a_secret_name_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = FakeSecretManager({PATH: TOKEN.encode() + b"\n"})
    settings = _settings(monkeypatch, LOGFIRE_SECRET_NAME="logfire-token", LOGFIRE_TOKEN="other")
    token = resolve_logfire_token(settings, client)
    assert token is not None
    assert token.get_secret_value() == TOKEN
    assert client.requests == [{"name": PATH}]
    assert TOKEN not in repr(token)
    assert TOKEN not in str(token)


def test_token_falls_back_to_env_then_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    client = FakeSecretManager({})
    settings = _settings(monkeypatch, LOGFIRE_TOKEN=TOKEN)
    token = resolve_logfire_token(settings, client)
    assert token is not None
    assert token.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings)
    assert resolve_logfire_token(_settings(monkeypatch), client) is None
    assert client.requests == []


def test_unreadable_secret_is_a_clear_error_without_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _settings(monkeypatch, LOGFIRE_SECRET_NAME="missing")
    with pytest.raises(SecretAccessError) as info:
        resolve_logfire_token(settings, FakeSecretManager({PATH: TOKEN.encode()}))
    assert "projects/p1/secrets/missing/versions/latest" in str(info.value)
    assert "NotFound" in str(info.value)
    with pytest.raises(SecretAccessError, match="is empty"):
        resolve_logfire_token(
            _settings(monkeypatch, LOGFIRE_SECRET_NAME="logfire-token"),
            FakeSecretManager({PATH: b""}),
        )


@pytest.mark.parametrize(
    "secrets",
    [{}, {PATH: b""}, {PATH: b"  \n"}],
    ids=["no secret or no version yet", "empty", "blank"],
)
def test_an_unreadable_secret_degrades_to_local_logging_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, secrets: dict[str, bytes]
) -> None:
    """The first deploy creates the secret before anyone adds a version: the code
    location must load all the same, and say why nothing reaches Logfire."""
    settings = _settings(monkeypatch, LOGFIRE_SECRET_NAME="logfire-token")
    with caplog.at_level(logging.WARNING):
        assert configure_observability(settings, FakeSecretManager(secrets)) is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Logfire disabled" in warnings[0].getMessage()
    assert PATH in warnings[0].getMessage()


def test_no_credentials_for_secret_manager_degrades_too(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from google.auth.exceptions import DefaultCredentialsError

    def no_client() -> FakeSecretManager:
        raise DefaultCredentialsError("no credentials here")  # type: ignore[no-untyped-call]

    settings = _settings(monkeypatch, LOGFIRE_SECRET_NAME="logfire-token")
    with caplog.at_level(logging.WARNING):
        assert configure_observability(settings, no_client) is False
    assert "DefaultCredentialsError" in caplog.text


def test_configured_token_reaches_logfire_and_never_the_logs(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    configured: dict[str, Any] = {}
    real_configure = logfire.configure

    def capture(**kwargs: Any) -> Any:
        configured.update(kwargs)
        # Logfire's backend is not reachable here: keep the real SDK, send nothing.
        return real_configure(**{**kwargs, "token": None, "send_to_logfire": False})

    monkeypatch.setattr(logfire, "configure", capture)
    monkeypatch.setenv("LOGFIRE_SECRET_NAME", "projects/p1/secrets/logfire-token")
    settings = load_settings()
    caplog.set_level(logging.DEBUG)
    client = FakeSecretManager({PATH: TOKEN.encode()})
    assert configure_observability(settings, client) is True
    assert configured["token"] == TOKEN
    assert configured["send_to_logfire"] is True

    publish(settings, [(b'{"a": 1}', {}), (b"not json", {})])
    summary = ingest(settings, once=True)
    assert summary.inserted == 1
    out, err = capsys.readouterr()
    assert TOKEN not in out + err
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(settings)


def test_without_a_token_logfire_is_configured_local_at_the_first_span(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configured: list[dict[str, Any]] = []
    monkeypatch.setattr(logfire, "configure", lambda **kwargs: configured.append(kwargs))
    assert configure_observability(_settings(monkeypatch)) is False
    assert configured == []
    with logfire_span("first {n}", n=1):
        pass
    with logfire_span("second {n}", n=2):
        pass
    assert len(configured) == 1
    assert configured[0]["token"] is None
    assert configured[0]["send_to_logfire"] is False
    assert configured[0]["service_name"] == "event-assets"


def test_production_instance_sends_dagster_logs_to_logfire(monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/dagster.yaml attaches Logfire's handler to Dagster's log manager."""
    from pathlib import Path

    import dagster as dg
    import yaml

    config = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml").read_text()
    )
    with dg.instance_for_test(overrides={"python_logs": config["python_logs"]}) as instance:
        handlers = instance.get_handlers()
    assert any(isinstance(h, logfire.LogfireLoggingHandler) for h in handlers)
