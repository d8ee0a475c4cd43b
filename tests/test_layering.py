"""The layering of DESIGN.md, enforced: each module imports only what its layer may."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reconcile"

# What the command line imports besides the app layer, the renderers and the errors, and why:
CLI_EXTRA = {
    # The manifests a command names are loaded at the edge (the app layer takes a Manifest),
    # and the options it was given become the wiring's Options.
    *("manifest", "wiring"),
    # `printable`: platform text escaped wherever the edge shows it; the Plan type the
    # commands pass from the app layer to the renderers.
    *("model", "plan"),
    # Commands of their own, each calling its one module: `validate --format` (the manifest
    # problems as records), `schema`, `report merge`, `reconcile forge` (the GitOps steps,
    # argparse-parsed in reconcile/forge), `emulator serve|reset` (the emulator is apart).
    *("validation", "schema", "report", "forge", "emulator"),
    # The edge's own helpers: colour by the no-color.org rules, the debug log's handler, and
    # what a finished run tells the outside (--notify, --metrics-file).
    *("colour", "logs", "outward", "events", "notify"),
    # What a command made outlives it, and the process exits without freeing it; a reader
    # that leaves (`| head`) changes nothing a command does.
    *("heap", "streams", "files"),
}

# module (or package prefix) -> the reconcile modules it may import
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    # The collector paused around allocation-heavy steps (listing, planning); the fast exit.
    "heap": set(),
    # The standard streams while a command runs: a reader that leaves (`| head`) is no error.
    "streams": set(),
    # Files written whole (plan files, reports, ledgers, metrics): one rename, never a part.
    "files": set(),
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
    # The apply's result is a renderer's input too (its type, from the applier).
    "render": {"plan", "model", "drift", "applier"},
    "report": {"plan", "drift", "render", "manifest", "errors", "model", "streams", "files"},
    "state": {"errors", "model", "plan", "files"},
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
    "metrics": {"errors", "events", "files"},
    # `json_text`: a body that encodes whatever text a platform's error put in the summary.
    "notify": {"errors", "events", "logs", "model"},
    "outward": {"events", "plan", "notify", "metrics", "applier", "drift"},
    # The application layer: everything below the edge.
    "session": {
        *("errors", "model", "endpoints", "manifest", "providers", "scope", "plan", "planner"),
        *("diff", "drift", "importer", "guards", "state", "journal", "lock", "applier", "wiring"),
    },
    # `reconcile import`'s application layer: list one provider, write its manifest.
    "importing": {"errors", "importer", "manifest", "model", "providers", "wiring", "files"},
    # The application layer's listing and planning (what plan, apply and drift share).
    "planning": {
        *("errors", "manifest", "model", "plan", "planner", "providers", "session", "wiring"),
        *("heap", "drift", "files"),
    },
    # The edge: the session, the renderers and the error root; besides them, what a command
    # must reach itself: CLI_EXTRA.
    # The command line (a package: the group, a module per family of commands, their options).
    "cli": {
        *("cli", "session", "render", "errors", "console", "planning", "importing"),
        *CLI_EXTRA,
    },
    # The terminal side of the edge (progress, prompts, signals, the apply's IO).
    "console": {
        *("errors", "colour", "model", "render", "guards", "applier", "manifest", "plan"),
        *("progress_display", "heap", "streams"),
    },
    # rich's progress display, loaded by the console only once a long step runs.
    "progress_display": set(),
}
# third-party libraries and the one module (prefix) that owns each
OWNERS = {
    "deepdiff": {"diff"},
    "click": {"cli", "console"},
    "rich": {"progress_display"},
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
        names |= _names(node)
    return names


def _names(node: ast.AST) -> set[str]:
    """The modules one import statement names: `from reconcile import guards` names
    `reconcile.guards` (a module of the package), `from reconcile import __version__` the root."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0):
        return set()
    if node.module != "reconcile":
        return {node.module}
    return {
        f"reconcile.{alias.name}" if _is_module(f"reconcile.{alias.name}") else "reconcile"
        for alias in node.names
    }


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


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
        "from reconcile import manifest",
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


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _loaded_at_import(tree: ast.Module) -> set[str]:
    """The reconcile modules a module imports when it is imported itself: its module-level
    imports (not those deferred into a function, nor those under `if TYPE_CHECKING:`)."""
    names: set[str] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                pending += node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody
            pending += [stmt for handler in node.handlers for stmt in handler.body]
        elif isinstance(node, ast.With):
            pending += node.body
        else:
            names |= _names(node)
    found = set()
    for name in names:
        if name == "reconcile" or not name.startswith("reconcile."):
            continue
        # `from reconcile.manifest.specs import X` runs reconcile.manifest first, then .specs.
        parts = name.split(".")
        found |= {".".join(parts[:end]) for end in range(2, len(parts) + 1)}
    return {name for name in found if _is_module(name)}


def _import_graph() -> dict[str, set[str]]:
    """Module -> the modules importing it runs first. A module's own packages are left out: a
    package's `__init__` importing its modules is no cycle with them."""
    graph = {}
    for path in _modules():
        name = _module_name(path)
        imports = _loaded_at_import(ast.parse(path.read_text(encoding="utf-8")))
        graph[name] = {other for other in imports if not f"{name}.".startswith(f"{other}.")}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of `graph`, as the modules around it; [] when there is none."""
    done: set[str] = set()
    for start in sorted(graph):
        path: list[str] = []
        on_path: set[str] = set()
        stack = [(start, iter(sorted(graph.get(start, ()))))]
        if start in done:
            continue
        path.append(start)
        on_path.add(start)
        while stack:
            node, successors = stack[-1]
            successor = next(successors, None)
            if successor is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif successor in on_path:
                return [*path[path.index(successor) :], successor]
            elif successor not in done:
                stack.append((successor, iter(sorted(graph.get(successor, ())))))
                path.append(successor)
                on_path.add(successor)
    return []


def test_no_import_cycle_among_reconciles_modules() -> None:
    """Module-level imports form no cycle: each module can be read (and imported) after those
    it uses. Importing `a.b.c` counts as importing `a.b` too (Python runs it first)."""
    assert _cycle(_import_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []
