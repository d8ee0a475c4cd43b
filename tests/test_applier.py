"""The applier: receipts before requests, versions before models, failures and interruptions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconcile import applier as applier_module
from reconcile.applier import Applier, ApplyResult
from reconcile.emulator import create_app
from reconcile.errors import GuardError, StalePlanError
from reconcile.guards import check_max_deletes, stale_reasons
from reconcile.manifest import load_manifest
from reconcile.model import Snapshot
from reconcile.plan import Kind, Plan
from reconcile.planner import build_plan
from reconcile.providers.adaptive import FixedLimit
from reconcile.providers.fabric import FabricProvider, map_error
from reconcile.providers.http import Http, RetryPolicy
from tests.conftest import DEMO, demo_state
from tests.journal_files import Journal, read_journal

TOKEN = "demo-fabric-token"


class Recorder(httpx.AsyncBaseTransport):
    """Passes requests to the emulator; on each DELETE, checks the journal already holds a
    durable intent for that object, and can fail chosen deletes."""

    def __init__(self, app: Any, journal: Path, fail_ids: set[str] | None = None) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.journal = journal
        self.fail_ids = fail_ids or set()
        self.deletes: list[str] = []
        self.unreceipted: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            target = request.url.path.rstrip("/").rsplit("/", 1)[-1]
            self.deletes.append(target)
            intents = {r["id"] for r in read_journal(self.journal) if r["event"] == "delete_intent"}
            if target not in intents:
                self.unreceipted.append(target)
            if target in self.fail_ids:
                return httpx.Response(
                    500, json={"error_code": "common.00000500", "error_msg": "internal error"}
                )
        return await self.inner.handle_async_request(request)


def provider(transport: httpx.AsyncBaseTransport) -> FabricProvider:
    client = httpx.AsyncClient(transport=transport, headers={"X-Auth-Token": TOKEN})
    http = Http(
        client,
        provider="fabric-demo",
        map_error=map_error,
        limit=FixedLimit(4),
        retry=RetryPolicy(attempts=2, base_delay=0.0),
    )
    base = "http://fabric.emulator"
    return FabricProvider(
        "fabric-demo",
        workspace_id="ws-demo",
        http=http,
        services_http=http,
        endpoint=base,
        services_endpoint=base,
    )


def replan_demo(live: Mapping[str, Snapshot]) -> Plan:
    """The CLI's re-check: the demo's manifests planned again on the fresh listing."""
    return build_plan(load_manifest(DEMO), live, tool_version="test")


async def _plan_and_apply(
    transport: Recorder,
    journal_path: Path,
    *,
    stop_after: int | None = None,
    parallelism: int = 2,
    journal_type: Callable[[Path], Journal] = Journal,
    stop: asyncio.Event | None = None,
) -> tuple[Plan, ApplyResult]:
    fabric = provider(transport)
    try:
        snapshot = await fabric.snapshot()
        plan = build_plan(load_manifest(DEMO), {"fabric-demo": snapshot}, tool_version="test")
        stop = stop or asyncio.Event()
        done = 0

        def on_event(kind: str, change: object, outcome: object) -> None:
            nonlocal done
            if kind == "done":
                done += 1
                if stop_after is not None and done >= stop_after:
                    stop.set()

        with journal_type(journal_path) as journal:
            applier = Applier(
                {"fabric-demo": fabric},
                journal,
                replan=replan_demo,
                parallelism=parallelism,
                on_event=on_event,
                stop=stop,
            )
            return plan, await applier.apply(plan)
    finally:
        await fabric.aclose()


def test_every_delete_request_finds_its_receipt_already_in_the_journal(tmp_path: Path) -> None:
    app = create_app(demo_state())
    journal = tmp_path / "journal.jsonl"
    transport = Recorder(app, journal)
    plan, result = asyncio.run(_plan_and_apply(transport, journal))
    assert len(transport.deletes) == len(plan.deletes()) == 8
    assert transport.unreceipted == []
    assert {o.status for o in result.outcomes} == {"deleted"}


class CountingJournal(Journal):
    """Counts the delete intents each sync makes durable."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.intents_per_sync: list[int] = []

    def sync(self) -> None:
        intents = sum(record["event"] == "delete_intent" for record in self._pending)
        super().sync()
        if intents:
            self.intents_per_sync.append(intents)


