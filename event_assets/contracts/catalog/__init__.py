"""The contracts: one module each, defining `CONTRACT` (see `event_assets.contracts`)."""
