"""Chaos: `reconcile plan` and `apply` (the CLI, in-process) against an emulator over a real
loopback socket that injects faults of mixed kinds with jittered latency.

What must hold whatever the faults: exactly the planned set is deleted and nothing else; every
DELETE request (retries included) finds its object's receipt already in the journal; a listing
that cannot be completed stops the run before any delete (exit 1). Each run is classified as
"applied" or "failed closed" and checked for what that outcome promises: with 6 attempts per
request a 10% fault rate almost never exhausts them, but when it does the run must fail closed,
and the test then plans again on the same emulator.

Each run's numbers (planned, deleted, already gone, faults by kind, retries) are printed: see them
with `pytest -s tests/test_chaos.py`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconcile.cli import main
from reconcile.emulator import create_app
from tests.conftest import Swappable, serve_over_loopback
from tests.journal_files import read_journal

pytestmark = pytest.mark.loopback

TOKEN = "chaos-Fabric-Token-4Ks9Qw2"
QF_AK = "chaos-qianfan-ak-7Hd2"
QF_SK = "chaos-Qianfan-Secret-Key-9Lm3Xc"
ENV = {"CHAOS_TOKEN": TOKEN, "CHAOS_QF_AK": QF_AK, "CHAOS_QF_SK": QF_SK}
WS = "ws-chaos"
FAB = "fab-chaos"
QF = "qf-chaos"
MODELS = 200
SETS = 40

#: About 10% of requests faulted, of every kind a client must survive (404 is not one: it would
#: tell reconcile a delete happened): error statuses, a throttle's 429, dropped connections,
#: slow answers, and deletes applied but answered 500 or dropped.
TEN_PERCENT = [
    "status,status=500,rate=0.02",
    "status,status=503,rate=0.015",
    "status,status=408,rate=0.01",
    "status,status=429,retry_after=0.01,rate=0.01",
    "reset,rate=0.02",
    "slow,delay_ms=15,rate=0.02",
    "lost,method=DELETE,rate=0.03",
    "lost,method=DELETE,reply=reset,rate=0.02",
    "lost,action=DeleteModel,rate=0.03",
    "lost,path=*/model/batchDelete,reply=reset,rate=0.2",
]
#: About 30% of deletes faulted (listings are left alone: a faulted listing fails closed).
THIRTY_PERCENT_OF_DELETES = [
    "status,status=500,method=DELETE,rate=0.11",
    "reset,method=DELETE,rate=0.11",
    "lost,method=DELETE,rate=0.11",
]
SEEDS = [1, 2, 3]
ATTEMPTS = "6"


# -- the workspaces ------------------------------------------------------------------------------


def _vid(model: int, version: int) -> str:
    return f"{model:08d}-0000-4000-8000-{version:012d}"


def _declared(index: int) -> bool:
    return index % 10 == 0


def _served(index: int) -> list[int]:
    """Versions of model `index` that a running service uses."""
    if index % 25 == 7:
        return [0]  # an undeclared model in use: blocked
    if index % 40 == 0 and _version_count(index) > 1:
        return [1]  # an undeclared version of a declared model in use: blocked
    return []


def _version_count(index: int) -> int:
    return 1 + index % 3


def fabric_state() -> dict[str, Any]:
    """200 models of 1-3 versions. Every tenth is declared (with its v0 only); a few models and
    versions are served; one service is DELETED (it holds nothing)."""
    models = []
    services = []
    for index in range(MODELS):
        models.append(
            {
                "id": f"m-{index:04d}",
                "name": f"model-{index:04d}",
                "create_time": f"2024-01-01T{index // 60:02d}:{index % 60:02d}:00.000Z",
                "versions": [
                    {
                        "id": _vid(index, v),
                        "name": f"v{v}",
                        "create_time": f"2024-02-01T00:00:{v:02d}.000Z",
                    }
                    for v in range(_version_count(index))
                ],
            }
        )
        for version in _served(index):
            services.append(
                {
                    "id": f"svc-{index:04d}-{version}",
                    "name": f"serve-{index:04d}",
                    "status": "RUNNING",
                    "source": {"id": f"m-{index:04d}", "version_id": _vid(index, version)},
                }
            )
    services.append(
        {
            "id": "svc-gone",
            "name": "gone",
            "status": "DELETED",
            "source": {"id": "m-0009", "version_id": _vid(9, 0)},
        }
    )
    return {
        "fabric": {
            "tokens": [TOKEN],
            "workspaces": {WS: {"models": models, "service_instances": services}},
        }
    }


def fabric_expected() -> set[str]:
    """The ids a correct plan deletes: undeclared models nothing serves whole; of the others,
    the versions that are neither declared nor served."""
    expected = set()
    for index in range(MODELS):
        if not _declared(index) and not _served(index):
            expected.add(f"m-{index:04d}")
            continue
        first = 1 if _declared(index) else 0
        expected |= {
            _vid(index, v) for v in range(first, _version_count(index)) if v not in _served(index)
        }
    return expected


def fabric_gone() -> set[str]:
    """What a correct apply removes: the expected deletes, with the versions of deleted models."""
    gone = fabric_expected()
    for index in range(MODELS):
        if f"m-{index:04d}" in gone:
            gone |= {_vid(index, v) for v in range(_version_count(index))}
    return gone


def fabric_manifest(folder: Path, url: str) -> Path:
    lines = [
        f"[providers.{FAB}]",
        'type = "fabric"',
        f'endpoint = "{url}"',
        f'workspace_id = "{WS}"',
        'scope = "workspace"',
        'credentials = { token_env = "CHAOS_TOKEN" }',
        "",
        "[policy]",
        "keep_latest = 0",
        "max_deletes = 1000",
        "",
    ]
    for index in range(0, MODELS, 10):
        lines += ["[[models]]", f'provider = "{FAB}"', f'name = "model-{index:04d}"']
        lines += ['versions = ["v0"]', ""]
    path = folder / "fabric.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def qianfan_state() -> dict[str, Any]:
    """40 model sets of 1-3 versions; every fifth declared with its V1 only; two served."""
    return {
        "qianfan": {
            "access_keys": {QF_AK: QF_SK},
            "model_sets": [
                {
                    "modelSetId": f"am-chaos{index:03d}",
                    "modelSetName": f"set-{index:03d}",
                    "createTime": f"2024-05-01T10:{index // 60:02d}:{index % 60:02d}+08:00",
                    "versions": [
                        {
                            "modelId": f"amv-chaos{index:03d}v{v}",
                            "modelName": f"V{v}",
                            "createTime": f"2024-06-01T10:00:{v:02d}+08:00",
                        }
                        for v in range(1, _version_count(index) + 1)
                    ],
                }
                for index in range(SETS)
            ],
            "services": [
                {"serviceId": "svco-chaos-a", "modelId": "amv-chaos003v1"},  # undeclared set
                {"serviceId": "svco-chaos-b", "modelId": "amv-chaos005v2"},  # declared set's V2
            ],
        }
    }


def qianfan_expected() -> set[str]:
    expected = set()
    for index in range(SETS):
        if index % 5 == 0:
            expected |= {
                f"amv-chaos{index:03d}v{v}"
                for v in range(2, _version_count(index) + 1)
                if (index, v) != (5, 2)
            }
        elif index != 3:
            expected.add(f"am-chaos{index:03d}")
    return expected


def qianfan_manifest(folder: Path, url: str) -> Path:
    lines = [
        f"[providers.{QF}]",
        'type = "qianfan"',
        f'endpoint = "{url}"',
        'scope = "workspace"',
        'credentials = { ak_env = "CHAOS_QF_AK", sk_env = "CHAOS_QF_SK" }',
        "",
        "[policy]",
        "keep_latest = 0",
        "max_deletes = 1000",
        "",
    ]
    for index in range(0, SETS, 5):
        lines += ["[[models]]", f'provider = "{QF}"', f'name = "set-{index:03d}"']
        lines += ['versions = ["V1"]', ""]
    path = folder / "qianfan.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def live_ids(app: Any) -> set[str]:
    """Every model and version id the emulator holds."""
    state = app.state.emulator.state
    ids: set[str] = set()
    if "fabric" in state:
        for model in state["fabric"]["workspaces"][WS]["models"]:
            ids.add(model["id"])
            ids.update(version["id"] for version in model["versions"])
    if "qianfan" in state:
        for model_set in state["qianfan"]["model_sets"]:
            ids.add(model_set["modelSetId"])
            ids.update(version["modelId"] for version in model_set["versions"])
    return ids


# -- receipts before requests ----------------------------------------------------------------------


@dataclass
class ReceiptCheck:
    """In front of the emulator: every delete request (each attempt) names objects whose intent
    is already in the journal. Fabric deletes are DELETEs; Qianfan's are POSTs whose JSON body
    names the ids (V2 DeleteModel / DeleteModelSet, V1 batch deletes)."""

    app: ASGIApp
    journal: Path
    targets: list[str] = field(default_factory=list)
    unreceipted: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "DELETE":
            self._check([scope["path"].rstrip("/").rsplit("/", 1)[-1]])
        elif scope["method"] == "POST" and _is_qianfan_delete(scope):
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            self._check(_qianfan_targets(json.loads(body or b"{}")))
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    def _check(self, targets: list[str]) -> None:
        intents = {
            record["id"]
            for record in read_journal(self.journal)
            if record.get("event") == "delete_intent"
        }
        self.targets += targets
        self.unreceipted += [target for target in targets if target not in intents]


def _is_qianfan_delete(scope: Scope) -> bool:
    query = scope["query_string"].decode()
    return "Action=Delete" in query or scope["path"].endswith("/batchDelete")


def _qianfan_targets(body: dict[str, Any]) -> list[str]:
    for key in ("modelId", "modelSetId"):
        if key in body:
            return [str(body[key])]
    return [str(item) for item in body.get("modelIDs", body.get("modelVersionIds", []))]


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


# -- running the CLI -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loopback() -> Iterator[tuple[Swappable, str]]:
    swappable = Swappable()
    with serve_over_loopback(swappable) as url:
        yield swappable, url


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


@dataclass
class Run:
    outcome: str  # "applied" or "failed closed"
    planned: set[str]
    code: int
    out: str
    err: str


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "-q", "--no-color"])
    out, err = capsys.readouterr()
    for text in (out, err):
        assert not any(secret in text for secret in ENV.values())
    return code, out, err


def plan_and_apply(
    capsys: pytest.CaptureFixture[str],
    app: Any,
    check: ReceiptCheck,
    manifest: Path,
    *extra: str,
) -> Run:
    """`plan -o` then `apply PLAN`; a run that stops at a listing must have deleted nothing."""
    before = live_ids(app)
    plan_file = manifest.parent / "plan.json"
    plan_file.unlink(missing_ok=True)
    code, out, err = cli(capsys, "plan", str(manifest), "-o", str(plan_file), *extra)
    if code == 0:
        plan = json.loads(plan_file.read_text(encoding="utf-8"))
        planned = {c["id"] for c in plan["resource_changes"] if c["actions"] == ["delete"]}
        code, out, err = cli(capsys, "apply", str(plan_file), *extra)
        if code != 1:
            return Run("applied", planned, code, out, err)
    assert code == 1, err
    # Failed closed: one error naming a listing, and nothing deleted (nor meant to be).
    assert err.startswith("Error: ")
    assert any(call in err for call in (": list ", ": describe ", ": model detail of "))
    assert live_ids(app) == before
    assert check.targets == []
    return Run("failed closed", set(), code, out, err)


def journal_records(folder: Path) -> list[dict[str, Any]]:
    return list(read_journal(folder / ".reconcile" / "journal.jsonl"))


def final_outcomes(records: list[dict[str, Any]]) -> dict[str, str]:
    """Each delete's last word: its outcome, or what the listing after the deletes showed."""
    return {
        r["id"]: r["outcome"]
        for r in records
        if r.get("event") in ("delete_outcome", "delete_verified")
    }


