"""Manifests: the desired state, read from TOML files kept in git.

The schema (frozen pydantic records) comes first, then the loader: `load_manifest` reads a file or
a folder of files, validates it strictly (TOML types count: "2" is not an integer) and turns every
problem into one `ManifestError` that names the file, the line and the TOML path at fault.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import fnmatch
import ipaddress
import itertools
import json
import re
import tomllib
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date, datetime, time
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from reconcile.errors import ManifestError
from reconcile.model import digest

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
#: Fabric path ids (seed 000): 1 to 36 letters, digits and '-'.
FABRIC_ID_PATTERN = r"^[A-Za-z0-9-]{1,36}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Credentials(Spec):
    """Names of environment variables that hold secrets; never the secrets themselves."""

    token_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)] | None = Field(
        None, description="Environment variable holding a token (Fabric: sent as X-Auth-Token)."
    )
    ak_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)] | None = Field(
        None, description="Environment variable holding the access key (AK); give sk_env too."
    )
    sk_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)] | None = Field(
        None, description="Environment variable holding the secret key (SK); give ak_env too."
    )
    security_token_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)] | None = Field(
        None, description="Environment variable holding the security token of temporary keys."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Credentials:
        has_token = self.token_env is not None
        has_keys = self.ak_env is not None or self.sk_env is not None
        if has_token and has_keys:
            raise ValueError("give either token_env or ak_env + sk_env, not both")
        if has_keys and (self.ak_env is None or self.sk_env is None):
            raise ValueError("ak_env and sk_env go together: give both")
        if not has_token and not has_keys:
            raise ValueError("give token_env, or ak_env and sk_env")
        return self


class PolicyOverrides(Spec):
    """A `[providers.X.policy]` table: each key given replaces the global one for that provider."""

    protect: tuple[str, ...] | None = Field(
        None, description="Replaces the global [policy] protect for this provider."
    )
    ignore: tuple[str, ...] | None = Field(
        None, description="Replaces the global [policy] ignore for this provider."
    )
    keep_latest: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Replaces the global [policy] keep_latest for this provider."
    )
    max_deletes: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Replaces the global [policy] max_deletes for this provider."
    )
    confirm_name_above: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Replaces the global [policy] confirm_name_above for this provider."
    )
    retry_attempts: Annotated[int, Field(ge=1, le=20)] | None = Field(
        None, description="Replaces the global [policy] retry_attempts for this provider."
    )
    request_timeout: Annotated[float, Field(gt=0, le=600)] | None = Field(
        None, description="Replaces the global [policy] request_timeout for this provider."
    )


class Policy(Spec):
    #: Globs on model names or "model/version": never deleted, whatever else says.
    protect: tuple[str, ...] = Field(
        (),
        description='Globs on model names or "model/version": never deleted, whatever else says.',
    )
    #: Globs on model names or "model/version": not managed at all (never deleted, no drift).
    ignore: tuple[str, ...] = Field(
        (),
        description='Globs on model names or "model/version": not managed at all (never '
        "deleted, never reported as drift).",
    )
    #: Undeclared versions of a managed model: the N newest stay anyway.
    keep_latest: Annotated[int, Field(ge=0)] = Field(
        0, description="Undeclared versions of a declared model: the N newest are kept anyway."
    )
    #: Apply refuses a plan that deletes more than this (override: --max-deletes).
    max_deletes: Annotated[int, Field(ge=0)] = Field(
        25,
        description="Apply refuses a plan that deletes more than this per provider "
        "(override: --max-deletes).",
    )
    #: Above this many deletes, interactive apply asks for the workspace name instead of "yes".
    confirm_name_above: Annotated[int, Field(ge=0)] = Field(
        10,
        description="Above this many deletes, interactive apply asks for the workspace name "
        'instead of "yes".',
    )
    #: Tries per request on timeouts, 408, 429 and 5xx (override: --attempts).
    retry_attempts: Annotated[int, Field(ge=1, le=20)] = Field(
        4, description="Tries per request on timeouts, 408, 429 and 5xx (override: --attempts)."
    )
    #: Seconds one attempt may take (override: --timeout).
    request_timeout: Annotated[float, Field(gt=0, le=600)] = Field(
        30.0, description="Seconds one attempt may take (override: --timeout)."
    )

    def merged(self, overrides: PolicyOverrides | None) -> Policy:
        if overrides is None:
            return self
        given = {key: value for key, value in overrides.model_dump().items() if value is not None}
        return self.model_copy(update=given)


class ProviderBase(Spec):
    #: "declared": only declared models are managed; "workspace": the manifest is the whole truth.
    scope: Literal["declared", "workspace"] = Field(
        "declared",
        description='"declared": only declared models are managed; "workspace": the manifests '
        "are the whole truth (anything undeclared is deleted).",
    )
    #: Let a "workspace" scope with no declared model delete everything in it.
    allow_empty: bool = Field(
        False,
        description='Let a "workspace" scope with no declared model delete everything in it.',
    )
    policy: PolicyOverrides | None = Field(
        None, description="Policy keys that replace the global [policy] ones for this provider."
    )


class FabricProvider(ProviderBase):
    type: Literal["fabric"] = Field(description="Huawei Cloud DataArts Fabric.")
    #: https URL of the Fabric API, or "emulator:STATE.json" for the built-in emulator.
    endpoint: str = Field(
        description='https URL of the Fabric API, or "emulator:STATE.json" for the built-in '
        "emulator (relative to the manifest)."
    )
    #: Host of the inference services (fabric-ep); defaults to `endpoint`.
    services_endpoint: str | None = Field(
        None, description="URL of the inference services API (fabric-ep); default: endpoint."
    )
    workspace_id: Annotated[str, Field(pattern=FABRIC_ID_PATTERN)] = Field(
        description="The DataArts Fabric workspace id."
    )
    project_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")] | None = Field(
        None, description="The project id, for AK/SK signing."
    )
    #: Required for real endpoints; the emulator uses its fixed demo credentials.
    credentials: Credentials | None = Field(
        None,
        description="Names of the environment variables holding the secrets; required for real "
        "endpoints, not for emulator: ones.",
    )


class QianfanProvider(ProviderBase):
    type: Literal["qianfan"] = Field(description="Baidu AI Cloud Qianfan.")
    endpoint: str = Field(
        "https://qianfan.baidubce.com",
        description='https URL of the Qianfan API, or "emulator:STATE.json" for the built-in '
        "emulator.",
    )
    credentials: Credentials | None = Field(
        None,
        description="Names of the environment variables holding the secrets; required for real "
        "endpoints, not for emulator: ones.",
    )
    #: How whole models are deleted: the V1 batch call (fewest calls) or V2 DeleteModelSet.
    model_delete: Literal["v1_batch", "v2"] = Field(
        "v1_batch",
        description="How whole models are deleted: the V1 batch call (fewest calls) or V2 "
        "DeleteModelSet.",
    )


ProviderConfig = Annotated[FabricProvider | QianfanProvider, Field(discriminator="type")]


class VersionSpec(Spec):
    name: Annotated[str, Field(min_length=1, max_length=128)] = Field(
        description="The version's name; live versions are matched by it (or by id)."
    )
    id: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="The platform's version id: match this one live version by id."
    )
    description: str | None = Field(
        None, description="Compared with the live one: drift when it differs."
    )
    base_model_type: str | None = Field(
        None, description="Compared with the live one (Fabric): drift when it differs."
    )
    model_path: str | None = Field(
        None, description="Compared with the live one (Fabric): drift when it differs."
    )
    protect: bool = Field(False, description="true: never deleted.")

    def declared_attributes(self) -> dict[str, str]:
        return {
            key: value
            for key in ("description", "base_model_type", "model_path")
            if (value := getattr(self, key)) is not None
        }


class ModelSpec(Spec):
    provider: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(
        description="The NAME of a [providers.NAME] table."
    )
    name: Annotated[str, Field(min_length=1, max_length=128)] = Field(
        description="The model's name; live models are matched by it (or by id)."
    )
    id: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="The platform's model id: match this one live model by id."
    )
    description: str | None = Field(
        None, description="Compared with the live one: drift when it differs."
    )
    #: None when the key is left out: the model is managed, its versions are not.
    versions: tuple[VersionSpec, ...] | None = Field(
        None,
        description='The versions to keep: names (["v7", "v8"]) or tables. Left out: the model '
        "is managed, its versions are not.",
    )
    #: Declared removal: delete this model (in either scope).
    absent: bool = Field(
        False, description="true: delete this model (a declared removal, in either scope)."
    )
    protect: bool = Field(False, description="true: never deleted.")

    @field_validator("versions", mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        """`versions = ["v7", "v8"]` is short for a table per name."""
        # A tuple too: the loader validates strictly, with TOML arrays turned into tuples.
        if isinstance(value, list | tuple):
            return tuple({"name": item} if isinstance(item, str) else item for item in value)
        return value

    @model_validator(mode="after")
    def _absent_alone(self) -> ModelSpec:
        if self.absent and self.versions:
            raise ValueError("a model declared absent = true cannot also declare versions")
        if self.absent and self.protect:
            raise ValueError("a model cannot be both absent = true and protect = true")
        return self

    def declared_attributes(self) -> dict[str, str]:
        return {} if self.description is None else {"description": self.description}


class Location(Spec):
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Manifest(Spec):
    providers: dict[str, ProviderConfig]
    policy: Policy = Policy()
    models: tuple[ModelSpec, ...] = ()
    #: Where things were declared, for messages: "providers.NAME" and "models.PROVIDER/NAME".
    origins: dict[str, Location] = {}
    #: The file or folder the manifest was loaded from.
    root: Path = Path()

    def policy_for(self, provider: str) -> Policy:
        return self.policy.merged(self.providers[provider].policy)

    def models_for(self, provider: str) -> tuple[ModelSpec, ...]:
        """The models declared for one provider, in manifest order."""
        return tuple(model for model in self.models if model.provider == provider)

    def digest(self) -> str:
        """Digest of what the manifest means (comments and layout do not count)."""
        return digest(self.model_dump(mode="json", include={"providers", "policy", "models"}))


def is_glob_match(patterns: tuple[str, ...], *names: str) -> str | None:
    """The first pattern that matches any of `names` (fnmatch-style, case-sensitive), or None."""
    for pattern in patterns:
        regex = _glob_regex(pattern)
        if any(regex.match(name) for name in names):
            return pattern
    return None


_GLOB_CACHE: dict[str, re.Pattern[str]] = {}


def _glob_regex(pattern: str) -> re.Pattern[str]:
    regex = _GLOB_CACHE.get(pattern)
    if regex is None:
        regex = _GLOB_CACHE[pattern] = re.compile(fnmatch.translate(pattern))
    return regex


# --- Loading -------------------------------------------------------------------------------------

#: A place in a TOML document: table names and keys, and indexes into arrays (pydantic's `loc`).
Loc = tuple[str | int, ...]

TOP_LEVEL_KEYS = ("providers", "policy", "models")
PROVIDER_TYPES: dict[str, type[FabricProvider] | type[QianfanProvider]] = {
    "fabric": FabricProvider,
    "qianfan": QianfanProvider,
}
EMULATOR_PREFIX = "emulator:"
_CREDENTIAL_EXAMPLES = {
    "fabric": '{ ak_env = "HUAWEICLOUD_SDK_AK", sk_env = "HUAWEICLOUD_SDK_SK" }',
    "qianfan": '{ ak_env = "QIANFAN_ACCESS_KEY", sk_env = "QIANFAN_SECRET_KEY" }',
}
_CREDENTIALS_HINT = (
    'write credentials = { token_env = "NAME" } or { ak_env = "AK_NAME", sk_env = "SK_NAME" }: '
    "the names of environment variables that hold the secrets"
)
_PATTERN_RULES = {
    NAME_PATTERN: "1 to 64 letters, digits, '_' and '-'",
    FABRIC_ID_PATTERN: "1 to 36 letters, digits and '-' (a Fabric id)",
    r"^[A-Za-z0-9-]{1,64}$": "1 to 64 letters, digits and '-'",
}
_TOML_DECODE_POSITION = re.compile(
    r"^(?P<message>.*?) \((?:at line (?P<line>\d+), column (?P<column>\d+)|at end of document)\)$",
    re.DOTALL,
)


def manifest_files(path: Path) -> list[Path]:
    """The files a manifest path stands for: the file itself, or a folder's `*.toml` by name.

    Only files directly in the folder count; hidden ones (editor lock and backup files such as
    `.#prod.toml`) are skipped. Paths stay as the user spelled them, joined with the file name.
    """
    try:
        is_file, is_dir = path.is_file(), path.is_dir()
    except OSError as error:  # a name too long, no permission to look
        raise ManifestError(f"cannot open: {error.strerror}", file=str(path)) from None
    if is_file:
        return [path]
    if not is_dir:
        raise ManifestError(
            "no such file or folder",
            file=str(path),
            hint="give a .toml manifest or a folder of them",
        )
    try:
        files = [
            entry
            for entry in path.iterdir()
            if entry.suffix == ".toml" and not entry.name.startswith(".") and entry.is_file()
        ]
    except OSError as error:
        raise ManifestError(f"cannot list the folder: {error.strerror}", file=str(path)) from None
    if not files:
        raise ManifestError(
            "no *.toml manifest in this folder",
            file=str(path),
            hint="add a manifest such as main.toml to the folder, or give the path of a .toml file",
        )
    return sorted(files, key=lambda entry: entry.name)


def load_manifest(path: Path, *, insecure: bool = False) -> Manifest:
    """Read a `.toml` file, or every `*.toml` directly in a folder, into one validated Manifest.

    Files are merged: provider tables and `[[models]]` from all files, `[policy]` from at most one.
    Any problem raises one ManifestError naming the file, the line and the TOML path at fault.
    `insecure` lets endpoints use plain http:// to hosts that are not loopback (--insecure).
    """
    parts = [_load_file(file, str(file), insecure) for file in manifest_files(path)]
    return _merge(parts, path)


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
            container, char = containers[-1], text[pos]
            if char in "]}":
                containers.pop()
                pos += 1
                if not containers:
                    return pos
            elif char == ",":
                if container.is_array:
                    container.index += 1
                container.wants_item = True
                pos += 1
            elif not container.wants_item:
                pos = self._scalar_end(pos)  # e.g. the time of a date-time written with a space
            elif container.is_array:
                container.wants_item = False
                starting = (*container.path, container.index)
                self._record(starting, self._line_at(pos), known=len(container.path))
            elif match := _KEY_VALUE_RE.match(text, pos):
                container.wants_item = False
                starting = container.path + self._parts(match.group(1))
                self._record(starting, self._line_at(pos), known=len(container.path))
                pos = match.end()
            else:
                pos += 1
        return pos

    def _scalar_end(self, pos: int) -> int:
        for pattern in _SCALAR_RES:
            match = pattern.match(self.text, pos)
            if match and match.end() > pos:
                return match.end()
        return pos + 1


# --- Reading and validating one file --------------------------------------------------------------


@dataclass
class _FileManifest:
    """What one file declares, validated on its own (references across files are checked later)."""

    file: str
    lines: dict[Loc, int]
    #: Plain http:// to hosts that are not loopback is allowed (--insecure).
    insecure: bool = False
    providers: dict[str, FabricProvider | QianfanProvider] = dataclass_field(default_factory=dict)
    policy: Policy | None = None
    models: list[ModelSpec] = dataclass_field(default_factory=list)

    def line(self, loc: Loc) -> int | None:
        return line_of(self.lines, loc)

    def location(self, loc: Loc) -> Location:
        return Location(file=self.file, line=self.line(loc) or 1)

    def error(
        self, loc: Loc, message: str, *, hint: str | None = None, at: Loc | None = None
    ) -> ManifestError:
        """An error about `loc` (its TOML path starts the message), placed at the line of `at`."""
        path = toml_path(loc)
        return ManifestError(
            f"{path}: {message}" if path else message,
            file=self.file,
            line=self.line(loc if at is None else at),
            hint=hint,
        )


_S = TypeVar("_S", bound=BaseModel)


class _FileChecker:
    """Validates one file's tables; keeps the first problem of each and raises the topmost."""

    def __init__(self, manifest: _FileManifest) -> None:
        self.manifest = manifest
        self.problems: list[ManifestError] = []

    def fail(self, error: ManifestError) -> None:
        self.problems.append(error)

    def raise_first(self) -> None:
        if self.problems:
            raise min(self.problems, key=lambda error: error.line or 0)

    def validate(self, spec: type[_S], data: Any, loc: Loc) -> _S | None:
        try:
            return spec.model_validate(_tuples(data), strict=True)
        except ValidationError as invalid:
            explained = [
                _explain(detail, spec, loc, self.manifest)
                for detail in invalid.errors(include_url=False)
            ]
            # A missing key is often explained by a misspelt one: report that first.
            explained.sort(key=lambda item: (item[0], item[1].line or 0))
            self.fail(explained[0][1])
            return None


