"""A saved plan deletes only what a plan made at apply time would delete too.

Each test makes a plan, changes the emulated workspace (or the plan file) the way a careless
colleague or an attacker might, then applies: the apply must refuse and delete nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconcile.cli import main
from reconcile.plan import Plan

Workspace = dict[str, Any]


def _state_file(demo: Path) -> Path:
    return demo / ".reconcile" / "emulator" / "emulator-state.json"


def _edit(demo: Path, change: Callable[[Workspace], None]) -> None:
    path = _state_file(demo)
    state = json.loads(path.read_text())
    change(state["fabric"]["workspaces"]["ws-demo"])
    path.write_text(json.dumps(state))


def _ids(demo: Path) -> set[str]:
    state = json.loads(_state_file(demo).read_text())
    ids = set()
    for workspace in state["fabric"]["workspaces"].values():
        for model in workspace["models"]:
            ids.add(model["id"])
            ids.update(version["id"] for version in model["versions"])
    return ids


def _model(workspace: Workspace, name: str) -> dict[str, Any]:
    return next(model for model in workspace["models"] if model["name"] == name)


def _rename_support_bot_into_protect(workspace: Workspace) -> None:
    _model(workspace, "support-bot")["name"] = "prod-support-bot"


def _rename_support_bot_into_ignore(workspace: Workspace) -> None:
    _model(workspace, "support-bot")["name"] = "scratch-support-bot"


def _add_a_namesake(workspace: Workspace) -> None:
    twin = json.loads(json.dumps(_model(workspace, "support-bot")))
    twin["id"] = "twin-support-bot"
    twin["versions"] = [{**twin["versions"][0], "id": "e" * 32, "name": "v1"}]
    workspace["models"].append(twin)


def _delete_the_retained_version(workspace: Workspace) -> None:
    summarizer = _model(workspace, "summarizer")
    summarizer["versions"] = [v for v in summarizer["versions"] if v["name"] != "2024-05"]


def _leave_only_undeclared_versions(workspace: Workspace) -> None:
    support = _model(workspace, "support-bot")
    support["versions"] = [v for v in support["versions"] if v["name"] in ("v3", "v4")]
    used = {v["id"] for v in support["versions"]}
    workspace["service_instances"] = [
        s
        for s in workspace["service_instances"]
        if s["source"]["id"] != support["id"] or s["source"].get("version_id") in used
    ]


def _make_legacy_public(workspace: Workspace) -> None:
    _model(workspace, "legacy-qa")["visibility"] = "PUBLIC"


@pytest.mark.parametrize(
    ("change", "refused"),
    [
        (_rename_support_bot_into_protect, "fabric-demo/support-bot/v3"),
        (_rename_support_bot_into_ignore, "fabric-demo/support-bot/v3"),
        (_add_a_namesake, "fabric-demo/support-bot/v3"),
        (_delete_the_retained_version, "fabric-demo/summarizer/2024-04"),
        (_leave_only_undeclared_versions, "fabric-demo/support-bot/v"),
        (_make_legacy_public, "fabric-demo/legacy-qa"),
    ],
    ids=lambda value: getattr(value, "__name__", "")[1:] or None,
)
def test_a_saved_plan_is_refused_when_its_context_changed(
    capsys: pytest.CaptureFixture[str],
    demo: Path,
    tmp_path: Path,
    change: Callable[[Workspace], None],
    refused: str,
) -> None:
    plan_file = tmp_path / "plan.json"
    assert main(["plan", str(demo), "-o", str(plan_file)]) == 0
    _edit(demo, change)
    before = _ids(demo)
    code = main(["apply", str(plan_file)])
    err = capsys.readouterr().err
    assert code == 1
    assert "the plan is stale" in err
    assert f"{refused}" in err
    assert _ids(demo) == before


def test_a_plan_file_edited_and_sealed_again_cannot_delete_a_declared_version(
    capsys: pytest.CaptureFixture[str], demo: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    assert main(["plan", str(demo), "-o", str(plan_file)]) == 0
    saved = Plan.from_json(plan_file.read_text(), source="plan.json")
    v4 = next(c for c in saved.deletes() if c.address == "fabric-demo/support-bot/v4")
    v7_id = next(c.id for c in saved.resource_changes if c.address == "fabric-demo/support-bot/v7")
    forged = v4.model_copy(
        update={"address": "fabric-demo/support-bot/v7", "id": v7_id, "name": "v7"}
    )
    tampered = saved.model_copy(
        update={"resource_changes": (*saved.resource_changes, forged)}
    ).sealed()
    plan_file.write_text(tampered.to_json())
    before = _ids(demo)
    code = main(["apply", str(plan_file), "--expect-digest", tampered.plan_digest])
    err = capsys.readouterr().err
    assert code == 1
    assert "fabric-demo/support-bot/v7: a plan made now would not delete it (declared" in err
    assert _ids(demo) == before
