"""Pydantic's validation errors in the user's terms: the TOML path, what was expected, the fix.

Nothing here repeats a value found under `credentials`: it may be a pasted secret.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from reconcile.errors import ManifestError
from reconcile.manifest.credentials import secret_hint
from reconcile.manifest.scanner import Loc
from reconcile.manifest.source import FileManifest
from reconcile.manifest.specs import (
    ENV_NAME_PATTERN,
    FABRIC_ID_PATTERN,
    NAME_PATTERN,
    STATE_URL_PATTERN,
    FabricProvider,
    ModelSpec,
    Policy,
    PolicyOverrides,
    QianfanProvider,
)

_CREDENTIALS_HINT = (
    'write credentials = { token_env = "NAME" } or { ak_env = "AK_NAME", sk_env = "SK_NAME" }: '
    "the names of environment variables that hold the secrets"
)
_PROVIDER_TYPES: dict[type[BaseModel], str] = {FabricProvider: "fabric", QianfanProvider: "qianfan"}
_PATTERN_RULES = {
    NAME_PATTERN: "1 to 64 letters, digits, '_' and '-'",
    FABRIC_ID_PATTERN: "1 to 36 letters, digits and '-' (a Fabric id)",
    r"^[A-Za-z0-9-]{1,64}$": "1 to 64 letters, digits and '-'",
    STATE_URL_PATTERN: '"local", a folder, or s3://BUCKET/PREFIX',
}
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "bool_type": "a boolean (true or false)",
    "tuple_type": "an array",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "float_type": "a number",
}


@dataclass(frozen=True)
class _Detail:
    """One pydantic error, with what the explanations need to know about where it is."""

    spec: type[BaseModel]
    #: The error's place relative to `spec`, and in the file.
    relative: Loc
    loc: Loc
    kind: str
    value: Any
    context: dict[str, Any]
    message: str
    manifest: FileManifest

    @property
    def key(self) -> str | int | None:
        return self.relative[-1] if self.relative else None

    @property
    def field(self) -> str | None:
        return self.key if isinstance(self.key, str) else None

    @property
    def secret(self) -> bool:
        """Whatever sits under credentials may be a pasted secret: never repeat it."""
        return "credentials" in self.loc

    @property
    def provider_type(self) -> str | None:
        return _PROVIDER_TYPES.get(self.spec)

    def error(self, message: str, *, hint: str | None = None, at: Loc | None = None) -> Explained:
        return 0, self.manifest.error(self.loc, message, hint=hint, at=at)


#: A ManifestError and its priority: the lower is reported first.
Explained = tuple[int, ManifestError]


def _explain(
    detail: ErrorDetails, spec: type[BaseModel], base: Loc, manifest: FileManifest
) -> Explained:
    """One pydantic error as (priority, ManifestError); the lower priority is reported first."""
    relative: Loc = tuple(detail["loc"])
    found = _Detail(
        spec=spec,
        relative=relative,
        loc=(*base, *relative),
        kind=detail["type"],
        value=detail["input"],
        context=dict(detail.get("ctx") or {}),
        message=detail["msg"],
        manifest=manifest,
    )
    if found.kind in _EXPECTED:
        return _wrong_type(found)
    explain = _BY_KIND.get(found.kind, _otherwise)
    return explain(found)


def _unknown_key(found: _Detail) -> Explained:
    key = found.field
    if key is None:
        return _otherwise(found)
    allowed = _fields_at(found.spec, found.relative[:-1])
    suggestion = _did_you_mean(key, allowed)
    if not suggestion and f"{key}_env" in allowed:
        suggestion = f" (did you mean '{key}_env'?)"
    allowed_hint = f"keys allowed here: {', '.join(allowed)}" if allowed else "remove it"
    message = f"unknown key {_quote(key)}{suggestion}"
    hint = _CREDENTIALS_HINT if found.secret else allowed_hint
    return 0, found.manifest.error(found.loc[:-1], message, hint=hint, at=found.loc)


def _missing(found: _Detail) -> Explained:
    key = found.field
    if key is None:
        return _otherwise(found)
    parent = found.loc[:-1]
    message = f"missing required key {key!r}"
    return 1, found.manifest.error(parent, message, hint=_missing_hint(key), at=parent)


def _wrong_type(found: _Detail) -> Explained:
    expected, hint = _expected(found)
    if hint is None and expected == "a table":
        hint = "write a [table] with its keys below it, or an inline table { key = value }"
    given = _describe(found.value, show=not found.secret)
    return found.error(f"expected {expected}, got {given}", hint=hint)


def _expected(found: _Detail) -> tuple[str, str | None]:
    """What a value of the wrong type should have been, and how to write it."""
    field, kind = found.field, found.kind
    if field == "versions":
        return (
            "an array of version names or [[models.versions]] tables",
            'write versions = ["v1", "v2"], or a [[models.versions]] table per version',
        )
    if isinstance(found.key, int) and found.loc[-2:-1] == ("versions",):
        return (
            "a version name or a table",
            'write each version as a name ("v1") or a table ({ name = "v1" })',
        )
    if field in ("protect", "ignore") and found.spec in (Policy, PolicyOverrides):
        return "an array of glob strings", f'write {field} = ["prod-*"]'
    expected = _EXPECTED[kind]
    if field == "credentials":
        return expected, _CREDENTIALS_HINT
    hint = _TYPE_HINTS.get(kind)
    return expected, hint.format(field) if hint and field else None


def _literal(found: _Detail) -> Explained:
    value = found.value
    options = str(found.context.get("expected", ""))
    choices = re.findall(r"'([^']*)'", options)
    shown = _quote(value) if isinstance(value, str) else _describe(value)
    message = f"{shown} is not allowed: expected {options}"
    if isinstance(value, str):
        message += _did_you_mean(value, choices)
    return found.error(message, hint=f"use one of {', '.join(choices)}")


def _pattern(found: _Detail) -> Explained:
    field, pattern = found.field, str(found.context.get("pattern"))
    if found.secret or pattern == ENV_NAME_PATTERN:
        return found.error(
            "expected the NAME of an environment variable (letters, digits and '_', not "
            "starting with a digit), got something else: a secret pasted here?",
            hint=secret_hint(str(field), found.provider_type),
        )
    rule = _PATTERN_RULES.get(pattern, f"match {pattern}")
    hint = "a provider is named by the key of its [providers.NAME] table"
    if field and field.endswith("_id"):
        hint = f"{field} is the platform's id as its console or API shows it, not a name"
    if found.loc[:1] == ("state",):
        hint = "the [state] table names where the lock and the journal live (see the README)"
    return found.error(f"invalid {field} {_quote(found.value)}: use {rule}", hint=hint)


def _too_short(found: _Detail) -> Explained:
    least = found.context.get("min_length", 1)
    message = "must not be empty" if least == 1 else f"must be {least} characters or more"
    return found.error(message, hint=f"give a {found.field} of {least} or more characters")


def _too_long(found: _Detail) -> Explained:
    value = found.value
    size, most = len(value) if isinstance(value, str) else 0, found.context.get("max_length")
    message = f"is {size} characters long: at most {most} are allowed"
    return found.error(message, hint=f"shorten {found.field}")


def _shown(value: Any) -> Any:
    """A number as a message shows it: TOML's own words for nan and inf (which fail every
    bound: nan is no number at all), a huge one in words."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan (not a number)" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value if abs(value) < _HUGE else "a huge number"


