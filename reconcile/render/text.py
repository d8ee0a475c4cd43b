"""Terraform-like text for people: `- delete`, `! blocked`, `~ drift`, `# (because ...)`.

Names, ids and details come from the platforms: every piece of text goes through
`model.printable` before it is styled, so a newline or a terminal escape sequence in a name shows
as `\\n` or `\\x1b` and can neither forge a line of the plan nor reach the terminal.

Over 450 lines: the plan's, the drift report's and an apply's result's text, which share one
styling, one grouping of objects under their model and one way of wrapping reasons.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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
from reconcile.plan import Change, Drift, DriftKind, FieldChange, Kind, Plan, Reason
from reconcile.render import DeleteTally, count, percent, with_versions

if TYPE_CHECKING:
    from reconcile.applier import ApplyResult

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


def _field_lines(fields: Sequence[FieldChange]) -> list[str]:
    """`~ FIELD: LIVE (live) -> DECLARED (declared)`, the declared value on a line of its own
    where both do not fit `WIDTH`."""
    lines = []
    for change in fields:
        live = f"      ~ {printable(change.field)}: {_value(change.live)} (live)"
        declared = f"-> {_value(change.declared)} (declared)"
        if len(live) + 1 + len(declared) <= WIDTH:
            lines.append(f"{live} {declared}")
        else:
            lines += [live, f"          {declared}"]
    return lines


def _drift_lines(item: Drift, style: _Style) -> list[str]:
    label = {
        DriftKind.MISSING: "missing",
        DriftKind.CHANGED: "drift",
        DriftKind.AMBIGUOUS: "ambiguous",
    }
    lines = [style(f"  ~ {label[item.drift]} {item.kind.value} {item.address}", "yellow")]
    lines += _field_lines(item.fields)
    lines += _comment(f"({item.detail})", 6, style)
    if item.hint:
        lines += _comment(f"fix: {item.hint}", 6, style)
    return lines


#: Lines of a plan fit this many columns, but for an object whose address is longer.
WIDTH = 100

#: Each section of a provider's plan: which changes, and how their lines start.
_SECTIONS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("- delete", ("red",), "to delete"),
    ("! blocked", ("yellow", "bold"), "blocked"),
    ("= keep", ("cyan",), "kept"),
)


def _section_of(change: Change) -> int:
    return 0 if change.is_delete else 1 if change.is_blocked else 2


def _object_lines(change: Change, indent: int, style: _Style, *, compact: bool) -> list[str]:
    """The object's line, with its id at the end; the id on a line of its own below where the
    line would not fit `WIDTH` (`compact`: one line whatever its width)."""
    marker, colours, _ = _SECTIONS[_section_of(change)]
    head = f"{' ' * indent}{marker} {change.kind.value} {change.address}"
    if change.is_delete and change.version_ids:
        head += f" ({with_versions(len(change.version_ids))})"
    id = f"id={change.id}"
    if compact or len(printable(head)) + 2 + len(printable(id)) <= WIDTH:
        return [style(head, *colours) + style(f"  {id}", "dim")]
    return [style(head, *colours), style(f"{' ' * (indent + 4)}{id}", "dim")]


#: Short spans kept whole by `_comment`, and what stands for their spaces meanwhile (printable
#: text never holds a NUL: it shows one as `\\x00`).
_SPAN = re.compile(r'\([^()]{1,40}\)|"[^"]{1,40}"')
_KEEP = "\x00"


def _comment(text: str, indent: int, style: _Style) -> list[str]:
    """`# TEXT` at `indent`, escaped and dim, wrapped at `WIDTH`: between its clauses (after a
    ": ") where they fit, else between words (never inside one)."""
    first, rest = " " * indent + "# ", " " * indent + "#   "
    lines: list[str] = []
    line = first
    # A short quoted or parenthesized span stays on one line: its spaces are not breaks.
    text = _SPAN.sub(lambda span: span[0].replace(" ", _KEEP), printable(text))
    for clause in _clauses(text):
        # On a new line only where it fits there, and the line it ends is at least half full.
        if (
            len(line) + len(clause) <= WIDTH
            or len(rest) + len(clause.rstrip()) > WIDTH
            or len(line) < WIDTH // 2
        ):
            line += clause
            continue
        lines.append(line.rstrip())
        line = rest + clause
    lines.append(line.rstrip())
    wrapped = [
        part
        for long in lines
        for part in textwrap.wrap(
            long,
            width=WIDTH,
            subsequent_indent=rest,
            break_long_words=False,
            break_on_hyphens=False,
        )
    ]
    return [style(line.replace(_KEEP, " "), "dim") for line in wrapped]


def _clauses(text: str) -> list[str]:
    """ "a: b: c" -> ["a: ", "b: ", "c"]."""
    parts = text.split(": ")
    return [part + ": " for part in parts[:-1]] + [parts[-1]]


def _reason_lines(change: Change, indent: int, style: _Style) -> list[str]:
    return _comment(f"(because {change.action_reason.value}: {change.detail})", indent, style)


def _reason(change: Change) -> tuple[str, str]:
    return (change.action_reason.value, change.detail)


class _Section:
    """The lines of one section (deletes, blocked or kept) of a provider: a model's own line, or
    a header naming it, then its versions under it; one reason line after each run of lines that
    share their reason."""

    def __init__(self, style: _Style, models: dict[str, str], compact: bool) -> None:
        self.style = style
        #: Model id -> its address, for the header of versions whose model has no line here.
        self.models = models
        self.compact = compact
        self.lines: list[str] = []
        self.run: list[Change] = []
        self.indent = 2

    def flush(self) -> None:
        if self.run and not self.compact:
            self.lines += _reason_lines(self.run[-1], self.indent + 4, self.style)
        self.run = []

    def add(self, change: Change, indent: int) -> None:
        if self.run and (indent != self.indent or _reason(self.run[-1]) != _reason(change)):
            self.flush()
        self.indent = indent
        self.run.append(change)
        self.lines += _object_lines(change, indent, self.style, compact=self.compact)

    def group(self, changes: list[Change]) -> None:
        """One model's changes in this section: its own first, if it has one."""
        own = changes[0] if changes[0].kind is Kind.MODEL else None
        versions = changes[1:] if own is not None else changes
        if own is not None:
            self.add(own, 2)
        elif len(versions) > 1 and not self.compact:
            self.flush()
            model = versions[0].model_id or ""
            address = self.models.get(model) or printable(versions[0].model_name or model)
            what = f"{count(len(versions), 'version')} {_SECTIONS[_section_of(versions[0])][2]}"
            self.lines.append(self.style(f"  {address}: {what}", "bold"))
        nested = own is not None or len(versions) > 1
        for version in versions:
            self.add(version, 4 if nested and not self.compact else 2)


