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
import dataclasses
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from reconcile import guards
from reconcile.applier import Applier, ApplyResult, Outcome, new_apply_id
from reconcile.errors import LockError
from reconcile.journal import ApplySummary, StoreJournal, summarize_applies
from reconcile.manifest import Manifest
from reconcile.model import Snapshot
from reconcile.plan import Change, Plan
from reconcile.providers.base import Progress
from reconcile.state import HeldLock, LockInfo, Migration, StateBackend, StateError
from reconcile.wiring import (
    Options,
    lock_scope,
    open_local_store,
    open_object_store,
    open_providers,
    open_state_store,
)

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
    names = sorted({change.provider for change in plan.deletes()})
    apply_id = new_apply_id()
    # The locks are taken before approval: nobody approves a plan that another apply runs on.
    with (
        open_state_store(manifest, request.options) as store,
        hold_locks(store, manifest, names, request.options, apply_id) as held,
    ):
        if not request.saved:
            io.approve(plan)
        return io.run(_apply(plan, request, limits, io, store, held, apply_id))


@contextlib.contextmanager
def hold_locks(
    store: StateBackend,
    manifest: Manifest,
    providers: list[str],
    options: Options,
    apply_id: str | None = None,
) -> Iterator[list[HeldLock]]:
    """The lock of each provider scope (in one order everywhere, so two applies never each hold
    one the other waits for), after probing the store; or `LockError` naming the holder."""
    store.probe()
    scopes = sorted({lock_scope(manifest, name, options.state_dir) for name in providers})
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(store.acquire(scope, "apply", apply_id)) for scope in scopes]


async def _apply(
    plan: Plan,
    request: ApplyRequest,
    limits: Mapping[str, int],
    io: ApplyIO,
    store: StateBackend,
    held: list[HeldLock],
    apply_id: str,
) -> ApplyResult:
    names = sorted({change.provider for change in plan.deletes()})
    providers = open_providers(request.manifest, names, request.options)

    def ensure() -> None:
        for lock in held:
            lock.ensure()

    try:
        applier = Applier(
            providers,
            StoreJournal(store),
            replan=lambda live: replan(request.manifest, live, plan),
            max_deletes=limits,
            parallelism=request.options.most_in_flight,
            on_event=io.on_event,
            progress=io.progress,
            ensure=ensure,
            apply_id=apply_id,
        )
        with io.interrupts(applier.interrupt):
            return await applier.apply(plan)
    finally:
        for provider in providers.values():
            await provider.aclose()


def journal_summaries(
    manifest: Manifest | None, options: Options, warn: Callable[[str], None]
) -> tuple[str, list[ApplySummary]]:
    """The configured store's name and its applies, oldest first, from its journal."""
    with open_state_store(manifest, options) as store:
        return store.name, summarize_applies(store.records(warn))


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


def release_lock(
    manifest: Manifest | None, options: Options, lock_id: str, *, force: bool
) -> tuple[str, LockInfo]:
    """`force-unlock`: remove the lock `lock_id` from the configured store, whatever its scope;
    refused (`LockError`) when no lock has that id, or its holder is live and not `force`."""
    with open_state_store(manifest, options) as store:
        found = [info for info in store.locks() if info.id == lock_id]
        if not found:
            held = ", ".join(f"{info.id} ({info.scope})" for info in store.locks()) or "none"
            raise LockError(
                f"the state store {store.name} holds no lock with id {lock_id} (locks: {held})",
                hint="give the id that the lock error showed, and the same --state or manifests",
            )
        return store.name, store.force_unlock(found[0].scope, lock_id, force=force)


def save_plan_object(manifest: Manifest | None, options: Options, url: str, data: bytes) -> None:
    """`plan -o s3://BUCKET/KEY`: the plan saved in that store (reached as [state] says)."""
    store, key = open_object_store(manifest, options, url)
    with store:
        store.put_plan(key, data)


def read_plan_object(manifest: Manifest | None, options: Options, url: str) -> bytes:
    """`apply s3://BUCKET/KEY`: a plan saved by `plan -o` in that store."""
    store, key = open_object_store(manifest, options, url)
    with store:
        return store.get_plan(key)


def migrate_state(
    manifest: Manifest | None, options: Options, to: str
) -> tuple[str, str, Migration]:
    """`state migrate --to URL`: copy the journal of the state dir to the store `to` (reached
    with the [state] table's endpoint, region and key names). Returns the two stores' names and
    what was copied; a second run copies only what is new."""
    target_options = dataclasses.replace(options, state_url=to)
    with open_local_store(options) as source, open_state_store(manifest, target_options) as target:
        if source.name == target.name:
            raise StateError(
                f"the journal is already in {target.name}",
                operation="migrate",
                hint="give --to the store to copy it to, e.g. s3://BUCKET/PREFIX",
            )
        target.probe()
        return source.name, target.name, target.migrate_from(source)
