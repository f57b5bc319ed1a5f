"""The `event_assets` code location.

Every Dagster object of the defs folder `event_assets.defs` (the layout `[tool.dg]` in
pyproject.toml declares) is found by module discovery, with the resource and the
executor every run shares. Not `dg.load_from_defs_folder`: in Dagster 1.13 it also
imports every installed dg plugin's components (dagster-gcp's pull in the BigQuery
client and pandas), measured +1.4 s on every load, and every run worker loads the
location at its (cold) start; `load_definitions_from_package_module` finds the same
objects (the snapshot test holds both to one list) without that.

Importing this module does nothing that can fail or reach the network: settings are
validated, and observability (Logfire, which may read Secret Manager) configured, when
Dagster calls `defs` to load the location.
"""

from __future__ import annotations

import functools
import warnings

import dagster as dg

import event_assets.defs
from event_assets.defs.resources import EventAssetsResource
from event_assets.observability import configure_observability
from event_assets.settings import load_settings


@functools.cache
def build_defs() -> dg.Definitions:
    """The location's definitions (no side effect; cached: tests and tools share them)."""
    with warnings.catch_warnings():  # the loader is "preview" in 1.13; it is used as documented
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.load_definitions_from_package_module(
            event_assets.defs,
            resources={"event_assets": EventAssetsResource()},
            # Every run (contract automation and UI launches included) executes its steps
            # in the run worker's own process: a subprocess per step would import the code
            # location again.
            executor=dg.in_process_executor,
        )


@dg.definitions
def defs() -> dg.Definitions:
    """What the webserver, the daemon and every run worker load: a bad setting stops the
    load with its one-line error; spans and metrics go to Logfire when a token is set."""
    configure_observability(load_settings())
    return build_defs()