def _groups(changes: Sequence[Change]) -> list[list[Change]]:
    """`changes` by model, in address order: a model's own change first, then its versions."""
    by_model: dict[str, list[Change]] = {}
    for change in sorted(changes, key=lambda c: (c.kind is not Kind.MODEL, c.address)):
        key = change.id if change.kind is Kind.MODEL else change.model_id or change.id
        by_model.setdefault(key, []).append(change)
    return sorted(by_model.values(), key=lambda group: group[0].address)


def _changes_lines(
    changes: Sequence[Change], models: dict[str, str], style: _Style, *, compact: bool
) -> list[str]:
    out: list[str] = []
    for index in range(len(_SECTIONS)):
        section = _Section(style, models, compact)
        for group in _groups([c for c in changes if _section_of(c) == index]):
            section.group(group)
        section.flush()
        out += section.lines
    return out


def render_plan(plan: Plan, *, color: bool = False, compact: bool = False) -> str:
    """The plan for people. Per provider, deletes then blocked then kept objects, each model
    with its versions under it and one reason line per run of objects that share it; drift last.
    `compact`: one line per object, no reasons, no headers (for plans of thousands of lines)."""
    style = _Style(color)
    out: list[str] = []
    for warning in plan.notices():
        out += [style(f"Warning: {warning}", "yellow", "bold"), ""]
    changes_of, drift_of = plan.changes_by_provider(), plan.drift_by_provider()
    for scope in plan.scopes:
        changes, drift = changes_of[scope.provider], drift_of[scope.provider]
        shown = [c for c in changes if c.action_reason is not Reason.DECLARED]
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
        models = {c.id: c.address for c in changes if c.kind is Kind.MODEL}
        out += _changes_lines(shown, models, style, compact=compact)
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
    return lines + _delete_summary(plan) + _attribution_lines(plan)


def _attribution_lines(plan: Plan) -> list[str]:
    """With `plan --base`: which deletes the change causes, and which came from outside git."""
    labels = plan.attribution
    if labels is None:
        return []
    lines = [
        f"Against {printable(labels.base)}: this change causes {len(labels.caused_by_change)} "
        f"of the deletes; {len(labels.already_undeclared)} were already undeclared before it."
    ]
    lines += [f"  caused by this change: {printable(a)}" for a in labels.caused_by_change]
    return lines


def _delete_summary(plan: Plan) -> list[str]:
    """ "515 deletes: 295 models with 1,770 versions, 220 versions; 1,990 objects.", then the same
    per reason (objects counted as `max_deletes` counts them)."""
    total = DeleteTally()
    reasons: dict[str, DeleteTally] = {}
    for change in plan.deletes():
        model = change.kind is Kind.MODEL
        total.add(len(change.version_ids), model=model)
        reason = reasons.setdefault(change.action_reason.value, DeleteTally())
        reason.add(len(change.version_ids), model=model)
    if not total.deletes:
        return []
    lines = [f"{count(total.deletes, 'delete')}: {total.words()}."]
    lines += [f"  {name}: {tally.words()}" for name, tally in sorted(reasons.items())]
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


