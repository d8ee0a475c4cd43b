"""The applier: execute exactly a plan's deletes, after checking it still holds.

It re-lists the scopes that hold deletes, refuses a stale plan (any target vanished, changed or now
in use), then deletes versions before models, at most `parallelism` at a time. Every delete's full
live record is journaled and fsynced before its request is sent, and its outcome after. It never
prints: progress goes to the `on_event` callback.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from reconcile.errors import GuardError, NotFoundError, ReconcileError, StalePlanError
from reconcile.journal import Journal
from reconcile.model import LiveModel, LiveVersion, Snapshot, digest, model_state, version_state
from reconcile.plan import Change, Kind, Plan
from reconcile.providers.base import Progress, Provider

Status = Literal["deleted", "already_gone", "failed", "unknown"]


@dataclass(frozen=True)
class Outcome:
    change: Change
    status: Status
    error: str | None = None


@dataclass
class ApplyResult:
    apply_id: str
    outcomes: list[Outcome] = field(default_factory=list)
    #: Deletes never sent because the run was interrupted.
    not_attempted: list[Change] = field(default_factory=list)
    interrupted: bool = False

    def with_status(self, *statuses: Status) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.status in statuses]

    @property
    def failed(self) -> list[Outcome]:
        return self.with_status("failed")


#: Called as things happen: ("relisted" | "deleting" | "done", change or None, outcome or None).
EventHook = Callable[[str, Change | None, Outcome | None], None]


def check_guards(plan: Plan, max_deletes: Mapping[str, int]) -> None:
    """Refuse, before anything is sent, a plan that deletes more than a provider allows.

    Objects are counted, not calls: a whole-model delete counts the model and its versions.
    """
    counts: Counter[str] = Counter()
    for change in plan.deletes():
        counts[change.provider] += 1 + len(change.version_ids)
    over = [
        f'provider "{provider}": {count} objects to delete, max_deletes is {max_deletes[provider]}'
        for provider, count in sorted(counts.items())
        if provider in max_deletes and count > max_deletes[provider]
    ]
    if over:
        raise GuardError(
            "refusing to apply: the plan deletes more than allowed (" + "; ".join(over) + ")",
            hint="check the plan; if it is right, raise max_deletes in the manifest's [policy] or "
            "pass --max-deletes N",
        )


def unconfirmed_deletes(plan: Plan, fresh: Plan) -> list[str]:
    """The plan's deletes that a plan made now, from the same manifests, would not make (pure).

    An object's own state can be unchanged while its context moved: its model renamed into a
    protect or ignore pattern, a namesake appearing, the version that kept it retained deleted.
    Only what both plans delete may go; this also refuses a plan file edited and re-sealed.
    """
    now = {change.identity: change for change in fresh.resource_changes}
    reasons = []
    for change in plan.deletes():
        current = now.get(change.identity)
        if current is not None and current.is_delete:
            continue
        if current is None:
            why = "it is no longer in scope"
        else:
            why = f"{current.action_reason.value}: {current.detail}"
        reasons.append(f"{change.address}: a plan made now would not delete it ({why})")
    return reasons


def stale_reasons(plan: Plan, snapshots: Mapping[str, Snapshot]) -> list[str]:
    """Why the plan's deletes no longer hold on the live state in `snapshots` (pure)."""
    reasons: list[str] = []
    index: dict[str, tuple[dict[str, LiveModel], dict[str, LiveVersion], Snapshot]] = {}
    for provider, snapshot in snapshots.items():
        models = {model.id: model for model in snapshot.models}
        versions = {version.id: version for model in snapshot.models for version in model.versions}
        index[provider] = (models, versions, snapshot)
    for change in plan.deletes():
        models, versions, snapshot = index[change.provider]
        uses = snapshot.uses()
        if change.kind is Kind.MODEL:
            model = models.get(change.id)
            if model is None:
                reasons.append(f"{change.address}: model {change.id} no longer exists")
                continue
            now = digest(model_state(model, uses))
            services = uses.by_model.get(model.id, [])
        else:
            version = versions.get(change.id)
            if version is None or version.model_id != change.model_id:
                reasons.append(f"{change.address}: version {change.id} no longer exists")
                continue
            now = digest(version_state(version, uses))
            services = uses.by_version.get(version.id, [])
        if now == change.state_digest:
            continue
        if services:
            used = ", ".join(f"{s.id} ({s.status})" for s in services)
            reasons.append(f"{change.address}: now used by inference service {used}")
        else:
            reasons.append(f"{change.address}: changed since the plan was made")
    return reasons


