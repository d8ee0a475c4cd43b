"""The emulator's modules: no import cycle (not even one for type checking only), each importable
alone, and the platforms reaching their host only through `host.Host`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "reconcile.emulator"
FOLDER = Path(__file__).resolve().parent.parent / "reconcile" / "emulator"
MODULES = sorted(f"{PACKAGE}.{p.stem}" for p in FOLDER.glob("*.py") if p.stem != "__init__")


def _module_of(path: Path) -> str:
    return PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"


def _imports(path: Path) -> set[str]:
    """The emulator modules ``path`` imports, wherever the import stands (under
    ``TYPE_CHECKING`` too): ``from reconcile.emulator import signatures`` is the submodule."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == PACKAGE:
                for alias in node.names:
                    sub = f"{PACKAGE}.{alias.name}"
                    found.add(sub if (FOLDER / f"{alias.name}.py").exists() else PACKAGE)
            elif node.module.startswith(PACKAGE + "."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(PACKAGE + "."))
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_of(path): _imports(path) for path in FOLDER.glob("*.py")}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as the path that closes it), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            found = visit(target, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return None


def test_the_emulator_modules_import_one_another_without_a_cycle() -> None:
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_the_cycle_finder_finds_the_cycle_platforms_had() -> None:
    """Before host.py, fabric and qianfan imported `Emulator` from app.py (for types only)."""
    graph = _graph()
    graph[f"{PACKAGE}.fabric"].add(f"{PACKAGE}.app")
    assert _cycle(graph) == [f"{PACKAGE}.app", f"{PACKAGE}.fabric", f"{PACKAGE}.app"]


def test_the_platform_modules_know_their_host_only_by_its_protocol() -> None:
    graph = _graph()
    for platform in ("fabric", "qianfan"):
        imported = graph[f"{PACKAGE}.{platform}"]
        assert f"{PACKAGE}.host" in imported
        assert not imported & {PACKAGE, f"{PACKAGE}.app"}, platform


@pytest.mark.parametrize("module", MODULES)
def test_each_emulator_module_imports_alone(module: str) -> None:
    """In a fresh interpreter, importing the module first (not through app.py) works."""
    code = f"import importlib, sys; importlib.import_module({module!r}); print('ok')"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr
