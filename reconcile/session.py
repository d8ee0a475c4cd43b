"""The application layer's apply path: one path for a saved plan and a plan made now.

`apply_plan` runs, in this order and for both: the plan file's checks (the manifests it was made
from, the digest approved with `--expect-digest`), showing the plan, the guards that need no
listing (empty scope, max deletes), approval (a saved plan counts as approved), and the applier
(re-list, plan again, refuse what is stale or disagrees with the listing, max deletes counted on
the listing, deletes, verification). What the edge does (printing, prompting, running the event
loop, signals) comes in as an `ApplyIO`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from reconcile import guards
from reconcile.applier import Applier, ApplyResult, Outcome
from reconcile.journal import JOURNAL_FILE, Journal
from reconcile.manifest import Manifest
from reconcile.model import Snapshot
from reconcile.plan import Change, Plan
from reconcile.providers.base import Progress
from reconcile.wiring import Options, open_providers

T = TypeVar("T")


class ApplyIO(Protocol):
    """What the apply path needs from the edge."""

    @property
    def progress(self) -> Progress:
        """Told how long steps (listing, deleting) go."""

    def on_event(self, kind: str, change: Change | None, outcome: Outcome | None) -> None:
        """Told of each delete as it goes ("deleting", "done", "verified")."""

    def show(self, plan: Plan) -> None:
        """Show the plan that is about to be applied."""

    def approve(self, plan: Plan) -> None:
        """Raise `ApprovalError` unless a person approved the plan's deletes."""

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on an event loop to its end."""

    def interrupts(self, handler: Callable[[], None]) -> contextlib.AbstractContextManager[None]:
        """While the block runs, call `handler` on SIGINT and SIGTERM."""


@dataclass(frozen=True)
class ApplyRequest:
    manifest: Manifest
    #: Where the manifests were read from, in words, for errors.
    manifest_path: str
    options: Options
    #: A plan read from a file (approved by being saved), not one made just now.
    saved: bool
    expect_digest: str | None = None
    #: `--max-deletes`: every provider's limit instead of its policy's.
    max_deletes: int | None = None


def apply_plan(plan: Plan, request: ApplyRequest, io: ApplyIO) -> ApplyResult | None:
    """Check, show, approve and apply `plan`; None when it deletes nothing."""
    manifest = request.manifest
    if request.saved:
        guards.check_manifest_unchanged(plan, manifest, request.manifest_path)
    guards.check_digest(plan, request.expect_digest)
    guards.check_empty_scope(manifest, plan)
    io.show(plan)
    if not plan.deletes():
        return None
    limits = guards.max_deletes_limits(manifest, request.max_deletes)
    # Early, on the plan as shown; the applier counts again on its fresh listing.
    guards.check_max_deletes(plan.deletes(), limits)
    if not request.saved:
        io.approve(plan)
    return io.run(_apply(plan, request, limits, io))


async def _apply(
    plan: Plan, request: ApplyRequest, limits: Mapping[str, int], io: ApplyIO
) -> ApplyResult:
    names = sorted({change.provider for change in plan.deletes()})
    providers = open_providers(request.manifest, names, request.options)
    try:
        with Journal(request.options.state_dir / JOURNAL_FILE) as journal:
            applier = Applier(
                providers,
                journal,
                replan=lambda live: replan(request.manifest, live, plan),
                max_deletes=limits,
                parallelism=request.options.most_in_flight,
                on_event=io.on_event,
                progress=io.progress,
            )
            with io.interrupts(applier.interrupt):
                return await applier.apply(plan)
    finally:
        for provider in providers.values():
            await provider.aclose()


def replan(manifest: Manifest, live: Mapping[str, Snapshot], saved: Plan) -> Plan:
    """A plan of the scopes just listed again, with the saved plan's targets, through the same
    guards as any plan that deletes."""
    from reconcile import __version__
    from reconcile.planner import build_plan

    scopes = {scope.provider for scope in saved.scopes}
    fresh = build_plan(
        manifest,
        {name: snapshot for name, snapshot in live.items() if name in scopes},
        tool_version=__version__,
        targets=saved.targets,
        refuse_empty=False,
    )
    guards.check_empty_scope(manifest, fresh)
    return fresh
