"""The application layer's apply path: one path for a saved plan and a plan made now.

`apply_plan` runs, in this order and for both: the plan file's checks (the manifests it was made
from, the digest approved with `--expect-digest`), showing the plan, the guards that need no
listing (empty scope, max deletes), approval (a saved plan counts as approved), and the applier
(re-list, plan again, refuse what is stale or disagrees with the listing, max deletes counted on
the listing, deletes, verification). What the edge does (printing, prompting, running the event
loop, signals) comes in as an `ApplyIO`.

Over 450 lines: the apply path with its locks and grace ledger, and the state store's other
uses the edge calls (journal summaries, force-unlock, migration, saved plan objects), which
share its opening of the store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from reconcile import guards
from reconcile.applier import Applier, ApplyResult, Outcome, new_apply_id
from reconcile.errors import LockError, ReconcileError
from reconcile.journal import ApplySummary, StoreJournal, last_apply, summarize_applies
from reconcile.manifest import Manifest
from reconcile.model import Snapshot, printable
from reconcile.plan import Change, Plan
from reconcile.providers.base import Progress
from reconcile.state import (
    HeldLock,
    LockInfo,
    Migration,
    StateBackend,
    StateConflictError,
    StateError,
)
from reconcile.wiring import (
    Options,
    close_providers,
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

    def begin(self, apply_id: str, deletes: int) -> None:
        """Told, once approved, the id of the apply about to send `deletes` deletes."""

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
    #: `--lock-timeout`: seconds to wait for a lock another apply holds (0: refuse at once).
    lock_timeout: float = 0.0


def apply_plan(plan: Plan, request: ApplyRequest, io: ApplyIO) -> ApplyResult | None:
    """Check, show, approve and apply `plan`; None when it deletes nothing."""
    manifest = request.manifest
    if request.saved:
        guards.check_manifest_unchanged(plan, manifest, request.manifest_path)
    guards.check_digest(plan, request.expect_digest)
    guards.check_empty_scope(manifest, plan)
    io.show(plan)
    if not plan.deletes():
        # Nothing to delete, but the grace periods it saw start now: apply records them.
        names = [scope.provider for scope in plan.scopes]
        read = read_ledger(manifest, names, request.options)
        write_ledger(manifest, plan, read, _plan_time(plan), request.options)
        return None
    limits = guards.max_deletes_limits(manifest, request.max_deletes)
    # Early, on the plan as shown; the applier counts again on its fresh listing.
    guards.check_max_deletes(plan.deletes(), limits)
    check_policy(manifest, plan.deletes(), plan)
    names = sorted({change.provider for change in plan.deletes()})
    apply_id = new_apply_id()
    # The locks are taken before approval: nobody approves a plan that another apply runs on.
    with (
        open_state_store(manifest, request.options) as store,
        hold_locks(
            store, manifest, names, request.options, apply_id, wait=request.lock_timeout
        ) as held,
    ):
        if not request.saved:
            io.approve(plan)
        io.begin(apply_id, len(plan.deletes()))
        return io.run(_apply(plan, request, limits, io, store, held, apply_id))


@contextlib.contextmanager
def hold_locks(
    store: StateBackend,
    manifest: Manifest,
    providers: list[str],
    options: Options,
    apply_id: str | None = None,
    *,
    wait: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[list[HeldLock]]:
    """The lock of each provider scope (in one order everywhere, so two applies never each hold
    one the other waits for), after probing the store; or `LockError` naming the holder. A lock
    held by another apply is tried again for up to `wait` seconds (as Terraform's -lock-timeout)."""
    store.probe()
    scopes = sorted({lock_scope(manifest, name, options.state_dir) for name in providers})
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(_acquire(store, scope, apply_id, wait, sleep)) for scope in scopes
        ]