def stats(
    capsys: pytest.CaptureFixture[str],
    app: Any,
    label: str,
    run: Run,
    records: list[dict[str, Any]],
) -> dict[str, Any]:
    requests = app.state.emulator.requests
    faults = Counter(r["fault"] for r in requests if r["fault"])
    outcomes = Counter(final_outcomes(records).values())
    # A retry: a request like one whose answer was a fault (but a slow one, a late answer). For
    # Qianfan (calls told apart by their bodies, which the log does not keep) an upper bound.
    retries = 0
    waiting: set[tuple[Any, ...]] = set()
    for request in requests:
        key = (request["method"], request["path"], tuple(sorted(request["query"].items())))
        if key in waiting:
            retries += 1
            waiting.discard(key)
        if request["fault"] and request["fault"] != "slow":
            waiting.add(key)
    numbers = {
        "outcome": run.outcome,
        "planned": len(run.planned),
        "deleted": outcomes.get("deleted", 0),
        "already_gone": outcomes.get("already_gone", 0),
        "failed": outcomes.get("failed", 0),
        "unknown": outcomes.get("unknown", 0),
        "requests": len(requests),
        "faulted": sum(faults.values()),
        "faults": dict(sorted(faults.items())),
        "retries": retries,
    }
    with capsys.disabled():
        print(f"\n{label}: {json.dumps(numbers)}")
    return numbers


