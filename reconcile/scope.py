"""What of a provider's live state reconcile manages, and the address of each object.

In scope: every live model that is not a platform preset and whose name matches no `ignore`
pattern; of such a model, every version that is not a preset and whose "MODEL/VERSION" matches no
`ignore` pattern. The planner, the drift report and import all use these rules.

An address is PROVIDER/MODEL or PROVIDER/MODEL/VERSION; where several objects in scope share a
name, "#ID" follows it. A name or id holding a character with a meaning in an address (`/`, `"`,
`#`, `\\`), whitespace or a control character is quoted, Terraform-style: `fab/"a/b"` is model
`a/b`, while `fab/a/b` is version `b` of model `a`. Quoted text is a JSON string (`\\"`, `\\\\`,
and `\\uXXXX` for control characters), so an address is one line whatever the platform's names.
`parse_address` reads an address back; a `Target` selects exactly the objects its address names.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from reconcile.errors import PlanError
from reconcile.manifest import Policy, is_glob_match
from reconcile.model import LiveModel, LiveVersion, Snapshot

# -- what is in scope -----------------------------------------------------------------------------


def ignored_by(policy: Policy, *names: str) -> str | None:
    """The `ignore` pattern that takes any of `names` out of scope, or None."""
    return is_glob_match(policy.ignore, *names)


def version_path(model_name: str, version_name: str) -> str:
    """What `protect` and `ignore` patterns on a version are matched against."""
    return f"{model_name}/{version_name}"


def model_in_scope(model: LiveModel, policy: Policy) -> bool:
    return not model.preset and ignored_by(policy, model.name) is None


def version_in_scope(model: LiveModel, version: LiveVersion, policy: Policy) -> bool:
    return not version.preset and ignored_by(policy, version_path(model.name, version.name)) is None


def models_in_scope(snapshot: Snapshot, policy: Policy) -> list[LiveModel]:
    """The live models of `snapshot` in scope, by name then id (never the platform's order)."""
    return sorted(
        (model for model in snapshot.models if model_in_scope(model, policy)),
        key=lambda m: (m.name, m.id),
    )


def versions_in_scope(model: LiveModel, policy: Policy) -> list[LiveVersion]:
    """The versions of an in-scope `model` that are in scope, by name then id."""
    return sorted(
        (version for version in model.versions if version_in_scope(model, version, policy)),
        key=lambda v: (v.name, v.id),
    )


def shared_names(objects: Iterable[LiveModel | LiveVersion]) -> frozenset[str]:
    """The names several of `objects` carry: their addresses need the "#ID"."""
    counts = Counter(item.name for item in objects)
    return frozenset(name for name, count in counts.items() if count > 1)


# -- addresses ------------------------------------------------------------------------------------

_SPECIAL = frozenset('/"#\\')


#: ASCII that needs no quotes: printable, not a space, none of `/"#\\` (the common case, in
#: one regular expression instead of a test per character).
_PLAIN_ASCII = re.compile(r"[!$-.0-\[\]-~]+")


def _needs_quotes(text: str) -> bool:
    if text.isascii():
        return _PLAIN_ASCII.fullmatch(text) is None
    return not text or any(
        char in _SPECIAL or char.isspace() or unicodedata.category(char).startswith("C")
        for char in text
    )


def _escape_char(char: str) -> str:
    if char != " " and (char.isspace() or unicodedata.category(char).startswith("C")):
        code = ord(char)
        if code > 0xFFFF:  # as JSON writes it: a surrogate pair
            code -= 0x10000
            return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
        return f"\\u{code:04x}"
    return char


def quote(text: str) -> str:
    """`text` as one segment of an address: as it is, or quoted where it must be."""
    if not _needs_quotes(text):
        return text
    body = json.dumps(text, ensure_ascii=False)[1:-1]
    # json.dumps leaves some control and format characters (U+0085, U+2028, bidi overrides) as
    # they are: escape every one, so that an address never moves the cursor or breaks a line.
    return '"' + "".join(_escape_char(char) for char in body) + '"'


def segment(name: str, id: str | None = None) -> str:
    """A name, with "#ID" when `id` is given."""
    return quote(name) if id is None else f"{quote(name)}#{quote(id)}"


def model_address(provider: str, model: LiveModel, shared: frozenset[str]) -> str:
    return f"{provider}/{segment(model.name, model.id if model.name in shared else None)}"


def version_address(model_at: str, version: LiveVersion, shared: frozenset[str]) -> str:
    return f"{model_at}/{segment(version.name, version.id if version.name in shared else None)}"


def declared_address(provider: str, name: str, version: str | None = None) -> str:
    """The address of a declared object that no live object answers to (no "#ID")."""
    address = f"{provider}/{quote(name)}"
    return address if version is None else f"{address}/{quote(version)}"


# -- targets --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One segment of a target: a name, and the id when the target gives one."""

    name: str
    id: str | None = None

    def names(self, name: str, id: str | None) -> bool:
        return self.name == name and (self.id is None or self.id == id)


@dataclass(frozen=True)
class Key:
    """What a target is matched against: an object (or a declaration) by names and ids."""

    provider: str
    model: str
    model_id: str | None = None
    version: str | None = None
    version_id: str | None = None


@dataclass(frozen=True)
class Target:
    """A parsed `--target`: a provider, a model in it, or a version of a model."""

    text: str
    provider: str
    model: Part | None = None
    version: Part | None = None

    def selects(self, key: Key) -> bool:
        """True for the object the target names, and for what is inside it (a provider's models,
        a model's versions): never for an object that only shares a prefix of its address."""
        if key.provider != self.provider:
            return False
        if self.model is None:
            return True
        if not self.model.names(key.model, key.model_id):
            return False
        if self.version is None:
            return True
        return key.version is not None and self.version.names(key.version, key.version_id)


_FORM = 'PROVIDER, PROVIDER/MODEL or PROVIDER/MODEL/VERSION, with "#ID" after a shared name'


def _read_text(text: str, start: int) -> tuple[str, int]:
    """A bare or quoted name or id at `start`: its value and where it ends."""
    if start < len(text) and text[start] == '"':
        end = start + 1
        while end < len(text) and text[end] != '"':
            end += 2 if text[end] == "\\" else 1
        if end >= len(text):
            raise ValueError(f"the quote at character {start + 1} is never closed")
        try:
            value: str = json.loads(text[start : end + 1])
        except ValueError as error:
            raise ValueError(f"bad escape in {text[start : end + 1]}: {error}") from None
        return value, end + 1
    end = start
    while end < len(text) and text[end] not in "/#" and not _needs_quotes(text[end]):
        end += 1
    if end == start:
        raise ValueError(f"a name is expected at character {start + 1}")
    return text[start:end], end


def _read_part(text: str, start: int) -> tuple[Part, int]:
    name, end = _read_text(text, start)
    if end < len(text) and text[end] == "#":
        ident, end = _read_text(text, end + 1)
        return Part(name, ident), end
    return Part(name), end


def parse_target(text: str) -> Target:
    """A `--target` address. Raises PlanError, saying how to write one, when it is not one."""
    try:
        provider, position = _read_text(text, 0)
        parts: list[Part] = []
        while position < len(text):
            if text[position] != "/" or len(parts) == 2:
                raise ValueError(f"unexpected {text[position]!r} at character {position + 1}")
            part, position = _read_part(text, position + 1)
            parts.append(part)
    except ValueError as error:
        raise PlanError(
            f"--target {json.dumps(text, ensure_ascii=False)} is not an address: {error}",
            hint=f'write {_FORM}; quote a name that holds /, ", #, \\ or spaces: fab/"my model"/v1',
        ) from None
    return Target(
        text=text,
        provider=provider,
        model=parts[0] if parts else None,
        version=parts[1] if len(parts) > 1 else None,
    )
