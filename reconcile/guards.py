"""Every check that refuses before a delete, in one place; each a pure function.

They raise a `ReconcileError` subclass (or return what a caller must ask about), and never send,
print or read anything. The apply path (`session.apply_plan`, `applier.Applier`) runs them in one
order: the plan file against the manifests and the approved digest, the empty scope, the number of
deletes, the approval threshold; and, after the re-listing, the staleness of every delete and the
agreement of the plan's records with the live ones. Counts and receipts come from the re-listing,
never from what a plan file says.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reconcile.errors import GuardError, StalePlanError
from reconcile.manifest import Manifest
from reconcile.model import LiveModel, LiveVersion, Snapshot, digest, model_state, version_state
from reconcile.plan import Change, Kind, Plan, ProviderScope

STALE_HINT = "make a new plan and review it"


def check_manifest_unchanged(plan: Plan, manifest: Manifest, where: str) -> None:
    """A saved plan is only applied with the manifests it was made from."""
    if plan.manifest_digest != manifest.digest():
        raise StalePlanError(
            "the plan is stale: nothing was deleted",
            reasons=[f"the manifests in {where} changed since the plan was made"],
            hint=STALE_HINT,
        )


def check_digest(plan: Plan, expected: str | None) -> None:
    """With `--expect-digest`: only the plan that was approved."""
    if expected is not None and expected != plan.plan_digest:
        raise GuardError(
            f"the plan's digest is {plan.plan_digest}, not the expected {expected}: "
            "nothing was deleted",
            hint="the live state or the manifests changed since the digest was approved; "
            "review a new plan",
        )


def check_empty_scope(manifest: Manifest, plan: Plan) -> None:
    """A "workspace" scope with no declared model would delete everything in it: refused
    unless the provider says `allow_empty = true`."""
    declaring = {spec.provider for spec in manifest.models if not spec.absent}
    for scope in plan.scopes:
        config = manifest.providers.get(scope.provider)
        if config is None or config.scope != "workspace" or config.allow_empty:
            continue
        if scope.provider not in declaring:
            raise GuardError(
                f'provider "{scope.provider}" has scope = "workspace" and no declared model: '
                f"the plan would delete everything in {scope.location}",
                hint=f"declare the models to keep, or set allow_empty = true in "
                f"[providers.{scope.provider}] if emptying it is really what you want",
            )


def max_deletes_limits(manifest: Manifest, override: int | None) -> dict[str, int]:
    """Each provider's max_deletes: `--max-deletes` when given, else its policy's."""
    return {
        name: override if override is not None else manifest.policy_for(name).max_deletes
        for name in manifest.providers
    }


def delete_counts(deletes: Iterable[Change]) -> Counter[str]:
    """Objects to delete per provider: a whole-model delete counts the model and its versions."""
    counts: Counter[str] = Counter()
    for change in deletes:
        counts[change.provider] += 1 + len(change.version_ids)
    return counts


def check_max_deletes(deletes: Iterable[Change], limits: Mapping[str, int]) -> None:
    """Refuse deletes of more objects than a provider allows. Give it changes built from a
    listing (the applier does, after re-listing), not a plan file's word on them."""
    over = [
        f'provider "{provider}": {count} objects to delete, max_deletes is {limits[provider]}'
        for provider, count in sorted(delete_counts(deletes).items())
        if provider in limits and count > limits[provider]
    ]
    if over:
        raise GuardError(
            "refusing to apply: the plan deletes more than allowed (" + "; ".join(over) + ")",
            hint="check the plan; if it is right, raise max_deletes in the manifest's [policy] or "
            "pass --max-deletes N",
        )


def max_delete_percent_limits(manifest: Manifest) -> dict[str, float]:
    """Each provider's max_delete_percent, where its policy sets one."""
    limits = {name: manifest.policy_for(name).max_delete_percent for name in manifest.providers}
    return {name: limit for name, limit in limits.items() if limit is not None}


def check_max_delete_percent(
    deletes: Iterable[Change], scopes: Iterable[ProviderScope], limits: Mapping[str, float]
) -> None:
    """Refuse a provider's deletes of more than its max_delete_percent of its live objects in
    scope (models and versions, counted as `check_max_deletes` counts). Give it changes and
    scopes made from a listing, not a plan file's word on them."""
    live = {scope.provider: scope.models + scope.versions for scope in scopes}
    over = []
    for provider, count in sorted(delete_counts(deletes).items()):
        limit = limits.get(provider)
        if limit is None:
            continue
        total = live.get(provider, 0)
        # Exact, in integers: count/total > limit/100. Deletes with no live object in scope are
        # over any limit (nothing can be counted against them).
        if total == 0 or count * 100 > limit * total:
            share = f"{count * 100 / total:.1f}%" if total else "all"
            over.append(
                f'provider "{provider}": {count} of {total} live objects ({share}), '
                f"max_delete_percent is {limit:g}"
            )
    if over:
        raise GuardError(
            "refusing to apply: the plan deletes a larger share of a provider's objects than "
            "allowed (" + "; ".join(over) + "): nothing was deleted",
            hint="check the plan; if it is right, raise max_delete_percent in the manifest's "
            "[policy] or [providers.NAME.policy]",
        )