def _load_file(path: Path, file: str, insecure: bool = False) -> _FileManifest:
    text = _read_text(path, file)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise _syntax_error(error, text, file) from None
    except RecursionError:
        raise ManifestError(
            "values are nested too deeply to read", file=file, hint="flatten the arrays"
        ) from None
    except ValueError:  # Python's limit on the digits of a decimal integer (tomllib lets it out)
        raise ManifestError(
            "a number has too many digits", file=file, hint="check for pasted data"
        ) from None
    manifest = _FileManifest(file=file, lines=scan_key_lines(text), insecure=insecure)
    checker = _FileChecker(manifest)
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            checker.fail(
                manifest.error(
                    (),
                    f"unknown top-level key {_quote(key)}{_did_you_mean(key, TOP_LEVEL_KEYS)}",
                    hint="a manifest holds [providers.NAME] tables, one [policy] and [[models]]",
                    at=(key,),
                )
            )
    _check_providers(checker, data.get("providers"))
    if "policy" in data:
        manifest.policy = checker.validate(Policy, data["policy"], ("policy",))
    _check_models(checker, data.get("models"))
    checker.raise_first()
    return manifest


def _read_text(path: Path, file: str) -> str:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ManifestError(f"cannot read the file: {error.strerror}", file=file) from None
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark from a Windows editor is harmless
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ManifestError(
            f"not UTF-8 text: byte 0x{raw[error.start]:02x} cannot be decoded",
            file=file,
            line=line,
            hint="TOML files are UTF-8: save the file as UTF-8 (and check for pasted binary data)",
        ) from None


