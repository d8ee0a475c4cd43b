"""The journal: append-only JSON lines, one receipt per step of every apply.

Before a delete request is sent, the object's full live record is written and fsynced
(`delete_intent`); after, its outcome (`delete_outcome`). Nothing is deleted without a receipt from
which it could be registered again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

JOURNAL_FILE = "journal.jsonl"


class Journal:
    def __init__(self, path: Path, *, clock: Any = None) -> None:
        self.path = path
        self._clock = clock or (lambda: datetime.now(UTC))
        self._file: TextIO | None = None

    def __enter__(self) -> Journal:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self.sync()
            self._file.close()
            self._file = None

    def write(self, event: str, **fields: Any) -> None:
        """Append one record (buffered); `sync()` makes everything written so far durable."""
        if self._file is None:
            raise RuntimeError("journal is not open")
        record = {
            "time": self._clock().isoformat(timespec="milliseconds"),
            "event": event,
            **fields,
        }
        self._file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")

    def sync(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())


def read_journal(path: Path) -> Iterator[dict[str, Any]]:
    """Every record of a journal; a torn last line (a crash mid-write) is skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record


def summarize_applies(records: Iterator[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per apply, oldest first: when, its plan, what it deleted, what failed, and the
    deletes whose outcome never made it to the journal (the process died with them in flight)."""
    applies: dict[str, dict[str, Any]] = {}
    for record in records:
        apply_id = record.get("apply_id")
        if not isinstance(apply_id, str):
            continue
        entry = applies.setdefault(
            apply_id,
            {
                "apply_id": apply_id,
                "started": record.get("time"),
                "plan_digest": None,
                "intents": {},
                "outcomes": {},
                "finished": None,
            },
        )
        event = record.get("event")
        if event == "apply_started":
            entry["started"] = record.get("time")
            entry["plan_digest"] = record.get("plan_digest")
        elif event == "delete_intent":
            entry["intents"][record.get("id")] = record
        elif event == "delete_outcome":
            entry["outcomes"][record.get("id")] = record
        elif event == "apply_finished":
            entry["finished"] = record
    result = []
    for entry in applies.values():
        intents, outcomes = entry.pop("intents"), entry.pop("outcomes")
        entry["deleted"] = sorted(
            o["address"]
            for o in outcomes.values()
            if o.get("outcome") in ("deleted", "already_gone")
        )
        entry["failed"] = sorted(
            o["address"] for o in outcomes.values() if o.get("outcome") == "failed"
        )
        entry["unfinished"] = sorted(
            i["address"] for key, i in intents.items() if key not in outcomes
        )
        result.append(entry)
    return result
