"""A credential the platform refuses never turns a delete into "already gone".

Baidu's gateway answers an unknown or revoked access key with the code ``NotFound`` (``NotFound,
cause: Could not find credential.``): the same word as an object that is gone. `reconcile apply`
runs in-process against the emulator over a loopback socket, signing with the keys in the
environment, as a user's pipeline would.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from reconcile.cli import main
from reconcile.emulator import Emulator, create_app
from tests.conftest import demo_state, serve_over_loopback

GOOD_KEYS = ("demo-qianfan-ak", "demo-qianfan-sk")
# What the manifest below has apply delete, given the demo's Qianfan account.
DELETES = {"qf/faq-bot", "qf/legacy-ranker", "qf/doc-summarizer", "qf/chat-assistant/V1"}


def manifest(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "reconcile.toml"
    path.write_text(
        f"""
[providers.qf]
type = "qianfan"
endpoint = "{url}"
scope = "workspace"

[policy]
ignore = ["scratch-*"]

[[models]]
provider = "qf"
name = "chat-assistant"
versions = ["V2", "V3", "V4", "V5"]
""",
        encoding="utf-8",
    )
    return path


def qianfan_only() -> dict[str, Any]:
    return {"qianfan": demo_state()["qianfan"]}


def journal_outcomes(tmp_path: Path) -> list[str]:
    journal = tmp_path / ".reconcile" / "journal.jsonl"
    if not journal.exists():
        return []
    records = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    return [str(r.get("outcome")) for r in records if r.get("event") == "delete_outcome"]


class RevokeOnFirstDelete:
    """The emulator, with the account's keys revoked just before the first delete arrives:
    the listing was served, every delete meets the gateway's credential NotFound."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.emulator: Emulator = app.state.emulator

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and _is_delete(scope):
            self.emulator.state["qianfan"]["access_keys"].clear()
        await self.app(scope, receive, send)


def _is_delete(scope: Any) -> bool:
    query = scope.get("query_string", b"").decode("latin-1")
    return "Delete" in query or scope["path"].endswith("batchDelete")


def test_the_plan_deletes_what_the_tests_below_expect(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With good keys the same apply deletes exactly DELETES: the refusals below are real."""
    monkeypatch.setenv("QIANFAN_ACCESS_KEY", GOOD_KEYS[0])
    monkeypatch.setenv("QIANFAN_SECRET_KEY", GOOD_KEYS[1])
    app = create_app(qianfan_only())
    with serve_over_loopback(app) as url:
        code = main(["apply", str(manifest(tmp_path, url)), "--auto-approve"])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert set(journal_outcomes(tmp_path)) == {"deleted"}
    assert len(journal_outcomes(tmp_path)) == len(DELETES)


def test_a_wrong_access_key_deletes_nothing_and_nothing_is_already_gone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QIANFAN_ACCESS_KEY", "not-an-access-key")
    monkeypatch.setenv("QIANFAN_SECRET_KEY", GOOD_KEYS[1])
    app = create_app(qianfan_only())
    before = copy.deepcopy(app.state.emulator.state)
    with serve_over_loopback(app) as url:
        code = main(["apply", str(manifest(tmp_path, url)), "--auto-approve"])
    _, err = capsys.readouterr()
    assert code != 0
    assert "NotFound" in err and "not-an-access-key" not in err
    assert app.state.emulator.state == before
    assert "already_gone" not in journal_outcomes(tmp_path)


def test_a_key_revoked_before_the_deletes_is_no_already_gone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing is served, then every delete meets the revoked key's credential NotFound:
    apply fails, nothing is deleted, and no delete is journaled as already gone."""
    monkeypatch.setenv("QIANFAN_ACCESS_KEY", GOOD_KEYS[0])
    monkeypatch.setenv("QIANFAN_SECRET_KEY", GOOD_KEYS[1])
    gateway = RevokeOnFirstDelete(create_app(qianfan_only()))
    before = copy.deepcopy(gateway.emulator.state)
    with serve_over_loopback(gateway) as url:
        code = main(["apply", str(manifest(tmp_path, url)), "--auto-approve"])
    capsys.readouterr()
    assert [r["status"] for r in gateway.emulator.requests if r["status"] == 401]
    before["qianfan"]["access_keys"].clear()
    assert gateway.emulator.state == before
    assert code != 0
    assert "already_gone" not in journal_outcomes(tmp_path)
