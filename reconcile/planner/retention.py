"""The time rules of the policy (min_age, keep_within, keep_before_in_use, grace) and the
first-seen ledger of the grace period; all pure: the time and the ledger are inputs.

A ledger is `{provider: {object key: first seen deletable}}`, object keys from `ledger_key`.
`next_ledger` is what apply writes after it ran; a plan never writes one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from reconcile.manifest import Policy, parse_duration
from reconcile.model import LiveModel, LiveVersion, ServiceUse
from reconcile.plan import Kind, Plan, Reason

#: provider -> {object key -> when it was first seen deletable}.
Ledger = Mapping[str, Mapping[str, datetime]]

_OLDEST = datetime.min.replace(tzinfo=UTC)


def ledger_key(kind: Kind, object_id: str) -> str:
    """An object's key in the ledger: "model:ID" or "version:ID"."""
    return f"{kind.value}:{object_id}"


def stamp(moment: datetime) -> str:
    """A time as plans show it: ISO 8601 in UTC, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def created_order(version: LiveVersion) -> tuple[datetime, str, str]:
    """Oldest first; a version with no creation time sorts as the oldest."""
    return (version.created or _OLDEST, version.name, version.id)


@dataclass(frozen=True)
class Clock:
    """The policy's time rules for one provider, at the plan's time (None: not given)."""

    policy: Policy
    now: datetime | None
    first_seen: Mapping[str, datetime]

    def too_new(self, created: datetime | None) -> str | None:
        """Why an object is too new to delete under min_age (None: it is old enough)."""
        if self.policy.min_age is None:  # asked for every deletable object: no words made
            return None
        rule = f"min_age = {self.policy.min_age}"
        until = self._window(
            self.policy.min_age,
            created,
            unknown=f"the platform gives no creation time, so its age is unknown: kept while "
            f"{rule} is set (fail closed)",
            no_clock=f"the plan was made without the current time: kept while {rule} is set",
        )
        if not isinstance(until, datetime) or created is None:
            return until if isinstance(until, str) else None
        return f"created {stamp(created)}, less than {rule} ago: deletable from {stamp(until)}"

    def within(self, created: datetime | None) -> str | None:
        """Why an undeclared version is kept by keep_within (None: it is not)."""
        if self.policy.keep_within is None:
            return None
        rule = f"policy keep_within = {self.policy.keep_within}"
        until = self._window(
            self.policy.keep_within,
            created,
            unknown=f"no creation time, so it may be within {rule}: kept (fail closed)",
            no_clock=f"the plan was made without the current time: kept by {rule}",
        )
        if not isinstance(until, datetime) or created is None:
            return until if isinstance(until, str) else None
        return f"created {stamp(created)}, within {rule} (kept until {stamp(until)})"

    def _window(
        self, duration: str | None, created: datetime | None, *, unknown: str, no_clock: str
    ) -> datetime | str | None:
        """Until when an object created at `created` is within `duration`: None when there is no
        such rule or the window is over; the fail-closed message when that cannot be told."""
        if duration is None:
            return None
        if created is None:
            return unknown
        if self.now is None:
            return no_clock
        until = created + parse_duration(duration)
        return until if until > self.now else None

    def pending(self, kind: Kind, object_id: str) -> tuple[str | None, str]:
        """Under a grace period: why a deletable object waits (None: it is due), and what its
        delete line says of the grace period."""
        if self.policy.grace is None:
            return None, ""
        rule = f"grace = {self.policy.grace}"
        if self.now is None:
            return f"the plan was made without the current time: pending while {rule} is set", ""
        first = self.first_seen.get(ledger_key(kind, object_id), self.now)
        due = first + parse_duration(self.policy.grace)
        if due <= self.now:
            return None, f" ({rule} over: deletable since {stamp(first)})"
        seen = f"deletable since {stamp(first)}" if first != self.now else "first seen deletable"
        return (
            f"{seen}, {rule}: deleted from {stamp(due)} if it is still deletable in every plan "
            "until then",
            "",
        )


def rollback_targets(
    model: LiveModel, by_version: Mapping[str, Sequence[ServiceUse]], count: int
) -> dict[str, tuple[LiveVersion, list[ServiceUse]]]:
    """Version id -> the in-use version it is one of the `count` predecessors of (by creation
    time, in the same model), with the services using that one."""
    if count <= 0:
        return {}
    ordered = sorted(model.versions, key=created_order)
    targets: dict[str, tuple[LiveVersion, list[ServiceUse]]] = {}
    for position, version in enumerate(ordered):
        services = list(by_version.get(version.id, []))
        if not services:
            continue
        for earlier in ordered[max(0, position - count) : position]:
            targets.setdefault(earlier.id, (version, services))
    return targets


def next_ledger(plan: Plan, previous: Ledger, now: datetime) -> dict[str, dict[str, datetime]]:
    """The ledger after `plan`: every object it deletes or holds in grace keeps its first-seen
    time (or is seen first `now`); objects declared, in use, kept or gone are forgotten. With
    --target, objects the plan does not cover keep their entries; providers it did not look
    at keep theirs."""
    result = {provider: dict(entries) for provider, entries in previous.items()}
    changes_of = plan.changes_by_provider()
    for scope in plan.scopes:
        before = previous.get(scope.provider, {})
        entries: dict[str, datetime] = {}
        covered: set[str] = set()
        for change in changes_of[scope.provider]:
            key = ledger_key(change.kind, change.id)
            covered.add(key)
            if change.is_delete or change.action_reason is Reason.GRACE_PENDING:
                entries[key] = before.get(key, now)
        if plan.targets:
            entries.update({k: v for k, v in before.items() if k not in covered})
        result[scope.provider] = dict(sorted(entries.items()))
    return result
