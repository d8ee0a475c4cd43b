"""Which deletes a change to the manifests causes: the plan against the manifests of the change,
and the plan of the same listing against the manifests before it (`plan --base`). Pure.

A delete is *caused by this change* when the plan before the change would not have made it (the
object was declared, protected, kept by a retention rule, or not in scope then), and *already
undeclared* when it would have: drift that came from outside git, which the change only did not
fix. A version the earlier plan deleted with its whole model counts as deleted then too.
"""

from __future__ import annotations

from reconcile.plan import Attribution, Kind, Plan


def attribute(plan: Plan, base: Plan, source: str) -> Plan:
    """`plan` with each of its deletes labelled against `base` (made from the same listing and
    the manifests at `source`, a path or a git ref). The digest does not change: the labels
    say why, not what, is deleted."""
    before: set[tuple[str, Kind, str]] = set()
    for change in base.deletes():
        before.add((change.provider, change.kind, change.id))
        before.update((change.provider, Kind.VERSION, id) for id in change.version_ids)
    caused: list[str] = []
    already: list[str] = []
    for change in plan.deletes():
        key = (change.provider, change.kind, change.id)
        (already if key in before else caused).append(change.address)
    labels = Attribution(
        base=source, caused_by_change=tuple(caused), already_undeclared=tuple(already)
    )
    return plan.model_copy(update={"attribution": labels})
