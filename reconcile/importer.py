"""`reconcile import`: the live state of one provider as a manifest that declares it, so that a
plan right after says "No changes". Pure: a snapshot in, TOML text and notes out.

What is declared: every live model in scope (not a preset, not ignored by the policy, and
matching `--model` when given) with its versions in scope and the attributes a plan compares
(`description`; for versions also `base_model_type` and `model_path`) where the platform reports
them. Ids go in comments, so a declaration follows a model re-registered under the same name;
where names repeat, ids become fields, because only an id tells the objects apart.

A manifest cannot declare one name twice, and that sets two limits, both handled so that nothing
imported is deleted by the next apply:

- live models that share a name: the oldest is declared, by id; the others cannot be. Under
  `scope = "workspace"` their name is added to the provider's `protect` patterns, so they are kept
  (reported as protected) instead of deleted.
- live versions of one model that share a name: the model is declared without a `versions`
  list (its versions are not managed), and the versions are listed in a comment.

TOML holds only Unicode scalar values, and a platform's JSON may hold a lone surrogate (an escaped
"\\ud800"). An attribute holding one is left out (not compared); a version whose name holds one
makes its model's versions unmanaged, as repeated names do; a model whose name or id holds one
(or that a manifest cannot declare for another reason) is not declared and, under
`scope = "workspace"`, is protected by a pattern with `?` in place of each surrogate.
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconcile.manifest import Manifest, ModelSpec, Policy, dump_manifest, is_glob_match
from reconcile.model import LiveModel, LiveVersion, Snapshot
from reconcile.scope import model_in_scope, version_in_scope

_OLDEST = datetime.min.replace(tzinfo=UTC)
_GLOB_SPECIAL = str.maketrans({"*": "[*]", "?": "[?]", "[": "[[]"})
#: What TOML cannot hold: UTF-8 has no surrogates, and a manifest is UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Imported:
    """The manifest text, what it declares, and what people should know about it."""

    text: str
    models: int
    versions: int
    #: One sentence each: what could not be declared as it is, and what was done instead.
    notes: tuple[str, ...]


def _age(item: LiveModel | LiveVersion) -> tuple[datetime, str, str]:
    return (item.created or _OLDEST, item.name, item.id)


def _attributes(
    attributes: dict[str, str | None], keys: Iterable[str], where: str, notes: list[str]
) -> dict[str, str]:
    """The `keys` of `attributes` the platform reports, those TOML can hold; a note for each
    left out."""
    found = {}
    for key in keys:
        value = attributes.get(key)
        if value is None:
            continue
        if _SURROGATE.search(value):
            notes.append(
                f"the {key} of {where} is not declared (so not compared): it holds a lone "
                "surrogate, which a TOML manifest cannot hold"
            )
            continue
        found[key] = value
    return found


def import_manifest(
    manifest: Manifest,
    provider: str,
    snapshot: Snapshot,
    *,
    model_glob: str | None = None,
    endpoint: str | None = None,
    command: str = "reconcile import",
) -> Imported:
    """A manifest declaring the live state in `snapshot`, with `provider`'s table (and the global
    policy) copied from `manifest`; `endpoint` replaces the table's endpoint when given (an
    `emulator:` path made relative to where the new manifest is written)."""
    config = manifest.providers[provider]
    policy = manifest.policy_for(provider)
    table = _provider_table(config.model_dump(mode="json", exclude_unset=True), endpoint)

    in_scope = sorted((m for m in snapshot.models if model_in_scope(m, policy)), key=_age)
    selected = [m for m in in_scope if model_glob is None or is_glob_match((model_glob,), m.name)]
    by_name: dict[str, list[LiveModel]] = defaultdict(list)
    for model in selected:
        by_name[model.name].append(model)

    notes: list[str] = []
    specs: list[ModelSpec] = []
    comments: dict[tuple[int, ...], list[str]] = {}
    kept_names: list[str] = []  # protected under scope = "workspace": not declared, not deleted
    version_count = 0
    for name in sorted(by_name):
        first, *others = by_name[name]
        kept = "kept as protected" if config.scope == "workspace" else "left unmanaged"
        if others:
            kept_names.append(name)
            notes.append(
                f'{len(others) + 1} live models are named "{name}": a manifest declares a name '
                f"once, so the oldest ({first.id}) is declared by id and the others "
                f"({', '.join(m.id for m in others)}) are {kept}"
            )
        declared = _declare(provider, first, pinned=bool(others), policy=policy, notes=notes)
        if declared is None:
            if name not in kept_names:
                kept_names.append(name)
            notes[-1] += f": {'they are' if others else 'it is'} {kept}"
            continue
        spec, lines, versions = declared
        index = len(specs)
        specs.append(spec)
        comments[(index,)] = lines
        version_count += len(versions)
        for number, version in enumerate(versions):
            comments[(index, number)] = [f"id {version.id}"]

    if config.scope == "workspace":
        _protect(table, manifest, kept_names)
        notes += _workspace_notes(
            model_glob, len(in_scope) - len(selected), bool(specs) or config.allow_empty
        )
    header = _header(command, snapshot.location, config.scope, len(specs), version_count, notes)
    global_policy = manifest.policy.model_dump(mode="json", exclude_unset=True)
    text = dump_manifest(
        {provider: table}, specs, policy=global_policy, header=header, comments=comments
    )
    return Imported(text=text, models=len(specs), versions=version_count, notes=tuple(notes))


def _provider_table(given: dict[str, Any], endpoint: str | None) -> dict[str, Any]:
    """The provider's table as people write it: type first, the scope and policy keys last."""
    last = ("scope", "allow_empty", "policy")
    table = {
        **{key: value for key, value in given.items() if key == "type"},
        **{key: value for key, value in given.items() if key != "type" and key not in last},
        **{key: given[key] for key in last if key in given},
    }
    if endpoint is not None:
        table["endpoint"] = endpoint
    return table


