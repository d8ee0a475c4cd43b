"""The application layer: what every command does between parsing its options and rendering.

Open the manifests (`load`), list what is live (`list_live`), plan (`make_plan`, `plan_now`),
read a saved plan (`read_plan_file`), report drift (`drift_report`), import a provider
(`import_provider`), and apply a plan (`apply_plan`): the CLI parses, calls one of these and
renders. Nothing here prints; the edge's side comes in as arguments (a progress callback, a
warning callback, an `ApplyIO`).

The apply path: one path for a saved plan and a plan made now.

`apply_plan` runs, in this order and for both: the plan file's checks (the manifests it was made
from, the digest approved with `--expect-digest`), showing the plan, the guards that need no
listing (empty scope, max deletes), approval (a saved plan counts as approved), and the applier
(re-list, plan again, refuse what is stale or disagrees with the listing, max deletes counted on
the listing, deletes, verification). What the edge does (printing, prompting, running the event
loop, signals) comes in as an `ApplyIO`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import tempfile
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from reconcile import __version__, guards
from reconcile.applier import Applier, ApplyResult, Outcome
from reconcile.drift import DriftReport, build_drift_report
from reconcile.errors import ReconcileError
from reconcile.guards import names_to_confirm
from reconcile.importer import import_manifest
from reconcile.journal import JOURNAL_FILE, ApplySummary, Journal, read_journal, summarize_applies
from reconcile.lock import hold_lock
from reconcile.manifest import Manifest, load_manifest, manifest_warnings
from reconcile.model import Snapshot
from reconcile.plan import Change, Plan
from reconcile.planner import build_plan
from reconcile.providers.base import Progress, Provider
from reconcile.wiring import (
    Options,
    default_state_dir,
    moved_emulator_endpoint,
    open_providers,
    reset_emulators,
)

#: What the edge uses of the layers below through this one (it imports nothing else of them).
__all__ = [
    "ApplyIO",
    "ApplyRequest",
    "Imported",
    "Options",
    "apply_plan",
    "collector_paused",
    "default_state_dir",
    "drift_report",
    "hold_lock",
    "import_provider",
    "load",
    "make_plan",
    "manifest_warnings",
    "names_to_confirm",
    "plan_now",
    "read_plan",
    "read_plan_file",
    "replan",
    "reset_emulators",
    "unfinished_apply",
]

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


# -- open, list, plan ---------------------------------------------------------------------------


def load(path: Path, *, insecure: bool = False) -> Manifest:
    return load_manifest(path, insecure=insecure)


async def list_live(
    manifest: Manifest, options: Options, progress: Progress, names: Sequence[str] | None = None
) -> dict[str, Snapshot]:
    """Every provider's (or those `names`) live state, listed at once; the providers closed."""
    providers = open_providers(manifest, names, options)
    try:
        snapshots = await asyncio.gather(
            *(provider.snapshot(progress) for provider in providers.values())
        )
    finally:
        await _close(providers)
    return dict(zip(providers, snapshots, strict=True))


async def _close(providers: Mapping[str, Provider]) -> None:
    for provider in providers.values():
        await provider.aclose()


def make_plan(
    manifest: Manifest,
    snapshots: Mapping[str, Snapshot],
    targets: Sequence[str],
    path: Path,
    *,
    refuse_empty: bool = True,
) -> Plan:
    plan = build_plan(
        manifest, snapshots, tool_version=__version__, targets=targets, refuse_empty=refuse_empty
    )
    return plan.model_copy(
        update={
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "manifest_path": str(path),
        }
    )


async def plan_now(
    manifest: Manifest,
    options: Options,
    targets: Sequence[str],
    path: Path,
    progress: Progress,
    *,
    refuse_empty: bool = True,
) -> Plan:
    """List every provider and plan. For apply `refuse_empty` is False: the empty-scope guard is
    the apply path's, as for a saved plan."""
    snapshots = await list_live(manifest, options, progress)
    return make_plan(manifest, snapshots, targets, path, refuse_empty=refuse_empty)


def read_plan(path: Path) -> Plan:
    return Plan.from_json(path.read_text(encoding="utf-8"), source=str(path))


