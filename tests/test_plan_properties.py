"""Safety properties of the planner over random manifests, live states and policies.

Whatever the input: no plan deletes a declared, protected, ignored, in-use, preset or ambiguous
object, nor the last version of a declared model; and applying a plan then planning again
deletes nothing more (the deletable is gone, the rest is stable).
"""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.manifest import Manifest
from reconcile.model import LiveModel, LiveVersion, ServiceUse, Snapshot
from reconcile.plan import Kind, Plan
from reconcile.planner import build_plan

MODEL_NAMES = ["chat", "chat", "embed", "prod-chat", "scratch-1", "qa"]
VERSION_NAMES = ["v1", "v2", "v3", "v1", "rc"]
PATTERNS = ["prod-*", "scratch-*", "chat/v1", "*/rc", "qa"]
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@st.composite
def live_states(draw: st.DrawFn) -> Snapshot:
    models = []
    services = []
    for index in range(draw(st.integers(0, 6))):
        model_id = f"m{index}"
        versions = []
        for vindex in range(draw(st.integers(0, 4))):
            created = draw(st.one_of(st.none(), st.integers(0, 50)))
            versions.append(
                LiveVersion(
                    id=f"{model_id}-v{vindex}",
                    name=draw(st.sampled_from(VERSION_NAMES)),
                    model_id=model_id,
                    created=None if created is None else EPOCH + timedelta(days=created),
                    attributes={"description": draw(st.sampled_from(["", "x"]))},
                    preset=draw(st.booleans()) and draw(st.booleans()),
                    raw={"id": f"{model_id}-v{vindex}"},
                )
            )
            if draw(st.integers(0, 5)) == 0:
                services.append(
                    ServiceUse(
                        id=f"svc-{model_id}-{vindex}",
                        name="s",
                        status="RUNNING",
                        model_id=model_id,
                        version_id=f"{model_id}-v{vindex}",
                    )
                )
        if draw(st.integers(0, 9)) == 0:
            services.append(
                ServiceUse(id=f"svc-{model_id}", name="s", status="RUNNING", model_id=model_id)
            )
        models.append(
            LiveModel(
                id=model_id,
                name=draw(st.sampled_from(MODEL_NAMES)),
                preset=draw(st.integers(0, 7)) == 0,
                versions=tuple(versions),
                raw={"id": model_id},
            )
        )
    return Snapshot(
        provider="p",
        provider_type="fabric",
        location="workspace ws",
        models=tuple(models),
        services=tuple(services),
    )


@st.composite
def manifests(draw: st.DrawFn, snapshot: Snapshot) -> Manifest:
    specs: list[dict[str, Any]] = []
    names = draw(st.lists(st.sampled_from(sorted(set(MODEL_NAMES))), unique=True, max_size=4))
    for name in names:
        spec: dict[str, Any] = {"provider": "p", "name": name}
        live_ids = [m.id for m in snapshot.models if m.name == name]
        if live_ids and draw(st.integers(0, 3)) == 0:
            spec["id"] = draw(st.sampled_from(live_ids))
        kind = draw(st.sampled_from(["plain", "versions", "absent", "protect"]))
        if kind == "absent":
            spec["absent"] = True
        elif kind == "protect":
            spec["protect"] = True
            spec["versions"] = draw(
                st.lists(st.sampled_from(VERSION_NAMES), unique=True, max_size=2)
            )
        elif kind == "versions":
            spec["versions"] = draw(
                st.lists(st.sampled_from(VERSION_NAMES), unique=True, max_size=3)
            )
        specs.append(spec)
    policy = {
        "protect": draw(st.lists(st.sampled_from(PATTERNS), unique=True, max_size=2)),
        "ignore": draw(st.lists(st.sampled_from(PATTERNS), unique=True, max_size=1)),
        "keep_latest": draw(st.integers(0, 2)),
    }
    return Manifest.model_validate(
        {
            "providers": {
                "p": {
                    "type": "fabric",
                    "endpoint": "emulator:x.json",
                    "workspace_id": "ws",
                    "scope": draw(st.sampled_from(["declared", "workspace"])),
                    "allow_empty": True,
                }
            },
            "policy": policy,
            "models": specs,
        }
    )


