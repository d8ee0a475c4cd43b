"""A drift report as one self-contained HTML page: inline CSS, an inline SVG bar chart of the
categories, no script and no external resource of any kind (no URL at all), so the page can be
archived as a CI artifact and opened anywhere, offline.

Every string from a report is escaped (names come from the platforms); a Content-Security-Policy
forbids scripts and any fetch, in case a browser ever found something to run anyway.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from reconcile.drift import CATEGORIES, LABELS, Category, Counts, DriftReport, Item
from reconcile.model import printable
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
code { font: 12px/1.3 ui-monospace, SFMono-Regular, Menlo, monospace; word-break: break-all; }
details { margin: .5rem 0; } summary { cursor: pointer; font-weight: 600; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 2px;
          margin-right: .35em; vertical-align: baseline; }
"""


def _e(value: Any) -> str:
    """Any value as HTML text: characters that are not printable made visible escapes first."""
    return html.escape(printable(str(value)), quote=True)


def _code(value: Any) -> str:
    return f"<code>{_e(value)}</code>"


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


def _item_row(item: Item) -> str:
    label = _code(item.address)
    if item.versions:
        label += f" ({with_versions(item.versions)})"
    details: list[str] = [
        f"{_code(change.field)}: {_code(json.dumps(change.live, ensure_ascii=False))} → "
        f"{_code(json.dumps(change.declared, ensure_ascii=False))}"
        for change in item.fields
    ]
    details += [
        f"used by {_code(service.id)} ({_code(service.name)}, {_e(service.status)})"
        for service in item.blocked_by
    ]
    why = f"<strong>{_e(item.reason)}</strong>: {_e(item.detail)}"
    if item.hint:
        why += f"<br>fix: {_e(item.hint)}"
    return (
        f"<tr><td>{_e(item.kind.value)}</td><td>{label}</td>"
        f"<td>{_code(item.id) if item.id else '–'}</td>"
        f"<td>{'<br>'.join(details) or '–'}</td><td>{why}</td></tr>"
    )


def _items(items: Sequence[Item], category: Category, objects: int) -> str:
    summary = f"{len(items)} {LABELS[category][0]}"
    if category is not Category.MISSING and objects != len(items):
        summary += f" ({objects} objects with their versions)"
    attribute = " open" if category in (Category.CHANGED, Category.MISSING) else ""
    rows = "".join(_item_row(item) for item in items)
    return (
        f"<details{attribute}><summary>{_swatch(category)}{_e(summary)}: "
        f"{_e(LABELS[category][1])}</summary>"
        "<table><thead><tr><th>kind</th><th>object</th><th>id</th><th>fields / used by</th>"
        f"<th>why</th></tr></thead><tbody>{rows}</tbody></table></details>"
    )


def render_drift_html(report: DriftReport) -> str:
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
                body.append(_items(items, category, provider.counts.of(category)))
    title = "reconcile drift: " + (f"{total.drifted} drifted" if report.drifted else "in sync")
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