def test_a_large_batch_is_journaled_a_part_at_a_time_each_before_it_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With room for every delete at once, the receipts are still made durable a bounded part
    at a time (the parsed records of a whole batch were 50 MB at scale), and each part before
    any of its requests goes."""
    monkeypatch.setattr(applier_module, "INTENTS_PER_SYNC", 2)
    journals: list[CountingJournal] = []

    def counting(path: Path) -> CountingJournal:
        journals.append(CountingJournal(path))
        return journals[-1]

    journal = tmp_path / "journal.jsonl"
    transport = Recorder(create_app(demo_state()), journal)
    plan, result = asyncio.run(
        _plan_and_apply(transport, journal, parallelism=16, journal_type=counting)
    )
    assert len(transport.deletes) == len(plan.deletes()) == 8
    assert transport.unreceipted == []
    assert {o.status for o in result.outcomes} == {"deleted"}
    assert max(journals[0].intents_per_sync) <= 2
    assert sum(journals[0].intents_per_sync) == 8


def test_an_interrupt_while_a_part_is_journaled_sends_no_later_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(applier_module, "INTENTS_PER_SYNC", 1)
    stop = asyncio.Event()

    class Interrupting(Journal):
        def sync(self) -> None:
            super().sync()
            if any(r["event"] == "delete_intent" for r in read_journal(self.path)):
                stop.set()  # Ctrl-C while the first receipt was being made durable

    journal = tmp_path / "journal.jsonl"
    transport = Recorder(create_app(demo_state()), journal)
    _, result = asyncio.run(
        _plan_and_apply(transport, journal, parallelism=16, journal_type=Interrupting, stop=stop)
    )
    assert result.interrupted
    assert len(transport.deletes) == len(result.outcomes) == 1
    assert len(result.not_attempted) == 7
    intents = [r for r in read_journal(journal) if r["event"] == "delete_intent"]
    assert [r["id"] for r in intents] == transport.deletes


def test_versions_are_deleted_before_models(tmp_path: Path) -> None:
    app = create_app(demo_state())
    journal = tmp_path / "journal.jsonl"
    transport = Recorder(app, journal)
    plan, _ = asyncio.run(_plan_and_apply(transport, journal))
    kinds = {c.id: c.kind for c in plan.deletes()}
    order = [kinds[target] for target in transport.deletes]
    assert order == sorted(order, key=lambda kind: kind is Kind.MODEL)


def test_a_failed_delete_is_reported_and_the_others_continue(tmp_path: Path) -> None:
    app = create_app(demo_state())
    journal = tmp_path / "journal.jsonl"
    legacy = next(
        m["id"]
        for m in demo_state()["fabric"]["workspaces"]["ws-demo"]["models"]
        if m["name"] == "legacy-qa"
    )
    transport = Recorder(app, journal, fail_ids={legacy})
    _, result = asyncio.run(_plan_and_apply(transport, journal))
    assert [o.change.id for o in result.failed] == [legacy]
    assert "HTTP 500" in (result.failed[0].error or "")
    assert len(result.with_status("deleted")) == 7
    # A 500 may come after the delete happened: unknown until a listing settles it.
    last_word = {
        r["id"]: (r["event"], r["outcome"])
        for r in read_journal(journal)
        if r["event"] in ("delete_outcome", "delete_verified")
    }
    assert last_word[legacy] == ("delete_verified", "failed")


def test_an_interrupted_apply_sends_nothing_new_and_journals_what_it_did(tmp_path: Path) -> None:
    app = create_app(demo_state())
    journal = tmp_path / "journal.jsonl"
    transport = Recorder(app, journal)
    _, result = asyncio.run(_plan_and_apply(transport, journal, stop_after=1))
    assert result.interrupted
    assert result.not_attempted
    assert len(transport.deletes) == len(result.outcomes) < 8
    records = list(read_journal(journal))
    finished = [r for r in records if r["event"] == "apply_finished"]
    assert finished and finished[0]["interrupted"] is True
    assert finished[0]["not_attempted"] == len(result.not_attempted)


def test_stale_reasons_name_vanished_and_changed_targets(tmp_path: Path) -> None:
    state = demo_state()
    app = create_app(state)

    async def listing() -> Snapshot:
        fabric = provider(httpx.ASGITransport(app=app))
        try:
            return await fabric.snapshot()
        finally:
            await fabric.aclose()

    before = asyncio.run(listing())
    plan = build_plan(load_manifest(DEMO), {"fabric-demo": before}, tool_version="test")
    assert stale_reasons(plan, {"fabric-demo": before}) == []
    workspace = app.state.emulator.state["fabric"]["workspaces"]["ws-demo"]
    workspace["models"] = [m for m in workspace["models"] if m["name"] != "old-chat"]
    legacy = next(m for m in workspace["models"] if m["name"] == "legacy-qa")
    legacy["versions"].append({**legacy["versions"][0], "id": "f" * 32, "name": "r6"})
    after = {"fabric-demo": asyncio.run(listing())}
    reasons = stale_reasons(plan, after)
    assert any("fabric-demo/old-chat: model" in r and "no longer exists" in r for r in reasons)
    assert "fabric-demo/legacy-qa: changed since the plan was made" in reasons
    # Given the plan made from the new listing (as apply gives it), the same reasons: what it
    # deletes with the saved state digest is all it skips.
    fresh = build_plan(load_manifest(DEMO), after, tool_version="test")
    assert stale_reasons(plan, after, fresh) == reasons
    assert stale_reasons(plan, {"fabric-demo": before}, plan) == []


def test_a_stale_plan_deletes_nothing(tmp_path: Path) -> None:
    app = create_app(demo_state())
    journal = tmp_path / "journal.jsonl"

    async def scenario() -> None:
        fabric = provider(Recorder(app, journal))
        try:
            plan = build_plan(
                load_manifest(DEMO), {"fabric-demo": await fabric.snapshot()}, tool_version="t"
            )
            workspace = app.state.emulator.state["fabric"]["workspaces"]["ws-demo"]
            workspace["models"] = [m for m in workspace["models"] if m["name"] != "old-chat"]
            with Journal(journal) as writer:
                await Applier({"fabric-demo": fabric}, writer, replan=replan_demo).apply(plan)
        finally:
            await fabric.aclose()

    with pytest.raises(StalePlanError, match="stale"):
        asyncio.run(scenario())
    assert not [r for r in read_journal(journal) if r["event"] == "delete_intent"]


def test_max_deletes_counts_per_provider() -> None:
    plan = Plan.model_validate_json(
        json.dumps(
            {
                "tool_version": "t",
                "manifest_digest": "d",
                "scopes": [],
                "resource_changes": [
                    {
                        "address": f"p/m{i}",
                        "provider": "p",
                        "kind": "model",
                        "id": f"m{i}",
                        "name": f"m{i}",
                        "actions": ["delete"],
                        "action_reason": "not_in_manifest",
                        "detail": "",
                    }
                    for i in range(3)
                ],
                "summary": {"delete": 3},
            }
        )
    )
    check_max_deletes(plan.deletes(), {"p": 3})
    with pytest.raises(GuardError, match='provider "p": 3 objects to delete, max_deletes is 2'):
        check_max_deletes(plan.deletes(), {"p": 2})
