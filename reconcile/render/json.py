"""JSON for machines: plans and drift reports as their versioned documents (`format_version`).

A plan's JSON is the plan file itself (`reconcile plan -o`); a drift report's is documented in the
README ("Drift reports (JSON)").
"""

from __future__ import annotations

from reconcile.drift import DriftReport
from reconcile.plan import Plan


def render_plan_json(plan: Plan) -> str:
    return plan.to_json()


def render_drift_json(report: DriftReport) -> str:
    return report.to_json()
