"""Loading and saving the emulator's state file.

The state is plain JSON: one top-level key per platform (``fabric``, ``qianfan``). This
module only reads and writes it; each platform module fills in its own defaults and checks its
own section, and keys it does not know are kept untouched.
"""

import copy
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconcile.emulator.common import BadState, json_bytes

# A state file written here for the first time gets ordinary file permissions, not mkstemp's 0600.
_NEW_FILE_MODE = 0o644


def load_state(source: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """Return a private, mutable copy of the state in ``source`` (a mapping or a JSON file path).

    A mapping is deep-copied, so the emulator's deletes never reach the caller's fixture.
    """
    if isinstance(source, Mapping):
        state = copy.deepcopy(dict(source))
    else:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise BadState(f"cannot read emulator state file {path}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise BadState(
                f"emulator state file {path} is not UTF-8 text: byte {exc.start} is "
                f"{exc.object[exc.start]:#04x}"
            ) from None
        try:
            state = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadState(f"emulator state file {path} is not valid JSON: {exc}") from exc
        if not isinstance(state, dict):
            raise BadState(f"emulator state file {path} must hold a JSON object at the top")
    return state


def save_state(state: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file beside it, then a rename.

    A reader (or a crash) sees either the old file or the new one, never half of one.
    """
    _write_atomically(Path(path), json_bytes(state, indent=2) + b"\n")


# -- working copies of a seed state -------------------------------------------------------------
#
# An `emulator:` endpoint serves a working copy of its seed file, so that a demo's deletes never
# change the tracked seed. A copy made by `copy_seed` keeps, beside it, the SHA-256 of the seed it
# was copied from: `seed_changed` then tells an edited seed from the copy's own deletes.

SEED_RECORD_SUFFIX = ".seed-sha256"


def seed_record(copy: str | os.PathLike[str]) -> Path:
    """Where the digest of ``copy``'s seed is kept (beside it)."""
    path = Path(copy)
    return path.with_name(path.name + SEED_RECORD_SUFFIX)


def copy_seed(seed: str | os.PathLike[str], copy: str | os.PathLike[str]) -> None:
    """Make ``copy`` a fresh working copy of ``seed`` (atomically), recording the seed's digest."""
    data = Path(seed).read_bytes()
    target = Path(copy)
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(target, data)
    _write_atomically(seed_record(target), (_digest(data) + "\n").encode("ascii"))


def seed_changed(seed: str | os.PathLike[str], copy: str | os.PathLike[str]) -> bool:
    """Whether ``seed`` changed since its working copy ``copy`` was made.

    With the digest `copy_seed` recorded, exact. A copy without one (made by an older version,
    or by hand) counts as stale when the seed was modified after the copy last was.
    """
    record = seed_record(copy)
    try:
        recorded = record.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return Path(seed).stat().st_mtime > Path(copy).stat().st_mtime
    return recorded != _digest(Path(seed).read_bytes())


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomically(target: Path, data: bytes) -> None:
    mode = target.stat().st_mode & 0o777 if target.exists() else _NEW_FILE_MODE
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(mode)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