def _item_lines(item: Item, indent: int, style: _Style) -> list[str]:
    mark, colour = _DRIFT_MARKS[item.category]
    head = f"{' ' * indent}{mark} {LABELS[item.category][0]} {item.kind.value} {item.address}"
    if item.versions:
        head += f" ({with_versions(item.versions)})"
    lines = [style(head, colour) + (style(f"  id={item.id}", "dim") if item.id else "")]
    return lines + _field_lines(item.fields)


def _item_model(item: Item) -> str:
    """The address of the model an item is or belongs to; a version's own address where it
    cannot be split without doubt (a name holding a `/`): then it stands alone."""
    if item.kind is Kind.MODEL or item.address.count("/") != 2:
        return item.address
    return item.address.rsplit("/", 1)[0]


def _items_lines(items: Sequence[Item], style: _Style) -> list[str]:
    """A provider's items like a plan's changes: by category, each model's versions under it
    (or under a header naming the model, where it has no line of its own in that category), one
    reason line per run of items that share their reason, fix and indent."""
    out: list[str] = []
    run: list[tuple[Item, int]] = []

    def flush() -> None:
        if run:
            last, indent = run[-1]
            out.extend(_comment(f"({last.reason}: {last.detail})", indent + 4, style))
            if last.hint:
                out.extend(_comment(f"fix: {last.hint}", indent + 4, style))
            run.clear()

    for category in CATEGORIES:
        groups: dict[str, list[Item]] = {}
        for item in items:
            if item.category is category:
                groups.setdefault(_item_model(item), []).append(item)
        for model, group in groups.items():
            own = group[0] if group[0].kind is Kind.MODEL else None
            versions = group[1:] if own is not None else group
            if own is None and len(versions) > 1:
                flush()
                what = f"{count(len(versions), 'version')} {LABELS[category][0]}"
                out.append(style(f"  {model}: {what}", "bold"))
            for item in group:
                indent = 2 if item is own or len(group) == 1 else 4
                if run and (run[-1][0].reason, run[-1][0].detail, run[-1][0].hint, run[-1][1]) != (
                    item.reason,
                    item.detail,
                    item.hint,
                    indent,
                ):
                    flush()
                out.extend(_item_lines(item, indent, style))
                run.append((item, indent))
                if item.fields:
                    flush()
        flush()
    return out


def _tally_lines(items: Sequence[Item]) -> list[str]:
    """Per drift category of more than one item: its items by kind, objects counted as
    `max_deletes` counts them (a model and the versions it carries), then by reason."""
    lines = []
    for category in DRIFT_CATEGORIES:
        mine = [item for item in items if item.category is category]
        if len(mine) < 2:
            continue
        tally = DeleteTally()
        reasons: dict[str, int] = {}
        for item in mine:
            tally.add(item.versions, model=item.kind is Kind.MODEL)
            reasons[item.reason] = reasons.get(item.reason, 0) + 1
        by_reason = ", ".join(f"{printable(r)} {n}" for r, n in sorted(reasons.items()))
        lines.append(f"  {LABELS[category][0]}: {tally.words()}")
        lines.append(f"    by reason: {by_reason}")
    return lines


def render_drift(report: DriftReport, *, color: bool = False) -> str:
    """The drift report for a terminal: per provider its counts, then one entry per object that
    is not in sync; a last line with the totals and the coverage."""
    style = _Style(color)
    out: list[str] = []
    for notice in report.notices():
        out += [style(f"Warning: {notice}", "yellow", "bold"), ""]
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
        out += _tally_lines(provider.items)
        out += _items_lines(provider.items, style)
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


def render_apply_result(result: ApplyResult, total: int) -> str:
    """What an apply did: each object not simply deleted, then the counts (of `total`)."""
    deleted = len(result.with_status("deleted"))
    gone = len(result.with_status("already_gone"))
    unknown = result.with_status("unknown")
    lines = []
    for outcome in result.outcomes:
        if outcome.verified and outcome.status != "failed":
            lines.append(f"  - {outcome.status} {outcome.change.address}: {outcome.error}")
    for outcome in result.failed:
        lines.append(f"  ! failed {outcome.change.address}: {outcome.error}")
    for outcome in unknown:
        lines.append(f"  ? unknown {outcome.change.address}: {outcome.error}")
    for change in result.not_attempted:
        lines.append(f"  . not attempted {change.address}")
    counts = f"{deleted} deleted, {gone} already gone, {len(result.failed)} failed"
    if unknown:
        counts += f", {len(unknown)} unknown"
    if result.interrupted:
        lines.append(
            f"Interrupted: {counts}, {len(result.not_attempted)} not attempted. "
            "Run plan again to see what is left."
        )
    elif result.failed or unknown:
        lines.append(
            f"Apply finished with errors: {counts} (of {total}). "
            "Run plan again to retry what is left."
        )
    else:
        lines.append(f"Apply complete: {deleted} deleted, {gone} already gone.")
    return "\n".join(lines)
