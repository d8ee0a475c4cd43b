"""Merging the files of a manifest folder into one Manifest, checking what spans files."""

from __future__ import annotations

from pathlib import Path

from reconcile.errors import ManifestError
from reconcile.manifest.explain import _did_you_mean
from reconcile.manifest.scanner import Loc
from reconcile.manifest.source import FileManifest
from reconcile.manifest.specs import (
    FabricProvider,
    Location,
    Manifest,
    ModelSpec,
    Policy,
    QianfanProvider,
)


def _merge(parts: list[FileManifest], root: Path) -> Manifest:
    providers: dict[str, FabricProvider | QianfanProvider] = {}
    origins: dict[str, Location] = {}
    policy: tuple[Policy, FileManifest] | None = None
    for part in parts:
        for name, provider in part.providers.items():
            loc: Loc = ("providers", name)
            key = f"providers.{name}"
            if key in origins:
                raise part.error(
                    loc,
                    f"provider {name!r} is defined twice ({origins[key]} and {part.location(loc)})",
                    hint="keep one [providers.NAME] table per provider, in one file",
                )
            providers[name] = provider
            origins[key] = part.location(loc)
        if part.policy is not None:
            if policy is not None:
                first = policy[1].location(("policy",))
                raise part.error(
                    ("policy",),
                    f"[policy] is defined twice ({first} and {part.location(('policy',))})",
                    hint="keep one [policy] table; per-provider changes go in "
                    "[providers.NAME.policy]",
                )
            policy = (part.policy, part)
    if not providers:
        raise ManifestError(
            "no provider is defined",
            file=str(root),
            hint='add a [providers.NAME] table with type = "fabric" or "qianfan"',
        )
    models: list[ModelSpec] = []
    by_id: dict[tuple[str, str], str] = {}
    for part in parts:
        for index, model in enumerate(part.models):
            loc = ("models", index)
            if model.provider not in providers:
                raise part.error(
                    (*loc, "provider"),
                    f"no provider named {model.provider!r}"
                    f"{_did_you_mean(model.provider, providers)}",
                    hint=f"providers defined: {', '.join(sorted(providers))}; add a "
                    f"[providers.{model.provider}] table or fix the name",
                )
            here = part.location(loc)
            key = f"models.{model.provider}/{model.name}"
            if key in origins:
                raise part.error(
                    loc,
                    f"model {model.name!r} of provider {model.provider!r} is declared twice "
                    f"({origins[key]} and {here})",
                    hint="declare each model once, with all its versions in that one table",
                )
            if model.id is not None:
                first_key = by_id.setdefault((model.provider, model.id), key)
                if first_key != key:
                    raise part.error(
                        (*loc, "id"),
                        f"model id {model.id!r} of provider {model.provider!r} is declared twice "
                        f"({origins[first_key]} and {here})",
                        at=loc,
                        hint="one live model is declared once: remove one of the two tables",
                    )
            origins[key] = here
            models.append(model)
    return Manifest(
        providers=providers,
        policy=policy[0] if policy else Policy(),
        models=tuple(models),
        origins=origins,
        root=root,
    )
