"""The one resource: settings and lake, from the environment (overridable in tests)."""

import dagster as dg

from event_assets.ingest import lake_of
from event_assets.settings import Settings, load_settings
from event_assets.storage.lake import Lake


class EventAssetsResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Settings come from the environment; `lake_uri` overrides LAKE_URI when set."""

    lake_uri: str | None = None

    def settings(self) -> Settings:
        return load_settings(**({"LAKE_URI": self.lake_uri} if self.lake_uri else {}))

    def lake(self) -> Lake:
        return lake_of(self.settings())