def assert_exactly_the_plan_was_deleted(
    app: Any, before: set[str], run: Run, expected: set[str], check: ReceiptCheck, folder: Path
) -> list[dict[str, Any]]:
    assert run.code == 0, run.err
    assert run.planned == expected  # the plan was made from complete listings
    gone = before - live_ids(app)
    # A model delete takes its versions with it.
    planned_with_versions = set(run.planned)
    plan = json.loads((folder / "plan.json").read_text(encoding="utf-8"))
    deletes = {c["id"]: c for c in plan["resource_changes"] if c["actions"] == ["delete"]}
    for change in deletes.values():
        planned_with_versions.update(change["version_ids"])
    assert gone == planned_with_versions
    assert live_ids(app) <= before
    # Receipts: every delete request found its intent; one intent and one good outcome per
    # planned delete, with the full live record; none for anything else.
    assert check.unreceipted == []
    assert set(check.targets) == run.planned
    records = journal_records(folder)
    intents = [r for r in records if r.get("event") == "delete_intent"]
    outcomes = final_outcomes(records)
    assert sorted(r["id"] for r in intents) == sorted(run.planned)
    assert all(r["record"] and r["record"] == deletes[r["id"]]["before"] for r in intents)
    assert set(outcomes) == run.planned
    assert set(outcomes.values()) <= {"deleted", "already_gone"}
    total = len(run.planned)
    assert f"Apply complete: {total - list(outcomes.values()).count('already_gone')} deleted" in (
        run.out
    )
    return records


