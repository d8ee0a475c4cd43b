"""Interactive approval on a real terminal: only `yes`, or the workspace name for large deletes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_on_terminal


def _live_ids(demo: Path) -> set[str]:
    copy = demo / ".reconcile" / "emulator" / "emulator-state.json"
    if not copy.exists():
        return set()
    state = json.loads(copy.read_text())
    return {
        model["id"]
        for workspace in state["fabric"]["workspaces"].values()
        for model in workspace["models"]
    }


def test_a_large_delete_needs_the_workspace_name_not_yes(demo: Path) -> None:
    manifest = demo / "reconcile.toml"
    manifest.write_text(
        manifest.read_text().replace("max_deletes = 25", "max_deletes = 25\nconfirm_name_above = 3")
    )
    code, screen = run_on_terminal(["apply", str(demo)], ["yes"])
    assert "type the name of the workspace, ws-demo, to approve" in screen
    assert code == 1
    assert "'yes' is not ws-demo; nothing was deleted" in screen
    before = _live_ids(demo)

    code, screen = run_on_terminal(["apply", str(demo)], ["ws-demo"])
    assert code == 0, screen
    assert "Apply complete:" in screen
    assert _live_ids(demo) < before