def _matches(patterns: tuple[str, ...], *names: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns for name in names)


def check_safety(manifest: Manifest, snapshot: Snapshot, plan: Plan) -> None:
    policy = manifest.policy_for("p")
    models = {m.id: m for m in snapshot.models}
    versions = {v.id: v for m in snapshot.models for v in m.versions}
    in_scope = [m for m in snapshot.models if not m.preset and not _matches(policy.ignore, m.name)]
    specs = {spec.name: spec for spec in manifest.models}
    used_versions = {s.version_id for s in snapshot.services if s.version_id}
    used_models = {s.model_id for s in snapshot.services}
    model_only = {s.model_id for s in snapshot.services if s.version_id is None}

    def declared_spec(model: LiveModel) -> Any:
        for spec in manifest.models:
            if spec.id == model.id or (spec.id is None and spec.name == model.name):
                return spec
        return None

    deleted_versions: set[str] = set()
    for change in plan.deletes():
        if change.kind is Kind.MODEL:
            model = models[change.id]
            spec = declared_spec(model)
            assert spec is None or spec.absent, f"declared model deleted: {change.address}"
            assert not model.preset
            assert not _matches(policy.protect, model.name)
            assert not _matches(policy.ignore, model.name)
            assert model.id not in used_models, f"in-use model deleted: {change.address}"
            for version in model.versions:
                assert not version.preset
                assert version.id not in used_versions
                full = f"{model.name}/{version.name}"
                assert not _matches(policy.protect, model.name, full)
                assert not _matches(policy.ignore, full)
            if spec is None or spec.id is None:
                namesakes = [m for m in in_scope if m.name == model.name]
                assert spec is None or len(namesakes) == 1, f"ambiguous deleted: {change.address}"
            deleted_versions.update(v.id for v in model.versions)
        else:
            version = versions[change.id]
            model = models[version.model_id]
            spec = declared_spec(model)
            full = f"{model.name}/{version.name}"
            assert not version.preset and not model.preset
            assert version.id not in used_versions, f"in-use version deleted: {change.address}"
            assert model.id not in model_only, f"version of a served model deleted: {full}"
            assert not _matches(policy.protect, model.name, full)
            assert not _matches(policy.ignore, model.name, full)
            if spec is not None and not spec.absent:
                assert not spec.protect
                assert spec.versions is not None
                declared = {v.name for v in spec.versions}
                assert version.name not in declared, f"declared version deleted: {full}"
            deleted_versions.add(version.id)
    for model in in_scope:
        spec = declared_spec(model)
        if spec is not None and not spec.absent and model.versions:
            namesakes = [m for m in in_scope if m.name == model.name]
            if spec.id is None and len(namesakes) > 1:
                continue
            left = [v for v in model.versions if v.id not in deleted_versions]
            assert left, f"the last version of declared model {model.name} was deleted"
    _ = specs


def applied(snapshot: Snapshot, plan: Plan) -> Snapshot:
    """The live state after every delete of `plan` succeeded."""
    gone_models = {c.id for c in plan.deletes() if c.kind is Kind.MODEL}
    gone_versions = {c.id for c in plan.deletes() if c.kind is Kind.VERSION}
    models = tuple(
        m.model_copy(update={"versions": tuple(v for v in m.versions if v.id not in gone_versions)})
        for m in snapshot.models
        if m.id not in gone_models
    )
    return snapshot.model_copy(update={"models": models})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_plan_deletes_what_must_stay_and_apply_converges(data: st.DataObject) -> None:
    snapshot = data.draw(live_states())
    manifest = data.draw(manifests(snapshot))
    plan = build_plan(manifest, {"p": snapshot}, tool_version="t")
    check_safety(manifest, snapshot, plan)
    after = applied(snapshot, plan)
    again = build_plan(manifest, {"p": after}, tool_version="t")
    assert again.deletes() == [], [c.address for c in again.deletes()]
