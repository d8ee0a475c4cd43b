"""Problems found in manifests (by `reconcile validate`) for machines: GitHub Actions workflow
commands (`::error file=F,line=N,title=T::MESSAGE`, shown as annotations on the pull request's
files) and JSON. Pure: a list of `Problem` in, text out.

GitHub's escaping (its toolkit's `command.ts`): in a message `%`, CR and LF are written `%25`,
`%0D`, `%0A`; in a property `:` and `,` too (`%3A`, `%2C`). Text is first made printable
(`model.printable`), so nothing in a manifest can end the command or start another.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from reconcile.model import printable


@dataclass(frozen=True)
class Problem:
    #: "error" or "warning".
    severity: str
    message: str
    file: str | None = None
    line: int | None = None
    #: The TOML path of the value at fault (`models[2].versions[0]`), where known.
    path: str | None = None
    #: How to fix it, where known.
    hint: str | None = None


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_line(problem: Problem) -> str:
    """One workflow command: `::error file=…,line=…,title=…::message` (`::warning` likewise)."""
    properties = []
    if problem.file:
        properties.append(f"file={escape_property(printable(problem.file))}")
    if problem.line:
        properties.append(f"line={problem.line}")
    title = f"reconcile: {problem.path}" if problem.path else "reconcile validate"
    properties.append(f"title={escape_property(printable(title))}")
    message = printable(problem.message)
    if problem.hint:
        message += f"\nhint: {printable(problem.hint)}"
    return f"::{problem.severity} {','.join(properties)}::{escape_data(message)}"


def render_github(problems: list[Problem]) -> str:
    return "".join(github_line(problem) + "\n" for problem in problems)


def render_problems_json(problems: list[Problem]) -> str:
    """A JSON list: one object per problem with severity, file, line, path, message and hint."""
    return (
        json.dumps([asdict(problem) for problem in problems], indent=2, ensure_ascii=False) + "\n"
    )
