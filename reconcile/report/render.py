"""A merged report as text, markdown, HTML or JSON: pure functions of the report.

Each report is first laid out once, format-neutral (a title, a table with a row per provider and
the total, then the items in groups), and each format writes that layout. Platform text (names,
ids, values, sentences) is never trusted: markdown and HTML escape it with the escaping helpers
of `reconcile.render.markdown` and `reconcile.render.html`, and text shows control characters as
visible escapes (`model.printable`: a name must not drive the terminal).

Over 450 lines on purpose: one layout and the four formats that write it, kept together so a
change to the layout shows in every format at once.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from reconcile.drift import CATEGORIES, LABELS, Category, Item
from reconcile.model import FieldChange, ServiceUse, printable
from reconcile.plan import Change, Drift
from reconcile.render import count, percent, with_versions
from reconcile.render.html import _code as html_code
from reconcile.render.html import _e as html_text
from reconcile.render.json import printable_json
from reconcile.render.markdown import DEFAULT_BUDGET
from reconcile.render.markdown import code as md_code
from reconcile.render.markdown import text as md_text
from reconcile.report.merge import (
    MergedDrift,
    MergedPlan,
    MergedReport,
    PlanCounts,
    Tally,
    to_json,
)

#: A piece of a cell or a sentence: (True, name) for a name, id or value (a code span in markdown
#: and HTML), (False, words) for words.
Span = tuple[bool, str]
Cell = tuple[Span, ...]


def words(value: str) -> Span:
    return (False, value)


def name(value: str) -> Span:
    return (True, value)


@dataclass(frozen=True)
class Line:
    """One item of a report, in any format."""

    kind: str
    address: str
    id: str | None
    #: Versions a model line takes along.
    along: int
    reason: str
    detail: str
    hint: str = ""
    #: Field changes, services: one cell each.
    notes: tuple[Cell, ...] = ()


@dataclass(frozen=True)
class Group:
    title: str
    #: The text format's mark and word: "- delete", "! blocked".
    mark: str
    verb: str
    lines: list[Line]
    open: bool = False


@dataclass
class Layout:
    title: str
    sentences: list[str]
    warnings: list[str]
    head: list[str]
    #: The first `numeric_from` columns are words; the others numbers, aligned right.
    numeric_from: int
    rows: list[list[Cell]]
    groups: list[Group]
    footer: list[Cell] = field(default_factory=list)


# -- layout -------------------------------------------------------------------------------------


def _tally(tally: Tally) -> Cell:
    if not tally.objects:
        return (words("0"),)
    return (words(f"{tally.objects} ({tally.models} + {tally.versions})"),)


def _service(service: ServiceUse) -> Cell:
    return (
        words("used by "),
        name(service.id),
        words(" ("),
        name(service.name),
        words(f", {service.status})"),
    )


def _field(change: FieldChange) -> Cell:
    return (
        name(change.field),
        words(": "),
        name(json.dumps(change.live, ensure_ascii=False)),
        words(" (live) -> "),
        name(json.dumps(change.declared, ensure_ascii=False)),
        words(" (declared)"),
    )


def _change_line(change: Change) -> Line:
    return Line(
        kind=change.kind.value,
        address=change.address,
        id=change.id,
        along=len(change.version_ids),
        reason=change.action_reason.value,
        detail=change.detail,
        notes=tuple(_service(service) for service in change.blocked_by),
    )


def _drift_line(item: Drift) -> Line:
    return Line(
        kind=item.kind.value,
        address=item.address,
        id=item.id,
        along=0,
        reason=item.drift.value,
        detail=item.detail,
        hint=item.hint,
        notes=tuple(_field(change) for change in item.fields),
    )


def _item_line(item: Item) -> Line:
    return Line(
        kind=item.kind.value,
        address=item.address,
        id=item.id,
        along=item.versions,
        reason=item.reason,
        detail=item.detail,
        hint=item.hint,
        notes=tuple(_field(change) for change in item.fields)
        + tuple(_service(service) for service in item.blocked_by),
    )


def _footer(report: MergedReport) -> list[Cell]:
    footer: list[Cell] = [
        (
            words(
                f"Merged from {count(len(report.sources), 'document')}, made from the manifests "
            ),
            name(report.manifest_digest),
            words(":"),
        )
    ]
    for source in report.sources:
        when = f", {source.created_at}" if source.created_at else ""
        footer.append(
            (
                name(source.file),
                words(" ("),
                *_names(source.providers),
                words(f"; reconcile {source.tool_version}{when}; plan "),
                name(source.plan_digest),
                words(")"),
            )
        )
    return footer


def _names(values: Sequence[str]) -> Cell:
    spans: list[Span] = []
    for index, value in enumerate(values):
        spans += [words(", ")] if index else []
        spans.append(name(value))
    return tuple(spans)


def _where(type_: str, location: str, scope: str) -> Cell:
    return (words(f"{type_}, {location}, scope {scope}"),)


def plan_layout(report: MergedPlan) -> Layout:
    total = report.total
    changes = report.changes
    if total.delete.objects or total.blocked.objects or total.drifted.objects:
        state = (
            f"{total.delete.objects} to delete, {total.blocked.objects} blocked, "
            f"{total.drifted.objects} drifted"
        )
    else:
        state = "no changes"
    rows = [
        [
            (name(row.provider),),
            _where(row.type, row.location, row.scope),
            *(_tally(tally) for tally in _plan_tallies(row.counts)),
        ]
        for row in report.providers
    ]
    rows.append([(words("total"),), (words(""),), *(_tally(t) for t in _plan_tallies(total))])
    return Layout(
        title=f"reconcile report: plans of {count(len(report.providers), 'provider')}: {state}",
        sentences=[
            f"To delete: {total.delete.objects} in all: {total.delete.models} models whole (with "
            f"{total.delete_with_models} versions) and {total.delete.versions} versions of "
            "models that stay.",
            f"Kept: {total.protected.objects} protected, {total.kept.objects} by retention "
            f"rules; {total.in_sync.objects} in sync. Counts are objects (models + versions).",
            "This report is not a plan: each provider's own plan file is what apply takes.",
        ],
        warnings=list(report.warnings),
        head=[
            "provider",
            "where",
            "in scope",
            "delete",
            "blocked",
            "protected",
            "kept",
            "drifted",
            "in sync",
        ],
        numeric_from=2,
        rows=rows,
        groups=[
            Group(
                "to delete",
                "-",
                "delete",
                [_change_line(c) for c in changes if c.is_delete],
                open=True,
            ),
            Group(
                "blocked (never deleted)",
                "!",
                "blocked",
                [_change_line(c) for c in changes if c.is_blocked],
            ),
            Group("drifted", "~", "drift", [_drift_line(item) for item in report.drift]),
            Group(
                "kept (protected or by retention rules)",
                "=",
                "keep",
                [_change_line(c) for c in changes if c.is_kept],
            ),
        ],
        footer=_footer(report),
    )


def _plan_tallies(counts: PlanCounts) -> list[Tally]:
    return [
        counts.in_scope,
        counts.delete,
        counts.blocked,
        counts.protected,
        counts.kept,
        counts.drifted,
        counts.in_sync,
    ]


#: The text format's mark and word for each category's items.
_MARKS = {
    Category.CHANGED: "~",
    Category.MISSING: "~",
    Category.UNMANAGED: "-",
    Category.BLOCKED: "!",
    Category.AMBIGUOUS: "!",
    Category.KEPT: "=",
}


def drift_layout(report: MergedDrift) -> Layout:
    total = report.total
    state = f"{total.drifted} drifted" if report.drifted else "in sync"
    rows = [
        [
            (name(row.provider),),
            _where(row.type, row.location, row.scope),
            (words(str(row.counts.live)),),
            (words(percent(row.counts.coverage)),),
            *((words(str(row.counts.of(c))),) for c in CATEGORIES),
        ]
        for row in report.providers
    ]
    rows.append(
        [
            (words("total"),),
            (words(""),),
            (words(str(total.live)),),
            (words(percent(total.coverage)),),
            *((words(str(total.of(c))),) for c in CATEGORIES),
        ]
    )
    groups = [
        Group(
            LABELS[category][0],
            _MARKS[category],
            LABELS[category][0],
            [_item_line(item) for item in report.items if item.category is category],
            open=category in (Category.CHANGED, Category.MISSING, Category.UNMANAGED),
        )
        for category in CATEGORIES
        if category is not Category.IN_SYNC
    ]
    return Layout(
        title=f"reconcile report: drift of {count(len(report.providers), 'provider')}: "
        f"{state}, coverage {percent(total.coverage)}",
        sentences=[
            f"Coverage {percent(total.coverage)}: {total.declared} of {total.live} live objects "
            "in scope are declared in the manifests.",
            "; ".join(f"{LABELS[c][0]}: {LABELS[c][1]}" for c in CATEGORIES) + ".",
        ],
        warnings=list(report.warnings),
        head=["provider", "where", "live", "coverage", *(LABELS[c][0] for c in CATEGORIES)],
        numeric_from=2,
        rows=rows,
        groups=groups,
        footer=_footer(report),
    )


def layout(report: MergedReport) -> Layout:
    return plan_layout(report) if isinstance(report, MergedPlan) else drift_layout(report)


# -- text ---------------------------------------------------------------------------------------


def _plain(value: str) -> str:
    return printable(value)


def _plain_cell(cell: Cell) -> str:
    return "".join(_plain(value) for _, value in cell)


def _text_table(page: Layout) -> list[str]:
    cells = [page.head, *([_plain_cell(cell) for cell in row] for row in page.rows)]
    widths = [max(len(row[index]) for row in cells) for index in range(len(page.head))]
    lines = []
    for row in cells:
        padded = [
            value.rjust(width) if index >= page.numeric_from else value.ljust(width)
            for index, (value, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(padded).rstrip())
    return lines


def _text_line(group: Group, line: Line) -> list[str]:
    head = f"  {group.mark} {group.verb} {line.kind} {_plain(line.address)}"
    if line.along:
        head += f" ({with_versions(line.along)})"
    if line.id:
        head += f"  id={_plain(line.id)}"
    out = [head, f"      # ({_plain(line.reason)}: {_plain(line.detail)})"]
    out += [f"      {_plain_cell(note)}" for note in line.notes]
    if line.hint:
        out.append(f"      # fix: {_plain(line.hint)}")
    return out


def render_text(report: MergedReport) -> str:
    page = layout(report)
    out = [page.title, ""]
    out += [f"Warning: {_plain(warning)}" for warning in page.warnings]
    out += [*_text_table(page), "", *page.sentences]
    for group in page.groups:
        if group.lines:
            out += ["", f"{len(group.lines)} {group.title}:"]
            for line in group.lines:
                out += _text_line(group, line)
    out += ["", *(_plain_cell(cell) for cell in page.footer)]
    return "\n".join(out) + "\n"


# -- markdown -----------------------------------------------------------------------------------


def _md_cell(cell: Cell) -> str:
    return "".join(md_code(value) if is_name else md_text(value) for is_name, value in cell)


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int) -> str:
    align = ["--:" if index >= numeric_from else "---" for index in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _md_row(line: Line) -> list[str]:
    label = md_code(line.address) + (f" ({with_versions(line.along)})" if line.along else "")
    why = f"**{md_text(line.reason)}**: {md_text(line.detail)}"
    if line.hint:
        why += f"<br>fix: {md_text(line.hint)}"
    notes = "<br>".join(_md_cell(note) for note in line.notes) or "–"
    return [line.kind, label, md_code(line.id) if line.id else "–", why, notes]


def render_markdown(report: MergedReport, *, budget: int = DEFAULT_BUDGET) -> str:
    """For a pull-request comment or `$GITHUB_STEP_SUMMARY`: the table first, then each group's
    items folded; item rows stop once the document reaches `budget` characters (GitHub refuses
    comments over 65,536), saying how many were left out."""
    page = layout(report)
    parts = [f"### {md_text(page.title)}"]
    parts += [f"> **Warning:** {md_text(warning)}" for warning in page.warnings]
    rows = [[_md_cell(cell) for cell in row] for row in page.rows]
    parts += [_md_table(page.head, rows, page.numeric_from), *map(md_text, page.sentences)]
    size = sum(len(part) for part in parts)
    for group in page.groups:
        if not group.lines:
            continue
        made: list[list[str]] = []
        for line in group.lines:
            row = _md_row(line)
            size += sum(len(cell) + 3 for cell in row)
            if size > budget:
                break
            made.append(row)
        attribute = " open" if group.open else ""
        block = [
            f"<details{attribute}><summary>{len(group.lines)} {html.escape(group.title)}</summary>",
            "",
            _md_table(["kind", "object", "id", "why", "fields / used by"], made, 99),
        ]
        if len(made) < len(group.lines):
            block += [
                "",
                f"… and {len(group.lines) - len(made)} more, left out to keep this under "
                "GitHub's size limit: see the JSON (`--format json`) for everything.",
            ]
        parts.append("\n".join([*block, "", "</details>"]))
    parts.append("<sub>" + "<br>".join(_md_cell(cell) for cell in page.footer) + "</sub>")
    return "\n\n".join(parts) + "\n"


# -- html ---------------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 76rem;
       padding: 0 1rem; color: #1d1d1f; }
h1 { font-size: 1.4rem; } .warning { color: #b71c1c; } .meta { color: #555; font-size: .9rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; width: 100%; }
th, td { border: 1px solid #ddd; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f5f5f7; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 12px/1.3 ui-monospace, monospace; word-break: break-all; }
summary { cursor: pointer; font-weight: 600; }
"""


