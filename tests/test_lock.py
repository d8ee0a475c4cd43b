"""The lock, through the state store the CLI is configured with: only its holder removes it,
and force-unlock never releases a live holder's lock unless told --force."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from reconcile.cli import main
from reconcile.errors import LockError
from reconcile.state import StateBackend, StateSpec, open_state

SCOPE = "fabric:example.test/ws-1"


def _store(state_dir: Path) -> StateBackend:
    return open_state(StateSpec(), default_dir=state_dir, environ={})


def test_force_unlock_of_a_live_holder_refuses_and_says_who_holds_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = _store(tmp_path)
    with store.acquire(SCOPE, "apply", apply_id="a1") as held:
        code = main(["force-unlock", held.id, "--state-dir", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 1
        still = store.read_lock(SCOPE)
        assert still is not None and still.id == held.id  # still held
        assert "not released" in err
        assert f"{still.holder}@{socket.gethostname()} pid {os.getpid()}" in err
        assert "--force" in err


def test_a_user_name_utf8_cannot_hold_is_written_and_read_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A user name from an environment with a byte that is not UTF-8 reaches Python as a lone
    surrogate ("al\\udcffice"): the lock file holds its escape, and reads back as it was, instead
    of the apply failing with a bug report."""
    monkeypatch.setenv("LOGNAME", "al\udcffice")
    store = _store(tmp_path)
    with store.acquire(SCOPE, "apply", apply_id="a1") as held:
        still = store.read_lock(SCOPE)
        assert still is not None and still.id == held.id
        assert still.holder == "al\udcffice"
    assert store.read_lock(SCOPE) is None


def test_force_unlock_with_force_releases_a_live_holders_lock(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = _store(tmp_path)
    with store.acquire(SCOPE, "apply") as held:
        assert main(["force-unlock", held.id, "--state-dir", str(tmp_path), "--force"]) == 0
        assert f"Released lock {held.id} of {SCOPE}" in capsys.readouterr().out
        assert store.read_lock(SCOPE) is None


def test_force_unlock_with_default_options_finds_the_lock_an_apply_took_with_its_defaults(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`reconcile apply` and `reconcile force-unlock`, both without options, in the same folder
    use the same state dir: .reconcile beside the manifests (./manifests/.reconcile)."""
    from reconcile.wiring import default_state_dir

    demo = Path(__file__).resolve().parent.parent / "examples" / "demo"
    shutil.copytree(demo, tmp_path / "manifests")
    monkeypatch.chdir(tmp_path)
    store = _store(default_state_dir(Path("manifests")))
    with store.acquire(SCOPE, "apply") as held:
        assert main(["force-unlock", held.id, "--force"]) == 0
        assert f"Released lock {held.id} of {SCOPE}" in capsys.readouterr().out
        assert store.read_lock(SCOPE) is None
    assert (tmp_path / "manifests" / ".reconcile" / "locks").is_dir()


def test_force_unlock_of_an_unknown_id_names_the_locks_there(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = _store(tmp_path)
    with store.acquire(SCOPE, "apply") as held:
        assert main(["force-unlock", "nosuchid0000", "--state-dir", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert "no lock with id nosuchid0000" in err and held.id in err
        assert store.read_lock(SCOPE) is not None


def test_the_first_apply_on_exit_does_not_remove_the_lock_a_second_apply_holds(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    first = store.acquire(SCOPE, "apply")
    store.force_unlock(SCOPE, first.id, force=True)
    second = store.acquire(SCOPE, "apply")
    first.release()  # the first apply ends now
    held = store.read_lock(SCOPE)
    assert held is not None and held.id == second.id
    with pytest.raises(LockError, match=f"lock id {second.id}"), store.acquire(SCOPE, "apply"):
        pass  # a third apply is kept out
    second.release()
    assert store.read_lock(SCOPE) is None


def test_a_dead_holders_lock_of_an_earlier_version_is_released_without_force(
    tmp_path: Path,
) -> None:
    (tmp_path / "lock").write_text(
        json.dumps(
            {
                "id": "dead00000000",
                "operation": "apply",
                "who": f"someone@{socket.gethostname()}",
                "pid": 2**22 + 12345,  # above pid_max on Linux: no such process
                "since": "2024-01-01T00:00:00+00:00",
            }
        )
    )
    assert main(["force-unlock", "dead00000000", "--state-dir", str(tmp_path)]) == 0
    assert _store(tmp_path).locks() == []


def test_a_holder_on_another_host_needs_force(tmp_path: Path) -> None:
    info = {
        "id": "remote000000",
        "operation": "apply",
        "who": "ci@build-host-7",
        "pid": 4242,
        "since": "2024-01-01T00:00:00+00:00",
    }
    (tmp_path / "lock").write_text(json.dumps(info))
    assert main(["force-unlock", "remote000000", "--state-dir", str(tmp_path)]) == 1
    assert [lock.id for lock in _store(tmp_path).locks()] == ["remote000000"]
    assert main(["force-unlock", "remote000000", "--state-dir", str(tmp_path), "--force"]) == 0
    assert _store(tmp_path).locks() == []


def test_apply_waits_for_a_lock_with_lock_timeout_and_refuses_without(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import threading

    from reconcile.manifest import load_manifest
    from reconcile.wiring import default_state_dir, lock_scope

    state_dir = default_state_dir(demo)
    scope = lock_scope(load_manifest(demo), "fabric-demo", state_dir)
    store = _store(state_dir)
    held = store.acquire(scope, "apply", apply_id="other-run")
    assert main(["apply", str(demo), "--auto-approve"]) == 1
    assert "other-run" in capsys.readouterr().err  # refused at once, naming the holder

    # The other apply ends 1.5 s later: this one, told to wait, goes on then.
    releaser = threading.Timer(1.5, held.release)
    releaser.start()
    try:
        code = main(["apply", str(demo), "--auto-approve", "--lock-timeout", "30"])
    finally:
        releaser.join()
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Apply complete: 11 deleted" in out
    assert store.read_lock(scope) is None
