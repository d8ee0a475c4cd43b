"""The local state store: files in `.reconcile/` beside the manifests (or `--state-dir`).

The layout keeps what earlier versions wrote readable: the journal is `journal.jsonl` (one JSON
record a line, as `reconcile/journal.py` writes it), and a lock file `lock` of an earlier version
(one lock for the whole folder) still blocks every scope and is released by its id. New locks are
`locks/SCOPE.json`, created exclusively (O_EXCL); the lease is the file's modification time, which
the holder touches, so a lock file's content is written once and never rewritten.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconcile.errors import LockError
from reconcile.files import write_atomically
from reconcile.model import json_text
from reconcile.state.base import (
    DEFAULT_LEASE_SECONDS,
    HeldLock,
    LockInfo,
    LockLost,
    Migration,
    Stamper,
    StateBackend,
    StateConflictError,
    StateError,
    Versioned,
    check_key,
    check_unlock,
    decode_record,
    encode_record,
    held_error,
    new_lock,
    scope_name,
)

JOURNAL_FILE = "journal.jsonl"
LEGACY_LOCK_FILE = "lock"
LOCKS_DIR = "locks"
LEDGER_DIR = "ledger"
#: The scope a lock of an earlier version covers: all of them.
EVERY_SCOPE = "*"


#: How much of the journal is read at a time from its end.
_TAIL_BLOCK = 1 << 20


def _decoded(
    lines: Iterator[tuple[bytes, str]], warn: Callable[[str], None] | None
) -> Iterator[dict[str, Any]]:
    """The records journal lines hold; blank lines skipped, and those that are not a complete
    record too (`warn` is told where they are)."""
    for line, where in lines:
        if not line.strip():
            continue
        record = decode_record(line)
        if record is not None:
            yield record
        elif warn is not None:
            warn(
                f"{where}: skipped a journal line that is not a complete record (torn by a crash?)"
            )


class LocalState(StateBackend):
    def __init__(self, root: Path, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.root = root
        self.name = str(root)
        self.lease_seconds = lease_seconds
        self._stamper = Stamper()

    def probe(self) -> str:
        return f"local folder {self.root}: locks are created exclusively (O_EXCL)"

    # -- lock -----------------------------------------------------------------------------

    def _lock_path(self, scope: str) -> Path:
        return self.root / LOCKS_DIR / f"{scope_name(scope)}.json"

    def _read(self, path: Path, scope: str) -> LockInfo | None:
        try:
            data = path.read_bytes()
            modified = path.stat().st_mtime
        except FileNotFoundError:
            return None
        except OSError as error:
            raise self._failed("read a lock", path, error) from None
        info = LockInfo.from_json(data, scope)
        if info.lease_seconds is not None:
            # The lease runs from the holder's last touch of the file.
            touched = datetime.fromtimestamp(modified, UTC)
            renewed = touched + timedelta(seconds=info.lease_seconds)
            info = replace(info, expires=max(renewed, info.expires or renewed))
        if _dead(info):
            info = replace(info, gone=True)
        return info

    def read_lock(self, scope: str) -> LockInfo | None:
        return self._read(self._lock_path(scope), scope)

    def _legacy(self) -> LockInfo | None:
        return self._read(self.root / LEGACY_LOCK_FILE, EVERY_SCOPE)

    def locks(self) -> list[LockInfo]:
        found = [info for info in [self._legacy()] if info is not None]
        folder = self.root / LOCKS_DIR
        if folder.is_dir():
            for path in sorted(folder.glob("*.json")):
                info = self._read(path, path.stem)
                if info is not None:
                    found.append(info)
        return found

    def acquire(self, scope: str, operation: str, apply_id: str | None = None) -> HeldLock:
        legacy = self._legacy()
        if legacy is not None:
            raise held_error(self.name, legacy)
        path = self._lock_path(scope)
        info = new_lock(scope, operation, apply_id, self.lease_seconds)
        # Written whole to a file of our own, then linked into place: the link is the
        # create-only write (it fails when the lock exists), and a contender never reads a lock
        # file that is still being written.
        temporary = path.with_name(f".{path.name}.{info.id}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("wb") as handle:
                handle.write(info.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, path)
        except FileExistsError:
            held = self._read(path, scope)
            raise held_error(self.name, held or info) from None
        except OSError as error:
            raise self._failed(
                "take the lock", path, error, hint="check that the folder is writable"
            ) from None
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink()

        def renew() -> datetime:
            held = self._read(path, scope)
            if held is None or held.id != info.id:
                raise LockLost
            try:
                os.utime(path)
            except OSError as error:
                raise self._failed("renew the lease", path, error) from None
            return datetime.now(UTC) + timedelta(seconds=self.lease_seconds)

        def release() -> None:
            held = self._read(path, scope)
            if held is not None and held.id == info.id:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

        return HeldLock(self.name, info, renew=renew, release=release)

    def force_unlock(self, scope: str, lock_id: str, *, force: bool = False) -> LockInfo:
        legacy = self._legacy()
        path, info = self._lock_path(scope), self.read_lock(scope)
        if legacy is not None and legacy.id == lock_id:
            path, info = self.root / LEGACY_LOCK_FILE, legacy
        check_unlock(self.name, scope, info, lock_id, force)
        assert info is not None
        try:
            path.unlink()
        except FileNotFoundError:
            raise LockError(f"the lock {lock_id} in {self.name} was released meanwhile") from None
        return info

    # -- journal --------------------------------------------------------------------------

    def extend(self, records: Sequence[Mapping[str, Any]]) -> None:
        lines = [encode_record(self._stamper.stamped(record)) + b"\n" for record in records]
        self._append_lines(lines)

    def _append_lines(self, lines: Sequence[bytes]) -> None:
        path = self.root / JOURNAL_FILE
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                # Two applies on different scopes share this file: one writer at a time.
                fcntl.flock(fd, fcntl.LOCK_EX)
                size = os.fstat(fd).st_size
                # A crash mid-write leaves a torn last line: start on a fresh one, so the torn
                # line stays alone (readers skip it) and takes no record down with it.
                fresh = b"\n" if size and os.pread(fd, 1, size - 1) != b"\n" else b""
                pending = memoryview(fresh + b"".join(lines))
                while pending:
                    pending = pending[os.write(fd, pending) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as error:
            raise self._failed(
                "write the journal",
                path,
                error,
                hint="free space or fix the folder's permissions; nothing more is deleted",
            ) from None

    def records(self, warn: Callable[[str], None] | None = None) -> Iterator[dict[str, Any]]:
        return _decoded(self._journal_lines(newest_first=False), warn)

    def records_newest_first(
        self, warn: Callable[[str], None] | None = None
    ) -> Iterator[dict[str, Any]]:
        return _decoded(self._journal_lines(newest_first=True), warn)

    def _journal_lines(self, *, newest_first: bool) -> Iterator[tuple[bytes, str]]:
        """The journal's lines, each with where it is (for a warning); newest first, from the
        file's end a block at a time."""
        path = self.root / JOURNAL_FILE
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return
        with handle:
            if not newest_first:
                for number, line in enumerate(handle, start=1):
                    yield line, f"{path}:{number}"
                return
            end = handle.seek(0, os.SEEK_END)
            carried = b""  # the end of a line that begins in the block before this one
            while end > 0:
                start = max(0, end - _TAIL_BLOCK)
                handle.seek(start)
                lines = (handle.read(end - start) + carried).split(b"\n")
                carried = lines.pop(0) if start > 0 else b""
                end = start
                for line in reversed(lines):
                    yield line, str(path)

    def import_records(self, records: Sequence[tuple[str, dict[str, Any]]]) -> Migration:
        present = {_canonical(record) for record in self.records()}
        result = Migration()
        lines = []
        for _, record in records:
            if _canonical(record) in present:
                result.already_there += 1
                continue
            present.add(_canonical(record))
            lines.append(encode_record(record) + b"\n")
            result.copied += 1
        if lines:
            self._append_lines(lines)
        return result

    # -- saved plans ----------------------------------------------------------------------

    def put_plan(self, key: str, data: bytes) -> None:
        self._replace(self.root / check_key(self.name, key), data, "save the plan")

    def get_plan(self, key: str) -> bytes:
        path = self.root / check_key(self.name, key)
        try:
            return path.read_bytes()
        except OSError as error:
            raise self._failed(
                "read a saved plan",
                path,
                error,
                hint="give the path that `reconcile plan -o` wrote",
            ) from None

    # -- first-seen ledger ----------------------------------------------------------------

    def _ledger_path(self, scope: str) -> Path:
        return self.root / LEDGER_DIR / f"{scope_name(scope)}.json"

    def get_ledger(self, scope: str) -> Versioned | None:
        path = self._ledger_path(scope)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise self._failed("read a ledger", path, error) from None
        document = decode_record(data)
        if document is None:
            raise StateError(
                f"{path} is not a JSON object",
                store=self.name,
                operation="read a ledger",
                hint="restore it from a backup, or remove it to start the ledger anew",
            )
        return Versioned(document, _version(data))

    def put_ledger(self, scope: str, document: Mapping[str, Any], *, version: str | None) -> str:
        path = self._ledger_path(scope)
        data = json_text(dict(document), sort_keys=True).encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        with (path.parent / ".writing").open("ab") as guard:
            fcntl.flock(guard.fileno(), fcntl.LOCK_EX)
            current = self.get_ledger(scope)
            found = current.version if current else None
            if found != version:
                raise StateConflictError(
                    f"the ledger of {scope} changed since it was read "
                    f"(version {found}, not {version})",
                    store=self.name,
                    operation="write a ledger",
                    hint="read it again and redo the change",
                )
            self._replace(path, data, "write a ledger")
        return _version(data)

    def _failed(
        self, operation: str, path: Path, error: OSError, *, hint: str | None = None
    ) -> StateError:
        return StateError(
            f"{path}: {error.strerror}", store=self.name, operation=operation, hint=hint
        )

    def _replace(self, path: Path, data: bytes, operation: str) -> None:
        """Write a whole file atomically: readers see the old or the new one, never a part."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, data)
        except OSError as error:
            raise self._failed(operation, path, error) from None


def _canonical(record: Mapping[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _dead(info: LockInfo) -> bool:
    """Whether the lock's holder ran on this host and is gone (never guessed for other hosts)."""
    if info.pid is None or info.host != socket.gethostname():
        return False
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
