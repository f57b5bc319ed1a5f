"""Where the lake lives and how to reach it.

One object names every location (`events`, `events_quarantine`, `landing/`) and
carries the one set of storage options that delta-rs and obstore both take, so a
local folder and `gs://bucket/prefix` differ only in the URI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast

import obstore.store

if TYPE_CHECKING:
    from obstore.store import GCSConfig

EVENTS_TABLE = "events"
QUARANTINE_TABLE = "events_quarantine"
DELIVERIES_TABLE = "deliveries"
LANDING_DIR = "landing"


@dataclass(frozen=True)
class StorageRetry:
    """How long one storage request may take, retries included (object_store's client
    retries 5xx and timeouts itself: by default 10 times over up to 3 minutes, longer
    than a sensor tick may run). `options()` are the storage-option keys delta-rs and
    polars read; `Lake.store` hands the same bound to obstore as its own config."""

    max_retries: int = 10
    retry_timeout_seconds: float = 20.0
    request_timeout_seconds: float = 30.0

    def options(self) -> dict[str, str]:
        return {
            "max_retries": str(self.max_retries),
            "retry_timeout": f"{self.retry_timeout_seconds:g}s",
            "timeout": f"{self.request_timeout_seconds:g}s",
        }


_RETRY_KEYS = tuple(StorageRetry().options())


def polars_storage_options(options: dict[str, str]) -> dict[str, object] | None:
    """The storage options as polars takes them: the same keys, `max_retries` an int."""
    if not options:
        return None
    out: dict[str, object] = dict(options)
    if "max_retries" in out:
        out["max_retries"] = int(options["max_retries"])
    return out


@dataclass(frozen=True)
class Lake:
    """The lake root and the storage options for everything under it."""

    root: str
    storage_options: dict[str, str] = field(default_factory=dict)
    retry: StorageRetry | None = None
    """The bound also in `storage_options` (set by `from_uri`); None: the clients' defaults."""
    can_delete: bool = True
    """False: this identity may create objects but not delete or overwrite them."""

    @classmethod
    def from_uri(
        cls,
        uri: str,
        *,
        google_service_account: str | None = None,
        retry: StorageRetry | None = None,
        can_delete: bool = True,
    ) -> Lake:
        """Build a lake from `LAKE_URI`; a local path is made absolute so every tool agrees.

        On `gs://`, `retry` bounds every request's retries (delta-rs and obstore alike).
        """
        options: dict[str, str] = {}
        if uri.startswith("gs://"):
            if google_service_account:
                options["google_service_account"] = google_service_account
            if retry is not None:
                options.update(retry.options())
            return cls(
                root=uri.rstrip("/"), storage_options=options, retry=retry, can_delete=can_delete
            )
        root = str(Path(uri).expanduser().resolve())
        return cls(root=root, storage_options=options, can_delete=can_delete)

    @property
    def is_local(self) -> bool:
        return not self.root.startswith("gs://")

    def uri(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    @property
    def events_uri(self) -> str:
        return self.uri(EVENTS_TABLE)

    @property
    def quarantine_uri(self) -> str:
        return self.uri(QUARANTINE_TABLE)

    @property
    def deliveries_uri(self) -> str:
        return self.uri(DELIVERIES_TABLE)

    @property
    def landing_uri(self) -> str:
        return self.uri(LANDING_DIR)

    def store(self, *parts: str) -> obstore.store.ObjectStore:
        """An obstore store rooted at a sub-path of the lake (same credentials as delta-rs)."""
        if self.is_local:
            path = Path(self.uri(*parts))
            path.mkdir(parents=True, exist_ok=True)
            return obstore.store.LocalStore(prefix=path)
        config = {k: v for k, v in self.storage_options.items() if k not in _RETRY_KEYS}
        if self.retry is None:
            return obstore.store.GCSStore.from_url(
                self.uri(*parts), config=cast("GCSConfig", config)
            )
        return obstore.store.GCSStore.from_url(
            self.uri(*parts),
            config=cast("GCSConfig", config),
            # obstore allows an http endpoint by itself only without client options; the
            # endpoint is the credentials' (https on GCS, http on a local fake).
            client_options={
                "timeout": timedelta(seconds=self.retry.request_timeout_seconds),
                "allow_http": True,
            },
            retry_config={
                "max_retries": self.retry.max_retries,
                "retry_timeout": timedelta(seconds=self.retry.retry_timeout_seconds),
            },
        )