def _too_small(found: _Detail) -> Explained:
    bound, shown = found.context.get("ge"), _shown(found.value)
    return found.error(
        f"must be {bound} or more, got {shown}", hint=f"use {found.field} = {bound} or more"
    )


def _out_of_range(found: _Detail) -> Explained:
    """Above an exclusive lower bound or an inclusive upper one (max_delete_percent, timeouts)."""
    field, shown = found.field, _shown(found.value)
    if "gt" in found.context:
        message = f"must be more than {found.context['gt']:g}, got {shown}"
    else:
        message = f"must be {found.context.get('le', 0):g} or less, got {shown}"
    if field == "max_delete_percent":
        return found.error(
            message, hint="a percentage: write max_delete_percent = 20 (more than 0, at most 100)"
        )
    return found.error(message, hint=f"change {field}")


def _value_error(found: _Detail) -> Explained:
    message = str(found.context.get("error", found.message))
    value = found.value
    if found.secret:
        return found.error(message, hint=_CREDENTIALS_HINT)
    if (
        found.spec is ModelSpec
        and not found.relative
        and isinstance(value, dict)
        and "absent" in value
    ):
        other = "versions" if "versions" in message else "protect = true"
        hint = f"remove {other} to delete the whole model, or remove absent = true to keep it"
        return found.error(message, hint=hint, at=(*found.loc, "absent"))
    return found.error(message)