def check_observe_only(deletes: Iterable[Change], manifest: Manifest) -> None:
    """A provider whose policy says mode = "observe" is planned and reported, never deleted
    from: apply refuses any delete of it."""
    counts = delete_counts(deletes)
    observed = [
        f'provider "{provider}" ({count} objects)'
        for provider, count in sorted(counts.items())
        if provider in manifest.providers and manifest.policy_for(provider).mode == "observe"
    ]
    if observed:
        raise GuardError(
            'refusing to apply: mode = "observe" is set for '
            + ", ".join(observed)
            + ": its deletes are planned and reported, never applied; nothing was deleted",
            hint='to delete them, remove mode = "observe" (or set mode = "enforce") in the '
            "manifest's policy; to apply other providers' deletes, plan them with --target",
        )


def names_to_confirm(plan: Plan, manifest: Manifest) -> dict[str, tuple[int, str]]:
    """Providers whose deletes exceed their `confirm_name_above`: for each, the number of deletes
    and the name (the workspace id, or the provider's name) a user must type to approve them."""
    counts = Counter(change.provider for change in plan.deletes())
    return {
        provider: (count, scope_name(manifest, provider))
        for provider, count in sorted(counts.items())
        if count > manifest.policy_for(provider).confirm_name_above
    }


def scope_name(manifest: Manifest, provider: str) -> str:
    """What a user types to approve a large delete: the workspace id, or the provider's name."""
    return str(getattr(manifest.providers[provider], "workspace_id", provider))


def stale_reasons(
    plan: Plan, snapshots: Mapping[str, Snapshot], fresh: Plan | None = None
) -> list[str]:
    """Why the plan's deletes no longer hold on the live state in `snapshots`. With `fresh`, a
    plan made from `snapshots`: a delete it makes with the state digest the plan has is not
    looked at again (its digest is the listing's, made as `_Index.stale` makes it), which on
    a large apply was 18,000 object states encoded a second time."""
    agreed = {change.identity: change.state_digest for change in fresh.deletes()} if fresh else {}
    reasons: list[str] = []
    index: dict[str, _Index] = {}
    for change in plan.deletes():
        if agreed.get(change.identity) == change.state_digest:
            continue
        found = index.get(change.provider)
        if found is None:
            found = index[change.provider] = _Index(snapshots[change.provider])
        reason = found.stale(change)
        if reason is not None:
            reasons.append(reason)
    return reasons


class _Index:
    """One listing by id, for the staleness checks."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.models: dict[str, LiveModel] = {model.id: model for model in snapshot.models}
        self.versions: dict[str, LiveVersion] = {
            version.id: version for model in snapshot.models for version in model.versions
        }
        self.uses = snapshot.uses()

    def stale(self, change: Change) -> str | None:
        if change.kind is Kind.MODEL:
            model = self.models.get(change.id)
            if model is None:
                return f"{change.address}: model {change.id} no longer exists"
            now = digest(model_state(model, self.uses))
            services = self.uses.by_model.get(model.id, [])
        else:
            version = self.versions.get(change.id)
            if version is None or version.model_id != change.model_id:
                return f"{change.address}: version {change.id} no longer exists"
            now = digest(version_state(version, self.uses))
            services = self.uses.by_version.get(version.id, [])
        if now == change.state_digest:
            return None
        if services:
            used = ", ".join(f"{s.id} ({s.status})" for s in services)
            return f"{change.address}: now used by inference service {used}"
        return f"{change.address}: changed since the plan was made"


def unconfirmed_deletes(plan: Plan, fresh: Plan) -> list[str]:
    """The plan's deletes that a plan made now, from the same manifests, would not make, or
    would make with other records.

    An object's own state can be unchanged while its context moved: its model renamed into a
    protect or ignore pattern, a namesake appearing, the version that kept it retained deleted.
    Only what both plans delete may go. And every field of each delete (its `before` record, the
    versions a whole-model delete takes with it, its address...) must be what the live listing
    says: a plan file edited and sealed again is refused here.
    """
    now = {change.identity: change for change in fresh.resource_changes}
    reasons = []
    for change in plan.deletes():
        current = now.get(change.identity)
        if current is None:
            why = "it is no longer in scope"
        elif not current.is_delete:
            why = f"{current.action_reason.value}: {current.detail}"
        else:
            fields = disagreeing_fields(change, current)
            if not fields:
                continue
            reasons.append(
                f"{change.address}: the plan's record of it disagrees with the live listing "
                f"({', '.join(fields)})"
            )
            continue
        reasons.append(f"{change.address}: a plan made now would not delete it ({why})")
    return reasons


def disagreeing_fields(saved: Change, live: Change) -> list[str]:
    """The fields in which a plan's change differs from the same change made from a listing."""
    if saved == live:
        # Equal values serialize alike: the common case, without reading two records back (a
        # tenth of a large apply's CPU went to serializing both sides of 18,000 deletes).
        return []
    mine, theirs = _comparable(saved), _comparable(live)
    names = mine.keys() | theirs.keys()
    return sorted(name for name in names if mine.get(name) != theirs.get(name))


def _comparable(change: Change) -> dict[str, Any]:
    values = change.model_dump(mode="json")
    # Order-free where the order means nothing (the planner sorts them, a forger need not).
    values["version_ids"] = sorted(values["version_ids"])
    return values


def confirmed_deletes(plan: Plan, fresh: Plan) -> list[Change]:
    """The plan's deletes, as the plan made from the listing has them (its records, its counts),
    in the plan's order. Call after `unconfirmed_deletes` found nothing."""
    now = {change.identity: change for change in fresh.deletes()}
    return [now[change.identity] for change in plan.deletes()]


def refuse_stale(reasons: Sequence[str]) -> None:
    if reasons:
        raise StalePlanError(
            "the plan is stale: live state changed since it was made; nothing was deleted",
            reasons=list(reasons),
            hint=STALE_HINT,
        )