def _declare(
    provider: str, first: LiveModel, *, pinned: bool, policy: Policy, notes: list[str]
) -> tuple[ModelSpec, list[str], list[LiveVersion]] | None:
    """The declaration of live model `first` (by id when `pinned`: its name repeats), its
    comment lines and the versions it declares; None (and a note) when it cannot be declared."""
    name = first.name
    if _SURROGATE.search(name) or _SURROGATE.search(first.id):
        notes.append(
            f'model "{name}" ({first.id}) cannot be declared in a manifest: its '
            f"{'name' if _SURROGATE.search(name) else 'id'} holds a lone surrogate, which TOML "
            "cannot hold"
        )
        return None
    versions = [v for v in first.versions if version_in_scope(first, v, policy)]
    versions.sort(key=_age)
    lines = [] if pinned else [f"id {first.id}"]
    repeated = sorted(n for n, count in Counter(v.name for v in versions).items() if count > 1)
    unholdable = sorted({v.name for v in versions if _SURROGATE.search(v.name)})
    if repeated or unholdable:
        why = (
            f"share a name ({', '.join(repeated)})"
            if repeated
            else f"have names TOML cannot hold ({', '.join(unholdable)})"
        )
        notes.append(
            f'model "{name}" has live versions that {why}: it is declared without a versions '
            "list, so its versions are not managed"
        )
        reason = "names repeat, a manifest declares one once" if repeated else "names TOML lacks"
        lines.append(f"versions not declared ({reason}):")
        lines += [f"  version {v.name} id {v.id}" for v in versions]
    declaration: dict[str, Any] = {
        "provider": provider,
        "name": name,
        **_attributes(first.attributes, ("description",), f'model "{name}"', notes),
    }
    if pinned:
        declaration["id"] = first.id
    if not (repeated or unholdable):
        declaration["versions"] = [
            {
                "name": v.name,
                **_attributes(
                    v.attributes,
                    ("description", "base_model_type", "model_path"),
                    f'version "{name}/{v.name}"',
                    notes,
                ),
            }
            for v in versions
        ]
    try:
        spec = ModelSpec.model_validate(declaration)
    except ValueError as error:  # a name or id longer than a manifest allows
        notes.append(f'model "{name}" cannot be declared in a manifest: {error}')
        return None
    return spec, lines, [] if repeated or unholdable else versions


def _protect(table: dict[str, Any], manifest: Manifest, names: list[str]) -> None:
    """Under `scope = "workspace"`: keep the live models of `names` (protected), those not
    declared. A lone surrogate, which TOML cannot hold, is matched by `?` (any one character):
    keeping more than the one model is the safe side."""
    if not names:
        return
    overrides = dict(table.get("policy") or {})
    base = overrides.get("protect", list(manifest.policy.protect))
    extra = [_SURROGATE.sub("?", n.translate(_GLOB_SPECIAL)) for n in names]
    overrides["protect"] = [*base, *(p for p in extra if p not in base)]
    table["policy"] = overrides


def _workspace_notes(model_glob: str | None, left: int, declares: bool) -> list[str]:
    """Under `scope = "workspace"`: what the next plan would delete or refuse."""
    notes = []
    if model_glob is not None and left:
        notes.append(
            f'only models matching "{model_glob}" were imported: with scope = "workspace", '
            f"the {left} other live models would be deleted unless declared elsewhere"
        )
    if not declares:
        notes.append(
            'no model to declare: a plan refuses a scope = "workspace" provider with no declared '
            "model unless allow_empty = true"
        )
    return notes


def _header(
    command: str, location: str, scope: str, models: int, versions: int, notes: list[str]
) -> list[str]:
    if scope == "workspace":
        deletes = 'and, as scope = "workspace", every undeclared model.'
    else:
        deletes = '(scope = "declared": undeclared models are left alone).'
    paragraphs = [
        f"Written by `{command}` from {location}: the {models} models and "
        f"{versions} versions that were live, with their attributes, so that `reconcile "
        "plan` on this file reports no changes. From now on, apply deletes the undeclared "
        f"versions of declared models {deletes}",
        "Ids are noted in comments; an `id = ...` field pins a declaration to one live object "
        "(used where names repeat).",
        *(f"Note: {note}." for note in notes),
    ]
    return [line for text in paragraphs for line in textwrap.wrap(text, width=96)]
