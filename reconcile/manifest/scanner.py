"""Where each table, array element and key of a TOML document is declared.

tomllib reports no positions, so error messages get their line numbers from this scanner, which
re-reads the text that tomllib has already accepted.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Mapping

#: A place in a TOML document: table names and keys, and indexes into arrays (pydantic's `loc`).
Loc = tuple[str | int, ...]


def scan_key_lines(text: str) -> dict[Loc, int]:
    """Where each table, array element and key of a TOML document is declared: loc -> 1-based line.

    tomllib reports no positions, so this re-reads the text: table headers (`[a.b]`, `[[models]]`
    with its running index, `[[models.versions]]` under the current model), `key = value` lines with
    dotted and quoted keys, and the elements and keys inside arrays and inline tables. A table
    declared by its own header wins over one implied by a deeper header or a dotted key. The text
    is expected to be valid TOML (tomllib has read it); anything not understood is skipped.
    """
    return _KeyLineScanner(text).scan()


def line_of(lines: Mapping[Loc, int], loc: Loc) -> int | None:
    """The line of `loc`, else of the nearest enclosing table or key that has one; None if none."""
    for end in range(len(loc), 0, -1):
        line = lines.get(loc[:end])
        if line is not None:
            return line
    return None


def toml_path(loc: Loc) -> str:
    """`("models", 2, "versions", 0)` -> `models[2].versions[0]`, quoting keys TOML would quote."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)
            path += f".{key}" if path else key
    return path


