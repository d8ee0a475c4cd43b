"""The application layer's listing and planning: every provider listed as its own unit, plans
made with the time and the grace ledger as inputs, and a plan labelled against the manifests
before a change (`--base`). What the edge shows of it (failures, warnings) is the edge's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from reconcile import __version__
from reconcile.drift import DriftReport, build_drift_report
from reconcile.errors import PlanFileError, ReconcileError
from reconcile.files import NotADocument, read_json_text
from reconcile.heap import collector_paused
from reconcile.manifest import Manifest, load_manifest
from reconcile.model import Snapshot, printable
from reconcile.plan import PLAN_FILE_HINT, Plan, Unlisted
from reconcile.providers.base import Progress
from reconcile.session import base_manifests, read_ledger
from reconcile.wiring import Options, close_providers, open_providers, select_providers


@dataclass
class Listing:
    """What the providers' listings gave: each provider scope is its own unit, so one that
    could not be opened or listed is in `failed` and the others are still there."""

    snapshots: dict[str, Snapshot]
    failed: dict[str, ReconcileError]

    def failure_lines(self) -> list[str]:
        """Each failed provider: which one, and the call and error that failed it."""
        return [
            f'provider "{printable(name)}" could not be listed: {error}'
            for name, error in self.failed.items()
        ]

    def recorded_in(self, plan: Plan) -> Plan:
        """The plan carrying the providers that could not be listed, so that a copy of its JSON
        does not hide them (apply refuses it without --keep-going)."""
        if not self.failed:
            return plan
        unlisted = tuple(
            Unlisted(provider=name, error=str(error)) for name, error in self.failed.items()
        )
        return plan.model_copy(update={"unlisted": unlisted}).sealed()

    def check_any_listed(self) -> None:
        """When none listed there is nothing to show: the error (one provider's own, as it was
        with a single provider)."""
        if not self.failed or self.snapshots:
            return
        if len(self.failed) == 1:
            raise next(iter(self.failed.values()))
        raise ReconcileError(
            f"none of the {len(self.failed)} providers could be listed: "
            + "; ".join(self.failure_lines())
        )

    def check_complete(self, keep_going: bool) -> None:
        """For apply: refuse, with nothing deleted anywhere, when a provider could not be
        listed, unless `keep_going` (--keep-going)."""
        self.check_any_listed()
        if self.failed and not keep_going:
            raise ReconcileError(
                f"refusing to apply: {len(self.failed)} provider(s) could not be listed, so "
                "nothing was deleted anywhere: " + "; ".join(self.failure_lines()),
                hint="fix them and run again; --keep-going applies the providers that listed "
                "cleanly, --provider GLOB chooses the providers to apply",
            )


async def list_providers(
    manifest: Manifest,
    options: Options,
    progress: Progress | None,
    provider_globs: Sequence[str] = (),
) -> Listing:
    """Every provider `provider_globs` select (all when none) opened and listed concurrently,
    each on its own: one that fails is in the listing's `failed`, the others are listed."""
    failed: dict[str, ReconcileError] = {}
    names = select_providers(manifest, provider_globs)
    providers = open_providers(manifest, names, options, failed=failed)
    try:
        results = await asyncio.gather(
            *(provider.snapshot(progress) for provider in providers.values()),
            return_exceptions=True,
        )
    finally:
        await close_providers(providers)
    snapshots = {}
    for name, result in zip(providers, results, strict=True):
        if isinstance(result, ReconcileError):
            failed[name] = result
        elif isinstance(result, BaseException):
            raise result  # not a platform's answer (an interrupt, a bug): the command stops
        else:
            snapshots[name] = result
    order = list(manifest.providers)
    return Listing(snapshots, dict(sorted(failed.items(), key=lambda i: order.index(i[0]))))


def make_plan(
    manifest: Manifest,
    snapshots: dict[str, Snapshot],
    path: Path,
    options: Options,
    *,
    targets: Sequence[str] = (),
    excludes: Sequence[str] = (),
    refuse_empty: bool = True,
) -> Plan:
    """The plan of `snapshots`, made now: the time and the grace ledger are the planner's
    inputs (it reads neither itself)."""
    from reconcile.planner import build_plan

    now = datetime.now(UTC)
    ledger = read_ledger(manifest, snapshots, options).ledger
    # A record per change: the collector's passes over them were a fifth of the planning's CPU.
    with collector_paused():
        plan = build_plan(
            manifest,
            snapshots,
            tool_version=__version__,
            targets=targets,
            refuse_empty=refuse_empty,
            now=now,
            ledger=ledger,
            excludes=excludes,
        )
    return plan.model_copy(
        update={"created_at": now.isoformat(timespec="seconds"), "manifest_path": str(path)}
    )


