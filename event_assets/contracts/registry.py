"""Every contract, found by importing every module of `event_assets.contracts.catalog`.

A module there that defines a module-level `CONTRACT` is a contract; adding one is
adding one module, nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from .contract import Contract, ContractError

CATALOG = "event_assets.contracts.catalog"


def discover(package: str = CATALOG) -> tuple[Contract, ...]:
    """The `CONTRACT` of every module of `package`, sorted by name; names are unique."""
    root: ModuleType = importlib.import_module(package)
    found: dict[str, Contract] = {}
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package}.{info.name}")
        contract = getattr(module, "CONTRACT", None)
        if contract is None:
            continue
        if not isinstance(contract, Contract):
            raise ContractError(f"{module.__name__}.CONTRACT is not a Contract")
        if contract.name in found:
            raise ContractError(f"two contracts are named {contract.name!r}")
        found[contract.name] = contract
    return tuple(found[name] for name in sorted(found))
