"""Plans at scale, built in code: a workspace of undeclared models deleted whole, declared models
losing their undeclared versions, and a few versions that inference services keep.

`scale_plan(whole, partial)` deletes `whole` models with 6 versions each and 3 versions of each of
`partial` declared models (2 more in use): 500 deletes with (292, 70). Names and ids are shaped
as Fabric's (a UUID per model, 32 hex digits per version); every live record carries its creation
time and creator, as the platform returns them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconcile.drift import DriftReport, build_drift_report
from reconcile.manifest import load_manifest
from reconcile.model import LiveModel, LiveVersion, RawRecord, ServiceUse, Snapshot
from reconcile.plan import Plan
from reconcile.planner import build_plan

HEADER = """
[providers.fabric-prod]
type = "fabric"
endpoint = "emulator:state.json"
workspace_id = "ws-7f3a"
scope = "workspace"
"""
#: The time plans and reports are made at: ages are counted from it.
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TEAMS = ("search", "support", "ads", "risk", "speech")


def _uuid(text: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, text))


def _version(model_id: str, name: str, created: datetime, creator: str) -> LiveVersion:
    version_id = _uuid(f"{model_id}/{name}").replace("-", "")
    raw = {
        "id": version_id,
        "name": name,
        "create_time": created.isoformat(),
        "create_user": {"id": creator, "name": creator},
    }
    return LiveVersion(
        id=version_id, name=name, model_id=model_id, created=created, raw=RawRecord.of(raw)
    )


def _model(index: int, versions: int) -> LiveModel:
    team = TEAMS[index % len(TEAMS)]
    name = f"{team}-ranker-{index:04d}"
    model_id = _uuid(name)
    created = NOW - timedelta(days=3 + index % 400, hours=index % 24)
    creator = f"{team}-bot"
    raw = {
        "id": model_id,
        "name": name,
        "visibility": "PRIVATE",
        "create_time": created.isoformat(),
        "create_user": {"id": creator, "name": creator},
    }
    return LiveModel(
        id=model_id,
        name=name,
        created=created,
        versions=tuple(
            _version(model_id, f"2024-{month:02d}", created + timedelta(days=month), creator)
            for month in range(1, versions + 1)
        ),
        raw=RawRecord.of(raw),
    )


def scale_inputs(tmp_path: Path, whole: int, partial: int) -> tuple[Path, dict[str, Snapshot]]:
    """The manifest file and the snapshot of such a workspace."""
    models = [_model(index, 6) for index in range(whole)]
    declared = [_model(whole + index, 4) for index in range(partial)]
    manifest = HEADER + "".join(
        f'\n[[models]]\nprovider = "fabric-prod"\nname = "{m.name}"\nversions = ["2024-01"]\n'
        for m in declared
    )
    # Two of the declared models' versions are in use: blocked, not deleted.
    services = tuple(
        ServiceUse(
            id=_uuid(f"svc-{m.name}"),
            name=f"{m.name}-canary",
            status="RUNNING",
            model_id=m.id,
            version_id=m.versions[-1].id,
        )
        for m in declared[:2]
    )
    file = tmp_path / "reconcile.toml"
    file.write_text(manifest, encoding="utf-8")
    snapshot = Snapshot(
        provider="fabric-prod",
        provider_type="fabric",
        location="workspace ws-7f3a",
        models=(*models, *declared),
        services=services,
    )
    return file, {"fabric-prod": snapshot}


def scale_plan(tmp_path: Path, whole: int = 292, partial: int = 70) -> Plan:
    return scale_plan_and_report(tmp_path, whole, partial)[0]


def scale_plan_and_report(
    tmp_path: Path, whole: int = 292, partial: int = 70
) -> tuple[Plan, DriftReport]:
    file, snapshots = scale_inputs(tmp_path, whole, partial)
    manifest = load_manifest(file)
    plan = build_plan(manifest, snapshots, tool_version="test").model_copy(
        update={"created_at": NOW.isoformat(timespec="seconds"), "manifest_path": str(file)}
    )
    return plan, build_drift_report(plan, manifest, snapshots)
