"""The state backend's promises, held by both stores: `local` files and an S3 object store (moto's
server on loopback). Every test runs once per store."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from reconcile.errors import LockError
from reconcile.model import RawRecord
from reconcile.state import StateConflictError, StateError, StateSpec, open_state
from tests.s3_fixtures import SECRET, Store, first_line, start_holder

MakeStore = Callable[..., Store]


def test_a_second_acquire_is_refused_naming_the_holder(make_store: MakeStore) -> None:
    store = make_store()
    with store.open() as first, store.open() as second:
        with first.acquire("fabric:ws-1", "apply", apply_id="a1") as held:
            with pytest.raises(LockError) as refused:
                second.acquire("fabric:ws-1", "apply", apply_id="a2")
            message = str(refused.value)
            assert held.id in message
            assert "apply a1" in message
            assert f"pid {os.getpid()}" in message
            assert "lease until" in message
            assert "stale" not in message.split("hint")[0]
            info = second.read_lock("fabric:ws-1")
            assert info is not None and info.id == held.id and info.apply_id == "a1"
        # Released by its holder: the next one gets it.
        with second.acquire("fabric:ws-1", "apply", apply_id="a2"):
            pass
        assert second.read_lock("fabric:ws-1") is None


def test_locks_are_per_provider_scope(make_store: MakeStore) -> None:
    state = make_store().open()
    with state, state.acquire("fabric:ws-1", "apply"), state.acquire("qianfan:bj", "apply"):
        assert sorted(info.scope for info in state.locks()) == ["fabric:ws-1", "qianfan:bj"]


def test_lock_contention_between_two_processes(make_store: MakeStore) -> None:
    """Two processes race for one scope's lock: exactly one gets it, the other is told who."""
    store = make_store()
    started = time.monotonic()
    with start_holder(store, "fabric:ws-1") as one, start_holder(store, "fabric:ws-1") as two:
        holders = [one, two]
        said = [first_line(holder) for holder in holders]
        elapsed = time.monotonic() - started
        acquired = [line for line in said if "acquired" in line]
        refused = [line for line in said if "refused" in line]
        assert len(acquired) == 1 and len(refused) == 1, said
        assert acquired[0]["acquired"] in refused[0]["refused"]
        assert f"pid {acquired[0]['pid']}" in refused[0]["refused"]
        print(f"\n{store.kind}: two-process contention settled in {elapsed:.2f} s")
    with store.open() as state:
        assert state.read_lock("fabric:ws-1") is None


def test_a_lease_expires_after_kill_9_and_only_force_unlock_takes_it_over(
    make_store: MakeStore,
) -> None:
    store = make_store(lease_seconds=1.5)
    with start_holder(store, "fabric:ws-1") as holder:
        lock_id = first_line(holder)["acquired"]
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with store.open() as state:
        info = state.read_lock("fabric:ws-1")
        assert info is not None and info.id == lock_id
        if store.kind == "s3":
            # No pid means anything across runners: only the lease tells, and it still runs.
            assert not info.stale(datetime.now(UTC))
            assert info.expires is not None
            time.sleep(max(0.0, (info.expires - datetime.now(UTC)).total_seconds()) + 0.2)
        else:
            # On one host the local store also sees that the holder's process is gone.
            assert info.gone
        info = state.read_lock("fabric:ws-1")
        assert info is not None and info.stale(datetime.now(UTC))
        # Stale, yet never taken over by a plain acquire: it is reported, with the way out.
        with pytest.raises(LockError) as refused:
            state.acquire("fabric:ws-1", "apply")
        assert "stale" in str(refused.value)
        assert f"reconcile force-unlock {lock_id}" in str(refused.value)
        assert "--force" not in str(refused.value)
        released = state.force_unlock("fabric:ws-1", lock_id)
        assert released.id == lock_id
        with state.acquire("fabric:ws-1", "apply"):
            pass


def test_the_holder_renews_its_lease(make_store: MakeStore) -> None:
    state = make_store(lease_seconds=0.9).open()
    with state, state.acquire("fabric:ws-1", "apply") as held:
        first = held.info.expires
        time.sleep(1.5)
        held.ensure()
        info = state.read_lock("fabric:ws-1")
        assert info is not None and not info.stale(datetime.now(UTC))
        assert first is not None and info.expires is not None and info.expires > first


def test_force_unlock_refuses_a_live_holder_without_force(make_store: MakeStore) -> None:
    store = make_store()
    with start_holder(store, "fabric:ws-1") as holder:
        lock_id = first_line(holder)["acquired"]
        with store.open() as state:
            with pytest.raises(LockError, match="is live"):
                state.force_unlock("fabric:ws-1", lock_id)
            with pytest.raises(LockError, match="not released"):
                state.force_unlock("fabric:ws-1", "0123456789ab", force=True)
            assert state.read_lock("fabric:ws-1") is not None
            state.force_unlock("fabric:ws-1", lock_id, force=True)
            assert state.read_lock("fabric:ws-1") is None
            with pytest.raises(LockError, match="holds no lock"):
                state.force_unlock("fabric:ws-1", lock_id)


def test_release_deletes_only_the_holders_own_lock(make_store: MakeStore) -> None:
    """A holder whose lock was force-unlocked and taken by another run notices it lost the lock,
    and its release leaves the new holder's lock alone."""
    with make_store(lease_seconds=0.6).open() as state:
        first = state.acquire("fabric:ws-1", "apply", apply_id="first")
        state.force_unlock("fabric:ws-1", first.id, force=True)
        with state.acquire("fabric:ws-1", "apply", apply_id="second") as second:
            time.sleep(0.5)  # past first's next renewal
            with pytest.raises(LockError, match="was lost"):
                first.ensure()
            first.release()
            info = state.read_lock("fabric:ws-1")
            assert info is not None and info.id == second.id
            second.ensure()


