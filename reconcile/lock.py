"""One apply per state dir at a time: `.reconcile/lock`, created exclusively."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconcile.errors import LockError

LOCK_FILE = "lock"


def read_lock(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / LOCK_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"id": "unreadable"}
    return data if isinstance(data, dict) else {"id": "unreadable"}


@contextlib.contextmanager
def hold_lock(state_dir: Path, operation: str) -> Iterator[str]:
    """Take the lock for the duration of the block, or raise `LockError` naming its holder."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_FILE
    info = {
        "id": uuid.uuid4().hex[:12],
        "operation": operation,
        "who": f"{_user()}@{socket.gethostname()}",
        "pid": os.getpid(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        held = read_lock(state_dir) or {}
        gone = " (that process is no longer running: the lock is stale)" if _dead(held) else ""
        raise LockError(
            f"the state dir {state_dir} is locked by {held.get('operation', 'another run')} "
            f"(lock id {held.get('id', '?')}, held by {held.get('who', '?')} pid "
            f"{held.get('pid', '?')} since {held.get('since', '?')}){gone}",
            hint="wait for it to finish; if that run is gone, release the lock with "
            f"`reconcile force-unlock {held.get('id', '?')} --state-dir {state_dir}`",
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(info, handle)
    try:
        yield str(info["id"])
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def force_unlock(state_dir: Path, lock_id: str) -> None:
    held = read_lock(state_dir)
    if held is None:
        raise LockError(f"the state dir {state_dir} is not locked")
    if held.get("id") != lock_id:
        raise LockError(
            f"the lock in {state_dir} has id {held.get('id')}, not {lock_id}: not released",
            hint="give the id the lock error showed",
        )
    (state_dir / LOCK_FILE).unlink()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _dead(held: dict[str, Any]) -> bool:
    """Whether the lock's holder ran on this host and is gone (never guessed for other hosts)."""
    pid = held.get("pid")
    who = str(held.get("who", ""))
    if not isinstance(pid, int) or who.rpartition("@")[2] != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
