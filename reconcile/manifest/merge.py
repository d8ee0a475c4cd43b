"""Merging the files of a manifest folder into one Manifest, checking what spans files: names
declared twice, models naming no provider, ids declared twice or of a shape the platform never
makes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reconcile.errors import ManifestError
from reconcile.manifest.checks import id_problems
from reconcile.manifest.explain import _did_you_mean
from reconcile.manifest.scanner import Loc
from reconcile.manifest.source import FileManifest, ManifestErrors
from reconcile.manifest.specs import (
    FabricProvider,
    Location,
    Manifest,
    ModelSpec,
    Policy,
    QianfanProvider,
    StateTable,
)


@dataclass
class _Merged:
    providers: dict[str, FabricProvider | QianfanProvider] = field(default_factory=dict)
    origins: dict[str, Location] = field(default_factory=dict)
    policy: tuple[Policy, FileManifest] | None = None
    state: tuple[StateTable, FileManifest] | None = None
    models: list[ModelSpec] = field(default_factory=list)
    #: Every provider table of every file, valid or not, with its type when known.
    declared: dict[str, str | None] = field(default_factory=dict)
    #: (provider, model id) -> the origins key of the model that declared it first.
    ids: dict[tuple[str, str], str] = field(default_factory=dict)
    #: Provider templates: name -> (provider, workspace id) of each scope it stands for.
    templates: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


def merge(parts: list[FileManifest], root: Path) -> Manifest:
    """One Manifest from the files' parts; raises `ManifestErrors` with every problem of every
    file when there is any."""
    merged = _Merged()
    for part in parts:
        _add_providers(merged, part)
        _add_policy(merged, part)
        _add_state(merged, part)
    complete = all(part.parsed for part in parts)
    if not merged.declared and complete:
        raise ManifestErrors(
            [
                *(problem for part in parts for problem in part.in_order()),
                ManifestError(
                    "no provider is defined",
                    file=str(root),
                    hint='add a [providers.NAME] table with type = "fabric" or "qianfan"',
                ),
            ]
        )
    for part in parts:
        for index, model in enumerate(part.models):
            _add_model(merged, part, index, model, complete=complete)
    problems = [problem for part in parts for problem in part.in_order()]
    if problems:
        raise ManifestErrors(problems)
    return Manifest(
        providers=merged.providers,
        policy=merged.policy[0] if merged.policy else Policy(),
        state=merged.state[0] if merged.state else None,
        models=tuple(merged.models),
        origins=merged.origins,
        root=root,
    )


def _add_providers(merged: _Merged, part: FileManifest) -> None:
    for name, kind in part.declared.items():
        loc: Loc = ("providers", name)
        key = f"providers.{name}"
        here = part.location(loc)
        if name in merged.declared:
            first = merged.origins.get(key)
            part.fail(
                part.error(
                    loc,
                    f"provider {name!r} is defined twice ({_where(first)} and {_where(here)})",
                    hint="keep one [providers.NAME] table per provider, in one file",
                )
            )
            continue
        merged.declared[name] = kind
        merged.origins[key] = here
        if name in part.providers:
            merged.providers[name] = part.providers[name]
        for derived, _ in part.templates.get(name, ()):
            merged.declared[derived] = kind
            merged.providers[derived] = part.providers[derived]
            merged.origins[f"providers.{derived}"] = here
        if name in part.templates:
            merged.templates[name] = part.templates[name]


def _add_policy(merged: _Merged, part: FileManifest) -> None:
    hint = "keep one [policy] table; per-provider changes go in [providers.NAME.policy]"
    if part.policy is not None and _first_of(merged.policy, part, "policy", hint):
        merged.policy = (part.policy, part)


def _add_state(merged: _Merged, part: FileManifest) -> None:
    hint = "keep one [state] table: every apply of these manifests shares one store"
    if part.state is not None and _first_of(merged.state, part, "state", hint):
        merged.state = (part.state, part)


def _first_of(
    earlier: tuple[object, FileManifest] | None, part: FileManifest, table: str, hint: str
) -> bool:
    """Whether `part`'s [table] is the first; if not, the problem is reported in `part`."""
    if earlier is None:
        return True
    first = earlier[1].location((table,))
    part.fail(
        part.error(
            (table,),
            f"[{table}] is defined twice ({_where(first)} and {_where(part.location((table,)))})",
            hint=hint,
        )
    )
    return False


