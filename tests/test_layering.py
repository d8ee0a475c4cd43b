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
    "endpoints": {"errors"},
    "manifest": {"errors", "model", "endpoints"},
    "diff": {"model"},
    "plan": {"errors", "model"},
    "scope": {"model", "manifest", "errors"},
    "planner": {"model", "manifest", "scope", "plan", "diff", "errors"},
    "journal": {"model"},
    "guards": {"plan", "manifest", "errors", "model"},
    "applier": {"plan", "model", "providers", "journal", "errors", "guards"},
    "drift": {"plan", "model", "manifest", "scope"},
    "importer": {"manifest", "model", "scope"},
    "schema": {"manifest"},
    "render": {"plan", "model", "drift"},
    "report": {"plan", "drift", "render", "manifest", "errors", "model"},
    "state": {"errors", "model", "plan"},
    "providers": {"errors", "model", "endpoints", "providers"},
    # The app layer: everything below it (manifests, environment and options -> providers).
    "wiring": {
        *("errors", "model", "endpoints", "manifest", "providers", "emulator", "scope"),
        *("plan", "planner", "diff", "drift", "importer", "guards", "state", "journal"),
    },
    # Run reporting (issue 18): leaves the CLI wires in; none imports the planner or providers.
    "events": set(),
    "colour": set(),
    "logs": {"errors"},
    "metrics": {"errors", "events"},
    "notify": {"errors", "events", "logs"},
}
# third-party libraries and the one module (prefix) that owns each
OWNERS = {
    "deepdiff": {"diff"},
    "click": {"cli"},
    "httpx": {"providers", "forge", "notify"},
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
    return _imports_of_source(path.read_text(encoding="utf-8"))


def _imports_of_source(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _forbidden(layer: str, imports: set[str]) -> list[str]:
    """Each import that `layer` may not make, said as the test reports it."""
    found = []
    for name in sorted(imports):
        top, _, rest = name.partition(".")
        if top == "reconcile" and rest:
            target = rest.split(".")[0]
            if layer == "emulator" and target != "emulator":
                found.append(f"the emulator must not import reconcile.{rest}")
            elif layer in ALLOWED and target not in ALLOWED[layer] | {layer}:
                found.append(f"{layer} must not import {name}")
        if top in OWNERS and layer not in OWNERS[top]:
            found.append(f"only {OWNERS[top]} may import {top}, not {layer}")
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_respect_the_layers(path: Path) -> None:
    assert _forbidden(_layer(path), _imports(path)) == []


@pytest.mark.parametrize(
    "source",
    [
        "from reconcile.manifest import Manifest",
        "import reconcile.manifest",
        "from reconcile.emulator import create_app",
        "from reconcile.wiring import open_providers",
        "def f():\n    from reconcile.manifest.specs import FabricProvider\n",
    ],
)
def test_the_check_fails_when_providers_imports_what_is_above_it(source: str) -> None:
    """The layering check itself: a provider module importing the manifest (or the emulator, or
    the wiring above it) is caught, also when the import is deferred into a function."""
    assert _forbidden("providers", _imports_of_source(source)) != []
    assert _forbidden("providers", _imports_of_source("from reconcile.model import Snapshot")) == []


def test_the_planner_and_renderers_do_no_io() -> None:
    """Pure modules import nothing that reaches the network, the clock or the environment."""
    pure = ["scope.py", "plan.py", "diff.py", "drift.py", "importer.py", "schema.py"]
    pure += [f"planner/{path.name}" for path in sorted((PACKAGE / "planner").glob("*.py"))]
    pure += [f"render/{name}.py" for name in ("text", "json", "markdown", "html")]
    for module in pure:
        imports = _imports(PACKAGE / module)
        for forbidden in ("httpx", "os", "socket", "time", "asyncio", "subprocess"):
            assert forbidden not in imports, f"{module} imports {forbidden}"
