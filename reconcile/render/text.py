"""Terraform-like text for people: `- delete`, `! blocked`, `~ drift`, `# (because ...)`.

Names, ids and details come from the platforms: every piece of text goes through
`model.printable` before it is styled, so a newline or a terminal escape sequence in a name shows
as `\\n` or `\\x1b` and can neither forge a line of the plan nor reach the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from reconcile.drift import (
    CATEGORIES,
    DRIFT_CATEGORIES,
    LABELS,
    Category,
    Counts,
    DriftReport,
    Item,
)
from reconcile.model import printable
from reconcile.plan import Change, Drift, DriftKind, Plan, Reason
from reconcile.render import percent, with_versions

_CODES = {"red": "31", "green": "32", "yellow": "33", "cyan": "36", "bold": "1", "dim": "2"}


class _Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, *styles: str) -> str:
        """`text`, escaped (see `printable`), then coloured."""
        text = printable(text)
        if not self.color or not styles:
            return text
        codes = ";".join(_CODES[style] for style in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


def _value(value: Any) -> str:
    return printable(json.dumps(value, ensure_ascii=False))


def _change_lines(change: Change, style: _Style) -> list[str]:
    kind = change.kind.value
    if change.is_delete:
        head = style(f"  - delete {kind} {change.address}", "red")
        if change.version_ids:
            head += style(f" (with {len(change.version_ids)} versions)", "red")
    elif change.is_blocked:
        head = style(f"  ! blocked {kind} {change.address}", "yellow", "bold")
    else:
        head = style(f"  = keep {kind} {change.address}", "cyan")
    lines = [head + style(f"  id={change.id}", "dim")]
    lines.append(style(f"      # (because {change.action_reason.value}: {change.detail})", "dim"))
    return lines


def _drift_lines(item: Drift, style: _Style) -> list[str]:
    label = {
        DriftKind.MISSING: "missing",
        DriftKind.CHANGED: "drift",
        DriftKind.AMBIGUOUS: "ambiguous",
    }
    lines = [style(f"  ~ {label[item.drift]} {item.kind.value} {item.address}", "yellow")]
    for change in item.fields:
        lines.append(
            f"      ~ {printable(change.field)}: {_value(change.live)} (live) -> "
            f"{_value(change.declared)} (declared)"
        )
    lines.append(style(f"      # ({item.detail})", "dim"))
    if item.hint:
        lines.append(style(f"      # fix: {item.hint}", "dim"))
    return lines


def render_plan(plan: Plan, *, color: bool = False) -> str:
    style = _Style(color)
    out: list[str] = []
    for warning in plan.warnings:
        out += [style(f"Warning: {warning}", "yellow", "bold"), ""]
    for scope in plan.scopes:
        changes = [c for c in plan.resource_changes if c.provider == scope.provider]
        shown = [c for c in changes if c.action_reason is not Reason.DECLARED]
        drift = [d for d in plan.drift if d.provider == scope.provider]
        out.append(
            style(f"{scope.provider}", "bold")
            + style(
                f" ({scope.type}, {scope.location}, scope {scope.scope}): "
                f"{scope.models} models, {scope.versions} versions in scope"
            )
        )
        if not shown and not drift:
            out += ["  in sync", ""]
            continue
        groups: Sequence[list[Change]] = (
            [c for c in shown if c.is_delete],
            [c for c in shown if c.is_blocked],
            [c for c in shown if c.is_kept],
        )
        for group in groups:
            for change in sorted(group, key=lambda c: c.address):
                out += _change_lines(change, style)
        for item in drift:
            out += _drift_lines(item, style)
        out.append("")
    out += _summary_lines(plan, style)
    return "\n".join(out) + "\n"


def _summary_lines(plan: Plan, style: _Style) -> list[str]:
    s = plan.summary
    if not s.delete and not s.blocked and not s.drifted:
        lines = [style("No changes.", "green", "bold") + " Live state matches the manifests."]
    else:
        lines = [
            style("Plan:", "bold")
            + f" {s.delete} to delete, {s.blocked} blocked, {s.drifted} drifted."
        ]
        if not s.delete:
            lines.append(
                style("No changes.", "green", "bold")
                + " Nothing to delete; the blocked and drifted objects above need a fix outside "
                "reconcile."
            )
    if s.protected or s.kept:
        lines.append(f"Kept: {s.protected} protected, {s.kept} by retention rules.")
    return lines


_DRIFT_MARKS = {
    Category.CHANGED: ("~", "yellow"),
    Category.MISSING: ("~", "yellow"),
    Category.UNMANAGED: ("-", "red"),
    Category.BLOCKED: ("!", "yellow"),
    Category.AMBIGUOUS: ("!", "yellow"),
    Category.KEPT: ("=", "cyan"),
}


def _counts_line(counts: Counts) -> str:
    return ", ".join(
        f"{LABELS[category][0]} {counts.of(category)}"
        for category in CATEGORIES
        if counts.of(category) or category in (Category.IN_SYNC, *DRIFT_CATEGORIES)
    )


def _item_lines(item: Item, style: _Style) -> list[str]:
    mark, colour = _DRIFT_MARKS[item.category]
    head = f"  {mark} {LABELS[item.category][0]} {item.kind.value} {item.address}"
    if item.versions:
        head += f" ({with_versions(item.versions)})"
    lines = [style(head, colour) + (style(f"  id={item.id}", "dim") if item.id else "")]
    for change in item.fields:
        lines.append(
            f"      ~ {printable(change.field)}: {_value(change.live)} (live) -> "
            f"{_value(change.declared)} (declared)"
        )
    lines.append(style(f"      # ({item.reason}: {item.detail})", "dim"))
    if item.hint:
        lines.append(style(f"      # fix: {item.hint}", "dim"))
    return lines


def render_drift(report: DriftReport, *, color: bool = False) -> str:
    """The drift report for a terminal: per provider its counts, then one entry per object that
    is not in sync; a last line with the totals and the coverage."""
    style = _Style(color)
    out: list[str] = []
    for provider in report.providers:
        counts = provider.counts
        out.append(
            style(provider.provider, "bold")
            + style(
                f" ({provider.type}, {provider.location}, scope {provider.scope}): "
                f"{counts.live} live objects in scope, {counts.declared} declared "
                f"(coverage {percent(counts.coverage)})"
            )
        )
        out.append(f"  {_counts_line(counts)}")
        for item in provider.items:
            out += _item_lines(item, style)
        out.append("")
    total = report.total
    if report.drifted:
        drifted = ", ".join(
            f"{total.of(category)} {LABELS[category][0]}" for category in DRIFT_CATEGORIES
        )
        out.append(style("Drift:", "bold") + f" {total.drifted} drifted ({drifted}).")
    else:
        out.append(style("In sync.", "green", "bold") + " Live state matches the manifests.")
    out.append(
        f"{total.in_sync} in sync, {total.kept} kept by policy; coverage "
        f"{percent(total.coverage)} ({total.declared} of {total.live} live objects declared)."
    )
    return "\n".join(out) + "\n"
