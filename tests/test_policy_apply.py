"""The policy's time rules and refusals end to end: the command line, the demo's emulator and the
state store's first-seen ledger. The planner's decisions are its data cases (tests/planner_cases);
here: that `plan` and `apply` give the planner the time and the ledger, that only apply writes
the ledger, and that apply refuses what the policy refuses, on a fresh plan and a saved one."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.test_cli import DEMO_DELETES, live_ids, live_state, plan_json, run


def _set_policy(demo: Path, lines: str) -> None:
    """Add `lines` to the demo manifest's global [policy] table."""
    manifest = demo / "reconcile.toml"
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace("max_deletes = 25\n", f"max_deletes = 25\n{lines}\n"))


def _ledgers(demo: Path) -> list[Path]:
    return sorted((demo / ".reconcile" / "ledger").glob("*.json"))


def _age_ledgers(demo: Path, days: int) -> None:
    """Time passes: every first-seen time in the ledgers moves `days` into the past."""
    for path in _ledgers(demo):
        document = json.loads(path.read_text(encoding="utf-8"))
        document["first_seen"] = {
            key: (datetime.fromisoformat(seen) - timedelta(days=days)).isoformat()
            for key, seen in document["first_seen"].items()
        }
        path.write_text(json.dumps(document), encoding="utf-8")


def _pending(plan: dict[str, object]) -> set[str]:
    changes = plan["resource_changes"]
    assert isinstance(changes, list)
    return {c["address"] for c in changes if c["action_reason"] == "grace_pending"}


def test_grace_period_over_three_applies_pending_pending_deleted(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    _set_policy(demo, 'grace = "7d"')

    # A plan never writes the ledger: everything deletable is pending, seen first now.
    planned = plan_json(capsys, demo)
    before = live_ids(live_state(demo))
    assert _pending(planned) == DEMO_DELETES
    assert not _ledgers(demo)

    # Run 1: apply deletes nothing and starts the grace periods.
    code, out, err = run(capsys, "apply", str(demo), "--auto-approve")
    assert code == 0, err
    assert live_ids(live_state(demo)) == before
    assert len(_ledgers(demo)) == 2  # one per provider scope (Fabric workspace, Qianfan)
    first = {path.name: path.read_text() for path in _ledgers(demo)}

    # Run 2, four days later: still pending, and the first-seen times are kept.
    _age_ledgers(demo, 4)
    aged = {path.name: json.loads(path.read_text()) for path in _ledgers(demo)}
    code, out, err = run(capsys, "apply", str(demo), "--auto-approve")
    assert code == 0, err
    assert live_ids(live_state(demo)) == before
    assert {path.name: json.loads(path.read_text()) for path in _ledgers(demo)} == aged
    assert first != {path.name: path.read_text() for path in _ledgers(demo)}
    assert "deletable from" in out or "grace" in out

    # Run 3, eight days after the first: the grace period is over, the deletes go.
    _age_ledgers(demo, 4)
    assert _pending(plan_json(capsys, demo)) == set()
    code, out, err = run(capsys, "apply", str(demo), "--auto-approve")
    assert code == 0, err
    assert "Apply complete: 11 deleted, 0 already gone." in out
    assert len(before - live_ids(live_state(demo))) > len(DEMO_DELETES)  # with model versions


def test_declaring_an_object_again_forgets_its_first_seen_time(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    _set_policy(demo, 'grace = "7d"')
    code, _, err = run(capsys, "apply", str(demo), "--auto-approve")
    assert code == 0, err
    _age_ledgers(demo, 30)
    manifest = demo / "reconcile.toml"
    text = manifest.read_text(encoding="utf-8")
    # support-bot v3 is declared again for one apply, then undeclared: its clock starts anew.
    manifest.write_text(text.replace('versions = ["v7", "v8"]', 'versions = ["v3", "v7", "v8"]'))
    # Every other object's grace period is over: apply deletes them; v3 is declared, kept, and
    # leaves the ledger.
    code, out, err = run(capsys, "apply", str(demo), "--auto-approve")
    assert code == 0, err
    assert "Apply complete: 10 deleted, 0 already gone." in out
    manifest.write_text(text)
    planned = plan_json(capsys, demo)
    assert _pending(planned) == {"fabric-demo/support-bot/v3"}


def test_observe_mode_plans_the_deletes_and_apply_refuses_them(
    capsys: pytest.CaptureFixture[str], demo: Path, tmp_path: Path
) -> None:
    manifest = demo / "reconcile.toml"
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(
        text.replace(
            'scope = "workspace"        # the manifest',
            'scope = "workspace"\npolicy = { mode = "observe" }  # the manifest',
            1,
        )
    )
    planned = plan_json(capsys, demo)
    before = live_ids(live_state(demo))
    assert any(c["address"].startswith("fabric-demo/") for c in planned["resource_changes"])

    code, _, err = run(capsys, "apply", str(demo), "--auto-approve")
    assert code != 0
    assert 'mode = "observe"' in err and "nothing was deleted" in err
    assert live_ids(live_state(demo)) == before

    saved = tmp_path / "plan.json"
    code, _, err = run(capsys, "plan", str(demo), "-o", str(saved))
    assert code == 0, err
    code, _, err = run(capsys, "apply", str(saved), "--manifests", str(demo))
    assert code != 0
    assert 'mode = "observe"' in err
    assert live_ids(live_state(demo)) == before


def test_max_delete_percent_refuses_a_large_share(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    _set_policy(demo, "max_delete_percent = 10")
    plan_json(capsys, demo)
    before = live_ids(live_state(demo))
    code, _, err = run(capsys, "apply", str(demo), "--auto-approve")
    assert code != 0
    assert "max_delete_percent is 10" in err and "nothing was deleted" in err
    assert live_ids(live_state(demo)) == before


def test_min_age_keeps_what_was_created_just_now(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    # The demo's objects were created in 2024; a min_age longer than that keeps every one.
    _set_policy(demo, 'min_age = "520w"')
    planned = plan_json(capsys, demo)
    reasons = {c["address"]: c["action_reason"] for c in planned["resource_changes"]}
    assert not [c for c in planned["resource_changes"] if c["actions"] == ["delete"]]
    # A model too new is kept whole (its versions are not listed apart).
    shown = DEMO_DELETES & reasons.keys()
    assert len(shown) >= 8
    assert {reasons[address] for address in shown} == {"too_new"}
    before = live_ids(live_state(demo))
    code, _, err = run(capsys, "apply", str(demo), "--auto-approve")
    assert code == 0, err
    assert live_ids(live_state(demo)) == before