class Applier:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        journal: Journal,
        *,
        parallelism: int = 16,
        on_event: EventHook | None = None,
        stop: asyncio.Event | None = None,
        replan: Callable[[Mapping[str, Snapshot]], Plan] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.providers = providers
        self.journal = journal
        self.parallelism = max(1, parallelism)
        self.on_event = on_event or (lambda kind, change, outcome: None)
        self.stop = stop or asyncio.Event()
        #: Plans again from fresh listings (the same manifests and targets): only deletes that
        #: plan confirms are sent.
        self.replan = replan
        #: Told how the re-listing goes (it takes as long as the plan's listing did).
        self.progress = progress
        self._running: set[asyncio.Task[list[Outcome]]] = set()
        #: The journal fsync in progress in a worker thread, if any.
        self._syncing: asyncio.Future[None] | None = None

    def interrupt(self) -> None:
        """First call: send no new delete, let those in flight finish. Second call: stop waiting
        for them too (their outcome is journaled as unknown: the next plan shows the truth)."""
        if not self.stop.is_set():
            self.stop.set()
            return
        for task in self._running:
            task.cancel()

    async def relist(self, plan: Plan) -> dict[str, Snapshot]:
        names = sorted({change.provider for change in plan.deletes()})
        missing = [name for name in names if name not in self.providers]
        if missing:
            raise ReconcileError(
                f"the plan deletes in providers that are not configured: {missing}"
            )
        snapshots = await asyncio.gather(
            # States only: receipts carry the approved plan's records, not these.
            *(self.providers[name].snapshot(self.progress, records=False) for name in names)
        )
        self.on_event("relisted", None, None)
        return dict(zip(names, snapshots, strict=True))

    async def apply(
        self, plan: Plan, *, snapshots: Mapping[str, Snapshot] | None = None
    ) -> ApplyResult:
        """Delete exactly the plan's deletes. `snapshots`, when given, must be fresh listings;
        otherwise the scopes are listed again here."""
        result = ApplyResult(apply_id=uuid.uuid4().hex[:12])
        deletes = plan.deletes()
        if not deletes:
            return result
        live = snapshots if snapshots is not None else await self.relist(plan)
        reasons = stale_reasons(plan, live)
        if self.replan is not None:
            reasons += unconfirmed_deletes(plan, self.replan(live))
        # Checked: the fresh listing is not needed for the deletes (100k records at scale).
        del live, snapshots
        if reasons:
            raise StalePlanError(
                "the plan is stale: live state changed since it was made; nothing was deleted",
                reasons=reasons,
                hint="make a new plan and review it",
            )
        self.journal.write(
            "apply_started",
            apply_id=result.apply_id,
            plan_digest=plan.plan_digest,
            deletes=len(deletes),
        )
        self.journal.sync()
        try:
            # Versions first: a model delete must not race the deletes of its own versions.
            for kind in (Kind.VERSION, Kind.MODEL):
                await self._run_phase(result, self._units(deletes, kind))
        finally:
            if self._syncing is not None and not self._syncing.done():
                # Never two syncs at once: the journal's file is not shared between threads.
                await asyncio.wait({self._syncing})
            result.interrupted = self.stop.is_set()
            done = {id(outcome.change) for outcome in result.outcomes}
            result.not_attempted = [change for change in deletes if id(change) not in done]
            self.journal.write(
                "apply_finished",
                apply_id=result.apply_id,
                deleted=len(result.with_status("deleted", "already_gone")),
                failed=len(result.failed),
                not_attempted=len(result.not_attempted),
                interrupted=result.interrupted,
            )
            self.journal.sync()
        return result

    async def _run_phase(self, result: ApplyResult, units: Sequence[list[Change]]) -> None:
        """At most `parallelism` calls in flight; the intents of each batch about to be sent
        are made durable with one fsync before any of them goes out."""
        pending = deque(units)
        running = self._running
        while pending or running:
            batch: list[list[Change]] = []
            while (
                pending and not self.stop.is_set() and len(running) + len(batch) < self.parallelism
            ):
                batch.append(pending.popleft())
            if batch:
                for change in (change for unit in batch for change in unit):
                    self.journal.write(
                        "delete_intent",
                        apply_id=result.apply_id,
                        address=change.address,
                        provider=change.provider,
                        kind=change.kind.value,
                        id=change.id,
                        model_id=change.model_id,
                        record=change.before.value() if change.before else None,
                    )
                await self._sync_journal()
                for unit in batch:
                    for change in unit:
                        self.on_event("deleting", change, None)
                    running.add(asyncio.create_task(self._delete(unit)))
            if not running:
                return
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            running.difference_update(finished)
            for task in finished:
                for outcome in task.result():
                    self.journal.write(
                        "delete_outcome",
                        apply_id=result.apply_id,
                        address=outcome.change.address,
                        id=outcome.change.id,
                        outcome=outcome.status,
                        error=outcome.error,
                    )
                    result.outcomes.append(outcome)
                    self.on_event("done", outcome.change, outcome)

    async def _sync_journal(self) -> None:
        """Make the intents written so far durable before their requests go out.

        The fsync runs in a worker thread, so answers to the deletes in flight keep arriving
        meanwhile (blocking the loop on it stalled every answer in flight); the batch waits
        for it all the same. Nothing else writes the journal while this is awaited: only
        `_run_phase` writes it, and it is waiting here.
        """
        self._syncing = asyncio.ensure_future(asyncio.to_thread(self.journal.sync))
        await asyncio.shield(self._syncing)

    def _units(self, deletes: Sequence[Change], kind: Kind) -> list[list[Change]]:
        """Versions one per call; whole models in the largest batches their provider takes."""
        changes = [change for change in deletes if change.kind is kind]
        if kind is Kind.VERSION:
            return [[change] for change in changes]
        by_provider: dict[str, list[Change]] = {}
        for change in changes:
            by_provider.setdefault(change.provider, []).append(change)
        units: list[list[Change]] = []
        for provider, group in by_provider.items():
            size = max(1, self.providers[provider].model_delete_batch)
            units += [group[start : start + size] for start in range(0, len(group), size)]
        return units

    async def _delete(self, unit: list[Change]) -> list[Outcome]:
        provider = self.providers[unit[0].provider]
        errors: list[ReconcileError | None]
        try:
            if unit[0].kind is Kind.MODEL:
                errors = await provider.delete_models([change.id for change in unit])
            else:
                change = unit[0]
                assert change.model_id is not None, "a version change always names its model"
                try:
                    await provider.delete_version(change.model_id, change.id)
                    errors = [None]
                except ReconcileError as error:
                    errors = [error]
        except ReconcileError as error:
            errors = [error] * len(unit)
        except asyncio.CancelledError:
            # Interrupted twice: the request may or may not have reached the platform.
            return [
                Outcome(change, "unknown", "interrupted before the platform answered")
                for change in unit
            ]
        except Exception as error:  # a bug must not cost the other deletes their receipts
            # Whatever went wrong, the request may have reached the platform: the outcome is
            # unknown, it is journaled as such, and the other deletes go on.
            return [
                Outcome(change, "unknown", f"unexpected {type(error).__name__}: report this bug")
                for change in unit
            ]
        if len(errors) != len(unit):
            # A provider that answers for more or fewer objects than it was given: a bug; what
            # happened to each object is unknown.
            return [
                Outcome(change, "unknown", "the provider's answer did not match the request")
                for change in unit
            ]
        return [_outcome(change, error) for change, error in zip(unit, errors, strict=True)]


def _outcome(change: Change, error: ReconcileError | None) -> Outcome:
    if error is None:
        return Outcome(change, "deleted")
    if isinstance(error, NotFoundError):
        return Outcome(change, "already_gone")
    return Outcome(change, "failed", str(error))
