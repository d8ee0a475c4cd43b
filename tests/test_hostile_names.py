"""A model whose platform name carries terminal escapes, newlines and an RTL override reaches the
interactive confirm prompt and an apply failure line escaped: the raw characters never reach the
terminal, so a platform cannot forge lines or rewrite what the operator approves."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.emulator import Fault, create_app
from tests.conftest import demo_state, run_on_terminal, serve_over_loopback

TOKEN = "hostile-names-token"
HOSTILE = "legacy\x1b[2J\x1b]0;owned\x07\nApply complete: 0 deleted\r\u202eaq-"
RAW = ("\x1b[2J", "\x1b]0;", "\x07", "\u202e", "\nApply complete: 0 deleted")


def test_a_hostile_model_name_is_escaped_at_the_prompt_and_in_the_failure_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = demo_state()
    state["fabric"]["tokens"] = [TOKEN]
    (model,) = [
        m for m in state["fabric"]["workspaces"]["ws-demo"]["models"] if m["name"] == "legacy-qa"
    ]
    model["name"] = HOSTILE
    refuse = Fault("status", status=403, method="DELETE", path=f"*/models/{model['id']}*")
    monkeypatch.setenv("RECONCILE_TEST_TOKEN", TOKEN)
    with serve_over_loopback(create_app(state, faults=[refuse])) as url:
        manifest = tmp_path / "m.toml"
        manifest.write_text(
            f"""
[providers.fab]
type = "fabric"
endpoint = "{url}"
workspace_id = "ws-demo"
scope = "workspace"
allow_empty = true
credentials = {{ token_env = "RECONCILE_TEST_TOKEN" }}

[policy]
max_deletes = 100
confirm_name_above = 1000
"""
        )
        code, screen = run_on_terminal(["apply", str(manifest), "--attempts", "1"], ["yes"])
    assert "Only 'yes' will be accepted" in screen
    assert code != 0, screen
    # Addresses show a name that needs it quoted, with JSON's escapes.
    escaped = '"legacy\\u001b[2J\\u001b]0;owned\\u0007\\nApply complete: 0 deleted\\r\\u202eaq-"'
    asked, _, after = screen.partition("Enter a value")
    assert f"fab/{escaped}" in asked, asked  # the plan the operator approves
    failure = [line for line in after.splitlines() if line.lstrip().startswith("failed:")]
    assert len(failure) == 1 and f"fab/{escaped}" in failure[0], after
    assert "Apply finished with errors: 11 deleted, 0 already gone, 1 failed (of 12)" in after
    for raw in RAW:
        assert raw not in screen, (raw, screen)
