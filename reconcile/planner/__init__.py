"""The planner: `build_plan(manifest, snapshots) -> Plan`, a pure function.

No I/O, no clock, no environment: the same manifest and live state always give the same plan.
The decision table is DESIGN.md's "What a plan decides"; each decision carries its reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from reconcile.errors import ReconcileError
from reconcile.manifest import Manifest
from reconcile.model import Snapshot
from reconcile.plan import Change, Drift, Plan, ProviderScope, Summary
from reconcile.planner.attribution import attribute
from reconcile.planner.decisions import ProviderPlanner
from reconcile.planner.retention import Ledger, ledger_key, next_ledger
from reconcile.planner.targets import exclude, select
from reconcile.scope import Key, parse_target

__all__ = ["Ledger", "attribute", "build_plan", "ledger_key", "next_ledger"]


def build_plan(
    manifest: Manifest,
    snapshots: Mapping[str, Snapshot],
    *,
    tool_version: str,
    targets: Sequence[str] = (),
    refuse_empty: bool = True,
    now: datetime | None = None,
    ledger: Ledger | None = None,
    excludes: Sequence[str] = (),
    sealed: bool = True,
) -> Plan:
    """Decide, for every live object in scope of every provider in `snapshots`, what to do.

    `refuse_empty`: a "workspace" scope with no declared model (and no allow_empty) raises
    GuardError. A read-only report passes False to show what such a plan would delete.
    `now`: the time of the plan, for min_age, keep_within and grace; None (unknown) keeps
    whatever those rules could keep. `ledger`: when each object was first seen deletable
    (`next_ledger`), for grace; None: every deletable object is seen first now.
    `excludes` (`--exclude`): addresses left out of the plan, with what is inside them.
    `sealed`: with its `plan_digest` (False: a plan only compared with another, never shown,
    saved or approved, which skips hashing every record).
    """
    selected = [parse_target(text) for text in targets]
    changes: list[Change] = []
    drift: list[Drift] = []
    drift_keys: list[Key] = []
    scopes: list[ProviderScope] = []
    declarations: list[str] = []
    for provider in manifest.providers:
        snapshot = snapshots.get(provider)
        if snapshot is None:
            continue
        planner = ProviderPlanner(
            manifest,
            provider,
            snapshot,
            refuse_empty=refuse_empty,
            now=now,
            first_seen=(ledger or {}).get(provider),
        )
        planner.run()
        deletes = sum(change.is_delete for change in planner.records.changes)
        if deletes and planner.policy.mode == "observe":
            declarations.append(
                f'provider "{provider}" has mode = "observe": its {deletes} delete(s) are shown, '
                "and apply refuses them"
            )
        changes.extend(planner.records.changes)
        drift.extend(planner.records.drift)
        drift_keys.extend(planner.records.drift_keys)
        scopes.append(planner.scope())
        declarations.extend(planner.warnings)
    unknown = sorted(set(snapshots) - set(manifest.providers))
    if unknown:
        raise ReconcileError(f"live state given for providers not in the manifest: {unknown}")

    warnings: list[str] = []
    if excludes:
        changes, drift, drift_keys = exclude(
            [parse_target(text) for text in excludes], changes, drift, drift_keys, snapshots
        )
        warnings.append(
            "Resource exclusion is in effect: this plan leaves out "
            + ", ".join(excludes)
            + ". It may not show everything the manifests would change; use --exclude only for "
            "exceptional situations, never routinely."
        )
    if selected:
        changes, drift = select(selected, changes, drift, drift_keys, snapshots)
        warnings.append(
            "Resource targeting is in effect: this plan covers only "
            + ", ".join(targets)
            + ". It may not show everything the manifests would change; use --target only for "
            "exceptional situations, never routinely."
        )
    warnings.extend(declarations)
    plan = Plan(
        tool_version=tool_version,
        manifest_digest=manifest.digest(),
        scopes=tuple(scopes),
        resource_changes=tuple(changes),
        drift=tuple(drift),
        targets=tuple(targets),
        warnings=tuple(warnings),
        summary=Summary.of(changes, len(drift)),
    )
    return plan.sealed() if sealed else plan
