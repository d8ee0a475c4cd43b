"""A drift report as one self-contained HTML page: inline CSS, an inline SVG bar chart of the
categories, no script and no external resource of any kind (no URL at all), so the page can be
archived as a CI artifact and opened anywhere, offline.

Every string from a report is escaped (names come from the platforms); a Content-Security-Policy
forbids scripts and any fetch, in case a browser ever found something to run anyway.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconcile.drift import CATEGORIES, LABELS, Category, Counts, DriftReport, Item
from reconcile.model import FieldChange, ServiceUse, printable
from reconcile.plan import Change, Kind, Plan
from reconcile.render import percent, with_versions

#: One colour per category: the chart's bars and the tables' markers.
COLOURS = {
    Category.IN_SYNC: "#2e7d32",
    Category.CHANGED: "#f9a825",
    Category.MISSING: "#6a1b9a",
    Category.UNMANAGED: "#c62828",
    Category.BLOCKED: "#ef6c00",
    Category.AMBIGUOUS: "#ad1457",
    Category.KEPT: "#0277bd",
}

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1d1d1f; background: #fff; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
.status { font-weight: 600; padding: .15rem .5rem; border-radius: .25rem; color: #fff; }
.drifted { background: #c62828; } .in-sync { background: #2e7d32; }
.meta, .note { color: #555; font-size: .9rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; width: 100%; }
th, td { border: 1px solid #ddd; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f5f5f7; } td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 12px/1.3 ui-monospace, SFMono-Regular, Menlo, monospace;
       overflow-wrap: normal; word-break: keep-all; }
tr.model th { background: #fafafa; font-weight: 600; text-align: left; }
.objects td:nth-child(2) { min-width: 20rem; } tr.in-model td:nth-child(2) { padding-left: 1.5rem; }
td.age { white-space: nowrap; }
details { margin: .5rem 0; } summary { cursor: pointer; font-weight: 600; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 2px;
          margin-right: .35em; vertical-align: baseline; }
"""


def _e(value: Any) -> str:
    """Any value as HTML text: characters that are not printable made visible escapes first."""
    return html.escape(printable(str(value)), quote=True)


def _code(value: Any) -> str:
    return f"<code>{_e(value)}</code>"


def _name(value: Any) -> str:
    """An address or name as code that a browser breaks only after a `/` or a `-` (`<wbr>`;
    the CSS keeps it from breaking anywhere else)."""
    text = _e(value).replace("/", "/<wbr>").replace("-", "-<wbr>")
    return f"<code>{text}</code>"


def _swatch(category: Category) -> str:
    return f'<span class="swatch" style="background:{COLOURS[category]}"></span>'


