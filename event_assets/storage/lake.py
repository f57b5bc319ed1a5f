"""Where the lake lives and how to reach it.

One object names every location (`events`, `events_quarantine`, `landing/`) and
carries the one set of storage options that delta-rs and obstore both take, so a
local folder and `gs://bucket/prefix` differ only in the URI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
class Lake:
    """The lake root and the storage options for everything under it."""

    root: str
    storage_options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_uri(cls, uri: str, *, google_service_account: str | None = None) -> Lake:
        """Build a lake from `LAKE_URI`; a local path is made absolute so every tool agrees."""
        options: dict[str, str] = {}
        if uri.startswith("gs://"):
            if google_service_account:
                options["google_service_account"] = google_service_account
            return cls(root=uri.rstrip("/"), storage_options=options)
        return cls(root=str(Path(uri).expanduser().resolve()), storage_options=options)

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
        config = cast("GCSConfig", dict(self.storage_options))
        return obstore.store.GCSStore.from_url(self.uri(*parts), config=config)
