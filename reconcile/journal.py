"""The journal's records: one receipt per step of every apply, and what they add up to.

Before a delete request is sent, the object's full live record is written to the state store
(`Event.DELETE_INTENT`); after, its outcome (`Event.DELETE_OUTCOME`), and, where the answer did not
say for sure what happened, what a listing made after the deletes showed (`Event.DELETE_VERIFIED`).
Nothing is deleted without a receipt from which it could be registered again. Where the records
are kept (a file, an object store) is `reconcile.state`'s business: the applier writes through
`StoreJournal`, readers get them from `StateBackend.records` and sum them up here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

#: Told of each line a reader skipped, in words that name the file and the line.
Warn = Callable[[str], None]


class Event(StrEnum):
    """What a journal record is about (its `event` field)."""

    APPLY_STARTED = "apply_started"
    DELETE_INTENT = "delete_intent"
    DELETE_OUTCOME = "delete_outcome"
    #: An outcome settled by listing the object after the deletes.
    DELETE_VERIFIED = "delete_verified"
    APPLY_FINISHED = "apply_finished"


class JournalWriter(Protocol):
    """What the applier writes receipts to: `write` buffers one, `sync` makes all written so
    far durable or raises (then no delete they announce may be sent)."""

    def write(self, event: Event, **fields: Any) -> None: ...

    def sync(self) -> None: ...


class RecordStore(Protocol):
    """The journal side of a state store (`reconcile.state.StateBackend`)."""

    def extend(self, records: Sequence[Mapping[str, Any]]) -> None: ...


class StoreJournal:
    """The applier's journal on the configured state store: each record is its own write
    (a create-only object on an object store), sent by `sync` in one batch, and stamped with
    its time by the store."""

    def __init__(self, store: RecordStore) -> None:
        self.store = store
        self._pending: list[dict[str, Any]] = []

    def write(self, event: Event, **fields: Any) -> None:
        self._pending.append({"event": event.value, **fields})

    def sync(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            self.store.extend(pending)


class ApplyStatus(StrEnum):
    FINISHED = "finished"
    #: Stopped by a signal: what was sent finished or is unknown; the rest was not attempted.
    INTERRUPTED = "interrupted"
    #: No `apply_finished` record: the process died (kill -9, power loss) mid-apply.
    DID_NOT_FINISH = "did not finish (process died?)"


@dataclass
class ApplySummary:
    """One apply as its journal records tell it."""

    apply_id: str
    started: str | None
    plan_digest: str | None = None
    status: ApplyStatus = ApplyStatus.DID_NOT_FINISH
    #: Addresses deleted (or found already gone), as the last word on each says.
    deleted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    #: Sent, and what happened is not known (the answer was lost, the run was interrupted).
    unknown: list[str] = field(default_factory=list)
    #: Sent, without any recorded outcome (the process died with them in flight).
    unfinished: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status is ApplyStatus.FINISHED

    @property
    def open(self) -> list[str]:
        """Deletes whose result nobody knows: check them with a new plan."""
        return sorted(self.unknown + self.unfinished)


@dataclass
class _Collected:
    summary: ApplySummary
    intents: dict[Any, str] = field(default_factory=dict)
    #: The last word on each object: its outcome, or what verifying it found.
    outcomes: dict[Any, tuple[str, str]] = field(default_factory=dict)


def summarize_applies(records: Iterable[dict[str, Any]]) -> list[ApplySummary]:
    """One summary per apply, oldest first: when, its plan, what it deleted, what failed, what is
    unknown, and the deletes whose outcome never made it to the journal."""
    applies: dict[str, _Collected] = {}
    for record in records:
        apply_id = record.get("apply_id")
        if isinstance(apply_id, str):
            entry = applies.get(apply_id)
            if entry is None:
                entry = applies[apply_id] = _Collected(ApplySummary(apply_id, record.get("time")))
            _collect(entry, record)
    return [_summary(entry) for entry in applies.values()]


def last_apply(newest_first: Iterable[dict[str, Any]]) -> ApplySummary | None:
    """`summarize_applies(records)[-1]` (None without any), from the records newest first, read
    back only as far as the start of every apply met on the way: a journal grows with each
    apply (a large one writes 36,000 records), and a plan asks this each time. The applier
    writes an apply's `apply_started` before any other of its records; an apply whose start is
    missing (a line torn by a crash) is read back to the beginning of the journal."""
    tail: list[dict[str, Any]] = []
    started: set[str] = set()
    unstarted: set[str] = set()
    for record in newest_first:
        # What `_collect` reads, not the objects' records: 36,000 of those kept were a second
        # of the collector's passes over them.
        tail.append({name: value for name, value in record.items() if name in _SUMMARIZED})
        apply_id = record.get("apply_id")
        if not isinstance(apply_id, str):
            continue
        if record.get("event") == Event.APPLY_STARTED:
            started.add(apply_id)
            unstarted.discard(apply_id)
        elif apply_id not in started:
            unstarted.add(apply_id)
        if started and not unstarted:
            break
    applies = summarize_applies(reversed(tail))
    return applies[-1] if applies else None


#: The fields of a record that `summarize_applies` reads.
_SUMMARIZED = frozenset(
    {"time", "event", "apply_id", "plan_digest", "id", "address", "outcome", "interrupted"}
)


def _collect(entry: _Collected, record: dict[str, Any]) -> None:
    event = record.get("event")
    address = str(record.get("address", record.get("id")))
    if event == Event.APPLY_STARTED:
        entry.summary.started = record.get("time")
        entry.summary.plan_digest = record.get("plan_digest")
    elif event == Event.DELETE_INTENT:
        entry.intents[record.get("id")] = address
    elif event in (Event.DELETE_OUTCOME, Event.DELETE_VERIFIED):
        entry.outcomes[record.get("id")] = (address, str(record.get("outcome")))
    elif event == Event.APPLY_FINISHED:
        interrupted = record.get("interrupted") is True
        entry.summary.status = ApplyStatus.INTERRUPTED if interrupted else ApplyStatus.FINISHED


def _summary(entry: _Collected) -> ApplySummary:
    summary = entry.summary
    by_outcome: dict[str, list[str]] = {}
    for address, outcome in entry.outcomes.values():
        by_outcome.setdefault(outcome, []).append(address)
    summary.deleted = sorted(by_outcome.get("deleted", []) + by_outcome.get("already_gone", []))
    summary.failed = sorted(by_outcome.get("failed", []))
    summary.unknown = sorted(by_outcome.get("unknown", []))
    summary.unfinished = sorted(
        address for key, address in entry.intents.items() if key not in entry.outcomes
    )
    return summary
