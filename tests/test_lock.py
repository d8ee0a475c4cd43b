"""The lock: only its holder removes it, and force-unlock never releases a live holder's lock
unless told --force."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from reconcile.cli import main
from reconcile.errors import LockError
from reconcile.lock import LOCK_FILE, force_unlock, hold_lock, read_lock


def test_force_unlock_of_a_live_holder_refuses_and_says_who_holds_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with hold_lock(tmp_path, "apply") as lock_id:
        code = main(["force-unlock", lock_id, "--state-dir", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 1
        held = read_lock(tmp_path)
        assert held is not None and held["id"] == lock_id  # still held
        assert "not released" in err
        assert f"{held['who']} (pid {os.getpid()}, since {held['since']})" in err
        assert socket.gethostname() in err and "still running on this host" in err
        assert "--force" in err


def test_force_unlock_with_force_releases_a_live_holders_lock(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with hold_lock(tmp_path, "apply") as lock_id:
        assert main(["force-unlock", lock_id, "--state-dir", str(tmp_path), "--force"]) == 0
        assert f"Released lock {lock_id}" in capsys.readouterr().out
        assert read_lock(tmp_path) is None


def test_the_first_apply_on_exit_does_not_remove_the_lock_a_second_apply_holds(
    tmp_path: Path,
) -> None:
    first = hold_lock(tmp_path, "apply")
    first_id = first.__enter__()
    force_unlock(tmp_path, first_id, force=True)
    second = hold_lock(tmp_path, "apply")
    second_id = second.__enter__()
    first.__exit__(None, None, None)  # the first apply ends now
    held = read_lock(tmp_path)
    assert held is not None and held["id"] == second_id
    with pytest.raises(LockError, match=f"lock id {second_id}"), hold_lock(tmp_path, "apply"):
        pass  # a third apply is kept out
    second.__exit__(None, None, None)
    assert read_lock(tmp_path) is None
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_a_dead_holders_lock_is_released_without_force(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text(
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
    force_unlock(tmp_path, "dead00000000")
    assert read_lock(tmp_path) is None


def test_a_holder_on_another_host_needs_force(tmp_path: Path) -> None:
    info = {
        "id": "remote000000",
        "operation": "apply",
        "who": "ci@build-host-7",
        "pid": 4242,
        "since": "2024-01-01T00:00:00+00:00",
    }
    (tmp_path / LOCK_FILE).write_text(json.dumps(info))
    with pytest.raises(
        LockError, match="apply of ci@build-host-7 \\(pid 4242, since 2024"
    ) as raised:
        force_unlock(tmp_path, "remote000000")
    assert "cannot be checked from this host" in str(raised.value)
    assert read_lock(tmp_path) == info
    force_unlock(tmp_path, "remote000000", force=True)
    assert read_lock(tmp_path) is None