# -- 10% faults, three seeds -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_fabric_apply_under_ten_percent_faults_deletes_exactly_the_plan(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    loopback: tuple[Swappable, str],
    seed: int,
) -> None:
    app = create_app(
        fabric_state(), latency_ms=1, latency_jitter_ms=4, seed=seed, faults=TEN_PERCENT
    )
    check = ReceiptCheck(app, tmp_path / ".reconcile" / "journal.jsonl")
    loopback[0].app = check
    manifest = fabric_manifest(tmp_path, loopback[1])
    before = live_ids(app)
    runs = []
    for _ in range(3):  # a run that failed closed deleted nothing: plan again
        runs.append(plan_and_apply(capsys, app, check, manifest, "--attempts", ATTEMPTS))
        if runs[-1].outcome == "applied":
            break
    run = runs[-1]
    assert run.outcome == "applied", [r.err for r in runs]
    records = assert_exactly_the_plan_was_deleted(
        app, before, run, fabric_expected(), check, tmp_path
    )
    numbers = stats(capsys, app, f"fabric seed {seed} ({len(runs)} run(s))", run, records)
    assert numbers["faulted"] >= 40 and len(numbers["faults"]) >= 4  # mixed, not token


def test_qianfan_apply_under_ten_percent_faults_deletes_exactly_the_plan(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, loopback: tuple[Swappable, str]
) -> None:
    app = create_app(qianfan_state(), latency_ms=1, latency_jitter_ms=4, seed=4, faults=TEN_PERCENT)
    check = ReceiptCheck(app, tmp_path / ".reconcile" / "journal.jsonl")
    loopback[0].app = check
    manifest = qianfan_manifest(tmp_path, loopback[1])
    before = live_ids(app)
    runs = []
    for _ in range(3):
        runs.append(plan_and_apply(capsys, app, check, manifest, "--attempts", ATTEMPTS))
        if runs[-1].outcome == "applied":
            break
    run = runs[-1]
    assert run.outcome == "applied", [r.err for r in runs]
    records = assert_exactly_the_plan_was_deleted(
        app, before, run, qianfan_expected(), check, tmp_path
    )
    numbers = stats(capsys, app, f"qianfan seed 4 ({len(runs)} run(s))", run, records)
    assert numbers["faulted"] >= 5


