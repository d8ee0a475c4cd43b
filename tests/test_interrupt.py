"""Ctrl-C during a real `reconcile apply` process: no new deletes, in-flight ones finish and are
journaled, exit 130, and the next plan is consistent with what happened."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from reconcile.emulator import create_app
from tests.conftest import demo_state, serve_over_loopback

TOKEN = "interrupt-test-token"


def _manifest(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(
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
"""
    )
    return path


def _journal(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / ".reconcile" / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_sigint_mid_apply_stops_cleanly_and_the_next_plan_converges(tmp_path: Path) -> None:
    state = demo_state()
    state["fabric"]["tokens"] = [TOKEN]
    app = create_app(state, latency_ms=80)
    env = {**os.environ, "RECONCILE_TEST_TOKEN": TOKEN, "NO_COLOR": "1"}
    with serve_over_loopback(app) as url:
        manifest = _manifest(tmp_path, url)
        command = [sys.executable, "-m", "reconcile", "apply", str(manifest), "--auto-approve"]
        process = subprocess.Popen(
            [*command, "--parallelism", "1"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(r["event"] == "delete_outcome" for r in _journal(tmp_path)):
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 130, out + err
        assert "Interrupted:" in out
        assert "not attempted" in out

        records = _journal(tmp_path)
        intents = {r["id"] for r in records if r["event"] == "delete_intent"}
        outcomes = {r["id"]: r["outcome"] for r in records if r["event"] == "delete_outcome"}
        assert intents and set(outcomes) == intents  # every sent delete has its outcome
        finished = [r for r in records if r["event"] == "apply_finished"]
        assert finished and finished[-1]["interrupted"] is True
        deleted = {i for i, outcome in outcomes.items() if outcome == "deleted"}

        # The platform holds exactly what was not deleted, and a new plan deletes the rest.
        live = state_ids(app)
        assert not deleted & live
        plan = subprocess.run(
            [sys.executable, "-m", "reconcile", "plan", str(manifest), "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        remaining = {c["id"] for c in json.loads(plan.stdout)["resource_changes"]}
        assert not deleted & remaining
        again = subprocess.run([*command], env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr


def state_ids(app: object) -> set[str]:
    workspace = app.state.emulator.state["fabric"]["workspaces"]["ws-demo"]  # type: ignore[attr-defined]
    ids: set[str] = set()
    for model in workspace["models"]:
        ids.add(model["id"])
        ids.update(version["id"] for version in model["versions"])
    return ids


def test_a_killed_apply_leaves_receipts_and_the_next_run_reports_them(tmp_path: Path) -> None:
    """kill -9 mid-apply: the journal holds the receipts of what was sent; the next plan names
    the deletes whose outcome was never recorded, and a new apply converges."""
    state = demo_state()
    state["fabric"]["tokens"] = [TOKEN]
    app = create_app(state, latency_ms=200)
    env = {**os.environ, "RECONCILE_TEST_TOKEN": TOKEN, "NO_COLOR": "1"}
    with serve_over_loopback(app) as url:
        manifest = _manifest(tmp_path, url)
        command = [sys.executable, "-m", "reconcile", "apply", str(manifest), "--auto-approve"]
        process = subprocess.Popen(
            [*command, "--parallelism", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(r["event"] == "delete_intent" for r in _journal(tmp_path)):
                break
            time.sleep(0.02)
        process.kill()
        process.wait(timeout=30)
        records = _journal(tmp_path)
        intents = {r["address"] for r in records if r["event"] == "delete_intent"}
        outcomes = {r["address"] for r in records if r["event"] == "delete_outcome"}
        unfinished = sorted(intents - outcomes)
        assert unfinished, "the kill came after every outcome: nothing to report"
        assert not [r for r in records if r["event"] == "apply_finished"]

        plan = subprocess.run(
            [sys.executable, "-m", "reconcile", "plan", str(manifest)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert "did not finish" in plan.stderr
        assert all(address in plan.stderr for address in unfinished)

        # The killed apply still holds the lock, and the refusal says it is stale.
        refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1
        assert "the lock is stale" in refused.stderr
        # One lock per provider scope now (issue 14), in locks/ of the state store.
        (lock_file,) = (tmp_path / ".reconcile" / "locks").glob("*.json")
        lock = json.loads(lock_file.read_text())
        assert f"reconcile force-unlock {lock['id']}" in refused.stderr
        # force-unlock's default state dir is the apply's: .reconcile beside the manifests.
        unlock = [sys.executable, "-m", "reconcile", "force-unlock", lock["id"]]
        subprocess.run([*unlock, "--manifests", str(manifest)], env=env, check=True)
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr
        final = subprocess.run(
            [sys.executable, "-m", "reconcile", "plan", str(manifest), "--detailed-exitcode"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert final.returncode == 0, final.stdout
