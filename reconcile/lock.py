"""One apply per state dir at a time: `.reconcile/lock`, created exclusively.

A lock is only ever removed by the holder that made it (its id is compared, atomically, on the
way out), so a lock released by `force-unlock` and taken by another run is never removed under
that run's feet; and `force-unlock` refuses to release a lock whose holder may still be running
unless told `force`.
"""

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
        return _read(state_dir / LOCK_FILE)
    except FileNotFoundError:
        return None


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
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
        release(state_dir, str(info["id"]))


def release(state_dir: Path, lock_id: str) -> bool:
    """Remove the lock if, and only if, it is still the one with `lock_id`; whether it was.

    The compare is atomic: the lock is first renamed to a name of this holder's own (a rename
    takes the file that is there, whoever wrote it), read there, and put back untouched when it
    turns out to be another holder's.
    """
    path = state_dir / LOCK_FILE
    held = read_lock(state_dir)
    if held is None or held.get("id") != lock_id:
        return False  # released by force-unlock, and perhaps taken by another run since
    claimed = state_dir / f"{LOCK_FILE}.{lock_id}.release"
    try:
        path.rename(claimed)
    except FileNotFoundError:
        return False
    try:
        mine = _read(claimed).get("id") == lock_id
        if not mine:
            with contextlib.suppress(FileExistsError):
                os.link(claimed, path)  # another run's lock goes back, unless a newer one is there
        return mine
    finally:
        claimed.unlink(missing_ok=True)


def force_unlock(state_dir: Path, lock_id: str, *, force: bool = False) -> None:
    """Release a lock whose holder is gone. A holder that may still run (alive on this host, or
    on another host, which cannot be checked from here) is refused unless `force`."""
    held = read_lock(state_dir)
    if held is None:
        raise LockError(f"the state dir {state_dir} is not locked")
    if held.get("id") != lock_id:
        raise LockError(
            f"the lock in {state_dir} has id {held.get('id')}, not {lock_id}: not released",
            hint="give the id the lock error showed",
        )
    if not force and not _dead(held):
        raise LockError(
            f"not released: the lock {lock_id} in {state_dir} is held by {describe(held)}, "
            f"which {_liveness(held)}",
            hint="wait for that run to finish; if you are sure it is gone, run force-unlock "
            "again with --force",
        )
    if not release(state_dir, lock_id):
        raise LockError(f"the lock in {state_dir} changed meanwhile: not released")


def describe(held: dict[str, Any]) -> str:
    """Who holds a lock, in words: the operation, user and host, pid and since when."""
    if held.get("id") == "unreadable":
        return "an unknown holder (the lock file cannot be read)"
    return (
        f"{held.get('operation', 'another run')} of {held.get('who', '?')} "
        f"(pid {held.get('pid', '?')}, since {held.get('since', '?')})"
    )


def _liveness(held: dict[str, Any]) -> str:
    who = str(held.get("who", ""))
    if held.get("id") != "unreadable" and who.rpartition("@")[2] == socket.gethostname():
        return "is still running on this host"
    return "may still be running (it cannot be checked from this host)"


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
