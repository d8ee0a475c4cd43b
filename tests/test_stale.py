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
from reconcile.errors import StalePlanError
from reconcile.guards import confirmed_deletes, unconfirmed_deletes
from reconcile.model import Snapshot
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


# -- plan files edited and sealed again: every record must be the live one ------------------------


def _forge(plan_file: Path, edit: Callable[[dict[str, Any]], None]) -> Plan:
    """Edit the plan file's deletes (as JSON) and seal it again, as a forger would."""
    data = json.loads(plan_file.read_text())
    for change in data["resource_changes"]:
        if change["actions"] == ["delete"]:
            edit(change)
    forged = Plan.model_validate(data).sealed()
    plan_file.write_text(forged.to_json())
    return forged


def _empty_version_ids(change: dict[str, Any]) -> None:
    change["version_ids"] = []


def _forged_before(change: dict[str, Any]) -> None:
    if change["before"] is not None:
        change["before"] = {**change["before"], "name": "not-what-is-live", "id": "x"}


def _null_before(change: dict[str, Any]) -> None:
    change["before"] = None


def _reordered_versions(change: dict[str, Any]) -> None:
    change["version_ids"] = list(reversed(change["version_ids"]))


@pytest.mark.parametrize(
    ("edit", "field", "limit"),
    [
        # 8 deletes in the file, 16 objects live: the file alone would pass a limit of 9.
        (_empty_version_ids, "version_ids", "9"),
        (_forged_before, "before", "25"),
        (_null_before, "before", "25"),
    ],
    ids=["empty-version-ids", "forged-before", "null-before"],
)
def test_a_resealed_plan_whose_records_disagree_with_the_listing_is_refused(
    capsys: pytest.CaptureFixture[str],
    demo: Path,
    tmp_path: Path,
    edit: Callable[[dict[str, Any]], None],
    field: str,
    limit: str,
) -> None:
    plan_file = tmp_path / "plan.json"
    assert main(["plan", str(demo), "-o", str(plan_file)]) == 0
    _forge(plan_file, edit)
    before = _ids(demo)
    # Without --expect-digest: the file is sealed, so only the live listing can tell.
    code = main(["apply", str(plan_file), "--max-deletes", limit])
    err = capsys.readouterr().err
    assert code == 1
    assert "the plan is stale" in err
    assert f"disagrees with the live listing ({field})" in err
    assert _ids(demo) == before
    assert (
        not (demo / ".reconcile" / "journal.jsonl").exists()
        or "delete_intent" not in (demo / ".reconcile" / "journal.jsonl").read_text()
    )


def test_max_deletes_counts_the_versions_the_listing_shows_not_the_file(
    capsys: pytest.CaptureFixture[str], demo: Path, tmp_path: Path
) -> None:
    """A whole-model delete's versions go with it whatever the file says: counted from the
    listing, fabric-demo's 8 deletes are 16 objects, over a limit of 9."""
    from reconcile.applier import Applier
    from reconcile.errors import GuardError

    plan_file = tmp_path / "plan.json"
    assert main(["plan", str(demo), "-o", str(plan_file)]) == 0
    saved = Plan.from_json(plan_file.read_text(), source="plan.json")
    emptied = tuple(
        change.model_copy(update={"version_ids": ()}) if change.is_delete else change
        for change in saved.resource_changes
    )
    forged = saved.model_copy(update={"resource_changes": emptied}).sealed()
    applier = Applier({}, None, replan=lambda live: saved, max_deletes={"fabric-demo": 9})  # type: ignore[arg-type]
    with pytest.raises(GuardError, match='"fabric-demo": 16 objects to delete, max_deletes is 9'):
        applier._confirmed(saved, _live(demo, saved))
    with pytest.raises(StalePlanError, match=r"disagrees with the live listing \(version_ids\)"):
        applier._confirmed(forged, _live(demo, saved))


def test_a_reordering_of_version_ids_is_no_disagreement(demo: Path, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    assert main(["plan", str(demo), "-o", str(plan_file)]) == 0
    saved = Plan.from_json(plan_file.read_text(), source="plan.json")
    forged = _forge(plan_file, _reordered_versions)
    assert unconfirmed_deletes(forged, saved) == []
    assert confirmed_deletes(forged, saved) == saved.deletes()


def test_the_receipts_are_the_live_records(demo: Path, tmp_path: Path) -> None:
    """The journal's record of each delete is the listing's, not the file's."""
    plan_file = tmp_path / "plan.json"
    assert main(["plan", str(demo), "-o", str(plan_file)]) == 0
    saved = Plan.from_json(plan_file.read_text(), source="plan.json")
    assert main(["apply", str(plan_file)]) == 0
    journal = (demo / ".reconcile" / "journal.jsonl").read_text().splitlines()
    intents = [json.loads(line) for line in journal if '"delete_intent"' in line]
    live = {change.id: change.before for change in saved.deletes()}
    assert len(intents) == 11
    for intent in intents:
        assert intent["record"] and intent["record"] == live[intent["id"]].value()  # type: ignore[union-attr]


def _live(demo: Path, plan: Plan) -> dict[str, Snapshot]:
    """Fresh listings of the plan's providers, as apply makes them."""
    import asyncio

    from reconcile.manifest import load_manifest
    from reconcile.wiring import Options, default_state_dir, open_providers

    manifest = load_manifest(demo)
    names = sorted({change.provider for change in plan.deletes()})

    async def listing() -> dict[str, Snapshot]:
        providers = open_providers(manifest, names, Options(state_dir=default_state_dir(demo)))
        try:
            return {name: await providers[name].snapshot() for name in names}
        finally:
            for provider in providers.values():
                await provider.aclose()

    return asyncio.run(listing())
