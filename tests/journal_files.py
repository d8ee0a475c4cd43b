"""The local store's journal file, as the tests write and read it directly.

`Journal(path)` is the applier's journal on a `LocalState` in `path`'s folder (the file must be
named `journal.jsonl`, as the store names it); `read_journal(path, warn)` its records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from reconcile.journal import StoreJournal
from reconcile.state.local import JOURNAL_FILE, LocalState


def _store(path: Path) -> LocalState:
    assert path.name == JOURNAL_FILE, f"the local store's journal is {JOURNAL_FILE}, not {path}"
    return LocalState(path.parent)


class Journal(StoreJournal):
    """The journal file at `path`, written through the local store; synced on exit."""

    def __init__(self, path: Path) -> None:
        super().__init__(_store(path))
        self.path = path

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sync()


def read_journal(path: Path, warn: Callable[[str], None] | None = None) -> Iterator[dict[str, Any]]:
    return _store(path).records(warn)