def read_plan_file(
    path: Path, targets: Sequence[str], manifest_override: Path | None
) -> tuple[Plan | None, Path]:
    """A saved plan PATH (or None when PATH is manifests) and the manifests to check it against."""
    if not (path.is_file() and path.suffix == ".json"):
        return None, path
    saved = read_plan(path)
    if targets:
        raise ReconcileError("--target cannot be used with a saved plan: target when planning")
    manifest_path = manifest_override or Path(saved.manifest_path)
    if not manifest_path.exists():
        raise ReconcileError(
            f"the plan was made from {saved.manifest_path}, which does not exist here",
            hint="run from the same folder as plan, or pass --manifests PATH",
        )
    return saved, manifest_path


def unfinished_apply(state_dir: Path, warn: Callable[[str], None]) -> ApplySummary | None:
    """The last apply when it ended without knowing the outcome of some deletes it sent (a crash,
    kill -9, an interrupt mid-apply); None otherwise."""
    applies = summarize_applies(read_journal(state_dir / JOURNAL_FILE, warn))
    last = applies[-1] if applies else None
    if last is None or last.finished or not last.open:
        return None
    return last


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector around a pure, allocation-heavy step.

    Planning a large workspace allocates a record per live object and frees almost nothing, so
    the collector's full passes over the whole heap would come again and again (at 100k versions
    they doubled the time); the records hold no reference cycles, so nothing is lost by waiting.
    What the step made lives until the command ends: frozen, the collector never walks it again
    either (rendering the plan after it would otherwise start a full pass, 0.5 s at 100k).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()  # `cli.main` unfreezes on the way out, for callers that go on (tests)
    finally:
        if enabled:
            gc.enable()


# -- drift --------------------------------------------------------------------------------------


def drift_report(manifest: Manifest, snapshots: Mapping[str, Snapshot], path: Path) -> DriftReport:
    with collector_paused():
        # Read-only: an empty "workspace" scope is reported (all unmanaged), not refused.
        plan = make_plan(manifest, snapshots, (), path, refuse_empty=False)
        return build_drift_report(plan, manifest, dict(snapshots))


# -- import -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    text: str
    notes: Sequence[str]
    models: int
    versions: int


def check_import_target(
    manifest: Manifest, path: Path, provider: str, output: Path | None, *, force: bool
) -> None:
    """Refuse, before listing anything, an unknown provider or an output file that exists."""
    if provider not in manifest.providers:
        raise ReconcileError(
            f"no provider named {provider!r} in {path}",
            hint="providers defined: " + ", ".join(sorted(manifest.providers)),
        )
    if output is not None and output.exists() and not force:
        raise ReconcileError(
            f"{output} exists: nothing was written",
            hint="pass --force to replace it, or choose another --output",
        )


def import_provider(
    manifest: Manifest,
    provider: str,
    snapshot: Snapshot,
    *,
    model_glob: str | None,
    output: Path | None,
) -> Imported:
    """The manifest declaring `snapshot`, checked to load as it is."""
    command = f"reconcile import --provider {provider}" + (
        f" --model '{model_glob}'" if model_glob else ""
    )
    imported = import_manifest(
        manifest,
        provider,
        snapshot,
        model_glob=model_glob,
        endpoint=moved_emulator_endpoint(manifest, provider, output),
        command=command,
    )
    _check_imported(imported.text)
    return Imported(imported.text, imported.notes, imported.models, imported.versions)


def _check_imported(text: str) -> None:
    """The written manifest must load as it is: a bug here would be a file no one can use."""
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "imported.toml"
        file.write_text(text, encoding="utf-8")
        try:
            load(file, insecure=True)
        except ReconcileError as error:
            raise ReconcileError(
                f"the imported manifest does not validate ({error}): nothing was written. "
                "This is a bug in reconcile; please report it"
            ) from None


def write_new(output: Path, text: str, *, force: bool) -> None:
    """Write `output` whole (a temporary file renamed over it), never replacing a file that
    appeared meanwhile unless `force`."""
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    try:
        if force:
            temporary.replace(output)
        else:
            os.link(temporary, output)  # fails if output exists: no silent overwrite
    except FileExistsError:
        raise ReconcileError(
            f"{output} exists: nothing was written", hint="pass --force to replace it"
        ) from None
    finally:
        temporary.unlink(missing_ok=True)