def attributed(
    plan: Plan,
    base: str,
    path: Path,
    snapshots: dict[str, Snapshot],
    options: Options,
    *,
    insecure: bool = False,
) -> Plan:
    """`plan` with each delete labelled against the same listing planned with the manifests
    before the change (`--base`, a folder or a git ref): one listing, two pure plans."""
    from reconcile.planner import attribute, build_plan

    with base_manifests(base, path) as folder:
        try:
            before = load_manifest(folder, insecure=insecure)
        except ReconcileError as error:
            raise ReconcileError(
                f"--base {base}: the manifests before the change cannot be loaded: {error}"
            ) from None
    listed = {name: snapshot for name, snapshot in snapshots.items() if name in before.providers}
    earlier = build_plan(
        before,
        listed,
        tool_version=__version__,
        refuse_empty=False,
        now=datetime.now(UTC),
        ledger=read_ledger(before, listed, options).ledger,
    )
    return attribute(plan, earlier, base)


@dataclass(frozen=True)
class Selection:
    """Which providers and objects an apply covers (--provider, --target, --exclude), and
    whether it goes on past providers that could not be listed (--keep-going)."""

    provider_globs: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    keep_going: bool = False


def fresh_plan(
    manifest: Manifest, listing: Listing, selection: Selection, path: Path, options: Options
) -> Plan:
    """A plan made now, for apply (its guards, empty scope too, are the apply path's). A
    provider that could not be listed stops the apply before anything is deleted anywhere,
    unless --keep-going (the others are applied; `listing.failed` names those skipped)."""
    listing.check_complete(selection.keep_going)
    return make_plan(
        manifest,
        listing.snapshots,
        path,
        options,
        targets=selection.targets,
        excludes=selection.excludes,
        refuse_empty=False,
    )


def drift_report(
    manifest: Manifest, listing: Listing, path: Path, options: Options
) -> tuple[Plan, DriftReport]:
    """The plan of what is listed, and the drift report made from it (read-only: an empty
    "workspace" scope is reported, all unmanaged, not refused); both name the providers that
    could not be listed."""
    with collector_paused():
        plan = make_plan(manifest, listing.snapshots, path, options, refuse_empty=False)
        plan = listing.recorded_in(plan)
        return plan, build_drift_report(plan, manifest, listing.snapshots)


def read_plan_file(path: Path) -> Plan:
    """The plan file at `path` (`files.read_json_text`: what plainly is not one, a device or
    a binary, is refused at its first bytes)."""
    try:
        text = read_json_text(path)
    except NotADocument as error:
        raise PlanFileError(f"{path}: not a plan file ({error})", hint=PLAN_FILE_HINT) from None
    return Plan.from_json(text, source=str(path))


#: Where a plan object's store is said when apply is given no --manifests.
DEFAULT_MANIFESTS = Path("manifests")


def saved_plan(
    path: Path | str,
    selection: Selection,
    manifest_override: Path | None,
    options_for: Callable[[Path], Options],
    warn: Callable[[str], None],
    *,
    insecure: bool = False,
) -> tuple[Plan | None, Path]:
    """A saved plan (file PATH or s3://BUCKET/KEY) and the manifests to check it against; for
    manifests (not a plan file), (None, PATH)."""
    if isinstance(path, str):
        from reconcile.session import read_plan_object

        around = _store_manifests(manifest_override)
        manifest = load_manifest(around, insecure=insecure) if around is not None else None
        options = options_for(around or DEFAULT_MANIFESTS)
        saved = Plan.from_bytes(read_plan_object(manifest, options, path), source=path)
    elif path.is_file() and path.suffix == ".json":
        saved = read_plan_file(path)
    else:
        return None, path
    if selection.targets or selection.excludes or selection.provider_globs:
        raise ReconcileError(
            "--target, --exclude and --provider cannot be used with a saved plan: choose what "
            "it covers when planning"
        )
    _check_unlisted(saved, selection.keep_going, warn)
    manifest_path = manifest_override or Path(saved.manifest_path)
    if not manifest_path.exists():
        raise ReconcileError(
            f"the plan was made from {saved.manifest_path}, which does not exist here",
            hint="run from the same folder as plan, or pass --manifests PATH",
        )
    return saved, manifest_path


def _check_unlisted(saved: Plan, keep_going: bool, warn: Callable[[str], None]) -> None:
    """A saved plan made while some providers could not be listed: refused, as a fresh apply
    would be, unless --keep-going (which applies the rest and names those skipped)."""
    if not saved.unlisted:
        return
    names = ", ".join(f'"{printable(item.provider)}"' for item in saved.unlisted)
    if not keep_going:
        raise ReconcileError(
            f"refusing to apply: the plan was made while {len(saved.unlisted)} provider(s) "
            f"could not be listed ({names}), so nothing was deleted anywhere",
            hint="make the plan again once they list; --keep-going applies the plan's "
            "other providers",
        )
    warn(f"--keep-going: skipping {names}, which could not be listed when the plan was made")


def _store_manifests(override: Path | None) -> Path | None:
    """The manifests whose [state] table says how to reach a plan's object store."""
    if override is not None:
        return override
    return DEFAULT_MANIFESTS if DEFAULT_MANIFESTS.exists() else None
