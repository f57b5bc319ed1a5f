"""`event_assets/` holds what runs in production, and only that.

Every module of the package must be reachable, through import statements (top-level or
inside functions), from what production starts: the code location (`workspace.yaml`),
the run launcher `deploy/dagster.yaml` names, the console script, and what is imported
by discovery (the defs folder, which `event_assets.definitions` loads whole; the
contract catalog). The dev tooling (`pubsub_emulator`, `devtools`) and the test,
benchmark and harness packages live beside it, outside the wheel, and the package never
imports them by statement (the CLI's `emulator` and `publish --demo` load them on demand
and say where they are when they are missing).
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "event_assets"
OUTSIDE = ("pubsub_emulator", "devtools", "event_assets_tests", "reliability", "benchmarks")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules `path` imports by statement (absolute or relative), with their parents."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for target in targets:
            parts = target.split(".")
            found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return found & known | {t for t in found if t.split(".")[0] in OUTSIDE}


def _entry_points() -> set[str]:
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    roots = {entry["python_module"]["module_name"] for entry in workspace["load_from"]}
    roots.add(
        yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())["run_launcher"]["module"]
    )
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    roots.update(target.split(":")[0] for target in scripts.values())
    return roots


def test_every_module_of_the_package_is_reachable_from_production() -> None:
    modules = _modules()
    known = set(modules)
    roots = _entry_points()
    # Imported by discovery: every module of the defs folder (`dg.load_from_defs_folder`,
    # `[tool.dg.project]`) and of the contract catalog (the registry).
    from event_assets.contracts.registry import CATALOG

    dg_project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dg"]["project"]
    for package in (dg_project["defs_module"], CATALOG):
        roots.update(n for n in known if n == package or n.startswith(f"{package}."))
    assert roots <= known, roots - known
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in modules:
            continue
        seen.add(name)
        todo.extend(_imports(name, modules[name], known))
    assert sorted(known - seen) == []


def test_the_package_never_imports_dev_tooling_or_tests() -> None:
    modules = _modules()
    known = set(modules)
    offenders = {
        name: sorted(t for t in _imports(name, path, known) if t.split(".")[0] in OUTSIDE)
        for name, path in modules.items()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_wheel_and_the_image_hold_the_package_only() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["event_assets"]
    copies = [
        line.split()[1:]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY") and "--from=" not in line
    ]
    sources = {source for args in copies for source in args[:-1] if not source.startswith("--")}
    assert not sources & set(OUTSIDE), sources
