"""Warnings about declarations that can have no effect, found without the network.

Each is one line, `warning: <what> (<where>): <fix>` (the planner's plan-time warnings, such as
`absent = true` on a preset, need the live state and are the planner's).
"""

from __future__ import annotations

from reconcile.manifest.specs import Location, Manifest, ModelSpec, is_glob_match
from reconcile.model import printable


def manifest_warnings(manifest: Manifest) -> list[str]:
    """Declared models and versions that an `ignore` pattern (global or the provider's) matches:
    the planner leaves them out of scope, so their declaration changes nothing."""
    warnings = []
    for model in manifest.models:
        ignore = manifest.policy_for(model.provider).ignore
        where = _where(manifest.origins.get(f"models.{model.provider}/{model.name}"))
        pattern = is_glob_match(ignore, model.name)
        if pattern is not None:
            warnings.append(_ignored(f"model {_address(model)}", pattern, where))
            continue
        for version in model.versions or ():
            pattern = is_glob_match(ignore, f"{model.name}/{version.name}")
            if pattern is not None:
                what = f"version {_address(model)}/{printable(version.name)}"
                warnings.append(_ignored(what, pattern, where))
    return warnings


def _ignored(what: str, pattern: str, where: str) -> str:
    return (
        f"warning: {what} is declared but matches the ignore pattern {printable(repr(pattern))}, "
        f"so the declaration has no effect ({where}): remove the declaration, or narrow the "
        "ignore pattern so that it is managed"
    )


def _address(model: ModelSpec) -> str:
    return printable(f"{model.provider}/{model.name}")


def _where(location: Location | None) -> str:
    return "?" if location is None else printable(f"{location.file}:{location.line}")
