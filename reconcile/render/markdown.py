"""Markdown for pull-request comments and `$GITHUB_STEP_SUMMARY`: a summary table first, the
details folded in `<details>` blocks.

Names and descriptions come from the platforms, so nothing from a plan is trusted: object names,
ids and values go in code spans (where markdown and HTML are not interpreted), sentences are
backslash-escaped, and whatever goes inside an HTML tag is HTML-escaped. Line breaks become spaces
and every other character that is not printable (a bidi override, a terminal escape) a visible
escape (`model.printable`). GitHub caps a comment at
65,536 characters: the detail rows stop at `budget` characters, with a count of what was left out.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from reconcile.drift import CATEGORIES, LABELS, Category, DriftReport, Item
from reconcile.model import printable
from reconcile.plan import Change, Drift, FieldChange, Plan
from reconcile.render import percent, with_versions

#: Detail rows stop once the document is this long (GitHub refuses comments over 65,536).
DEFAULT_BUDGET = 60_000

_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&@])")
_BREAKS = re.compile(r"[\r\n\t\x00-\x1f\x7f]+")
_TICKS = re.compile(r"`+")


def text(value: str) -> str:
    """A sentence from a plan, safe in markdown and in a table cell: punctuation that markdown or
    HTML would interpret (and `@`, which would mention someone) is backslash-escaped."""
    return _SPECIAL.sub(r"\\\1", printable(_BREAKS.sub(" ", value)))


def code(value: str) -> str:
    """A name, id or value as a code span: shown exactly as it is, never interpreted."""
    value = printable(_BREAKS.sub(" ", value)).replace("|", "\\|")
    longest = max((len(run) for run in _TICKS.findall(value)), default=0)
    fence = "`" * (longest + 1)
    if value.startswith("`") or value.endswith("`") or not value.strip():
        value = f" {value} "
    return f"{fence}{value}{fence}"


def _json(value: Any) -> str:
    return code(json.dumps(value, ensure_ascii=False))


def _field_changes(fields: Sequence[FieldChange]) -> str:
    return "<br>".join(
        f"{code(change.field)}: {_json(change.live)} → {_json(change.declared)}"
        for change in fields
    )


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], *, numeric_from: int = 99) -> str:
    align = ["--:" if index >= numeric_from else "---" for index in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


class _Document:
    """Markdown being written, with a character budget for the folded details."""

    def __init__(self, budget: int) -> None:
        self.parts: list[str] = []
        self.budget = budget

    def add(self, part: str) -> None:
        self.parts.append(part)

    def size(self) -> int:
        return sum(len(part) + 2 for part in self.parts)

    def folded(
        self,
        summary: str,
        head: Sequence[str],
        rows: Sequence[Callable[[], Sequence[str]]],
        *,
        open_: bool = False,
    ) -> None:
        """A `<details>` block with a table; rows are made lazily and stop at the budget."""
        if not rows:
            return
        made: list[Sequence[str]] = []
        size = self.size() + len(summary) + 200
        for make in rows:
            row = make()
            size += sum(len(cell) + 3 for cell in row)
            if made and size > self.budget:
                break
            made.append(row)
        attribute = " open" if open_ else ""
        block = [
            f"<details{attribute}><summary>{html.escape(summary)}</summary>",
            "",
            _table(head, made),
        ]
        left = len(rows) - len(made)
        if left:
            block += [
                "",
                f"… and {left} more, left out to keep this comment under GitHub's size limit: "
                "see the JSON output (`--format json`) for everything.",
            ]
        block += ["", "</details>"]
        self.add("\n".join(block))

    def render(self) -> str:
        return "\n\n".join(self.parts) + "\n"


# -- plans ------------------------------------------------------------------------------------


def _address_row(address: str) -> Callable[[], Sequence[str]]:
    return lambda: [code(address)]


def _why(change: Change) -> str:
    return f"**{text(change.action_reason.value)}**: {text(change.detail)}"


def _object(change: Change) -> str:
    label = code(change.address)
    if change.version_ids:
        label += f" ({with_versions(len(change.version_ids))})"
    return label


def _change_row(change: Change) -> Callable[[], Sequence[str]]:
    return lambda: [change.kind.value, _object(change), code(change.id), _why(change)]


def _blocked_row(change: Change) -> Callable[[], Sequence[str]]:
    def row() -> Sequence[str]:
        services = "<br>".join(
            f"{code(service.id)} ({code(service.name)}, {text(service.status)})"
            for service in change.blocked_by
        )
        return [change.kind.value, _object(change), code(change.id), _why(change), services or "–"]

    return row


def _drift_row(item: Drift) -> Callable[[], Sequence[str]]:
    def row() -> Sequence[str]:
        why = text(item.detail) + (f"<br>fix: {text(item.hint)}" if item.hint else "")
        return [
            item.drift.value,
            item.kind.value,
            code(item.address),
            _field_changes(item.fields) or "–",
            why,
        ]

    return row


def render_plan_markdown(plan: Plan, *, budget: int = DEFAULT_BUDGET) -> str:
    """A plan as a pull-request comment: what would be deleted and why, what is blocked, kept or
    drifted, and the digest a reviewer approves (`apply --expect-digest`)."""
    s = plan.summary
    doc = _Document(budget)
    if s.delete or s.blocked or s.drifted:
        title = f"{s.delete} to delete, {s.blocked} blocked, {s.drifted} drifted"
    else:
        title = "no changes"
    doc.add(f"### reconcile plan: {title}")
    labels = plan.attribution
    if labels is not None:
        doc.add(
            f"**This change causes {len(labels.caused_by_change)} of the deletes** (against "
            f"{code(labels.base)}); {len(labels.already_undeclared)} were already undeclared "
            "before it (drift from outside git)."
        )
        doc.folded(
            "Deletes this change causes",
            ["object"],
            [_address_row(address) for address in labels.caused_by_change],
            open_=True,
        )
    for warning in plan.notices():
        doc.add(f"> **Warning:** {text(warning)}")
    rows = []
    changes_of, drift_of = plan.changes_by_provider(), plan.drift_by_provider()
    for scope in plan.scopes:
        changes = changes_of[scope.provider]
        rows.append(
            [
                code(scope.provider),
                f"{text(scope.type)}, {text(scope.location)}",
                text(scope.scope),
                f"{scope.models} models, {scope.versions} versions",
                str(sum(1 for c in changes if c.is_delete)),
                str(sum(1 for c in changes if c.is_blocked)),
                str(sum(1 for c in changes if c.is_kept)),
                str(len(drift_of[scope.provider])),
            ]
        )
    doc.add(
        _table(
            ["provider", "where", "scope", "in scope", "delete", "blocked", "kept", "drifted"],
            rows,
            numeric_from=4,
        )
    )
    if s.delete:
        doc.add(
            f"Plan digest: {code(plan.plan_digest)}. Once this plan is approved, apply exactly it "
            f"with `reconcile apply PLAN.json --expect-digest {plan.plan_digest}`: apply refuses "
            "if anything it deletes changed since."
        )
    else:
        note = "Nothing to delete" + (
            ": the blocked and drifted objects below need a fix outside reconcile."
            if s.blocked or s.drifted
            else "; live state matches the manifests."
        )
        doc.add(f"{note} Plan digest: {code(plan.plan_digest)}.")
    deletes = sorted(plan.deletes(), key=lambda c: c.address)
    blocked = sorted((c for c in plan.resource_changes if c.is_blocked), key=lambda c: c.address)
    kept = sorted(
        (c for c in plan.resource_changes if c.is_kept),
        key=lambda c: c.address,
    )
    doc.folded(
        f"{len(deletes)} to delete",
        ["kind", "object", "id", "why"],
        [_change_row(c) for c in deletes],
        open_=True,
    )
    doc.folded(
        f"{len(blocked)} blocked (never deleted)",
        ["kind", "object", "id", "why", "used by"],
        [_blocked_row(c) for c in blocked],
    )
    doc.folded(
        f"{len(plan.drift)} drifted",
        ["drift", "kind", "object", "live → declared", "why"],
        [_drift_row(item) for item in plan.drift],
    )
    doc.folded(
        f"{len(kept)} kept (protected or by retention rules)",
        ["kind", "object", "id", "why"],
        [_change_row(c) for c in kept],
    )
    doc.add(_footer(plan.tool_version, plan.manifest_digest, plan.created_at))
    return doc.render()


def _footer(tool_version: str, manifest_digest: str, created_at: str | None) -> str:
    when = f" · {text(created_at)}" if created_at else ""
    return f"<sub>reconcile {text(tool_version)} · manifests {code(manifest_digest)}{when}</sub>"


# -- drift reports ----------------------------------------------------------------------------


def _item_row(item: Item) -> Callable[[], Sequence[str]]:
    def row() -> Sequence[str]:
        label = code(item.address)
        if item.versions:
            label += f" ({with_versions(item.versions)})"
        why = f"**{text(item.reason)}**: {text(item.detail)}"
        if item.hint:
            why += f"<br>fix: {text(item.hint)}"
        extra = _field_changes(item.fields)
        if item.blocked_by:
            extra = "used by " + ", ".join(
                f"{code(service.id)} ({code(service.name)})" for service in item.blocked_by
            )
        return [item.kind.value, label, code(item.id) if item.id else "–", extra or "–", why]

    return row


def render_drift_markdown(report: DriftReport, *, budget: int = DEFAULT_BUDGET) -> str:
    """A drift report for a pull request or `$GITHUB_STEP_SUMMARY`: a table of the categories per
    provider and in total, then each category's objects folded."""
    doc = _Document(budget)
    total = report.total
    if report.drifted:
        doc.add(f"### reconcile drift: {total.drifted} drifted, coverage {percent(total.coverage)}")
    else:
        doc.add(f"### reconcile drift: in sync, coverage {percent(total.coverage)}")
    for notice in report.notices():
        doc.add(f"> **Warning:** {text(notice)}")
    head = ["provider", "live", "coverage", *(LABELS[c][0] for c in CATEGORIES)]
    rows = [
        [
            f"{code(provider.provider)} ({text(provider.type)}, {text(provider.location)})",
            str(provider.counts.live),
            percent(provider.counts.coverage),
            *(str(provider.counts.of(c)) for c in CATEGORIES),
        ]
        for provider in report.providers
    ]
    if len(report.providers) != 1:
        rows.append(
            [
                "**total**",
                str(total.live),
                percent(total.coverage),
                *(str(total.of(c)) for c in CATEGORIES),
            ]
        )
    doc.add(_table(head, rows, numeric_from=1))
    doc.add(
        "Coverage: the share of live objects in scope that the manifests declare. "
        + "; ".join(f"*{LABELS[c][0]}*: {text(LABELS[c][1])}" for c in CATEGORIES[1:])
        + "."
    )
    for provider in report.providers:
        for category in CATEGORIES:
            items = [item for item in provider.items if item.category is category]
            if not items:
                continue
            summary = f"{provider.provider}: {len(items)} {LABELS[category][0]}"
            objects = provider.counts.of(category)
            if category is not Category.MISSING and objects != len(items):
                summary += f" ({objects} objects with their versions)"
            doc.folded(
                summary,
                ["kind", "object", "id", "fields / used by", "why"],
                [_item_row(item) for item in items],
                open_=category in (Category.CHANGED, Category.MISSING, Category.UNMANAGED),
            )
    doc.add(
        f"<sub>reconcile {text(report.tool_version)} · manifests {code(report.manifest_digest)} "
        f"· plan {code(report.plan_digest)}"
        + (f" · {text(report.created_at)}" if report.created_at else "")
        + "</sub>"
    )
    return doc.render()
