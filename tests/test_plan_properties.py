"""Safety properties of the planner over random manifests, live states and policies.

Whatever the input: no plan deletes a declared, protected, ignored, in-use, preset or ambiguous
object, nor the last version of a declared model, nor an object younger than min_age (or of
unknown age), a rollback target, or an object still in its grace period; an observe-only
provider's deletes are refused by apply's guard; and applying a plan then planning again
deletes nothing more (the deletable is gone, the rest is stable). Declarations name live models
and versions by name, by their own id, by the id of another live object or by an id that is not
live, so that two of them often name one live object: exactly then the planner refuses.
"""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile import guards
from reconcile.errors import GuardError, PlanError
from reconcile.manifest import Manifest, ModelSpec, VersionSpec, parse_duration
from reconcile.model import LiveModel, LiveVersion, ServiceUse, Snapshot
from reconcile.plan import Kind, Plan
from reconcile.planner import Ledger, build_plan, ledger_key, next_ledger

MODEL_NAMES = ["chat", "chat", "embed", "prod-chat", "scratch-1", "qa"]
VERSION_NAMES = ["v1", "v2", "v3", "v1", "rc"]
PATTERNS = ["prod-*", "scratch-*", "chat/v1", "*/rc", "qa"]
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
OLDEST = datetime.min.replace(tzinfo=UTC)


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
                created=draw(st.one_of(st.none(), st.integers(0, 50).map(_day))),
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


def _ids(own: list[str], others: list[str]) -> st.SearchStrategy[str | None]:
    """No id mostly; else the id of a live object of the declared name, of any live object (of
    another name, maybe declared too), or one that is not live."""
    choices: list[st.SearchStrategy[str | None]] = [st.none(), st.none(), st.just("gone")]
    choices += [st.sampled_from(ids) for ids in (own, others) if ids]
    return st.one_of(*choices)


@st.composite
def version_specs(draw: st.DrawFn, snapshot: Snapshot, most: int) -> list[Any]:
    """Declared versions: names, or tables naming a version by its id or by another's."""
    every = [v for m in snapshot.models for v in m.versions]
    result: list[Any] = []
    for name in draw(st.lists(st.sampled_from(VERSION_NAMES), unique=True, max_size=most)):
        own = [v.id for v in every if v.name == name]
        version_id = draw(_ids(own, [v.id for v in every]))
        result.append(name if version_id is None else {"name": name, "id": version_id})
    return result


@st.composite
def manifests(draw: st.DrawFn, snapshot: Snapshot) -> Manifest:
    specs: list[dict[str, Any]] = []
    all_models = [m.id for m in snapshot.models]
    names = draw(st.lists(st.sampled_from(sorted(set(MODEL_NAMES))), unique=True, max_size=4))
    for name in names:
        spec: dict[str, Any] = {"provider": "p", "name": name}
        model_id = draw(_ids([m.id for m in snapshot.models if m.name == name], all_models))
        if model_id is not None:
            spec["id"] = model_id
        kind = draw(st.sampled_from(["plain", "versions", "absent", "protect"]))
        if kind == "absent":
            spec["absent"] = True
        elif kind in ("protect", "versions"):
            spec["protect"] = kind == "protect"
            spec["versions"] = draw(version_specs(snapshot, 2 if kind == "protect" else 3))
        specs.append(spec)
    policy = {
        "protect": draw(st.lists(st.sampled_from(PATTERNS), unique=True, max_size=2)),
        "ignore": draw(st.lists(st.sampled_from(PATTERNS), unique=True, max_size=1)),
        "keep_latest": draw(st.integers(0, 2)),
        "min_age": draw(st.sampled_from([None, "10d", "1w"])),
        "keep_within": draw(st.sampled_from([None, "20d"])),
        "keep_before_in_use": draw(st.integers(0, 2)),
        "grace": draw(st.sampled_from([None, "7d"])),
        "mode": draw(st.sampled_from(["enforce", "enforce", "observe"])),
    }
    policy = {key: value for key, value in policy.items() if value is not None}
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


def _day(days: int) -> datetime:
    return EPOCH + timedelta(days=days)


