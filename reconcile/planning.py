"""The application layer's listing and planning: every provider listed as its own unit, plans
made with the time and the grace ledger as inputs, and a plan labelled against the manifests
before a change (`--base`). What the edge shows of it (failures, warnings) is the edge's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from reconcile import __version__
from reconcile.errors import ReconcileError
from reconcile.heap import collector_paused
from reconcile.manifest import Manifest, load_manifest
from reconcile.model import Snapshot, printable
from reconcile.plan import Plan, Unlisted
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
