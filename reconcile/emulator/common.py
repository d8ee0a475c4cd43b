"""Helpers both platform modules use: JSON records, times, state checks, the state's sections.

Only what is the same on both platforms lives here; each platform's words (codes, messages,
field names) stay in its own module.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

Json = dict[str, Any]

# Every method a route may answer, for the catch-all routes of paths no API has.
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def json_bytes(value: Any, **options: Any) -> bytes:
    """`value` as JSON in UTF-8, every script as it is, unless it holds a lone surrogate (an
    escaped "\\ud800" in a state file or a request, read as it was): UTF-8 has none, so then
    the whole text is written in ASCII escapes, which read back as the same value."""
    text = json.dumps(value, ensure_ascii=False, **options)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, **options).encode()


def time_key(value: Any) -> datetime:
    """A record's time field as a sortable, timezone-aware datetime (the oldest possible one
    when it is not an ISO 8601 time)."""
    return _parsed_time(value if isinstance(value, str) else str(value))


@functools.lru_cache(maxsize=1 << 17)  # a sort of 10,000 records parses each time once
def _parsed_time(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def newest_first(items: Iterable[Json], time_field: str, id_field: str) -> list[Json]:
    """Records newest first by ``time_field``, ties broken by ``id_field`` (also descending)."""
    return sorted(items, key=_recency(time_field, id_field), reverse=True)


def newest(items: Iterable[Json], time_field: str, id_field: str) -> Json | None:
    """The first record of `newest_first` (the first of equals, as that stable sort keeps
    them), without sorting them all."""
    return max(items, key=_recency(time_field, id_field), default=None)


def _recency(time_field: str, id_field: str) -> Callable[[Json], tuple[datetime, str]]:
    return lambda item: (time_key(item.get(time_field)), str(item.get(id_field, "")))


def section(state: Mapping[str, Any], platform: str) -> Json:
    """A platform's section of the live state (empty when the state has none)."""
    found: Json = state.get(platform) or {}
    return found


# -- checks of a freshly loaded state ---------------------------------------------------------


class BadState(ValueError):
    """The emulator's state cannot be used: its file cannot be read or is not a JSON object, or
    a record fails the checks made on loading it (each message names the file or the record)."""


def require(condition: bool, where: str, problem: str) -> None:
    if not condition:
        raise BadState(f"emulator state: {where}: {problem}")


def check_time(record: Json, key: str, where: str) -> None:
    value = record[key]
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise BadState(f"emulator state: {where}.{key}: not an ISO 8601 time: {value!r}") from None


def check_unique(values: Iterable[object], where: str, what: str) -> None:
    seen: set[object] = set()
    for value in values:
        require(value not in seen, where, f"{what} {value!r} appears twice")
        seen.add(value)
