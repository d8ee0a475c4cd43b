"""Which changes and drift a `--target` selects; why one that selects nothing is refused."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from reconcile.errors import PlanError
from reconcile.model import LiveVersion, Snapshot
from reconcile.plan import Change, Drift, Kind
from reconcile.scope import Key, Target, quote


def _change_key(change: Change) -> Key:
    if change.kind is Kind.MODEL:
        return Key(change.provider, change.name, change.id)
    return Key(change.provider, change.model_name or "", change.model_id, change.name, change.id)


def select(
    targets: Sequence[Target],
    changes: list[Change],
    drift: list[Drift],
    drift_keys: Sequence[Key],
    snapshots: Mapping[str, Snapshot],
) -> tuple[list[Change], list[Drift]]:
    """The changes and drift that `targets` select. A target that selects nothing is refused:
    "No changes" would say that the object it names is in sync."""
    change_keys = [_change_key(change) for change in changes]
    for target in targets:
        if not any(map(target.selects, change_keys)) and not any(map(target.selects, drift_keys)):
            raise _selects_nothing(target, changes, drift, snapshots)
    return (
        [c for c, key in zip(changes, change_keys, strict=True) if _any_selects(targets, key)],
        [d for d, key in zip(drift, drift_keys, strict=True) if _any_selects(targets, key)],
    )


def exclude(
    excluded: Sequence[Target],
    changes: list[Change],
    drift: list[Drift],
    drift_keys: Sequence[Key],
    snapshots: Mapping[str, Snapshot],
) -> tuple[list[Change], list[Drift], list[Key]]:
    """The changes and drift (with its keys) that `excluded` (`--exclude`) leave: all but what
    they name and what is inside it (a provider's models, a model's versions). One that names
    nothing is refused, as a target is: the user would believe something was left out."""
    change_keys = [_change_key(change) for change in changes]
    for target in excluded:
        if not any(map(target.selects, change_keys)) and not any(map(target.selects, drift_keys)):
            raise _selects_nothing(target, changes, drift, snapshots, flag="--exclude")
    pairs = zip(drift, drift_keys, strict=True)
    kept = [(d, key) for d, key in pairs if not _any_selects(excluded, key)]
    return (
        [c for c, key in zip(changes, change_keys, strict=True) if not _any_selects(excluded, key)],
        [d for d, _ in kept],
        [key for _, key in kept],
    )


def _any_selects(targets: Sequence[Target], key: Key) -> bool:
    return any(target.selects(key) for target in targets)


def _selects_nothing(
    target: Target,
    changes: Sequence[Change],
    drift: Sequence[Drift],
    snapshots: Mapping[str, Snapshot],
    *,
    flag: str = "--target",
) -> PlanError:
    """Why `target` selects nothing: the version of a model that has one line for all its
    versions (deleted whole, held whole, or declared without versions), or no such address."""
    whole = Target(target.text, target.provider, target.model)
    for change in changes:
        if change.kind is not Kind.MODEL or not whole.selects(_change_key(change)):
            continue
        within = _version_of(snapshots, change, target)
        if within is None:
            continue
        fate = (
            "deletes it whole, so this version is deleted with it"
            if change.is_delete
            else "has one line for the model and its versions: this version stays"
        )
        return PlanError(
            f"{flag} {target.text} selects no line of the plan: version {quote(within.name)} "
            f"belongs to model {change.address}, and the plan {fate} "
            f"({change.action_reason.value}: {change.detail})",
            hint=f"name the model instead: {flag} {change.address}",
        )
    addresses = sorted({c.address for c in changes} | {d.address for d in drift})
    close = difflib.get_close_matches(target.text, addresses, n=3, cutoff=0.5)
    hint = (
        "the closest addresses in this plan: " + ", ".join(close)
        if close
        else f"no address of this plan is close to it; run plan without {flag} to see them all"
    )
    return PlanError(f"{flag} {target.text} selects nothing in this plan", hint=hint)


def _version_of(
    snapshots: Mapping[str, Snapshot], change: Change, target: Target
) -> LiveVersion | None:
    """The live version of `change`'s model that `target` names, if any."""
    snapshot = snapshots.get(change.provider)
    if snapshot is None or target.version is None:
        return None
    for model in snapshot.models:
        if model.id == change.id:
            for version in model.versions:
                if target.version.names(version.name, version.id):
                    return version
    return None