def _acquire(
    store: StateBackend,
    scope: str,
    apply_id: str | None,
    wait: float,
    sleep: Callable[[float], None],
) -> HeldLock:
    deadline = time.monotonic() + wait
    delay = 1.0
    while True:
        try:
            return store.acquire(scope, "apply", apply_id)
        except LockError:
            if time.monotonic() + delay > deadline:
                raise
            sleep(delay)
            delay = min(delay * 2, 15.0)


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
    read = read_ledger(request.manifest, names, request.options, store)
    providers = open_providers(request.manifest, names, request.options)
    made: list[tuple[Plan, datetime]] = []

    def ensure() -> None:
        for lock in held:
            lock.ensure()

    def fresh_plan(live: Mapping[str, Snapshot]) -> Plan:
        now = datetime.now(UTC)
        made.append((replan(request.manifest, live, plan, now=now, ledger=read.ledger), now))
        return made[-1][0]

    try:
        applier = Applier(
            providers,
            StoreJournal(store),
            replan=fresh_plan,
            check=lambda deletes, fresh: check_policy(request.manifest, deletes, fresh),
            max_deletes=limits,
            parallelism=request.options.most_in_flight,
            on_event=io.on_event,
            progress=io.progress,
            ensure=ensure,
            apply_id=apply_id,
        )
        with io.interrupts(applier.interrupt):
            result = await applier.apply(plan)
        if made:
            write_ledger(request.manifest, made[-1][0], read, made[-1][1], request.options, store)
        return result
    finally:
        await close_providers(providers)


def journal_summaries(
    manifest: Manifest | None, options: Options, warn: Callable[[str], None]
) -> tuple[str, list[ApplySummary]]:
    """The configured store's name and its applies, oldest first, from its journal."""
    with open_state_store(manifest, options) as store:
        return store.name, summarize_applies(store.records(warn))


def check_policy(manifest: Manifest, deletes: Sequence[Change], plan: Plan) -> None:
    """The policy's refusals beside max_deletes: mode = "observe", max_delete_percent (counted
    against the live objects in scope that `plan` saw)."""
    guards.check_observe_only(deletes, manifest)
    limits = guards.max_delete_percent_limits(manifest)
    if limits:
        guards.check_max_delete_percent(deletes, plan.scopes, limits)


