"""The layering of DESIGN.md, enforced: each module imports only what its layer may."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reconcile"

# module (or package prefix) -> the reconcile modules it may import
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "model": {"errors"},
    "manifest": {"errors", "model"},
    "diff": {"model"},
    "plan": {"errors", "model"},
    "planner": {"model", "manifest", "plan", "diff", "errors"},
    "journal": {"model"},
    "lock": {"errors"},
    "applier": {"plan", "model", "providers", "journal", "errors"},
    "drift": {"plan", "model", "manifest"},
    "importer": {"manifest", "model"},
    "schema": {"manifest"},
    "render": {"plan", "model", "drift"},
    "report": {"plan", "drift", "render", "manifest", "errors", "model"},
    "providers": {"errors", "model", "manifest", "providers", "emulator"},
    "state": {"errors", "model", "plan"},
}
# third-party libraries and the one module (prefix) that owns each
OWNERS = {
    "deepdiff": {"diff"},
    "click": {"cli"},
    "httpx": {"providers", "forge"},
    "tomli_w": {"manifest"},
    "aiobotocore": {"state"},
    "botocore": {"state"},
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0] if parts[0] != "__init__" else ""


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_respect_the_layers(path: Path) -> None:
    layer = _layer(path)
    for name in _imports(path):
        top, _, rest = name.partition(".")
        if top == "reconcile" and rest:
            target = rest.split(".")[0]
            if layer == "emulator":
                assert target == "emulator", f"the emulator must not import reconcile.{rest}"
            elif layer in ALLOWED:
                assert target in ALLOWED[layer] | {layer}, f"{layer} must not import {name}"
        if top in OWNERS:
            assert layer in OWNERS[top], f"only {OWNERS[top]} may import {top}, not {layer}"


def test_the_planner_and_renderers_do_no_io() -> None:
    """Pure modules import nothing that reaches the network, the clock or the environment."""
    pure = ["planner.py", "plan.py", "diff.py", "drift.py", "importer.py", "schema.py"]
    pure += [f"render/{name}.py" for name in ("text", "json", "markdown", "html")]
    for module in pure:
        imports = _imports(PACKAGE / module)
        for forbidden in ("httpx", "os", "socket", "time", "asyncio", "subprocess"):
            assert forbidden not in imports, f"{module} imports {forbidden}"
