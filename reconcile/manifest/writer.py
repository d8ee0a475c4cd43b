"""Manifests as TOML text, for `reconcile import`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from reconcile.manifest.specs import ModelSpec, VersionSpec


def dump_manifest(
    providers: Mapping[str, Mapping[str, Any]],
    models: Iterable[ModelSpec],
    *,
    policy: Mapping[str, Any] | None = None,
    header: Iterable[str] = (),
    comments: Mapping[tuple[int, ...], Iterable[str]] | None = None,
) -> str:
    """A manifest as TOML text (for `reconcile import`): `header` comment lines, one
    `[providers.NAME]` table per provider (its keys as given), `[policy]` when given, then a
    `[[models]]` table per model with its `[[models.versions]]` (long form; keys left at their
    defaults are not written). `comments[(i,)]` go above model i, `comments[(i, j)]` above its
    version j. tomli-w writes no comments, so it writes the key/value lines and this the rest.
    """
    import tomli_w  # deferred: only import pays for it

    notes = comments or {}
    blocks: list[str] = []
    if lines := [_comment(line) for line in header]:
        blocks.append("\n".join(lines) + "\n")
    if providers:
        blocks.append(tomli_w.dumps({"providers": {k: dict(v) for k, v in providers.items()}}))
    if policy:
        blocks.append(tomli_w.dumps({"policy": dict(policy)}))
    for index, model in enumerate(models):
        table = model.model_dump(mode="json", exclude_defaults=True, exclude={"versions"})
        if model.versions is not None and not model.versions:
            table["versions"] = []
        block = [_comment(line) for line in notes.get((index,), ())]
        block += ["[[models]]", tomli_w.dumps(table).rstrip("\n")]
        for number, version in enumerate(model.versions or ()):
            block.append("")
            block += [_comment(line) for line in notes.get((index, number), ())]
            block += ["[[models.versions]]", tomli_w.dumps(_version_table(version)).rstrip("\n")]
        blocks.append("\n".join(block) + "\n")
    return "\n".join(blocks)


def _version_table(version: VersionSpec) -> dict[str, Any]:
    return version.model_dump(mode="json", exclude_defaults=True)


_COMMENT_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")


def _comment(text: str) -> str:
    """One TOML comment line; control characters (a newline in a platform's name would end the
    comment and start TOML) and lone surrogates (which a UTF-8 file cannot hold) are written as
    escapes."""
    safe = _COMMENT_UNSAFE.sub(_escape, text)
    return f"# {safe}".rstrip() if safe else "#"


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