@st.composite
def ledgers(draw: st.DrawFn, snapshot: Snapshot) -> Ledger:
    """First-seen times for some of the live objects, some of them after the plan's time."""
    keys = [ledger_key(Kind.MODEL, m.id) for m in snapshot.models] + [
        ledger_key(Kind.VERSION, v.id) for m in snapshot.models for v in m.versions
    ]
    seen = draw(st.lists(st.sampled_from(keys), unique=True)) if keys else []
    return {"p": {key: _day(draw(st.integers(0, 60))) for key in seen}}


def _matches(patterns: tuple[str, ...], *names: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns for name in names)


def names(spec: ModelSpec | VersionSpec, item: LiveModel | LiveVersion, live: list[Any]) -> bool:
    """Whether `spec` names `item` among the `live` objects in scope: by its id; by name without
    an id; or by name when its id picks no live object of that name (none is then deleted)."""
    if spec.id is None:
        return spec.name == item.name
    if spec.id == item.id:
        return True
    picked = any(other.id == spec.id and other.name == spec.name for other in live)
    return spec.name == item.name and not picked


def matched(spec: ModelSpec | VersionSpec, live: list[Any]) -> Any:
    """The one live object `spec` is matched to (its versions are then planned), or None."""
    named = [item for item in live if names(spec, item, live)]
    by_id = [item for item in named if item.id == spec.id]
    if spec.id is None:
        return named[0] if len(named) == 1 else None
    return by_id[0] if by_id and len(named) == 1 else None


def versions_in_scope(model: LiveModel, policy: Any) -> list[LiveVersion]:
    return [
        v
        for v in model.versions
        if not v.preset and not _matches(policy.ignore, f"{model.name}/{v.name}")
    ]


def claimed_twice(manifest: Manifest, snapshot: Snapshot) -> bool:
    """Whether two declarations name one live object in scope (a model, or a version of a model
    matched to one declaration that lists its versions)."""
    policy = manifest.policy_for("p")
    specs = [spec for spec in manifest.models if not _matches(policy.ignore, spec.name)]
    in_scope = [m for m in snapshot.models if not m.preset and not _matches(policy.ignore, m.name)]
    if any(sum(names(spec, m, in_scope) for spec in specs) > 1 for m in in_scope):
        return True
    for spec in specs:
        model = matched(spec, in_scope)
        if model is None or spec.absent or spec.versions is None:
            continue
        live = versions_in_scope(model, policy)
        vspecs = [v for v in spec.versions if not _matches(policy.ignore, f"{model.name}/{v.name}")]
        if any(sum(names(vspec, v, live) for vspec in vspecs) > 1 for v in live):
            return True
    return False


def check_safety(manifest: Manifest, snapshot: Snapshot, plan: Plan) -> None:
    policy = manifest.policy_for("p")
    models = {m.id: m for m in snapshot.models}
    versions = {v.id: v for m in snapshot.models for v in m.versions}
    in_scope = [m for m in snapshot.models if not m.preset and not _matches(policy.ignore, m.name)]
    specs = [spec for spec in manifest.models if not _matches(policy.ignore, spec.name)]
    used_versions = {s.version_id for s in snapshot.services if s.version_id}
    used_models = {s.model_id for s in snapshot.services}
    model_only = {s.model_id for s in snapshot.services if s.version_id is None}

    def declaring(model: LiveModel) -> list[ModelSpec]:
        """The declarations that name `model`: each must be obeyed (a plan is made only when
        there is one, but a wrong delete is found whatever the planner refuses)."""
        return [spec for spec in specs if names(spec, model, in_scope)]

    deleted_versions: set[str] = set()
    for change in plan.deletes():
        if change.kind is Kind.MODEL:
            model = models[change.id]
            for spec in declaring(model):
                assert spec.absent, f"declared model deleted: {change.address}"
                assert matched(spec, in_scope) is model, f"held model deleted: {change.address}"
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
            deleted_versions.update(v.id for v in model.versions)
        else:
            version = versions[change.id]
            model = models[version.model_id]
            full = f"{model.name}/{version.name}"
            assert not version.preset and not model.preset
            assert version.id not in used_versions, f"in-use version deleted: {change.address}"
            assert model.id not in model_only, f"version of a served model deleted: {full}"
            assert not _matches(policy.protect, model.name, full)
            assert not _matches(policy.ignore, model.name, full)
            for spec in declaring(model):
                if spec.absent:
                    continue
                assert not spec.protect
                assert spec.versions is not None
                assert matched(spec, in_scope) is model, f"version of a held model: {full}"
                live = versions_in_scope(model, policy)
                assert not any(names(vspec, version, live) for vspec in spec.versions), (
                    f"declared version deleted: {full}"
                )
            deleted_versions.add(version.id)
    for model in in_scope:
        kept = [spec for spec in declaring(model) if not spec.absent]
        if kept and model.versions:
            if any(matched(spec, in_scope) is not model for spec in kept):
                continue  # held whole: nothing of it is deleted (checked above)
            left = [v for v in model.versions if v.id not in deleted_versions]
            assert left, f"the last version of declared model {model.name} was deleted"


