"""Reading manifests: a file or a folder of files, each read, validated and checked on its own,
then merged. Every problem found raises one `ManifestErrors`: each names the file, the line and
the TOML path at fault, and says how to fix it.
"""

from __future__ import annotations

import ast
import contextlib
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from reconcile.errors import ManifestError
from reconcile.manifest.checks import provider_problems
from reconcile.manifest.explain import (
    _PATTERN_RULES,
    _describe,
    _did_you_mean,
    _explain,
    _quote,
    _quoted_list,
    _tuples,
)
from reconcile.manifest.merge import merge
from reconcile.manifest.scanner import Loc, scan_key_lines, toml_path
from reconcile.manifest.source import FileManifest
from reconcile.manifest.specs import (
    NAME_PATTERN,
    FabricProvider,
    Manifest,
    ModelSpec,
    Policy,
    QianfanProvider,
    StateTable,
)

TOP_LEVEL_KEYS = ("providers", "policy", "models", "state")
PROVIDER_TYPES: dict[str, type[FabricProvider] | type[QianfanProvider]] = {
    "fabric": FabricProvider,
    "qianfan": QianfanProvider,
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
    Every problem of every file is found in one run: they raise one `ManifestErrors` that lists
    each with its file, line, TOML path and fix (first the first file's, in line order).
    `insecure` lets endpoints use plain http:// to hosts that are not loopback (--insecure).
    """
    parts = [_load_file(file, str(file), insecure) for file in manifest_files(path)]
    return merge(parts, path)


_S = TypeVar("_S", bound=BaseModel)


class _FileChecker:
    """Validates one file's tables, keeping every problem of each table."""

    def __init__(self, manifest: FileManifest) -> None:
        self.manifest = manifest

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
            self.manifest.fail(*_distinct(problem for _, problem in explained))
            return None


def _distinct(problems: Iterable[ManifestError]) -> list[ManifestError]:
    """Each problem once (a value of a union type fails each member the same way)."""
    seen: dict[str, ManifestError] = {}
    for problem in problems:
        seen.setdefault(str(problem), problem)
    return list(seen.values())


def _load_file(path: Path, file: str, insecure: bool = False) -> FileManifest:
    """One file, read and checked on its own; what is wrong is in its `problems`."""
    try:
        text = _read_text(path, file)
        data = _parse(text, file)
    except ManifestError as error:
        manifest = FileManifest(file=file, lines={}, insecure=insecure, parsed=False)
        manifest.fail(error)
        return manifest
    manifest = FileManifest(file=file, lines=scan_key_lines(text), insecure=insecure)
    checker = _FileChecker(manifest)
    _check_top_level(manifest, data)
    _check_providers(checker, data.get("providers"))
    if "policy" in data:
        manifest.policy = checker.validate(Policy, data["policy"], ("policy",))
    if "state" in data:
        manifest.state = checker.validate(StateTable, data["state"], ("state",))
    _check_models(checker, data.get("models"))
    return manifest


def _parse(text: str, file: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
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


def _check_top_level(manifest: FileManifest, data: dict[str, Any]) -> None:
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            manifest.fail(
                manifest.error(
                    (),
                    f"unknown top-level key {_quote(key)}{_did_you_mean(key, TOP_LEVEL_KEYS)}",
                    hint="a manifest holds [providers.NAME] tables, one [policy], one [state] and "
                    "[[models]]",
                    at=(key,),
                )
            )


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
        manifest.fail(
            manifest.error(
                ("providers",),
                f"expected a table of providers, got {_describe(providers)}",
                hint='declare each provider as [providers.NAME] with type = "fabric" or "qianfan"',
            )
        )
        return
    for name, table in providers.items():
        kind = table.get("type") if isinstance(table, dict) else None
        manifest.declared[name] = kind if isinstance(kind, str) and kind in PROVIDER_TYPES else None
        spec = _provider_spec(manifest, name, table)
        if spec is None:
            continue
        if "workspaces" in table:
            _expand_template(checker, name, table, spec)
            continue
        provider = checker.validate(spec, table, ("providers", name))
        if provider is None:
            continue
        problems = provider_problems(name, provider, manifest)
        if problems:
            manifest.fail(*problems)
        else:
            manifest.providers[name] = provider


#: What a row of a provider template may set (the rest comes from the table).
TEMPLATE_ROW_KEYS = ("workspace_id", "project_id", "endpoint", "services_endpoint")


def _expand_template(
    checker: _FileChecker,
    name: str,
    table: dict[str, Any],
    spec: type[FabricProvider] | type[QianfanProvider],
) -> None:
    """A provider table with `workspaces = [...]` stands for one provider scope per workspace,
    named NAME.WORKSPACE_ID: each row (a workspace id, or a table of TEMPLATE_ROW_KEYS) is the
    table with the row's keys, validated as any provider table is."""
    manifest = checker.manifest
    loc: Loc = ("providers", name, "workspaces")
    rows = table["workspaces"]
    problem = None
    if spec is not FabricProvider:
        problem = "workspaces is for Fabric providers (a Qianfan account has no workspaces)"
    elif "workspace_id" in table:
        problem = "give workspace_id (one workspace) or workspaces (a template), not both"
    elif not isinstance(rows, list) or not rows:
        problem = f"expected a non-empty array of workspace ids or tables, got {_describe(rows)}"
    if problem is not None:
        manifest.fail(
            manifest.error(
                loc,
                problem,
                hint='workspaces = ["ws-1", "ws-2"] or [{ workspace_id = "ws-1", project_id = '
                '"p1" }, ...]',
            )
        )
        return
    base = {key: value for key, value in table.items() if key != "workspaces"}
    expanded: list[tuple[str, str]] = []
    for index, row in enumerate(rows):
        fields = {"workspace_id": row} if isinstance(row, str) else row
        if not isinstance(fields, dict) or set(fields) - set(TEMPLATE_ROW_KEYS):
            manifest.fail(
                manifest.error(
                    (*loc, index),
                    f"expected a workspace id or a table of {', '.join(TEMPLATE_ROW_KEYS)}, got "
                    f"{_describe(row)}",
                    at=loc,
                    hint="each row names one workspace: a string, or a table with workspace_id",
                )
            )
            continue
        provider = checker.validate(spec, {**base, **fields}, ("providers", name))
        if provider is None:
            continue
        workspace = getattr(provider, "workspace_id", "")
        derived = f"{name}.{workspace}"
        if derived in manifest.providers:
            manifest.fail(
                manifest.error(
                    (*loc, index),
                    f"workspace {workspace!r} is listed twice",
                    at=loc,
                    hint="list each workspace once",
                )
            )
            continue
        problems = provider_problems(name, provider, manifest)
        if problems:
            manifest.fail(*problems)
            continue
        manifest.providers[derived] = provider
        expanded.append((derived, workspace))
    manifest.templates[name] = expanded


def _provider_spec(
    manifest: FileManifest, name: str, table: Any
) -> type[FabricProvider] | type[QianfanProvider] | None:
    """The record class a provider table is validated with; None (and a problem) if none fits."""
    loc: Loc = ("providers", name)
    if not re.fullmatch(NAME_PATTERN, name):
        manifest.fail(
            manifest.error(
                loc,
                f"invalid provider name {_quote(name)}: use {_PATTERN_RULES[NAME_PATTERN]}",
                hint="rename the table, and the provider = ... of its models",
            )
        )
        return None
    if not isinstance(table, dict):
        manifest.fail(
            manifest.error(
                loc,
                f"expected a table, got {_describe(table)}",
                hint=f'write [providers.{name}] and below it type = "fabric" or "qianfan"',
            )
        )
        return None
    kind = table.get("type")
    spec = PROVIDER_TYPES.get(kind) if isinstance(kind, str) else None
    if spec is None:
        manifest.fail(_type_problem(manifest, loc, table))
    return spec


def _type_problem(manifest: FileManifest, loc: Loc, table: dict[str, Any]) -> ManifestError:
    kind = table.get("type")
    hint = f"type is one of {_quoted_list(PROVIDER_TYPES)}"
    if "type" not in table:
        return manifest.error(loc, f"missing required key 'type' ({hint})", hint=hint)
    if not isinstance(kind, str):
        return manifest.error(
            (*loc, "type"), f"expected a string, got {_describe(kind)}", hint=hint
        )
    return manifest.error(
        (*loc, "type"),
        f"unknown provider type {_quote(kind)}{_did_you_mean(kind, PROVIDER_TYPES)}",
        hint=hint,
    )


def _check_models(checker: _FileChecker, models: Any) -> None:
    manifest = checker.manifest
    if models is None:
        return
    if not isinstance(models, list):
        manifest.fail(
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
        problems = _duplicate_versions(model, loc, manifest)
        if problems:
            manifest.fail(*problems)
        else:
            manifest.models.append(model)


def _duplicate_versions(model: ModelSpec, loc: Loc, manifest: FileManifest) -> list[ManifestError]:
    seen: dict[tuple[str, str], int] = {}
    problems = []
    for index, version in enumerate(model.versions or ()):
        keys = [("name", version.name)] + ([("id", version.id)] if version.id else [])
        for kind, value in keys:
            first = seen.setdefault((kind, value), index)
            if first != index:
                first_loc = (*loc, "versions", first)
                problems.append(
                    manifest.error(
                        (*loc, "versions", index),
                        f"version {kind} {_quote(value)} is declared twice in model "
                        f"{_quote(model.name)} (first as {toml_path(first_loc)}, line "
                        f"{manifest.line(first_loc)})",
                        hint="declare each version once",
                    )
                )
    return problems