def replan(
    manifest: Manifest,
    live: Mapping[str, Snapshot],
    saved: Plan,
    *,
    now: datetime | None = None,
    ledger: Mapping[str, Mapping[str, datetime]] | None = None,
) -> Plan:
    """A plan of the scopes just listed again at `now`, with the saved plan's targets, through
    the same guards as any plan that deletes."""
    from reconcile import __version__
    from reconcile.planner import build_plan

    scopes = {scope.provider for scope in saved.scopes}
    fresh = build_plan(
        manifest,
        {name: snapshot for name, snapshot in live.items() if name in scopes},
        tool_version=__version__,
        targets=saved.targets,
        refuse_empty=False,
        now=now,
        ledger=ledger,
        # Compared with the saved plan, never shown or saved: its own digest would go unused.
        sealed=False,
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


# -- the first-seen ledger of the grace period ------------------------------------------------


@dataclass(frozen=True)
class LedgerRead:
    """The ledger of some providers as read from the state store: what the planner takes, and
    each scope's version for the conditional write that replaces it."""

    ledger: dict[str, dict[str, datetime]]
    versions: dict[str, str | None]


def read_ledger(
    manifest: Manifest, names: Iterable[str], options: Options, store: StateBackend | None = None
) -> LedgerRead:
    """When each object of these providers was first seen deletable, from the state store; read
    only where a policy sets `grace` (no store is opened otherwise)."""
    graced = sorted(name for name in names if manifest.policy_for(name).grace is not None)
    if not graced:
        return LedgerRead({}, {})
    with contextlib.ExitStack() as stack:
        if store is None:
            store = stack.enter_context(open_state_store(manifest, options))
        ledger: dict[str, dict[str, datetime]] = {}
        versions: dict[str, str | None] = {}
        for name in graced:
            scope = lock_scope(manifest, name, options.state_dir)
            found = store.get_ledger(scope)
            versions[name] = found.version if found else None
            ledger[name] = _first_seen(found.document if found else {}, store.name, scope)
        return LedgerRead(ledger, versions)


def write_ledger(
    manifest: Manifest,
    plan: Plan,
    read: LedgerRead,
    now: datetime,
    options: Options,
    store: StateBackend | None = None,
) -> None:
    """Record what `plan` (made at `now`) found deletable or in grace, for the providers read;
    a plan never calls this, apply does. Another apply's write in between wins (its ledger holds
    at least as much): the conflict is not an error, nothing here decides a delete."""
    from reconcile.planner.retention import next_ledger

    if not read.versions:  # no provider read has a grace period: no store to open
        return
    after = next_ledger(plan, read.ledger, now)
    with contextlib.ExitStack() as stack:
        if store is None:
            store = stack.enter_context(open_state_store(manifest, options))
        for name, version in read.versions.items():
            entries = after.get(name, {})
            if version is not None and entries == read.ledger.get(name):
                continue
            document = {"first_seen": {key: _stamp(moment) for key, moment in entries.items()}}
            scope = lock_scope(manifest, name, options.state_dir)
            with contextlib.suppress(StateConflictError):
                store.put_ledger(scope, document, version=version)


def _first_seen(document: Mapping[str, Any], store: str, scope: str) -> dict[str, datetime]:
    entries = document.get("first_seen", {})
    try:
        if not isinstance(entries, dict):
            raise TypeError("first_seen is not an object")
        return {str(key): _utc(datetime.fromisoformat(value)) for key, value in entries.items()}
    except (TypeError, ValueError) as error:
        raise StateError(
            f"the first-seen ledger of {scope} is not readable ({error})",
            store=store,
            operation="read a ledger",
            hint="restore it, or remove it: every object then starts its grace period anew",
        ) from None


def _plan_time(plan: Plan) -> datetime:
    """When the plan was made (its listing was seen), or now when it does not say."""
    try:
        return _utc(datetime.fromisoformat(plan.created_at or ""))
    except ValueError:
        return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- the manifests before a change (`plan --base`) ----------------------------------------------


@contextlib.contextmanager
def base_manifests(base: str, path: Path) -> Iterator[Path]:
    """The manifests before the change, as a path: `base` itself when it is one, else a git ref
    whose version of `path` (a file or folder in a git work tree) is extracted to a temporary
    folder for the block. Errors name the ref and what git said."""
    candidate = Path(base)
    if candidate.exists():
        yield candidate
        return
    folder = (path if path.is_dir() else path.parent).resolve()
    top = _git(folder, base, "rev-parse", "--show-toplevel").strip()
    inside = path.resolve().relative_to(Path(top)).as_posix() or "."
    archive = _git(folder, base, "archive", "--format=tar", base, "--", inside, binary=True)
    with tempfile.TemporaryDirectory(prefix="reconcile-base-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp) / inside


def _git(folder: Path, base: str, *args: str, binary: bool = False) -> Any:
    try:
        done = subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ReconcileError(
            f"--base {base}: not a path, and git could not be run to read it as a ref ({error})",
            hint="give the manifests before the change as a folder, or install git",
        ) from None
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise ReconcileError(
            f"--base {base}: not a path, and git cannot read it as a ref of the manifests "
            f"({printable(said[-1] if said else 'git failed')})",
            hint="give a branch, tag or commit (origin/main, HEAD~1) that has the manifests, or "
            "a folder holding them before the change (in CI, fetch the base branch first)",
        )
    return done.stdout if binary else done.stdout.decode("utf-8", errors="replace")


def unfinished_apply(
    manifest: Manifest, options: Options, warn: Callable[[str], None]
) -> str | None:
    """After a crash (kill -9, power loss) or an interrupt mid-apply, which deletes were sent
    without a known outcome (None: the last apply finished): the plan shows what is live now."""
    with open_state_store(manifest, options) as store:
        last = last_apply(store.records_newest_first(warn))
    if last is None or last.finished or not last.open:
        return None
    return (
        f"apply {last.apply_id} (started {last.started}) {last.status.value}: "
        f"{len(last.open)} delete(s) were sent without a known outcome: "
        + ", ".join(last.open)
        + ". What is still live shows below; `reconcile journal` has the full receipts."
    )