# --- The key-line scanner ------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_WS = r"[ \t]*"
_KEY_PART = r"""[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*'"""
_KEY = rf"(?:{_KEY_PART})(?:{_WS}\.{_WS}(?:{_KEY_PART}))*"
_KEY_PART_RE = re.compile(_KEY_PART)
_SKIP_RE = re.compile(r"(?:[ \t\r\n]+|#[^\n]*)*")
_KEY_VALUE_RE = re.compile(rf"({_KEY}){_WS}={_WS}")
#: The rest of a line after a header or a value: spaces and a comment.
_LINE_END = r"[ \t]*(?:#[^\n]*)?(?=\r?\n|\Z)"
#: One line: a header, or a key with a one-line value (the common case, read in one match), or
#: anything else (a blank or comment line: no group). `key` without `value` starts a value that
#: needs a closer look: an array, inline table, multi-line string or date-time with a space.
_LINE_RE = re.compile(
    rf"^{_WS}(?:"
    rf"\[\[{_WS}(?P<array>{_KEY}){_WS}\]\]{_LINE_END}"
    rf"|\[{_WS}(?P<table>{_KEY}){_WS}\]{_LINE_END}"
    rf"|(?P<key>{_KEY}){_WS}={_WS}"
    rf"""(?P<value>(?:"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s"'\[\]{{}},#]+){_LINE_END})?"""
    r")?",
    re.MULTILINE,
)
_SCALAR_RES = (
    re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*""""{0,2}', re.DOTALL),
    re.compile(r"'''.*?''''{0,2}", re.DOTALL),
    re.compile(r'"(?:[^"\\\n]|\\.)*"'),
    re.compile(r"'[^'\n]*'"),
    re.compile(r"[^\s,\]}#]+"),
)
_ESCAPE_RE = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)", re.DOTALL)
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    if code[0] in "uU" and len(code) > 1:
        try:
            return chr(int(code[1:], 16))
        except ValueError:  # beyond U+10FFFF: tomllib refuses it before we get here
            return code
    return _ESCAPES.get(code, code)


def _key_parts(key: str) -> tuple[str, ...]:
    parts: list[str] = []
    for match in _KEY_PART_RE.finditer(key):
        part = match.group()
        if part.startswith('"'):
            part = _ESCAPE_RE.sub(_unescape, part[1:-1])
        elif part.startswith("'"):
            part = part[1:-1]
        parts.append(part)
    return tuple(parts)


class _Container:
    """An array or inline table being read: where it is and what comes next in it."""

    __slots__ = ("index", "is_array", "path", "wants_item")

    def __init__(self, path: Loc, *, is_array: bool) -> None:
        self.path = path
        self.is_array = is_array
        self.index = 0
        self.wants_item = True


class _KeyLineScanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.lines: dict[Loc, int] = {}
        #: Arrays of tables seen so far (their resolved path) and how many elements each has.
        self.array_tables: dict[Loc, int] = {}
        self.key_parts: dict[str, tuple[str, ...]] = {}
        self.line_starts: list[int] = []

    def scan(self) -> dict[Loc, int]:
        text, pos, line = self.text, 0, 1
        lines, key_parts = self.lines, self.key_parts
        table: Loc = ()
        while pos < len(text):
            # One match per line, until a value spans more than its line: read that one closely,
            # then go on from the line after it.
            for match in _LINE_RE.finditer(text, pos):
                kind = match.lastgroup
                if kind == "value":  # the hot path: a plain `key = value` line
                    parts = key_parts.get(match["key"]) or self._parts(match["key"])
                    if len(parts) == 1:
                        lines[table + parts] = line
                    else:
                        self._record(table + parts, line, known=len(table))
                elif kind == "key":
                    loc = table + self._parts(match["key"])
                    self._record(loc, line, known=len(table))
                    newline = text.find("\n", self._value(match.end(), loc))
                    if newline < 0:
                        return self.lines
                    pos = newline + 1
                    line += text.count("\n", match.start(), pos)
                    break
                elif kind == "array":
                    *parents, last = self._parts(match["array"])
                    array = (*self._resolve(parents), last)
                    index = self.array_tables.get(array, 0)
                    self.array_tables[array] = index + 1
                    table = (*array, index)
                    self._record(table, line, known=0)
                elif kind == "table":
                    table = self._resolve(self._parts(match["table"]))
                    self._record(table, line, known=0)
                line += 1
            else:
                break
        return self.lines

    def _line_at(self, pos: int) -> int:
        if not self.line_starts:
            self.line_starts = [0, *(match.end() for match in re.finditer("\n", self.text))]
        return bisect_right(self.line_starts, pos)

    def _skip(self, pos: int) -> int:
        match = _SKIP_RE.match(self.text, pos)
        return match.end() if match else pos

    def _parts(self, key: str) -> tuple[str, ...]:
        parts = self.key_parts.get(key)
        if parts is None:
            parts = self.key_parts[key] = _key_parts(key)
        return parts

    def _resolve(self, keys: list[str] | tuple[str, ...]) -> Loc:
        """A header's keys as a loc: a key naming an array of tables means its last element."""
        path: Loc = ()
        for key in keys:
            path = (*path, key)
            count = self.array_tables.get(path)
            if count:
                path = (*path, count - 1)
        return path

    def _record(self, loc: Loc, line: int, *, known: int) -> None:
        """`loc` is declared on `line`; the tables it implies (beyond the first `known`) too.

        Valid TOML declares each key and table once, so a declaration replaces what an earlier
        deeper header or dotted key implied; implied tables keep their first position.
        """
        for end in range(max(known, 1), len(loc)):
            self.lines.setdefault(loc[:end], line)
        self.lines[loc] = line

    def _value(self, pos: int, loc: Loc) -> int:
        """Read the value starting at `pos` (recording what is inside it); return where it ends."""
        text = self.text
        containers: list[_Container] = []
        starting: Loc | None = loc  # the loc of a value that starts at `pos`
        while pos < len(text):
            if starting is not None:
                if text[pos] in "[{":
                    containers.append(_Container(starting, is_array=text[pos] == "["))
                    pos += 1
                else:
                    pos = self._scalar_end(pos)
                    if not containers:
                        return pos
                starting = None
                continue
            pos = self._skip(pos)
            if pos >= len(text):
                break
            if text[pos] in "]}":
                containers.pop()
                pos += 1
                if not containers:
                    return pos
            else:
                pos, starting = self._in_container(pos, containers[-1])
        return pos

    def _in_container(self, pos: int, container: _Container) -> tuple[int, Loc | None]:
        """One step inside an array or inline table, at `pos` (not a closing bracket): where the
        next step starts, and the loc of a value that starts there (None: no value starts)."""
        text = self.text
        if text[pos] == ",":
            if container.is_array:
                container.index += 1
            container.wants_item = True
            return pos + 1, None
        if not container.wants_item:
            return self._scalar_end(pos), None  # e.g. the time of a date-time with a space
        if container.is_array:
            container.wants_item = False
            starting = (*container.path, container.index)
            self._record(starting, self._line_at(pos), known=len(container.path))
            return pos, starting
        if match := _KEY_VALUE_RE.match(text, pos):
            container.wants_item = False
            starting = container.path + self._parts(match.group(1))
            self._record(starting, self._line_at(pos), known=len(container.path))
            return match.end(), starting
        return pos + 1, None

    def _scalar_end(self, pos: int) -> int:
        for pattern in _SCALAR_RES:
            match = pattern.match(self.text, pos)
            if match and match.end() > pos:
                return match.end()
        return pos + 1
