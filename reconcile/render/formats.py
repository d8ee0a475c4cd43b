"""A plan or a drift report in the format a command was asked for (each renderer loads only
when its format is asked)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconcile.drift import DriftReport
    from reconcile.plan import Plan


def plan_as(plan: Plan, fmt: str, *, color: bool = False, compact: bool = False) -> str:
    if fmt == "json":
        from reconcile.render.json import render_plan_json

        return render_plan_json(plan)
    if fmt == "markdown":
        from reconcile.render.markdown import render_plan_markdown

        return render_plan_markdown(plan)
    from reconcile.render.text import render_plan

    return render_plan(plan, color=color, compact=compact)


def plan_pieces(
    plan: Plan, fmt: str, *, color: bool = False, compact: bool = False
) -> Iterator[str]:
    """`plan_as`, in pieces to print as they come: JSON is made a change at a time."""
    if fmt == "json":
        from reconcile.render.json import plan_json_pieces

        yield from plan_json_pieces(plan)
    else:
        yield plan_as(plan, fmt, color=color, compact=compact)


def drift_as(report: DriftReport, fmt: str, plan: Plan, *, color: bool = False) -> str:
    if fmt == "json":
        from reconcile.render.json import render_drift_json

        return render_drift_json(report)
    if fmt == "markdown":
        from reconcile.render.markdown import render_drift_markdown

        return render_drift_markdown(report)
    if fmt == "html":
        from reconcile.render.html import render_drift_html

        return render_drift_html(report, plan)  # the plan's live records: ages, creators
    from reconcile.render.text import render_drift

    return render_drift(report, color=color)
