"""Reading the documents to merge: file arguments and globs, each file a plan or a drift report.

Plans are read with `Plan.from_json`, so a plan whose content does not match its `plan_digest`
(an edited file) is refused as `apply` would refuse it. Every problem is a `ReportError` naming
the file.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconcile import drift
from reconcile.drift import DriftReport
from reconcile.errors import ReconcileError
from reconcile.files import NotADocument, read_json_text
from reconcile.model import strict_json
from reconcile.plan import Plan
from reconcile.report.merge import Document, ReportError

_GLOB_CHARACTERS = frozenset("*?[")


def expand(arguments: Sequence[str]) -> list[str]:
    """The files `arguments` name: each file as given, each glob's matches sorted. A glob that
    matches nothing is an error; a file named twice is read once."""
    files: list[str] = []
    for argument in arguments:
        if _GLOB_CHARACTERS.isdisjoint(argument):
            matches = [argument]
        else:
            # Path.glob takes no absolute pattern: a CI may give one ($RUNNER_TEMP/plans/*).
            matches = sorted(glob.glob(argument, recursive=True))  # noqa: PTH207
            if not matches:
                raise ReportError(
                    f"{argument}: no file matches this pattern",
                    hint="check the pattern, and that every matrix job's document was downloaded",
                )
        files += [match for match in matches if match not in files]
    return files


def read_documents(arguments: Sequence[str]) -> list[Document]:
    return [read_document(file) for file in expand(arguments)]


def read_document(file: str) -> Document:
    text = _read(file)
    try:
        data = strict_json(text)
    except ValueError as exc:
        raise ReportError(f"{file}: not a JSON document ({exc})") from None
    kind = _kind(data, file)
    try:
        content = Plan.from_json(text, source=file) if kind == "plan" else _drift_report(data, file)
    except ReportError:
        raise
    except ReconcileError as error:  # the plan loader's own refusal: keep its words and hint
        raise ReportError(error.message, hint=error.hint) from None
    return Document(file=file, content=content)


def _read(file: str) -> str:
    path = Path(file)
    try:
        if path.is_dir():
            raise ReportError(f"{file}: is a folder", hint="give the JSON files in it, or a glob")
        return read_json_text(path)
    except NotADocument as error:
        raise ReportError(f"{file}: not a JSON document ({error})") from None
    except FileNotFoundError:
        raise ReportError(f"{file}: no such file") from None
    except OSError as error:
        raise ReportError(f"{file}: cannot read it: {error.strerror or error}") from None


def _kind(data: Any, file: str) -> str:
    if isinstance(data, dict):
        if "sources" in data and data.get("kind") in ("plan", "drift"):
            raise ReportError(
                f"{file}: is a merged report already",
                hint="merge the documents it was made from",
            )
        if "resource_changes" in data:
            return "plan"
        if "providers" in data and "total" in data:
            return "drift"
    raise ReportError(
        f"{file}: neither a plan (reconcile plan --format json) nor a drift report "
        "(reconcile drift --format json)"
    )


def _drift_report(data: dict[str, Any], file: str) -> DriftReport:
    version = data.get("format_version")
    if version != drift.FORMAT_VERSION:
        raise ReportError(
            f"{file}: drift report format_version {version!r} is not supported "
            f"(this reconcile reads {drift.FORMAT_VERSION})",
            hint="make the report again with this version of reconcile",
        )
    try:
        return DriftReport.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ReportError(f"{file}: invalid drift report at {where}: {first['msg']}") from None
