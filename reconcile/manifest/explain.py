"""Pydantic's validation errors in the user's terms: the TOML path, what was expected, the fix.

Nothing here repeats a value found under `credentials`: it may be a pasted secret.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from datetime import date, datetime, time
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from reconcile.errors import ManifestError
from reconcile.manifest.scanner import Loc
from reconcile.manifest.source import FileManifest
from reconcile.manifest.specs import (
    ENV_NAME_PATTERN,
    FABRIC_ID_PATTERN,
    NAME_PATTERN,
    ModelSpec,
    Policy,
    PolicyOverrides,
)

_CREDENTIALS_HINT = (
    'write credentials = { token_env = "NAME" } or { ak_env = "AK_NAME", sk_env = "SK_NAME" }: '
    "the names of environment variables that hold the secrets"
)
_PATTERN_RULES = {
    NAME_PATTERN: "1 to 64 letters, digits, '_' and '-'",
    FABRIC_ID_PATTERN: "1 to 36 letters, digits and '-' (a Fabric id)",
    r"^[A-Za-z0-9-]{1,64}$": "1 to 64 letters, digits and '-'",
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


def _explain(
    detail: ErrorDetails, spec: type[BaseModel], base: Loc, manifest: FileManifest
) -> tuple[int, ManifestError]:
    """One pydantic error as (priority, ManifestError); the lower priority is reported first."""
    hint: str | None
    relative: Loc = tuple(detail["loc"])
    loc = (*base, *relative)
    kind, value, context = detail["type"], detail["input"], detail.get("ctx") or {}
    key = relative[-1] if relative else None
    field = key if isinstance(key, str) else None
    # Whatever sits under credentials may be a pasted secret: never repeat it.
    secret = "credentials" in loc
    if kind == "extra_forbidden" and isinstance(key, str):
        allowed = _fields_at(spec, relative[:-1])
        suggestion = _did_you_mean(key, allowed)
        if not suggestion and f"{key}_env" in allowed:
            suggestion = f" (did you mean '{key}_env'?)"
        allowed_hint = f"keys allowed here: {', '.join(allowed)}" if allowed else "remove it"
        message = f"unknown key {_quote(key)}{suggestion}"
        return 0, manifest.error(
            loc[:-1], message, hint=_CREDENTIALS_HINT if secret else allowed_hint, at=loc
        )
    if kind == "missing" and isinstance(key, str):
        return 1, manifest.error(
            loc[:-1], f"missing required key {key!r}", hint=_missing_hint(key), at=loc[:-1]
        )
    if kind in _EXPECTED:
        expected = _EXPECTED[kind]
        hint = None
        if field == "versions":
            expected = "an array of version names or [[models.versions]] tables"
            hint = 'write versions = ["v1", "v2"], or a [[models.versions]] table per version'
        elif isinstance(key, int) and loc[-2:-1] == ("versions",):
            expected = "a version name or a table"
            hint = 'write each version as a name ("v1") or a table ({ name = "v1" })'
        elif field in ("protect", "ignore") and spec in (Policy, PolicyOverrides):
            expected = "an array of glob strings"
            hint = f'write {field} = ["prod-*"]'
        elif field == "credentials":
            hint = _CREDENTIALS_HINT
        elif kind == "bool_type" and field:
            hint = f"write {field} = true or {field} = false, without quotes"
        elif kind == "int_type" and field:
            hint = f"write {field} = 3: a whole number, without quotes"
        elif kind == "string_type" and field:
            hint = f'write {field} = "...", in quotes'
        if hint is None and expected == "a table":
            hint = "write a [table] with its keys below it, or an inline table { key = value }"
        given = _describe(value, show=not secret)
        return 0, manifest.error(loc, f"expected {expected}, got {given}", hint=hint)
    if kind == "literal_error":
        options = str(context.get("expected", ""))
        choices = re.findall(r"'([^']*)'", options)
        shown = repr(value) if isinstance(value, str) else _describe(value)
        message = f"{shown} is not allowed: expected {options}"
        if isinstance(value, str):
            message += _did_you_mean(value, choices)
        return 0, manifest.error(loc, message, hint=f"use one of {', '.join(choices)}")
    if kind == "string_pattern_mismatch":
        if secret or context.get("pattern") == ENV_NAME_PATTERN:
            return 0, manifest.error(
                loc,
                "expected the NAME of an environment variable (letters, digits and '_', not "
                "starting with a digit), got something else: a secret pasted here?",
                hint=_secret_hint(str(field)),
            )
        rule = _PATTERN_RULES.get(str(context.get("pattern")), f"match {context.get('pattern')}")
        hint = "a provider is named by the key of its [providers.NAME] table"
        if field and field.endswith("_id"):
            hint = f"{field} is the platform's id as its console or API shows it, not a name"
        return 0, manifest.error(loc, f"invalid {field} {_quote(value)}: use {rule}", hint=hint)
    if kind == "string_too_short":
        least = context.get("min_length", 1)
        message = "must not be empty" if least == 1 else f"must be {least} characters or more"
        return 0, manifest.error(loc, message, hint=f"give a {field} of {least} or more characters")
    if kind == "string_too_long":
        size, most = len(value) if isinstance(value, str) else 0, context.get("max_length")
        message = f"is {size} characters long: at most {most} are allowed"
        return 0, manifest.error(loc, message, hint=f"shorten {field}")
    if kind == "greater_than_equal":
        bound = context.get("ge")
        return 0, manifest.error(
            loc,
            f"must be {bound} or more, got {value if abs(value) < _HUGE else 'a huge number'}",
            hint=f"use {field} = {bound} or more",
        )
    if kind == "value_error":
        message = str(context.get("error", detail["msg"]))
        if "credentials" in loc:
            return 0, manifest.error(loc, message, hint=_CREDENTIALS_HINT)
        if spec is ModelSpec and not relative and isinstance(value, dict) and "absent" in value:
            other = "versions" if "versions" in message else "protect = true"
            hint = f"remove {other} to delete the whole model, or remove absent = true to keep it"
            return 0, manifest.error(loc, message, hint=hint, at=(*loc, "absent"))
        return 0, manifest.error(loc, message)
    message = detail["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
    return 0, manifest.error(loc, f"invalid value: {message}")


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


def _secret_hint(key: str) -> str:
    example = {
        "token_env": "FABRIC_TOKEN",
        "ak_env": "HUAWEICLOUD_SDK_AK",
        "sk_env": "HUAWEICLOUD_SDK_SK",
        "security_token_env": "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    }.get(key, "MY_SECRET")
    return (
        f'write {key} = "{example}" and export the secret in that variable; if a real secret was '
        "written here, rotate it: it may already be in version control"
    )