# -- a listing that cannot be completed: exit 1, nothing deleted -----------------------------------


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        # Retries exhausted on one version listing (4 attempts, 4 faults).
        (["status,status=503,path=*/m-0042/versions,times=4"], "HTTP 503 APIG.0202"),
        (["reset,path=*/m-0042/versions"], "failed after 4 attempt(s)"),
        # Answers that are never retried: cut JSON, a total that disagrees with the pages.
        (["truncate,path=*/models,times=1"], "not JSON"),
        (["inconsistent,path=*/models,times=1"], "nothing was planned from the"),
        # 30% of every request faulted, one attempt each.
        (["status,rate=0.3"], "HTTP 500 common.00000500"),
    ],
    ids=["503-exhausted", "reset-exhausted", "truncated", "wrong-total", "30pct-1-attempt"],
)
def test_fabric_a_listing_fault_that_is_not_overcome_fails_closed(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    loopback: tuple[Swappable, str],
    faults: list[str],
    message: str,
) -> None:
    app = create_app(fabric_state(), seed=5, faults=faults)
    check = ReceiptCheck(app, tmp_path / ".reconcile" / "journal.jsonl")
    loopback[0].app = check
    manifest = fabric_manifest(tmp_path, loopback[1])
    attempts = "1" if "rate=0.3" in faults[0] else "4"
    before = live_ids(app)
    code, out, err = cli(capsys, "apply", str(manifest), "--auto-approve", "--attempts", attempts)
    assert code == 1, out + err
    assert message in err
    assert err.count("\n") == 1 and err.startswith(f"Error: {FAB}: ")
    assert live_ids(app) == before
    assert check.targets == []
    assert not [r for r in journal_records(tmp_path) if r.get("event") == "delete_intent"]
    assert [r for r in app.state.emulator.requests if r["method"] == "DELETE"] == []


# -- 30% of deletes faulted, retries exhausted: exit 3, then a clean re-run converges -------------


def test_fabric_apply_under_thirty_percent_faults_with_one_attempt_exits_3_and_converges(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, loopback: tuple[Swappable, str]
) -> None:
    app = create_app(
        fabric_state(),
        latency_ms=1,
        latency_jitter_ms=4,
        seed=6,
        faults=THIRTY_PERCENT_OF_DELETES,
    )
    check = ReceiptCheck(app, tmp_path / ".reconcile" / "journal.jsonl")
    loopback[0].app = check
    manifest = fabric_manifest(tmp_path, loopback[1])
    before = live_ids(app)
    code, out, err = cli(capsys, "apply", str(manifest), "--auto-approve", "--attempts", "1")
    assert code == 3, err
    assert check.unreceipted == []

    # What failed is exactly what the last request for it was faulted and not applied (a
    # transport may resend an idempotent request once on a dropped keep-alive connection:
    # aiohttp does), and each failure is listed with its address. A "lost" delete was applied
    # and answered 500: a listing after the deletes shows it gone, and the report says so.
    last: dict[str, str | None] = {}
    for request in app.state.emulator.requests:
        if request["method"] == "DELETE":
            last[request["path"].rsplit("/", 1)[-1]] = request["fault"]
    faulted = {target for target, fault in last.items() if fault}
    lost = {target for target, fault in last.items() if fault == "lost"}
    records = journal_records(tmp_path)
    reported = final_outcomes(records)
    failed = {target for target, outcome in reported.items() if outcome == "failed"}
    assert failed == faulted - lost and len(failed) > 20
    addresses = {r["id"]: r["address"] for r in records if r.get("event") == "delete_intent"}
    for target in failed:
        assert f"! failed {addresses[target]}: " in out
        assert f"failed: {addresses[target]}: " in err
    planned = set(addresses)
    assert planned == fabric_expected()
    assert f"failed (of {len(planned)})" in out
    # After verification the report is the emulator's truth: zero deletes that happened are
    # reported failed, and every one that did not happen is.
    gone = before - live_ids(app)
    assert lost and not failed & gone
    assert {t for t, outcome in reported.items() if outcome in ("deleted", "already_gone")} == (
        planned & gone
    )
    assert failed == planned - gone
    for target in lost:
        assert reported[target] == "deleted"
        assert f"- deleted {addresses[target]}: confirmed by listing" in out
    stats(
        capsys,
        app,
        "fabric 30% of deletes, 1 attempt",
        Run("applied", planned, code, out, err),
        records,
    )

    # Faults off: apply again deletes what is left, and the next plan has nothing to do.
    app.state.emulator.faults = []
    code, out, err = cli(capsys, "apply", str(manifest), "--auto-approve")
    assert code == 0, err
    assert f"Apply complete: {len(failed)} deleted, 0 already gone." in out
    code, out, err = cli(capsys, "plan", str(manifest), "--detailed-exitcode")
    assert code == 0, err
    assert "Plan: 0 to delete" in out and "No changes." in out
    assert before - live_ids(app) == fabric_gone()