def test_the_journal_is_read_back_in_order(make_store: MakeStore) -> None:
    records = [{"event": "apply_started", "apply_id": "a1", "deletes": 30}]
    records += [
        {"event": "delete_intent", "apply_id": "a1", "id": f"m{n}", "record": {"n": n}}
        for n in range(30)
    ]
    with make_store().open() as state:
        state.append(records[0])
        state.extend(records[1:])
        state.append({"event": "apply_finished", "apply_id": "a1", "deleted": 30})
        state.append({"event": "apply_started", "apply_id": "a0", "deletes": 0})
        back = list(state.records())
    assert [r["event"] for r in back] == [
        "apply_started",
        *["delete_intent"] * 30,
        "apply_finished",
        "apply_started",
    ]
    assert [r.get("id") for r in back[1:31]] == [f"m{n}" for n in range(30)]
    assert back[5]["record"] == {"n": 4}
    times = [r["time"] for r in back]
    assert times == sorted(times)
    assert list(back[0])[:2] == ["time", "event"]


def test_the_journal_is_read_back_newest_first(make_store: MakeStore) -> None:
    """As `records` gives them, reversed: the way a plan reads back to the last apply."""
    with make_store().open() as state:
        state.extend([{"event": "delete_intent", "apply_id": "a1", "id": n} for n in range(70)])
        state.append({"event": "apply_finished", "apply_id": "a1"})
        newest_first = list(state.records_newest_first())
        assert newest_first == list(reversed(list(state.records())))
    assert [record.get("id") for record in newest_first] == [None, *range(69, -1, -1)]


def test_a_receipt_holds_the_platforms_record_as_it_came(make_store: MakeStore) -> None:
    """The applier hands each intent its `RawRecord` unparsed: written as its text where that is
    orjson's own, parsed where not (an integer beyond 64 bits); a receipt orjson cannot write
    (a lone surrogate in an address) still holds the record, by the standard encoder."""
    plain = RawRecord.of({"id": "v1", "name": "v1", "config": {"path": "obs://b/\u00e9"}})
    model = RawRecord.of({"id": "m1", "name": "m"}).with_list("versions", [plain])
    huge = RawRecord.of({"id": "v2", "size": 2**70})
    records = [
        {"event": "delete_intent", "apply_id": "a1", "address": address, "record": record}
        for address, record in [("p/m/v1", plain), ("p/m", model), ("p/m/v2", huge)]
    ]
    records.append({**records[0], "address": "p/\ud800/v1"})
    with make_store().open() as state:
        state.extend(records)
        back = list(state.records())
    assert [r["record"] for r in back] == [
        plain.value(),
        model.value(),
        huge.value(),
        plain.value(),
    ]
    assert back[1]["record"]["versions"] == [plain.value()]
    assert back[2]["record"]["size"] == 2**70
    assert back[3]["address"] == "p/\ud800/v1"


def test_saved_plans_are_put_and_got(make_store: MakeStore) -> None:
    with make_store().open() as state:
        state.put_plan("prod/plan.json", b'{"format_version": 2}')
        assert state.get_plan("prod/plan.json") == b'{"format_version": 2}'
        state.put_plan("prod/plan.json", b"{}")
        assert state.get_plan("prod/plan.json") == b"{}"
        with pytest.raises(StateError, match="plan"):
            state.get_plan("other.json")
        with pytest.raises(StateError, match="not a plan name"):
            state.put_plan("../escape.json", b"{}")


def test_the_ledger_is_written_on_condition(make_store: MakeStore) -> None:
    with make_store().open() as state, make_store().open() as unrelated:
        assert state.get_ledger("fabric:ws-1") is None
        first = state.put_ledger("fabric:ws-1", {"m1": "2026-01-01"}, version=None)
        with pytest.raises(StateConflictError):
            state.put_ledger("fabric:ws-1", {"m9": "x"}, version=None)
        second = state.put_ledger("fabric:ws-1", {"m1": "2026-01-01", "m2": "b"}, version=first)
        # A writer that read the first version lost the race: it must read again.
        with pytest.raises(StateConflictError, match="changed since it was read"):
            state.put_ledger("fabric:ws-1", {"m1": "2026-01-01", "m3": "c"}, version=first)
        ledger = state.get_ledger("fabric:ws-1")
        assert ledger is not None and ledger.version == second
        assert ledger.document == {"m1": "2026-01-01", "m2": "b"}
        assert unrelated.get_ledger("fabric:ws-1") is None


def test_migrate_copies_a_local_journal_once(make_store: MakeStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from reconcile.journal import Event
    from tests.journal_files import Journal

    old = tmp_path / "old" / ".reconcile"
    # Written by today's journal module, then torn by a crash mid-line.
    with Journal(old / "journal.jsonl") as journal:
        journal.write(Event.APPLY_STARTED, apply_id="a1", plan_digest="d", deletes=1)
        journal.write(Event.DELETE_INTENT, apply_id="a1", id="m1", address="x", record={"k": 1})
    with (old / "journal.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"time": "2026-')
    local = open_state(StateSpec(), default_dir=old, environ={})
    with make_store().open() as target:
        result = target.migrate_from(local)
        assert (result.copied, result.already_there) == (2, 0)
        again = target.migrate_from(local)
        assert (again.copied, again.already_there) == (0, 2)
        assert list(target.records()) == list(local.records())


def test_no_secret_in_any_message(make_store: MakeStore) -> None:
    store = make_store()
    with store.open() as state, state.acquire("fabric:ws-1", "apply"):
        with pytest.raises(LockError) as refused:
            state.acquire("fabric:ws-1", "apply")
        assert SECRET not in str(refused.value)
        assert SECRET not in repr(state.__dict__)