def _html_cell(cell: Cell) -> str:
    return "".join(html_code(value) if is_name else html_text(value) for is_name, value in cell)


def _html_table(page: Layout) -> str:
    head = "".join(f"<th>{html_text(title)}</th>" for title in page.head)
    numeric = ' class="n"'
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{numeric if index >= page.numeric_from else ''}>{_html_cell(cell)}</td>"
            for index, cell in enumerate(row)
        )
        + "</tr>"
        for row in page.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_row(line: Line) -> str:
    label = html_code(line.address) + (f" ({with_versions(line.along)})" if line.along else "")
    why = f"<strong>{html_text(line.reason)}</strong>: {html_text(line.detail)}"
    if line.hint:
        why += f"<br>fix: {html_text(line.hint)}"
    notes = "<br>".join(_html_cell(note) for note in line.notes) or "–"
    ident = html_code(line.id) if line.id else "–"
    return (
        f"<tr><td>{html_text(line.kind)}</td><td>{label}</td><td>{ident}</td>"
        f"<td>{why}</td><td>{notes}</td></tr>"
    )


def _html_group(group: Group) -> str:
    rows = "".join(_html_row(line) for line in group.lines)
    attribute = " open" if group.open else ""
    return (
        f"<details{attribute}><summary>{len(group.lines)} {html_text(group.title)}</summary>"
        "<table><thead><tr><th>kind</th><th>object</th><th>id</th><th>why</th>"
        f"<th>fields / used by</th></tr></thead><tbody>{rows}</tbody></table></details>"
    )


def render_html(report: MergedReport) -> str:
    """One self-contained page: inline CSS, no script, no URL; a Content-Security-Policy that
    forbids both, in case a browser ever found something to run anyway."""
    page = layout(report)
    body = [f"<h1>{html_text(page.title)}</h1>"]
    body += [f'<p class="warning">Warning: {html_text(w)}</p>' for w in page.warnings]
    body += [_html_table(page), *(f"<p>{html_text(s)}</p>" for s in page.sentences)]
    body += [_html_group(group) for group in page.groups if group.lines]
    body.append('<p class="meta">' + "<br>".join(map(_html_cell, page.footer)) + "</p>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html_text(page.title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


# -- json ---------------------------------------------------------------------------------------


def render_json(report: MergedReport) -> str:
    # Escaped as `plan --json` is: JSON lets a bidi override or a C1 control through as it is.
    return printable_json(to_json(report))


RENDERERS: dict[str, Callable[[MergedReport], str]] = {
    "text": render_text,
    "markdown": render_markdown,
    "html": render_html,
    "json": render_json,
}