def _syntax_error(error: tomllib.TOMLDecodeError, text: str, file: str) -> ManifestError:
    match = _TOML_DECODE_POSITION.match(str(error))
    message, line, column = str(error), None, None
    if match:
        message = match["message"]
        line = int(match["line"]) if match["line"] else max(1, len(text.splitlines()))
        column = match["column"]
    hint = "fix the TOML syntax: see https://toml.io/en/v1.0.0"
    if declared_twice := re.fullmatch(r"Cannot declare (\(.*\)) twice", message):
        table = declared_twice.group(1)
        with contextlib.suppress(ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            keys = ast.literal_eval(table)
            if isinstance(keys, tuple) and all(isinstance(key, str) for key in keys):
                table = toml_path(keys)
        message = f"table [{table}] is declared twice in this file"
        hint = "merge the two tables into one"
    elif message == "Cannot overwrite a value":
        message = "a key is set twice"
        hint = "keep one of the two assignments"
    elif message.startswith("Cannot mutate immutable namespace"):
        message = "an inline table or array cannot be extended by a later key or table"
        hint = "write all of it in one place: in the inline { ... } or as a [table]"
    else:
        if message in ("Illegal character '\\n'", "Unterminated string"):
            message = "a string is not closed"
            hint = 'close the string with its quote ("...")'
        message = f"invalid TOML: {message[:1].lower()}{message[1:]}"
        message += f" (column {column})" if column else ""
    return ManifestError(message, file=file, line=line, hint=hint)


def _check_providers(checker: _FileChecker, providers: Any) -> None:
    manifest = checker.manifest
    if providers is None:
        return
    if not isinstance(providers, dict):
        checker.fail(
            manifest.error(
                ("providers",),
                f"expected a table of providers, got {_describe(providers)}",
                hint='declare each provider as [providers.NAME] with type = "fabric" or "qianfan"',
            )
        )
        return
    for name, table in providers.items():
        loc: Loc = ("providers", name)
        if not re.fullmatch(NAME_PATTERN, name):
            checker.fail(
                manifest.error(
                    loc,
                    f"invalid provider name {_quote(name)}: use {_PATTERN_RULES[NAME_PATTERN]}",
                    hint="rename the table, and the provider = ... of its models",
                )
            )
            continue
        if not isinstance(table, dict):
            checker.fail(
                manifest.error(
                    loc,
                    f"expected a table, got {_describe(table)}",
                    hint=f'write [providers.{name}] and below it type = "fabric" or "qianfan"',
                )
            )
            continue
        kind = table.get("type")
        spec = PROVIDER_TYPES.get(kind) if isinstance(kind, str) else None
        if spec is None:
            allowed = _quoted_list(PROVIDER_TYPES)
            hint = f"type is one of {allowed}"
            if "type" not in table:
                type_problem = manifest.error(
                    loc, f"missing required key 'type' ({hint})", hint=hint
                )
            elif not isinstance(kind, str):
                type_problem = manifest.error(
                    (*loc, "type"), f"expected a string, got {_describe(kind)}", hint=hint
                )
            else:
                type_problem = manifest.error(
                    (*loc, "type"),
                    f"unknown provider type {_quote(kind)}{_did_you_mean(kind, PROVIDER_TYPES)}",
                    hint=hint,
                )
            checker.fail(type_problem)
            continue
        provider = checker.validate(spec, table, loc)
        if provider is not None:
            problem = _provider_problem(name, provider, manifest)
            if problem is None:
                manifest.providers[name] = provider
            else:
                checker.fail(problem)


def _provider_problem(
    name: str, provider: FabricProvider | QianfanProvider, manifest: _FileManifest
) -> ManifestError | None:
    """What the schema cannot see: endpoint safety and credentials that a real endpoint needs."""
    loc: Loc = ("providers", name)
    endpoints = [("endpoint", provider.endpoint)]
    if isinstance(provider, FabricProvider) and provider.services_endpoint is not None:
        endpoints.append(("services_endpoint", provider.services_endpoint))
    for key, url in endpoints:
        # Only the API endpoint can be the built-in emulator; it serves the services too.
        emulator_allowed = key == "endpoint"
        problem = _endpoint_problem(
            url, emulator_allowed=emulator_allowed, insecure=manifest.insecure
        )
        if problem is not None:
            hint = (
                "use https://HOST; http:// only for a loopback host (a local emulator) or "
                "with --insecure"
            )
            if emulator_allowed:
                hint += ", or emulator:STATE.json for the built-in emulator"
            return manifest.error((*loc, key), problem, hint=hint)
    emulated = provider.endpoint.startswith(EMULATOR_PREFIX)
    if provider.credentials is None:
        # Qianfan falls back to the SDK's own variables, QIANFAN_ACCESS_KEY / QIANFAN_SECRET_KEY.
        if emulated or isinstance(provider, QianfanProvider):
            return None
        return manifest.error(
            loc,
            f"missing credentials for the real endpoint {_quote(provider.endpoint)}",
            hint=f"add credentials = {_CREDENTIAL_EXAMPLES[provider.type]} (or token_env): the "
            "names of environment variables holding the secrets; or use endpoint = "
            '"emulator:STATE.json" for the built-in emulator',
        )
    for key, value in provider.credentials.model_dump(exclude_none=True).items():
        if _looks_like_secret(value):
            return manifest.error(
                (*loc, "credentials", key),
                "expected the NAME of an environment variable, got a value that looks like "
                "a secret itself",
                hint=_secret_hint(key),
            )
    return None


def _endpoint_problem(url: str, *, emulator_allowed: bool, insecure: bool = False) -> str | None:
    if url.startswith(EMULATOR_PREFIX) and emulator_allowed:
        if url == EMULATOR_PREFIX:
            return "emulator: needs the name of a state file, as in emulator:state.json"
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "not a valid URL"
    # Checked first, so that no message below repeats a password.
    if "@" in parts.netloc:
        return "the URL carries a user name or password: secrets never go into a manifest"
    if parts.scheme not in ("https", "http") or not host:
        return f"{_quote(url)} is not an https:// URL"
    if parts.scheme == "http" and not _is_loopback(host) and not insecure:
        return f"{_quote(url)} is plain http:// to a host that is not loopback"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _looks_like_secret(value: str) -> bool:
    """An access or secret key pasted where a variable name belongs (the pattern let it through).

    Platform keys are 20 to 40 random letters and digits (`HPUAK3X9ZB7LMN2RT4WQ`); variable names
    are words, with underscores when long, and digits, if any, in one run (`FABRIC_TOKEN_2024`).
    """
    if len(value) < 16 or "_" in value:
        return False
    switches = sum(left.isdigit() != right.isdigit() for left, right in itertools.pairwise(value))
    return switches >= 4


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


def _check_models(checker: _FileChecker, models: Any) -> None:
    manifest = checker.manifest
    if models is None:
        return
    if not isinstance(models, list):
        checker.fail(
            manifest.error(
                ("models",),
                f"expected an array of tables, got {_describe(models)}",
                hint="declare each model in its own [[models]] table (two brackets)",
            )
        )
        return
    for index, table in enumerate(models):
        loc: Loc = ("models", index)
        model = checker.validate(ModelSpec, table, loc)
        if model is None:
            continue
        problem = _duplicate_version(model, loc, manifest)
        if problem is None:
            manifest.models.append(model)
        else:
            checker.fail(problem)


def _duplicate_version(model: ModelSpec, loc: Loc, manifest: _FileManifest) -> ManifestError | None:
    seen: dict[tuple[str, str], int] = {}
    for index, version in enumerate(model.versions or ()):
        keys = [("name", version.name)] + ([("id", version.id)] if version.id else [])
        for kind, value in keys:
            first = seen.setdefault((kind, value), index)
            if first != index:
                first_loc = (*loc, "versions", first)
                return manifest.error(
                    (*loc, "versions", index),
                    f"version {kind} {value!r} is declared twice in model {model.name!r} "
                    f"(first as {toml_path(first_loc)}, line {manifest.line(first_loc)})",
                    hint="declare each version once",
                )
    return None


# --- Turning pydantic's errors into the user's terms ---------------------------------------------

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
    detail: ErrorDetails, spec: type[BaseModel], base: Loc, manifest: _FileManifest
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


# --- Merging files -------------------------------------------------------------------------------


def _merge(parts: list[_FileManifest], root: Path) -> Manifest:
    providers: dict[str, FabricProvider | QianfanProvider] = {}
    origins: dict[str, Location] = {}
    policy: tuple[Policy, _FileManifest] | None = None
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


# --- Writing -------------------------------------------------------------------------------------


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


_COMMENT_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _comment(text: str) -> str:
    """One TOML comment line; control characters (a newline in a platform's name would end the
    comment and start TOML) are written as escapes."""
    safe = _COMMENT_UNSAFE.sub(lambda match: f"\\x{ord(match.group()):02x}", text)
    return f"# {safe}".rstrip() if safe else "#"
