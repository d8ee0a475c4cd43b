"""JSON for machines: plans and drift reports as their versioned documents (`format_version`).

A plan's JSON is the plan file itself (`reconcile plan -o`); a drift report's is documented in the
README ("Drift reports (JSON)"). Names stay exact for readers, but JSON lets a C1 control or a
bidi override through as it is (only C0 controls must be escaped), and this JSON is printed to
terminals too: every character that is not printable is written as its `\\uXXXX` escape, which
every JSON reader reads back as the same character.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from reconcile.drift import DriftReport
from reconcile.plan import Plan

#: Runs that may hold a character that is not printable (all of JSON's own syntax is ASCII).
_NOT_ASCII_TEXT = re.compile(r"[^\x20-\x7e\n]+")


def render_plan_json(plan: Plan) -> str:
    return "".join(plan_json_pieces(plan))


def plan_json_pieces(plan: Plan) -> Iterator[str]:
    """`render_plan_json` in pieces of about 64 KB, printed as they are made: a large plan's
    JSON is 93 MB, and made whole, then escaped, then encoded, it was three copies of it."""
    batch: list[str] = []
    size = 0
    for chunk in plan.json_chunks():
        batch.append(chunk)
        size += len(chunk)
        if size >= _PIECE:
            yield printable_json("".join(batch))
            batch, size = [], 0
    if batch:
        yield printable_json("".join(batch))


_PIECE = 1 << 16


def render_drift_json(report: DriftReport) -> str:
    return printable_json(report.to_json())


def printable_json(text: str) -> str:
    """`text`, JSON, with each character that is not printable written as a `\\u` escape."""
    return _NOT_ASCII_TEXT.sub(_escape_run, text)


def _escape_run(match: re.Match[str]) -> str:
    run = match.group()
    if run.isprintable():
        return run
    return "".join(char if char.isprintable() else _u_escape(char) for char in run)


def _u_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    high, low = divmod(code - 0x10000, 0x400)  # a surrogate pair, as JSON writes astral escapes
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"