def _add_model(
    merged: _Merged, part: FileManifest, index: int, model: ModelSpec, *, complete: bool
) -> None:
    """Add one model, or the problems that keep it out (reported on `part`)."""
    loc: Loc = ("models", index)
    if model.provider not in merged.declared:
        if complete:  # else the provider may be in a file that could not be read
            part.fail(_no_such_provider(merged, part, loc, model))
        return
    template = merged.templates.get(model.provider)
    if template is not None or model.workspaces is not None:
        for copy in _per_workspace(part, loc, model, template):
            _add_model(merged, part, index, copy, complete=complete)
        return
    here = part.location(loc)
    key = f"models.{model.provider}/{model.name}"
    problems = _declared_twice(merged, part, loc, model, key)
    if not problems:  # the first declaration, which a second one's message names
        merged.origins[key] = here
    kind = merged.declared[model.provider]
    if kind is not None:
        problems += id_problems(model, index, kind, part)
    if problems:
        part.fail(*problems)
    else:
        merged.models.append(model)


def _per_workspace(
    part: FileManifest, loc: Loc, model: ModelSpec, template: list[tuple[str, str]] | None
) -> list[ModelSpec]:
    """A model declared for a provider template: one declaration per workspace it is for."""
    if template is None:
        part.fail(
            part.error(
                (*loc, "workspaces"),
                f"provider {model.provider!r} has no workspaces = [...]: there is no workspace "
                "to choose",
                hint="remove workspaces from the model, or make the provider a template",
            )
        )
        return []
    known = {workspace for _, workspace in template}
    unknown = sorted(set(model.workspaces or ()) - known)
    if unknown:
        part.fail(
            part.error(
                (*loc, "workspaces"),
                f"workspace(s) {', '.join(map(repr, unknown))} not in provider "
                f"{model.provider!r}'s workspaces{_did_you_mean(unknown[0], known)}",
                hint="name workspaces the provider's workspaces = [...] lists",
            )
        )
        return []
    chosen = set(model.workspaces) if model.workspaces is not None else known
    return [
        model.model_copy(update={"provider": derived, "workspaces": None})
        for derived, workspace in template
        if workspace in chosen
    ]


def _no_such_provider(
    merged: _Merged, part: FileManifest, loc: Loc, model: ModelSpec
) -> ManifestError:
    names = merged.declared
    return part.error(
        (*loc, "provider"),
        f"no provider named {model.provider!r}{_did_you_mean(model.provider, names)}",
        hint=f"providers defined: {', '.join(sorted(names)) or 'none'}; add a "
        f"[providers.{model.provider}] table or fix the name",
    )


def _declared_twice(
    merged: _Merged, part: FileManifest, loc: Loc, model: ModelSpec, key: str
) -> list[ManifestError]:
    here = part.location(loc)
    if key in merged.origins:
        return [
            part.error(
                loc,
                f"model {model.name!r} of provider {model.provider!r} is declared twice "
                f"({_where(merged.origins[key])} and {_where(here)})",
                hint="declare each model once, with all its versions in that one table",
            )
        ]
    if model.id is None:
        return []
    first_key = merged.ids.setdefault((model.provider, model.id), key)
    if first_key == key:
        return []
    return [
        part.error(
            (*loc, "id"),
            f"model id {model.id!r} of provider {model.provider!r} is declared twice "
            f"({_where(merged.origins[first_key])} and {_where(here)})",
            at=loc,
            hint="one live model is declared once: remove one of the two tables",
        )
    ]


def _where(location: Location | None) -> str:
    """A declaration's place as the user spelt the path (messages about the manifests)."""
    return "?" if location is None else f"{location.file}:{location.line}"