def chart(counts: Counts, *, width: int = 560) -> str:
    """A horizontal bar per category, scaled to the largest; the count at the end of each bar."""
    label_width, bar_height, gap = 110, 18, 6
    room = width - label_width - 60
    largest = max((counts.of(category) for category in CATEGORIES), default=0) or 1
    height = len(CATEGORIES) * (bar_height + gap) + gap
    title = ", ".join(f"{LABELS[c][0]} {counts.of(c)}" for c in CATEGORIES)
    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
    ]
    for index, category in enumerate(CATEGORIES):
        count = counts.of(category)
        y = gap + index * (bar_height + gap)
        length = round(room * count / largest)
        parts += [
            f'<text x="{label_width - 8}" y="{y + bar_height - 5}" text-anchor="end" '
            f'font-size="12">{_e(LABELS[category][0])}</text>',
            f'<rect x="{label_width}" y="{y}" width="{length}" height="{bar_height}" '
            f'fill="{COLOURS[category]}" rx="2"></rect>',
            f'<text x="{label_width + length + 6}" y="{y + bar_height - 5}" '
            f'font-size="12">{count}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def _counts_table(report: DriftReport) -> str:
    head = "".join(f'<th class="n">{_swatch(c)}{_e(LABELS[c][0])}</th>' for c in CATEGORIES)
    rows = []
    entries: list[tuple[str, Counts]] = [
        (f"{_code(p.provider)} ({_e(p.type)}, {_e(p.location)}, scope {_e(p.scope)})", p.counts)
        for p in report.providers
    ]
    if len(report.providers) != 1:
        entries.append(("<strong>total</strong>", report.total))
    for label, counts in entries:
        cells = "".join(f'<td class="n">{counts.of(c)}</td>' for c in CATEGORIES)
        rows.append(
            f'<tr><td>{label}</td><td class="n">{counts.live}</td>'
            f'<td class="n">{percent(counts.coverage)}</td>{cells}</tr>'
        )
    return (
        '<table><thead><tr><th>provider</th><th class="n">live</th><th class="n">coverage</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


@dataclass(frozen=True)
class _Row:
    """One object of a table, from a drift report's item or a plan's change."""

    kind: str
    address: str
    id: str | None
    #: What groups it: its model's id (a model's own), or its address where no id is known.
    model: str
    reason: str
    detail: str
    hint: str = ""
    fields: tuple[FieldChange, ...] = ()
    blocked_by: tuple[ServiceUse, ...] = ()
    versions: int = 0
    #: From the live record: when and by whom the object was created ("" where not said).
    created: str = ""
    creator: str = ""


class _Origins:
    """The live records of a plan's changes by object, and what they say of who made each object
    and when (Fabric's `create_time`/`create_user`, Qianfan's `createTime`/`createUser`)."""

    def __init__(self, plan: Plan | None) -> None:
        self.changes: dict[tuple[str, str, str], Change] = {}
        #: Model id -> its address, for the header of versions listed without their model.
        self.models: dict[str, str] = {}
        for change in plan.resource_changes if plan is not None else ():
            self.changes[(change.provider, change.kind.value, change.id)] = change
            if change.kind is Kind.MODEL:
                self.models[change.id] = change.address

    def change(self, provider: str, kind: str, id: str | None) -> Change | None:
        return None if id is None else self.changes.get((provider, kind, id))

    @staticmethod
    def of(change: Change | None) -> tuple[str, str]:
        if change is None or change.before is None:
            return "", ""
        value = change.before.value()
        created = value.get("create_time") or value.get("createTime")
        user = value.get("create_user") or value.get("createUser")
        if isinstance(user, dict):
            user = user.get("name") or user.get("domain_name") or user.get("id")
        return (created if isinstance(created, str) else "", user if isinstance(user, str) else "")


def _item_rows(items: Sequence[Item], origins: _Origins) -> list[_Row]:
    rows = []
    for item in items:
        change = origins.change(item.provider, item.kind.value, item.id)
        model = item.id or item.address
        if change is not None and change.kind is Kind.VERSION:
            model = change.model_id or model
        created, creator = origins.of(change)
        rows.append(
            _Row(
                kind=item.kind.value,
                address=item.address,
                id=item.id,
                model=model,
                reason=item.reason,
                detail=item.detail,
                hint=item.hint,
                fields=item.fields,
                blocked_by=item.blocked_by,
                versions=item.versions,
                created=created,
                creator=creator,
            )
        )
    return rows


def _change_rows(changes: Sequence[Change]) -> list[_Row]:
    rows = []
    for change in changes:
        created, creator = _Origins.of(change)
        rows.append(
            _Row(
                kind=change.kind.value,
                address=change.address,
                id=change.id,
                model=change.model_id or change.id,
                reason=change.action_reason.value,
                detail=change.detail,
                blocked_by=change.blocked_by,
                versions=len(change.version_ids),
                created=created,
                creator=creator,
            )
        )
    return rows


def age(created: str, now: str | None) -> str:
    """How long before `now` (the report's own time, never the clock) `created` was: "3 days",
    "2 years"; "" where either is unknown or not a time."""
    if not created or not now:
        return ""
    try:
        start, end = datetime.fromisoformat(created), datetime.fromisoformat(now)
    except ValueError:
        return ""
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    hours = int((end - start).total_seconds() // 3600)
    days = hours // 24
    if days >= 730:
        return f"{days // 365} years"
    if days >= 2:
        return f"{days} days"
    return "1 hour" if hours == 1 else f"{max(hours, 0)} hours"


_HEAD = (
    "<thead><tr><th>kind</th><th>object</th><th>id</th><th>age</th><th>creator</th>"
    "<th>fields / used by</th><th>why</th></tr></thead>"
)


_NESTED = ' class="in-model"'


def _why(row: _Row) -> str:
    why = f"<strong>{_e(row.reason)}</strong>: {_e(row.detail)}"
    return why + f"<br>fix: {_e(row.hint)}" if row.hint else why


def _row(row: _Row, now: str | None, nested: bool, same: bool = False) -> str:
    """A row; `same`: its reason is the row's above (said once, not on every row)."""
    label = _name(row.address)
    if row.versions:
        label += f" ({with_versions(row.versions)})"
    details: list[str] = [
        f"{_code(change.field)}: {_code(json.dumps(change.live, ensure_ascii=False))} → "
        f"{_code(json.dumps(change.declared, ensure_ascii=False))}"
        for change in row.fields
    ]
    details += [
        f"used by {_code(service.id)} ({_code(service.name)}, {_e(service.status)})"
        for service in row.blocked_by
    ]
    why = _why(row)
    if same:
        why = '<span class="note">same as above</span>'
    when = age(row.created, now)
    title = f' title="{_e(row.created)}"' if row.created else ""
    return (
        f"<tr{_NESTED if nested else ''}><td>{_e(row.kind)}</td><td>{label}</td>"
        f"<td>{_code(row.id) if row.id else '–'}</td>"
        f'<td class="age"{title}>{_e(when) or "–"}</td><td>{_e(row.creator) or "–"}</td>'
        f"<td>{'<br>'.join(details) or '–'}</td><td>{why}</td></tr>"
    )


def _grouped(rows: Sequence[_Row], models: dict[str, str], now: str | None) -> str:
    """One `<tbody>` per model: its own row, or a header naming it, then its versions."""
    groups: dict[str, list[_Row]] = {}
    for row in rows:
        groups.setdefault(row.model, []).append(row)
    bodies = []
    above = ""
    for model, group in groups.items():
        own = group[0].kind == Kind.MODEL.value and group[0].id == model
        head = ""
        if not own and len(group) > 1:
            name = models.get(model) or group[0].address.rsplit("/", 1)[0]
            head = (
                f'<tr class="model"><th colspan="7">{_name(name)}: {len(group)} versions</th></tr>'
            )
        # Under their model's own row, or under the header that names it: indented.
        first_nested = 1 if own else 0 if head else len(group)
        cells = []
        for index, row in enumerate(group):
            why = _why(row)
            cells.append(_row(row, now, index >= first_nested, same=why == above))
            above = why
        bodies.append(f"<tbody>{head}{''.join(cells)}</tbody>")
    return "".join(bodies)


def _items(
    rows: Sequence[_Row],
    category: Category,
    objects: int,
    models: dict[str, str],
    now: str | None,
) -> str:
    summary = f"{len(rows)} {LABELS[category][0]}"
    if category is not Category.MISSING and objects != len(rows):
        summary += f" ({objects} objects with their versions)"
    # Open: what needs a look, and above all what apply would delete.
    opened = (Category.CHANGED, Category.MISSING, Category.UNMANAGED)
    attribute = " open" if category in opened else ""
    return (
        f"<details{attribute}><summary>{_swatch(category)}{_e(summary)}: "
        f"{_e(LABELS[category][1])}</summary>"
        f'<table class="objects">{_HEAD}{_grouped(rows, models, now)}</table></details>'
    )


def render_drift_html(report: DriftReport, plan: Plan | None = None) -> str:
    """The report as a page. Given the `plan` it was made from, each object's age (from the
    report's time) and creator, as its live record says them."""
    origins = _Origins(plan)
    total = report.total
    if report.drifted:
        status = f'<span class="status drifted">{total.drifted} drifted</span>'
    else:
        status = '<span class="status in-sync">in sync</span>'
    created = f" · {_e(report.created_at)}" if report.created_at else ""
    body = [
        f"<h1>reconcile drift {status}</h1>",
        f'<p class="meta">Manifests {_e(report.manifest_path or "-")} '
        f"({_code(report.manifest_digest)}) · plan {_code(report.plan_digest)} · "
        f"reconcile {_e(report.tool_version)}{created}</p>",
        *(f'<p class="note">Warning: {_e(notice)}</p>' for notice in report.notices()),
        f"<p>Coverage <strong>{percent(total.coverage)}</strong>: {total.declared} of "
        f"{total.live} live objects in scope are declared in the manifests.</p>",
        chart(total),
        _counts_table(report),
        '<p class="note">'
        + "; ".join(f"<em>{_e(LABELS[c][0])}</em>: {_e(LABELS[c][1])}" for c in CATEGORIES)
        + ". Live objects count one each (a model, each of its versions); <em>missing</em> "
        "counts declarations.</p>",
    ]
    for provider in report.providers:
        body.append(
            f"<h2>{_e(provider.provider)} <small>({_e(provider.type)}, {_e(provider.location)}, "
            f"coverage {percent(provider.counts.coverage)})</small></h2>"
        )
        if not provider.items:
            body.append("<p>In sync.</p>")
        for category in CATEGORIES:
            items = [item for item in provider.items if item.category is category]
            if items:
                rows = _item_rows(items, origins)
                counted = provider.counts.of(category)
                body.append(_items(rows, category, counted, origins.models, report.created_at))
    title = "reconcile drift: " + (f"{total.drifted} drifted" if report.drifted else "in sync")
    return _page(title, body)


def _page(title: str, body: list[str]) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


#: The plan's sections: what apply deletes (open), what it may not, what policy keeps.
_PLAN_SECTIONS: tuple[tuple[Category, str, str, Callable[[Change], bool]], ...] = (
    (Category.UNMANAGED, "to delete", "apply deletes it", lambda change: change.is_delete),
    (
        Category.BLOCKED,
        "blocked",
        "would be deleted, but in use or ambiguous",
        lambda change: change.is_blocked,
    ),
    (Category.KEPT, "kept", "kept by protect or a retention rule", lambda change: change.is_kept),
)


def _plan_section(
    changes: Sequence[Change], index: int, now: str | None, models: dict[str, str]
) -> str:
    category, label, meaning, _ = _PLAN_SECTIONS[index]
    rows = _change_rows(changes)
    objects = sum(1 + row.versions for row in rows)
    summary = f"{len(rows)} {label}"
    if objects != len(rows):
        summary += f" ({objects} objects with their versions)"
    attribute = " open" if category is Category.UNMANAGED else ""
    return (
        f"<details{attribute}><summary>{_swatch(category)}{_e(summary)}: {_e(meaning)}</summary>"
        f'<table class="objects">{_HEAD}{_grouped(rows, models, now)}</table></details>'
    )


def render_plan_html(plan: Plan) -> str:
    """The plan as a page: per provider what apply deletes (open, by model, with each object's
    age from the plan's time and its creator), then what is blocked and what is kept."""
    s = plan.summary
    origins = _Origins(plan)
    body = [
        f"<h1>reconcile plan: {s.delete} to delete, {s.blocked} blocked, {s.drifted} drifted</h1>",
        f'<p class="meta">Manifests {_e(plan.manifest_path or "-")} '
        f"({_code(plan.manifest_digest)}) · plan {_code(plan.plan_digest)} · "
        f"reconcile {_e(plan.tool_version)}"
        + (f" · {_e(plan.created_at)}" if plan.created_at else "")
        + "</p>",
    ]
    for warning in plan.notices():
        body.append(f'<p class="note">Warning: {_e(warning)}</p>')
    changes_of = plan.changes_by_provider()
    for scope in plan.scopes:
        body.append(
            f"<h2>{_e(scope.provider)} <small>({_e(scope.type)}, {_e(scope.location)}, "
            f"{scope.models} models, {scope.versions} versions in scope)</small></h2>"
        )
        changes = changes_of[scope.provider]
        for index, (_, _, _, test) in enumerate(_PLAN_SECTIONS):
            chosen = [c for c in changes if test(c)]
            if chosen:
                body.append(_plan_section(chosen, index, plan.created_at, origins.models))
    return _page(f"reconcile plan: {s.delete} to delete", body)
