"""What a finished `plan`, `apply` or `drift` tells the outside: notifications (`--notify`) and the
metrics file (`--metrics-file`), from one `RunEvent` so that a chat message and a dashboard never
disagree.

`Outward` is opened by the command before it does anything (so a bad `--notify` URL or a missing
variable is an error before any listing), told the counts when the command has them, and closed
with the exit code, whether the command finished or failed. Sending never fails a run: what could
not be sent comes back as warnings.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reconcile.events import Command, RunEvent
from reconcile.plan import Group

if TYPE_CHECKING:
    from reconcile.applier import ApplyResult
    from reconcile.drift import DriftReport
    from reconcile.notify import NotifyOn, Target
    from reconcile.plan import Plan

#: At most this many addresses ride along in a message (the renderers cut long lists again).
DETAILS = 20

_CATEGORY = {
    Group.DELETE: "delete",
    Group.BLOCKED: "blocked",
    Group.AMBIGUOUS: "blocked",
    Group.PROTECTED: "kept",
    Group.KEPT: "kept",
}


def plan_counts(plan: Plan) -> dict[str, dict[str, int]]:
    """Objects per provider and category (`events.CATEGORIES`), every provider of the plan
    present (with zeros left out), drift counted per record."""
    counts: dict[str, Counter[str]] = {scope.provider: Counter() for scope in plan.scopes}
    for change in plan.resource_changes:
        category = "delete" if change.is_delete else _CATEGORY.get(change.group)
        if category is not None:
            counts.setdefault(change.provider, Counter())[category] += 1
    for record in plan.drift:
        counts.setdefault(record.provider, Counter())["drift"] += 1
    return {provider: dict(found) for provider, found in counts.items()}


def drift_counts(report: DriftReport) -> dict[str, dict[str, int]]:
    """A drift report's objects per provider: what drifted, is blocked or would be deleted."""
    counts: dict[str, dict[str, int]] = {}
    for provider in report.providers:
        total = provider.counts
        counts[provider.provider] = {
            key: value
            for key, value in {
                "drift": total.changed + total.missing,
                "delete": total.unmanaged,
                "blocked": total.blocked + total.ambiguous,
            }.items()
            if value
        }
    return counts


def apply_counts(result: ApplyResult) -> dict[str, dict[str, int]]:
    """What an apply deleted (or found gone) and failed to delete, per provider."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in result.outcomes:
        deleted = outcome.status in ("deleted", "already_gone")
        counts[outcome.change.provider]["deleted" if deleted else "failed"] += 1
    return {provider: dict(found) for provider, found in counts.items()}


@dataclass
class Outward:
    """One run's notifications and metrics file (see the module's docstring)."""

    command: Command
    targets: Sequence[Target] = ()
    on: NotifyOn = "change"
    metrics_file: Path | None = None
    insecure: bool = False
    link: str | None = None
    started_at: float = field(default_factory=time.time)
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    summary: str = ""
    changed: bool = False
    details: tuple[str, ...] = ()

    @property
    def wanted(self) -> bool:
        return bool(self.targets) or self.metrics_file is not None

    def check(self, env: Mapping[str, str] | None = None) -> None:
        """Refuse now what could not be sent later (a missing variable, a bad URL)."""
        if self.targets:
            from reconcile.notify import check_targets

            check_targets(self.targets, os.environ if env is None else env, insecure=self.insecure)
        if self.metrics_file is not None:
            from reconcile.metrics import check_metrics_path

            check_metrics_path(self.metrics_file)

    def record(
        self,
        counts: Mapping[str, Mapping[str, int]],
        summary: str,
        *,
        changed: bool,
        details: Sequence[str] = (),
    ) -> None:
        self.counts = counts
        self.summary = summary
        self.changed = changed
        self.details = tuple(details[:DETAILS])

    def tell_plan(self, plan: Plan) -> None:
        """What a plan found: its counts, its summary line, what it would delete."""
        s = plan.summary
        self.record(
            plan_counts(plan),
            f"Plan: {s.delete} to delete, {s.blocked} blocked, {s.drifted} drifted.",
            changed=bool(s.delete),
            details=[f"delete {change.address}" for change in plan.deletes()],
        )

    def tell_apply(self, result: ApplyResult) -> None:
        """What an apply did: its counts, and each object not simply deleted."""
        deleted = len(result.with_status("deleted", "already_gone"))
        failed = len(result.with_status("failed", "unknown"))
        self.record(
            apply_counts(result),
            f"Apply {result.apply_id}: {deleted} deleted, {failed} failed or unknown, "
            f"{len(result.not_attempted)} not sent.",
            changed=bool(result.outcomes),
            details=[
                f"{outcome.status} {outcome.change.address}"
                for outcome in result.outcomes
                if outcome.status not in ("deleted", "already_gone")
            ],
        )

    def tell_drift(self, report: DriftReport) -> None:
        """What a drift report found: its counts and each object it names."""
        total = report.total
        self.record(
            drift_counts(report),
            f"Drift: {total.drifted} drifted, {total.declared} of {total.live} live objects "
            "declared.",
            changed=report.drifted,
            details=[
                f"{item.category} {item.address}"
                for provider in report.providers
                for item in provider.items
            ],
        )

    def finish(self, exit_code: int, error: str | None = None) -> list[str]:
        """Send the run's event; the warnings of what could not be sent."""
        if not self.wanted:
            return []
        event = RunEvent(
            command=self.command,
            counts=self.counts,
            exit_code=exit_code,
            summary=error if error is not None else self.summary,
            changed=self.changed,
            started_at=self.started_at,
            finished_at=time.time(),
            link=self.link,
            details=self.details,
        )
        warnings = []
        if self.metrics_file is not None:
            from reconcile.metrics import write_metrics_file

            problem = write_metrics_file(self.metrics_file, event)
            if problem is not None:
                warnings.append(problem)
        if self.targets:
            from reconcile.notify import send_notifications

            warnings += send_notifications(self.targets, event, self.on, insecure=self.insecure)
        return warnings
