"""SIGINT or SIGTERM while a real `reconcile` process lists (plan's listing, apply's listing and
its re-listing of a saved plan) stops it within 2 s: exit 130, nothing deleted, no receipt.

The emulator answers every listing request after 5 s (its "slow" fault), over loopback, so a
signal that waited for the listing to end would take 5 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from reconcile.emulator import Fault, create_app
from tests.conftest import demo_state, serve_over_loopback
from tests.test_interrupt import TOKEN, _journal, _manifest, state_ids

pytestmark = pytest.mark.loopback

SLOW_LISTING = [Fault.parse("slow,method=GET,delay_ms=5000")]
#: The budget from the signal to the process's exit.
WITHIN = 2.0


def _slow_request_arrived(app: Any) -> bool:
    return any(r["fault"] == "slow" for r in app.state.emulator.requests)


def _interrupt(app: Any, command: list[str], sig: signal.Signals) -> tuple[int, float, str]:
    """Run `command`, send `sig` once it waits on a slow listing; its exit code, how long it
    took to exit after the signal, and what it printed."""
    env = {**os.environ, "RECONCILE_TEST_TOKEN": TOKEN, "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "reconcile", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not _slow_request_arrived(app) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.02)
    assert _slow_request_arrived(app), "the listing never started"
    time.sleep(0.2)  # well inside the listing
    sent = time.monotonic()
    process.send_signal(sig)
    try:
        output, _ = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return process.returncode, time.monotonic() - sent, output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", ["plan", "apply", "apply-saved"])
def test_a_signal_during_a_listing_stops_within_2_seconds_and_deletes_nothing(
    tmp_path: Path, command: str, sig: signal.Signals
) -> None:
    state = demo_state()
    state["fabric"]["tokens"] = [TOKEN]
    app = create_app(state)
    with serve_over_loopback(app) as url:
        manifest = _manifest(tmp_path, url)
        args = [command, str(manifest)]
        if command == "apply":
            args.append("--auto-approve")
        if command == "apply-saved":
            plan_file = tmp_path / "plan.json"
            planned = subprocess.run(
                [sys.executable, "-m", "reconcile", "plan", str(manifest), "-o", str(plan_file)],
                env={**os.environ, "RECONCILE_TEST_TOKEN": TOKEN},
                capture_output=True,
                text=True,
            )
            assert planned.returncode == 0, planned.stdout + planned.stderr
            args = ["apply", str(plan_file)]
        before = state_ids(app)
        app.state.emulator.faults = SLOW_LISTING
        code, took, output = _interrupt(app, args, sig)
        assert code == 130, output
        assert took < WITHIN, f"took {took:.1f} s to stop:\n{output}"
        assert "nothing was deleted" in output or "Interrupted: 0 deleted" in output, output
        assert "Traceback" not in output
        assert state_ids(app) == before
        assert [r for r in app.state.emulator.requests if r["method"] == "DELETE"] == []
        assert not [r for r in _journal(tmp_path) if r["event"] == "delete_intent"]
        assert not (tmp_path / ".reconcile" / "lock").exists()
