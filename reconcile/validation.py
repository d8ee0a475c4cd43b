"""`reconcile validate --format github|json`: every problem of the manifests as `Problem`
records (errors, then warnings), rendered by `render.problems`."""

from __future__ import annotations

import re
from pathlib import Path

from reconcile.errors import ManifestError
from reconcile.render.problems import Problem, render_github, render_problems_json

#: A TOML path as `scanner.toml_path` writes it, with at least one `.` or `[`.
_TOML_PATH = re.compile(
    r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*")(?:\[\d+\]|\.(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"))+'
)
#: Where a warning says its declaration is: `(FILE:LINE)`.
_WHERE = re.compile(r"\(([^()]+):(\d+)\)")


def error_problem(error: ManifestError) -> Problem:
    """The error's message without its `FILE:LINE: ` prefix and TOML path, which are fields."""
    message = error.message
    where = f"{error.file}:{error.line}: " if error.file and error.line else f"{error.file}: "
    if error.file and message.startswith(where):
        message = message[len(where) :]
    path, _, rest = message.partition(": ")
    if not rest or not _TOML_PATH.fullmatch(path):
        path, rest = "", message
    return Problem(
        severity="error",
        message=rest,
        file=error.file,
        line=error.line,
        path=path or None,
        hint=error.hint,
    )


def warning_problem(text: str) -> Problem:
    """A `warning: WHAT (FILE:LINE): FIX` line of `manifest_warnings` as a record."""
    message = text.removeprefix("warning: ")
    found = _WHERE.search(message)
    if found is None:
        return Problem(severity="warning", message=message)
    return Problem(severity="warning", message=message, file=found[1], line=int(found[2]))


def problems(path: Path, *, insecure: bool = False) -> list[Problem]:
    """Every error of the manifests at `path`, or, when they load, their warnings."""
    from reconcile.manifest import load_manifest, manifest_warnings

    try:
        manifest = load_manifest(path, insecure=insecure)
    except ManifestError as error:
        every = getattr(error, "problems", None) or (error,)
        return [error_problem(problem) for problem in every]
    return [warning_problem(warning) for warning in manifest_warnings(manifest)]


def render(found: list[Problem], fmt: str) -> str:
    return render_github(found) if fmt == "github" else render_problems_json(found)
