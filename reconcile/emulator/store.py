"""Loading and saving the emulator's state file.

The state is plain JSON: one top-level key per platform (``fabric``, ``qianfan``). This
module only reads and writes it; each platform module fills in its own defaults and checks its
own section, and keys it does not know are kept untouched.
"""

import copy
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
            raise ValueError(f"cannot read emulator state file {path}: {exc}") from exc
        try:
            state = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"emulator state file {path} is not valid JSON: {exc}") from exc
        if not isinstance(state, dict):
            raise ValueError(f"emulator state file {path} must hold a JSON object at the top")
    return state


def save_state(state: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file beside it, then a rename.

    A reader (or a crash) sees either the old file or the new one, never half of one.
    """
    target = Path(path)
    mode = target.stat().st_mode & 0o777 if target.exists() else _NEW_FILE_MODE
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(mode)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
