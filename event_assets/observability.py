"""Logfire for spans and metrics, with its token from Secret Manager.

The token is looked up once at start-up: from Secret Manager when
`LOGFIRE_SECRET_NAME` is set (production), else `LOGFIRE_TOKEN`, else none, and
then Logfire stays local and sends nothing. A secret that cannot be read (missing,
no version yet, empty, no permission, no credentials) degrades to that too, with one
warning: observability never keeps the code location from loading. The token only
ever lives in a `SecretStr` and in Logfire's exporter; errors name the secret, never
its value.

Logfire (with OpenTelemetry, ~0.6 s of imports) is imported when there is a token
to send with, else at the first span or metric. (Installed, it is also a pydantic
plugin, which pydantic imports with its first model unless
`PYDANTIC_DISABLE_PLUGINS=logfire-plugin`; Dagster's own import defines models.)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import SecretStr

from event_assets.settings import Settings

if TYPE_CHECKING:
    from logfire import Logfire, LogfireSpan
    from opentelemetry.metrics import Counter, Histogram

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
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    path = secret_version_path(settings, settings.LOGFIRE_SECRET_NAME)
    try:
        response = secret_client().access_secret_version(request={"name": path})
    except (gexc.GoogleAPICallError, gexc.RetryError, auth_exc.GoogleAuthError) as exc:
        raise SecretAccessError(
            f"cannot read the Logfire token from Secret Manager ({path}): "
            f"{type(exc).__name__} {getattr(exc, 'code', '') or ''}".rstrip()
        ) from None
    token = bytes(response.payload.data).decode("utf-8").strip()
    if not token:
        raise SecretAccessError(f"the Logfire token secret {path} is empty")
    return SecretStr(token)


_LOCK = threading.Lock()
# logfire.configure() arguments of a process that sends nothing, applied at first use.
_deferred: dict[str, Any] | None = None


def configure_observability(
    settings: Settings, secret_client: Callable[[], _SecretClient] = _default_secret_client
) -> bool:
    """Configure Logfire for this process; returns whether data is sent anywhere.

    Without a token nothing is sent, so configuring waits for the first span or
    metric (see `_logfire`) and Logfire is not imported until then.
    """
    global _deferred
    try:
        token = resolve_logfire_token(settings, secret_client)
    except SecretAccessError as exc:
        logging.getLogger(__name__).warning("Logfire disabled, logging locally only: %s", exc)
        token = None
    options: dict[str, Any] = {
        "token": token.get_secret_value() if token else None,
        "send_to_logfire": token is not None,
        "service_name": SERVICE_NAME,
        "console": False,
        "inspect_arguments": False,
    }
    with _LOCK:
        _deferred = None if token else options
    if token:
        import logfire

        logfire.configure(**options)
    return token is not None


def _logfire() -> Logfire:
    """Logfire, configured first if `configure_observability` deferred it."""
    global _deferred
    import logfire

    if _deferred is not None:
        with _LOCK:
            if _deferred is not None:
                logfire.configure(**_deferred)
                _deferred = None
    return logfire.DEFAULT_LOGFIRE_INSTANCE


def logfire_span(msg_template: str, /, **attributes: Any) -> LogfireSpan:
    """`logfire.span`; Logfire is imported at the first span."""
    return _logfire().span(msg_template, **attributes)


@cache
def _counter(name: str, description: str) -> Counter:
    return _logfire().metric_counter(f"event_assets.{name}", unit="1", description=description)


@cache
def _seconds() -> Histogram:
    return _logfire().metric_histogram(
        "event_assets.seconds", unit="s", description="step duration"
    )


def record_pull(pulled: int, landed: int, quarantined: int, seconds: float) -> None:
    _counter("pulled", "messages pulled").add(pulled)
    _counter("landed", "events landed").add(landed)
    _counter("quarantined", "messages quarantined").add(quarantined)
    _seconds().record(seconds, {"step": "pull_round"})


def record_merge(partition: str, inserted: int, duplicates: int, seconds: float) -> None:
    _counter("inserted", "rows inserted").add(inserted, {"partition": partition})
    _counter("duplicates", "duplicate rows skipped").add(duplicates, {"partition": partition})
    _seconds().record(seconds, {"step": "merge_partition"})