def check_time_rules(
    manifest: Manifest, snapshot: Snapshot, plan: Plan, now: datetime, ledger: Ledger
) -> None:
    """Nothing deleted is younger than min_age (or of unknown age), a rollback target, or in its
    grace period; an observe-only provider's deletes never pass apply's guard."""
    policy = manifest.policy_for("p")
    models = {m.id: m for m in snapshot.models}
    versions = {v.id: v for m in snapshot.models for v in m.versions}
    min_age = parse_duration(policy.min_age) if policy.min_age else None
    grace = parse_duration(policy.grace) if policy.grace else None
    targets: set[str] = set()
    for model in snapshot.models:
        ordered = sorted(model.versions, key=lambda v: (v.created or OLDEST, v.name, v.id))
        used = {s.version_id for s in snapshot.services if s.model_id == model.id}
        for position, version in enumerate(ordered):
            if version.id in used and policy.keep_before_in_use:
                start = max(0, position - policy.keep_before_in_use)
                targets.update(v.id for v in ordered[start:position])
    for change in plan.deletes():
        live: LiveModel | LiveVersion = (
            models[change.id] if change.kind is Kind.MODEL else versions[change.id]
        )
        within = list(models[change.id].versions) if change.kind is Kind.MODEL else []
        for item in [live, *within]:
            if min_age is not None:
                assert item.created is not None, f"{change.address}: deleted, age unknown"
                assert item.created + min_age <= now, f"{change.address}: deleted too new"
            assert item.id not in targets, f"{change.address}: a rollback target deleted"
        if grace is not None:
            first = ledger.get("p", {}).get(ledger_key(change.kind, change.id))
            assert first is not None and first + grace <= now, f"{change.address}: in grace"
    if policy.mode == "observe" and plan.deletes():
        try:
            guards.check_observe_only(plan.deletes(), manifest)
        except GuardError:
            pass
        else:
            raise AssertionError("an observe-only provider's deletes passed the guard")


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


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_plan_deletes_what_must_stay_and_apply_converges(data: st.DataObject) -> None:
    snapshot = data.draw(live_states())
    manifest = data.draw(manifests(snapshot))
    now = _day(data.draw(st.integers(0, 60)))
    ledger = data.draw(ledgers(snapshot))
    clash = claimed_twice(manifest, snapshot)
    try:
        plan = build_plan(manifest, {"p": snapshot}, tool_version="t", now=now, ledger=ledger)
    except PlanError as error:
        assert clash, f"refused, but no live object is declared twice: {error}"
        assert "claimed by two" in str(error)
        return
    assert not clash, "two declarations name one live object, and a plan was made"
    check_safety(manifest, snapshot, plan)
    check_time_rules(manifest, snapshot, plan, now, ledger)
    after = applied(snapshot, plan)
    try:
        again = build_plan(
            manifest,
            {"p": after},
            tool_version="t",
            now=now,
            ledger=next_ledger(plan, ledger, now),
        )
    except PlanError:
        # A declaration whose id is gone now holds the live namesakes another one names by id.
        assert claimed_twice(manifest, after)
        return
    assert again.deletes() == [], [c.address for c in again.deletes()]
