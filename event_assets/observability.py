"""Logfire for spans and metrics, with its token from Secret Manager.

The token is looked up once at start-up: from Secret Manager when
`LOGFIRE_SECRET_NAME` is set (production), else `LOGFIRE_TOKEN`, else none, and
then Logfire stays local and sends nothing. The token only ever lives in a
`SecretStr` and in Logfire's exporter; errors name the secret, never its value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import logfire
from google.api_core import exceptions as gexc
from pydantic import SecretStr

from event_assets.settings import Settings

SERVICE_NAME = "event-assets"


class SecretAccessError(RuntimeError):
    """The Logfire token could not be read from Secret Manager; the message says why."""


class _SecretClient(Protocol):
    def access_secret_version(self, request: dict[str, str]) -> Any: ...


def _default_secret_client() -> _SecretClient:
    from google.cloud import secretmanager

    return secretmanager.SecretManagerServiceClient()


def secret_version_path(settings: Settings, name: str) -> str:
    """A bare secret name means the latest version in GCP_PROJECT_ID."""
    if name.startswith("projects/"):
        return name if "/versions/" in name else f"{name}/versions/latest"
    return f"projects/{settings.GCP_PROJECT_ID}/secrets/{name}/versions/latest"


def resolve_logfire_token(
    settings: Settings, secret_client: Callable[[], _SecretClient] = _default_secret_client
) -> SecretStr | None:
    """Secret Manager if LOGFIRE_SECRET_NAME is set, else LOGFIRE_TOKEN, else None."""
    if not settings.LOGFIRE_SECRET_NAME:
        return settings.LOGFIRE_TOKEN
    path = secret_version_path(settings, settings.LOGFIRE_SECRET_NAME)
    try:
        response = secret_client().access_secret_version(request={"name": path})
    except gexc.GoogleAPICallError as exc:
        raise SecretAccessError(
            f"cannot read the Logfire token from Secret Manager ({path}): "
            f"{type(exc).__name__} {exc.code}"
        ) from None
    token = bytes(response.payload.data).decode("utf-8").strip()
    if not token:
        raise SecretAccessError(f"the Logfire token secret {path} is empty")
    return SecretStr(token)


def configure_observability(
    settings: Settings, secret_client: Callable[[], _SecretClient] = _default_secret_client
) -> bool:
    """Configure Logfire for this process; returns whether data is sent anywhere."""
    token = resolve_logfire_token(settings, secret_client)
    logfire.configure(
        token=token.get_secret_value() if token else None,
        send_to_logfire=token is not None,
        service_name=SERVICE_NAME,
        console=False,
        inspect_arguments=False,
    )
    return token is not None


_pulled = logfire.metric_counter("event_assets.pulled", unit="1", description="messages pulled")
_landed = logfire.metric_counter("event_assets.landed", unit="1", description="events landed")
_quarantined = logfire.metric_counter(
    "event_assets.quarantined", unit="1", description="messages quarantined"
)
_inserted = logfire.metric_counter("event_assets.inserted", unit="1", description="rows inserted")
_duplicates = logfire.metric_counter(
    "event_assets.duplicates", unit="1", description="duplicate rows skipped"
)
_seconds = logfire.metric_histogram("event_assets.seconds", unit="s", description="step duration")


def record_pull(pulled: int, landed: int, quarantined: int, seconds: float) -> None:
    _pulled.add(pulled)
    _landed.add(landed)
    _quarantined.add(quarantined)
    _seconds.record(seconds, {"step": "pull_round"})


def record_merge(partition: str, inserted: int, duplicates: int, seconds: float) -> None:
    _inserted.add(inserted, {"partition": partition})
    _duplicates.add(duplicates, {"partition": partition})
    _seconds.record(seconds, {"step": "merge_partition"})
