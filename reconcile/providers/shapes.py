"""Checking the shape of platform responses: one error per surprise, naming where it was.

Parsers read recorded JSON with these helpers instead of trusting it: a missing field, a wrong
type or a malformed time is a `ShapeError` that names the call and the field path, never a
KeyError or TypeError deep in the planner.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from reconcile.errors import ProviderError

T = TypeVar("T")


class ShapeError(ProviderError):
    """A response that does not have the documented shape."""


def json_type(kind: type) -> str:
    """Python type -> the JSON word a reader of the platform's docs knows."""
    if kind is bool:
        return "a boolean"
    names = {dict: "an object", list: "an array", str: "a string", int: "an integer"}
    return names.get(kind, kind.__name__)


def field(item: Any, key: str, kind: type[T], where: str, *, optional: bool = False) -> T | None:
    """`item[key]`, which must be of `kind` (or absent/null when `optional`)."""
    if type(item) is dict:
        value = item.get(key)
        if type(value) is kind:
            return value  # the common case (a parsed JSON value of exactly that type) at once
    if not isinstance(item, dict):
        raise ShapeError(f"{where}: expected an object, got {json_type(type(item))}")
    value = item.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        got = "nothing" if value is None else json_type(type(value))
        raise ShapeError(f"{where}: field {key!r} should be {json_type(kind)}, got {got}")
    return value


def required(item: Any, key: str, kind: type[T], where: str) -> T:
    value = field(item, key, kind, where)
    assert value is not None  # field() raised otherwise
    return value


def strings(item: Any, key: str, where: str) -> list[str]:
    """An optional array of strings."""
    values = field(item, key, list, where, optional=True) or []
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise ShapeError(
                f"{where}: {key}[{index}] should be a string, got {json_type(type(value))}"
            )
    return list(values)


def timestamp(item: Any, key: str, where: str) -> datetime | None:
    """An optional ISO 8601 time; one without an offset is taken as UTC, so that every time
    compares with every other."""
    text = field(item, key, str, where, optional=True)
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ShapeError(f"{where}: field {key!r} is not an ISO 8601 time: {text!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
