"""Benchmark drift over a large workspace, in memory: no network, no emulator.

    python benchmarks/drift.py [--models 10000] [--versions 10] [--drift-rate 0.01] [--check]

Builds a manifest and a live snapshot of MODELS x VERSIONS live versions (100,000 by default):
every model declared, all but one version of each declared with its attributes, a share of the
declared objects drifted (`--drift-rate`), a few versions in use. Then times the pure pipeline of
`reconcile drift`: `build_plan` (matching, decisions and the field-level diff) and
`build_drift_report`, with Python's cyclic garbage collector paused as `reconcile drift` runs
them (and again with it on, for comparison: its full passes over a heap of 100k records are what
costs most then).

"Diff time" is the time spent in `reconcile.diff.field_changes` over every matched pair: a plain
comparison first, deepdiff only on the pairs that differ. For contrast, the cost of running
deepdiff on every pair is estimated from a sample. `--check` exits 1 when the diff time is over
the budget of issue 6 (1 s).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconcile import diff, planner
from reconcile.drift import DriftReport, build_drift_report
from reconcile.manifest import FabricProvider, Manifest, ModelSpec, Policy, VersionSpec
from reconcile.model import FieldChange, LiveModel, LiveVersion, ServiceUse, Snapshot

BUDGET_SECONDS = 1.0
PROVIDER = "bench"
START = datetime(2024, 1, 1, tzinfo=UTC)


def build(models: int, versions: int, drift_rate: float) -> tuple[Manifest, Snapshot]:
    """A manifest and the live snapshot it is compared with (see the module docstring)."""
    every = max(1, round(1 / drift_rate)) if drift_rate > 0 else 0
    live_models: list[LiveModel] = []
    specs: list[ModelSpec] = []
    services: list[ServiceUse] = []
    counter = 0
    for m in range(models):
        model_id = f"m-{m:07}"
        name = f"model-{m:07}"
        live_versions = []
        declared = []
        for v in range(versions):
            counter += 1
            attributes = {
                "description": f"{name} v{v}",
                "base_model_type": "QWEN_2_72B",
                "model_path": f"obs://bench/{name}/v{v}/",
            }
            live_versions.append(
                LiveVersion(
                    id=f"{model_id}-v{v:03}",
                    name=f"v{v}",
                    model_id=model_id,
                    created=START + timedelta(minutes=counter),
                    attributes=attributes,
                    raw={"id": f"{model_id}-v{v:03}", "name": f"v{v}"},
                )
            )
            if v == 0:
                continue  # the oldest version is undeclared: the plan deletes it
            if every and counter % every == 0:
                attributes = {**attributes, "model_path": attributes["model_path"] + "rc/"}
            declared.append(VersionSpec(name=f"v{v}", **attributes))
        description = f"{name} description"
        live_models.append(
            LiveModel(
                id=model_id,
                name=name,
                created=START,
                attributes={"description": description},
                versions=tuple(live_versions),
                raw={"id": model_id, "name": name},
            )
        )
        if every and m % every == 0:
            description += " (declared)"
        specs.append(
            ModelSpec(
                provider=PROVIDER, name=name, description=description, versions=tuple(declared)
            )
        )
        if m % 1000 == 1:
            services.append(
                ServiceUse(
                    id=f"svc-{m}",
                    name=f"svc-{m}",
                    status="RUNNING",
                    model_id=model_id,
                    version_id=f"{model_id}-v000",
                )
            )
    manifest = Manifest(
        providers={
            PROVIDER: FabricProvider(
                type="fabric", endpoint="emulator:bench.json", workspace_id="ws-bench"
            )
        },
        policy=Policy(max_deletes=10**9),
        models=tuple(specs),
    )
    snapshot = Snapshot(
        provider=PROVIDER,
        provider_type="fabric",
        location="workspace ws-bench",
        models=tuple(live_models),
        services=tuple(services),
    )
    return manifest, snapshot


class DiffTimer:
    """Wraps `field_changes` where the planner calls it: time, pairs compared, pairs differing."""

    def __init__(self, inner: Callable[..., list[FieldChange]]) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.pairs = 0
        self.differing = 0

    def __call__(self, declared: Mapping[str, Any], live: Mapping[str, Any]) -> list[FieldChange]:
        started = time.perf_counter()
        changes = self.inner(declared, live)
        self.seconds += time.perf_counter() - started
        self.pairs += 1
        self.differing += bool(changes)
        return changes


def deepdiff_everywhere_estimate(snapshot: Snapshot, sample: int) -> float:
    """Seconds deepdiff would take on every version pair, from a sample of equal pairs."""
    from deepdiff import DeepDiff

    pairs = [
        (dict(version.attributes), dict(version.attributes))
        for model in snapshot.models
        for version in model.versions
    ]
    chosen = pairs[:sample]
    started = time.perf_counter()
    for left, right in chosen:
        DeepDiff(left, right)
    return (time.perf_counter() - started) / max(len(chosen), 1) * len(pairs)


def timed(
    manifest: Manifest, snapshot: Snapshot, *, paused: bool
) -> tuple[DiffTimer, float, float, DriftReport]:
    """build_plan and build_drift_report, timed; with the cyclic garbage collector paused as
    `reconcile drift` runs them, or left on."""
    timer = DiffTimer(diff.field_changes)
    planner.field_changes = timer  # type: ignore[assignment]
    gc.collect()
    if paused:
        gc.disable()
    try:
        started = time.perf_counter()
        plan = planner.build_plan(manifest, {PROVIDER: snapshot}, tool_version="bench")
        plan_seconds = time.perf_counter() - started
        started = time.perf_counter()
        report = build_drift_report(plan, manifest, {PROVIDER: snapshot})
        report_seconds = time.perf_counter() - started
    finally:
        gc.enable()
        planner.field_changes = timer.inner  # type: ignore[assignment]
    return timer, plan_seconds, report_seconds, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--versions", type=int, default=10, help="live versions per model")
    parser.add_argument("--drift-rate", type=float, default=0.01)
    parser.add_argument("--sample", type=int, default=2_000, help="pairs for the estimate")
    parser.add_argument("--check", action="store_true", help="exit 1 over the 1 s budget")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    manifest, snapshot = build(args.models, args.versions, args.drift_rate)
    setup = time.perf_counter() - started
    live_versions = sum(len(model.versions) for model in snapshot.models)

    started = time.perf_counter()
    import deepdiff  # noqa: F401  # loaded once; not part of the diff time

    import_seconds = time.perf_counter() - started
    runs = {}
    for collector in ("paused", "on"):
        runs[collector] = timed(manifest, snapshot, paused=collector == "paused")
    timer, plan_seconds, report_seconds, report = runs["paused"]
    estimate = deepdiff_everywhere_estimate(snapshot, args.sample)

    total = report.total
    print(
        f"live: {args.models:,} models, {live_versions:,} versions "
        f"(built in {setup:.2f} s, not timed below)"
    )
    print(
        f"report: {total.in_sync:,} in sync, {total.changed:,} changed, "
        f"{total.unmanaged:,} unmanaged, {total.blocked:,} blocked; coverage "
        f"{total.coverage:.1%}"
    )
    print(
        f"diff time: {timer.seconds:.3f} s for {timer.pairs:,} matched pairs, deepdiff on the "
        f"{timer.differing:,} that differ (budget {BUDGET_SECONDS:.0f} s)"
    )
    print(f"deepdiff on every pair instead: ~{estimate:.1f} s (estimated from {args.sample:,})")
    print(
        f"build_plan: {plan_seconds:.3f} s (diff included); build_drift_report: "
        f"{report_seconds:.3f} s; deepdiff import: {import_seconds:.3f} s"
    )
    on_timer, on_plan, on_report, _ = runs["on"]
    print(
        f"with the garbage collector left on: diff {on_timer.seconds:.3f} s, build_plan "
        f"{on_plan:.3f} s, build_drift_report {on_report:.3f} s"
    )
    over = timer.seconds >= BUDGET_SECONDS
    print("diff time within budget" if not over else "diff time OVER budget")
    return 1 if args.check and over else 0


if __name__ == "__main__":
    sys.exit(main())