def _otherwise(found: _Detail) -> Explained:
    message = found.message.removeprefix("Input should be ").removeprefix("Value error, ")
    return found.error(f"invalid value: {message}")


_BY_KIND: dict[str, Callable[[_Detail], Explained]] = {
    "extra_forbidden": _unknown_key,
    "missing": _missing,
    "literal_error": _literal,
    "string_pattern_mismatch": _pattern,
    "string_too_short": _too_short,
    "string_too_long": _too_long,
    "greater_than_equal": _too_small,
    "greater_than": _out_of_range,
    "less_than_equal": _out_of_range,
    "value_error": _value_error,
}
_TYPE_HINTS = {
    "bool_type": "write {0} = true or {0} = false, without quotes",
    "int_type": "write {0} = 3: a whole number, without quotes",
    "string_type": 'write {0} = "...", in quotes',
}


def _missing_hint(key: str) -> str:
    hints = {
        "name": 'add name = "..."',
        "provider": 'add provider = "NAME", naming one of the [providers.NAME] tables',
        "endpoint": 'add endpoint = "https://..." (or "emulator:STATE.json")',
        "workspace_id": 'add workspace_id = "..." (the Fabric workspace id)',
    }
    return hints.get(key, f"add {key} = ... to this table")


def _fields_at(spec: type[BaseModel], loc: Loc) -> list[str]:
    """The keys a table at `loc` (relative to `spec`) accepts; [] when it is not a table."""
    owner = _spec_at(spec, loc)
    return [] if owner is None else list(owner.model_fields)


def _unwrap(annotation: Any) -> Any:
    """`Annotated[X, ...]` and `X | None` -> X."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _spec_at(spec: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The record class of the table at `loc` relative to `spec` (None: not a table)."""
    current: Any = spec
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field_info = current.model_fields.get(str(part))
            current = None if field_info is None else field_info.annotation
        elif get_origin(current) in (tuple, list) and isinstance(part, int):
            current = get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


#: Integers from here on are not spelt out in messages (Python refuses to for the longest ones).
_HUGE = 10**30


def _describe(value: Any, *, show: bool = True) -> str:
    """A TOML value's type in words, with the value itself when short and `show` allows."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})" if show else "a boolean"
    if isinstance(value, int):
        if abs(value) >= _HUGE:
            return "a huge integer"
        return f"an integer ({value})" if show else "an integer"
    if isinstance(value, float):
        return f"a float ({value})" if show else "a float"
    if isinstance(value, str):
        if not show:
            return "a string"
        return f"a string ({_quote(value)})"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return "a date/time"
    return f"a {type(value).__name__}"


def _quote(text: str) -> str:
    """A value from the file, quoted for a message; cut short when long."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _quoted_list(words: Iterable[str]) -> str:
    return ", ".join(repr(word) for word in words)


def _tuples(value: Any) -> Any:
    """TOML arrays as tuples, so that strict validation accepts them for tuple fields."""
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    if isinstance(value, dict):
        return {key: _tuples(item) for key, item in value.items()}
    return value
