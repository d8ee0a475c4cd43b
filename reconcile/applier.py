"""The applier: execute exactly a plan's deletes, after checking it still holds.

It re-lists the scopes that hold deletes and plans them again (`replan`): a plan whose deletes
vanished, changed, became in use or protected, or whose records disagree with the listing, is
refused as stale (`guards`), and what is sent and journaled is the deletes as the listing has
them, never a plan file's word. Then it deletes versions before models, at most `parallelism` at
a time. Every delete's full live record is journaled and fsynced before its request is sent, and
its outcome after; an outcome the answer did not settle (already gone, failed, unknown) is
verified by listing once more after the deletes. It never prints: progress goes to `on_event`.

Over 450 lines on purpose: one class whose steps (re-list, confirm, delete in batches with their
receipts, verify, stop) share the stop and halt state; split, the order that keeps every delete
safe would be spread over modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from reconcile.errors import NotFoundError, ProviderError, ReconcileError
from reconcile.guards import (
    check_max_deletes,
    confirmed_deletes,
    refuse_stale,
    stale_reasons,
    unconfirmed_deletes,
)
from reconcile.journal import Event, JournalWriter
from reconcile.model import KnownRecords, Snapshot, no_record
from reconcile.plan import Change, Kind, Plan
from reconcile.providers.base import Progress, Provider

Status = Literal["deleted", "already_gone", "failed", "unknown"]


@dataclass(frozen=True)
class Outcome:
    change: Change
    status: Status
    #: What the platform answered, or what the listing after the deletes showed.
    error: str | None = None
    #: Settled by listing the object after the deletes, not by the answer alone.
    verified: bool = False


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


#: Called as things happen: ("relisted" | "deleting" | "done" | "verified", change or None,
#: outcome or None).
EventHook = Callable[[str, Change | None, Outcome | None], None]
#: Plans again from fresh listings (the same manifests and targets), and refuses what the guards
#: refuse: only deletes that plan confirms, with its records, are sent.
Replan = Callable[[Mapping[str, Snapshot]], Plan]
T = TypeVar("T")


class Applier:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        journal: JournalWriter,
        *,
        replan: Replan,
        max_deletes: Mapping[str, int] | None = None,
        parallelism: int = 16,
        on_event: EventHook | None = None,
        stop: asyncio.Event | None = None,
        progress: Progress | None = None,
        ensure: Callable[[], None] | None = None,
        apply_id: str | None = None,
        check: Callable[[Sequence[Change], Plan], None] | None = None,
    ) -> None:
        self.providers = providers
        self.journal = journal
        self.replan = replan
        #: Objects each provider may lose, counted on the re-listing.
        self.max_deletes = dict(max_deletes or {})
        self.parallelism = max(1, parallelism)
        self.on_event = on_event or (lambda kind, change, outcome: None)
        self.stop = stop or asyncio.Event()
        #: Told how the listings go (each takes as long as the plan's listing did).
        self.progress = progress
        self._running: set[asyncio.Task[list[Outcome]]] = set()
        #: The journal fsync in progress in a worker thread, if any.
        self._syncing: asyncio.Future[None] | None = None
        #: Called before each batch of deletes: raises when they may not be sent (the lock
        #: was lost or its lease ran out).
        self.ensure = ensure or (lambda: None)
        #: Why deletes stopped for good: the journal could not be written or the lock was lost.
        self.halted: Exception | None = None
        #: The id of this apply's journal records (and of the locks it holds, when given).
        self.apply_id = apply_id
        #: The policy's other refusals (observe-only, max_delete_percent), given the deletes
        #: confirmed by the re-listing and the plan made from it.
        self.check = check or (lambda deletes, fresh: None)

    def _rechecking(self, what: str, done: int, total: int | None) -> None:
        """The re-listing before the deletes, told as its own phase (its rate counts from its
        own start, not the plan's listing)."""
        if self.progress is not None:
            self.progress(f"re-checking {what}", done, total)

    def interrupt(self) -> None:
        """First call: send no new delete, let those in flight finish, and stop a listing in
        progress at once. Second call: stop waiting for the deletes in flight too (their
        outcome is journaled as unknown: the next plan shows the truth)."""
        if not self.stop.is_set():
            self.stop.set()
            return
        for task in self._running:
            task.cancel()

    async def relist(self, plan: Plan) -> dict[str, Snapshot] | None:
        """Fresh listings of the scopes that hold the plan's deletes, with full records (the
        receipts come from them); None when interrupted meanwhile."""
        deletes = plan.deletes()
        names = sorted({change.provider for change in deletes})
        missing = [name for name in names if name not in self.providers]
        if missing:
            raise ReconcileError(
                f"the plan deletes in providers that are not configured: {missing}"
            )
        # The plan's records of its deletes are most of the listing's at scale: reused, not
        # held twice (the receipts are the listing's all the same: they are equal).
        records = KnownRecords(change.before for change in deletes if change.before)
        listed = await self._unless_stopped(
            asyncio.gather(
                *(
                    self.providers[name].snapshot(self._rechecking, records=records)
                    for name in names
                )
            )
        )
        if listed is None:
            return None
        return dict(zip(names, listed, strict=True))

    async def apply(
        self, plan: Plan, *, snapshots: Mapping[str, Snapshot] | None = None
    ) -> ApplyResult:
        """Delete exactly the plan's deletes, as a fresh listing has them. `snapshots`, when
        given, must be fresh listings; otherwise the scopes are listed again here."""
        result = ApplyResult(apply_id=self.apply_id or new_apply_id())
        if not plan.deletes():
            return result
        live = snapshots
        if live is None:
            live = await self.relist(plan)
        self.on_event("relisted", None, None)
        if live is None:
            result.interrupted = True
            result.not_attempted = plan.deletes()
            return result
        deletes = self._confirmed(plan, live)
        # Checked: the fresh listing is not needed for the deletes (100k records at scale).
        del live, snapshots
        self.journal.write(
            Event.APPLY_STARTED,
            apply_id=result.apply_id,
            plan_digest=plan.plan_digest,
            deletes=len(deletes),
        )
        self.journal.sync()
        try:
            # Versions first: a model delete must not race the deletes of its own versions.
            for kind in (Kind.VERSION, Kind.MODEL):
                await self._run_phase(result, self._units(deletes, kind))
            await self._verify(result)
        finally:
            await self._finish(result, deletes)
        if self.halted is not None:
            raise halted_error(self.halted, result)
        return result

    def _confirmed(self, plan: Plan, live: Mapping[str, Snapshot]) -> list[Change]:
        """The plan's deletes as a plan made now from `live` has them, after every guard that
        depends on the live state; or `StalePlanError` naming each that does not hold."""
        fresh = self.replan(live)
        refuse_stale(stale_reasons(plan, live, fresh) + unconfirmed_deletes(plan, fresh))
        deletes = confirmed_deletes(plan, fresh)
        check_max_deletes(deletes, self.max_deletes)
        self.check(deletes, fresh)
        return deletes

    async def _finish(self, result: ApplyResult, deletes: Sequence[Change]) -> None:
        if self._syncing is not None and not self._syncing.done():
            # Never two syncs at once: the journal's file is not shared between threads.
            await asyncio.wait({self._syncing})
        result.interrupted = self.stop.is_set()
        done = {outcome.change.identity for outcome in result.outcomes}
        result.not_attempted = [change for change in deletes if change.identity not in done]
        if self.halted is not None:
            # Told to the user by `halted_error`; the store may take the last records yet.
            with contextlib.suppress(Exception):
                self._write_finished(result)
            return
        self._write_finished(result)

    def _write_finished(self, result: ApplyResult) -> None:
        self.journal.write(
            Event.APPLY_FINISHED,
            apply_id=result.apply_id,
            deleted=len(result.with_status("deleted", "already_gone")),
            failed=len(result.failed),
            unknown=len(result.with_status("unknown")),
            not_attempted=len(result.not_attempted),
            interrupted=result.interrupted,
        )
        self.journal.sync()

    async def _unless_stopped(self, work: Awaitable[T]) -> T | None:
        """`work`'s result, or None as soon as `stop` is set (the work is cancelled then)."""
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            interrupted = not task.done()
            if interrupted:
                task.cancel()
                await asyncio.wait({task})
        if interrupted:
            # Cut short, it ends cancelled or (a gather) with CancelledError: nothing to say.
            if not task.cancelled():
                task.exception()
            return None
        return task.result()

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
                await self._send(result, batch)
            if not running:
                return
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            running.difference_update(finished)
            for task in finished:
                for outcome in task.result():
                    self._record(result, Event.DELETE_OUTCOME, outcome)

    async def _send(self, result: ApplyResult, batch: list[list[Change]]) -> None:
        """Journal the batch's intents durably, then send its deletes, a part of at most about
        `INTENTS_PER_SYNC` receipts at a time. If the lock is lost or the journal cannot be
        written, send nothing more (those in flight finish)."""
        for part in _parts(batch, INTENTS_PER_SYNC):
            if self.stop.is_set() or not await self._journal_intents(result, part):
                return  # interrupted (or halted) while the part before was made durable
            for unit in part:
                for change in unit:
                    self.on_event("deleting", change, None)
                self._running.add(asyncio.create_task(self._delete(unit)))

    async def _journal_intents(self, result: ApplyResult, units: list[list[Change]]) -> bool:
        """Whether the intents of `units` were made durable (if not, deletes have halted)."""
        try:
            self.ensure()
        except ReconcileError as error:
            self._halt(error)
            return False
        for change in (change for unit in units for change in unit):
            self.journal.write(
                Event.DELETE_INTENT,
                apply_id=result.apply_id,
                address=change.address,
                provider=change.provider,
                kind=change.kind.value,
                id=change.id,
                model_id=change.model_id,
                record=change.before,  # written as it is (`encode_record`), never parsed here
            )
        try:
            await self._sync_journal()
        except Exception as error:  # whatever the store raised: no receipt, no delete
            self._halt(error)
            return False
        return True

    def _halt(self, error: Exception) -> None:
        if self.halted is None:
            self.halted = error
        self.stop.set()

    def _record(
        self, result: ApplyResult, event: Event, outcome: Outcome, *, told: bool = True
    ) -> None:
        """Journal an outcome (or its verification), and tell `on_event` unless `told` is
        False (a verification that changed nothing but the flag)."""
        self.journal.write(
            event,
            apply_id=result.apply_id,
            address=outcome.change.address,
            id=outcome.change.id,
            outcome=outcome.status,
            error=outcome.error,
        )
        if event is Event.DELETE_OUTCOME:
            result.outcomes.append(outcome)
            self.on_event("done", outcome.change, outcome)
        elif told:
            self.on_event("verified", outcome.change, outcome)

    async def _verify(self, result: ApplyResult) -> None:
        """List once more the objects whose answer did not say they are deleted, and settle
        each outcome by what the listing shows (as aws-nuke does): absent is deleted (or
        already gone, when the platform said so), present is failed. Left as they are when
        the run is interrupted; unknown when no listing can be made."""
        doubtful = [i for i, outcome in enumerate(result.outcomes) if outcome.status != "deleted"]
        if not doubtful or self.stop.is_set():
            return
        names = sorted({result.outcomes[i].change.provider for i in doubtful})
        try:
            listed = await self._unless_stopped(
                asyncio.gather(
                    *(
                        self.providers[name].snapshot(self.progress, records=no_record)
                        for name in names
                    )
                )
            )
        except ReconcileError as error:
            note = f"no listing could confirm it ({error})"
            settled = {i: _unconfirmed(result.outcomes[i], note) for i in doubtful}
        else:
            if listed is None:
                return
            present = _present(listed)
            settled = {i: _settled(result.outcomes[i], present) for i in doubtful}
        for index, outcome in settled.items():
            before, result.outcomes[index] = result.outcomes[index], outcome
            self._record(
                result, Event.DELETE_VERIFIED, outcome, told=outcome.status != before.status
            )
        self.journal.sync()

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


#: Receipts written before one sync, at most (a unit of deletes is never split): the whole-model
#: deletes of a large apply come in batches of 100 (Qianfan), and their parsed records, pending
#: all at once until the sync, were 50 MB at the top of the apply.
INTENTS_PER_SYNC = 500


def _parts(units: list[list[Change]], size: int) -> Iterator[list[list[Change]]]:
    """`units` in order, in parts of whole units that hold `size` changes or fewer (or one
    unit, when a unit alone holds more)."""
    part: list[list[Change]] = []
    held = 0
    for unit in units:
        if part and held + len(unit) > size:
            yield part
            part, held = [], 0
        part.append(unit)
        held += len(unit)
    if part:
        yield part


def new_apply_id() -> str:
    return uuid.uuid4().hex[:12]


class HaltedError(ReconcileError):
    """Deletes stopped because the journal could not be written or the lock was lost."""

    def __init__(self, message: str, result: ApplyResult, *, hint: str) -> None:
        super().__init__(message, hint=hint)
        self.result = result

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        """3 (as for failed deletes) once any delete was sent: 1 would say nothing was."""
        return 3 if self.result.outcomes else 1


def halted_error(cause: Exception, result: ApplyResult) -> HaltedError:
    """What the user is told: why deletes stopped, and what had happened until then."""
    said = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    counts = (
        f"{len(result.outcomes)} delete(s) had been sent, each after its receipt was written "
        f"({len(result.with_status('deleted', 'already_gone'))} deleted, "
        f"{len(result.failed)} failed, {len(result.with_status('unknown'))} unknown); "
        f"{len(result.not_attempted)} were not sent"
    )
    return HaltedError(
        f"apply {result.apply_id} stopped: {said}. No more deletes were sent: {counts}.",
        result,
        hint="fix the state store (or find who took the lock), then plan again: the plan shows "
        "what is still live",
    )


#: Words of a platform's error code or message that make a "not found" an authentication
#: failure (Baidu's gateway: "NotFound, cause: Could not find credential.").
_AUTH_WORDS = re.compile(r"credential|signature|authn|authori[sz]|access ?key|token", re.IGNORECASE)
#: Client statuses that do not mean the platform refused (it may act on the request yet).
_MAYBE_DONE = frozenset({408, 429})
Identity = tuple[str, str, str, str | None]


def is_auth_failure(error: ReconcileError) -> bool:
    """Whether a platform's error is about the credentials or the signature, whatever its
    class or status: such an error never means an object is gone."""
    if not isinstance(error, ProviderError):
        return False
    if error.status in (401, 403):
        return True
    said = " ".join(part for part in (error.code, error.platform_message) if part)
    return _AUTH_WORDS.search(said) is not None


def _outcome(change: Change, error: ReconcileError | None) -> Outcome:
    """What an answer says, before any listing confirms it: a not-found (that is no
    authentication failure) is already gone; a refusal the platform made for sure is failed;
    anything else (a 5xx, a lost answer, a retry's answer after one was lost) is unknown."""
    if error is None:
        return Outcome(change, "deleted")
    if isinstance(error, NotFoundError) and not is_auth_failure(error):
        return Outcome(change, "already_gone", str(error))
    if _refused(error):
        return Outcome(change, "failed", str(error))
    return Outcome(change, "unknown", str(error))


def _refused(error: ReconcileError) -> bool:
    status = error.status if isinstance(error, ProviderError) else None
    return status is not None and 400 <= status < 500 and status not in _MAYBE_DONE


def _present(snapshots: Sequence[Snapshot]) -> set[Identity]:
    """The identities (`Change.identity`) of every object in `snapshots`."""
    present: set[Identity] = set()
    for snapshot in snapshots:
        for model in snapshot.models:
            present.add((snapshot.provider, Kind.MODEL.value, model.id, None))
            present.update(
                (snapshot.provider, Kind.VERSION.value, version.id, model.id)
                for version in model.versions
            )
    return present


def _settled(outcome: Outcome, present: set[Identity]) -> Outcome:
    change = outcome.change
    said = f" (the platform answered: {outcome.error})" if outcome.error else ""
    if change.identity in present:
        if outcome.status == "failed":  # a refusal, confirmed: the platform's words say it all
            return dataclasses.replace(outcome, verified=True)
        return Outcome(change, "failed", f"still listed after the deletes{said}", verified=True)
    if outcome.status == "already_gone":
        return Outcome(change, "already_gone", "confirmed by listing", verified=True)
    return Outcome(change, "deleted", f"confirmed by listing{said}", verified=True)


def _unconfirmed(outcome: Outcome, note: str) -> Outcome:
    """An outcome no listing could settle: only a refusal stays failed."""
    if outcome.status == "failed":
        return outcome
    said = f"the platform answered: {outcome.error}; " if outcome.error else ""
    return Outcome(outcome.change, "unknown", f"{said}{note}")
