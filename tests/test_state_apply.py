"""`reconcile apply` with its state on an object store: moto's S3 server and reconcile's emulator,
both over loopback. The journal and the lock live in the bucket; a store that fails mid-apply
stops the deletes; two applies from two working directories on one store: exactly one runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from reconcile.cli import main
from reconcile.emulator import create_app
from reconcile.state import open_state
from tests.conftest import demo_state, serve_over_loopback
from tests.s3_fixtures import KEYS, SECRET, S3Proxy, make_bucket, s3_spec

TOKEN = "state-apply-test-token"
PREFIX = "team/prod"


class DeleteRecorder:
    """The emulator, noting when each DELETE request reached it (on `time.monotonic()`)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.deletes: list[tuple[float, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "DELETE":
            self.deletes.append((time.monotonic(), scope["path"]))
        await self.app(scope, receive, send)


def _emulator(latency_ms: int = 0) -> DeleteRecorder:
    state = demo_state()
    state["fabric"]["tokens"] = [TOKEN]
    return DeleteRecorder(create_app(state, latency_ms=latency_ms))


def _manifest(folder: Path, platform: str, store_endpoint: str, bucket: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "m.toml"
    path.write_text(
        f"""
[state]
url = "s3://{bucket}/{PREFIX}"
endpoint = "{store_endpoint}"
region = "us-east-1"
ak_env = "RECONCILE_TEST_S3_AK"
sk_env = "RECONCILE_TEST_S3_SK"

[providers.fab]
type = "fabric"
endpoint = "{platform}"
workspace_id = "ws-demo"
scope = "workspace"
allow_empty = true
credentials = {{ token_env = "RECONCILE_TEST_TOKEN" }}

[policy]
max_deletes = 100
"""
    )
    return path


def _records(endpoint: str, bucket: str) -> list[dict[str, Any]]:
    with open_state(s3_spec(endpoint, bucket), default_dir=Path(), environ=KEYS) as store:
        return list(store.records())


def _locks(endpoint: str, bucket: str) -> list[Any]:
    with open_state(s3_spec(endpoint, bucket), default_dir=Path(), environ=KEYS) as store:
        return store.locks()


def _unreceipted(deletes: list[tuple[float, str]], records: list[dict[str, Any]]) -> list[str]:
    """The DELETE requests the platform received with no intent record in the store for the
    object (a model, or a model's version) they name."""
    intents = {
        (str(r.get("model_id")), str(r.get("id")))
        for r in records
        if r.get("event") == "delete_intent" and r.get("record")
    }
    missing = []
    for _, path in deletes:
        parts = path.split("/models/", 1)[1].split("/")
        model, version = parts[0], (parts[2] if len(parts) > 2 else None)
        if version is None:
            found = any(i == model for _, i in intents)
        else:
            found = any(m == model and i.endswith(version) for m, i in intents)
        if not found:
            missing.append(path)
    return missing


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**KEYS, "RECONCILE_TEST_TOKEN": TOKEN, "NO_COLOR": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RECONCILE_STATE", raising=False)


def test_an_apply_journals_in_the_bucket_and_releases_its_lock(
    tmp_path: Path,
    moto_endpoint: str,
    env: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = make_bucket(moto_endpoint)
    platform = _emulator()
    with serve_over_loopback(platform) as url:
        manifest = _manifest(tmp_path, url, moto_endpoint, bucket)
        started = time.monotonic()
        assert main(["apply", str(manifest), "--auto-approve", "--no-color"]) == 0
        took = time.monotonic() - started
    records = _records(moto_endpoint, bucket)
    events = [r["event"] for r in records]
    assert events[0] == "apply_started" and events[-1] == "apply_finished"
    intents = [r for r in records if r["event"] == "delete_intent"]
    outcomes = {r["id"]: r["outcome"] for r in records if r["event"] == "delete_outcome"}
    assert platform.deletes and len(intents) == len(platform.deletes)
    assert all(r["record"] for r in intents)  # the full live record, to register it again
    assert set(outcomes) == {r["id"] for r in intents}
    assert _unreceipted(platform.deletes, records) == []
    assert _locks(moto_endpoint, bucket) == []
    # Nothing was kept on the runner: the state is in the bucket only.
    assert not (tmp_path / ".reconcile" / "journal.jsonl").exists()
    print(f"\napply on S3 state: {len(intents)} deletes, {len(records)} records in {took:.2f}s")

    # `reconcile journal` and `apply --apply-id` read the bucket.
    capsys.readouterr()
    assert main(["journal", str(manifest)]) == 0
    shown = capsys.readouterr().out
    apply_id = records[0]["apply_id"]
    assert apply_id in shown
    assert main(["journal", str(manifest), "--apply-id", apply_id]) == 0
    shown = capsys.readouterr().out
    assert shown.count("  deleted: ") == len(intents)
    # --state, then $RECONCILE_STATE, override the [state] table's URL (keeping its endpoint).
    other = make_bucket(moto_endpoint)
    assert main(["journal", str(manifest), "--state", f"s3://{other}/x"]) == 0
    assert f"No applies recorded in s3://{other}/x/" in capsys.readouterr().out
    monkeypatch.setenv("RECONCILE_STATE", f"s3://{other}/y")
    assert main(["journal", str(manifest)]) == 0
    assert f"No applies recorded in s3://{other}/y/" in capsys.readouterr().out
    assert SECRET not in shown


def test_a_store_that_fails_mid_apply_stops_the_deletes(
    tmp_path: Path, moto_endpoint: str, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = make_bucket(moto_endpoint)
    platform = _emulator()
    # The apply_started record, the first batch's intent, then its outcome with the second
    # batch's intent: the store fails in the middle of that.
    proxy = S3Proxy(moto_endpoint, fail_after=3)
    with serve_over_loopback(proxy) as store_url, serve_over_loopback(platform) as url:
        manifest = _manifest(tmp_path, url, store_url, bucket)
        code = main(["apply", str(manifest), "--auto-approve", "--no-color", "--parallelism", "1"])
    out, err = capsys.readouterr()
    # 3, not 1: some deletes were sent, and 1 says nothing was deleted.
    assert code == 3, out + err
    assert proxy.failed_at is not None
    assert platform.deletes, "the store failed before any delete: the test proves nothing"
    # No delete reached the platform after the store failed ...
    assert all(at < proxy.failed_at for at, _ in platform.deletes)
    # ... and each that did has its intent, with the full record, in the store.
    records = _records(moto_endpoint, bucket)
    assert _unreceipted(platform.deletes, records) == []
    # What the user was told: the store's failure, and what had been sent.
    assert "state store" in err and "delete(s) had been sent" in err, err
    # The lock could not be released either: it stays, and the user is told how to free it
    # (without that message hiding the one above).
    assert "stays in" in err and "reconcile force-unlock" in err, err
    assert SECRET not in out + err
    print(
        f"\nstore failed after {proxy.fail_after} journal writes: "
        f"{len(platform.deletes)} delete(s) sent, {len(records)} records kept\n{err}"
    )


def test_a_store_that_fails_before_the_first_delete_exits_1_with_nothing_deleted(
    tmp_path: Path, moto_endpoint: str, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = make_bucket(moto_endpoint)
    platform = _emulator()
    # The apply_started record is written; the first intent is not: no delete may be sent.
    proxy = S3Proxy(moto_endpoint, fail_after=1)
    with serve_over_loopback(proxy) as store_url, serve_over_loopback(platform) as url:
        manifest = _manifest(tmp_path, url, store_url, bucket)
        code = main(["apply", str(manifest), "--auto-approve", "--no-color", "--parallelism", "1"])
    out, err = capsys.readouterr()
    assert proxy.failed_at is not None
    assert platform.deletes == []
    assert code == 1, out + err
    assert "0 delete(s) had been sent" in err, err


def _apply_process(folder: Path, manifest: Path) -> subprocess.Popen[str]:
    root = Path(__file__).resolve().parent.parent
    return subprocess.Popen(
        [sys.executable, "-m", "reconcile", "apply", str(manifest), "--auto-approve", "-q"],
        cwd=folder,
        env={
            **os.environ,
            **KEYS,
            "RECONCILE_TEST_TOKEN": TOKEN,
            "NO_COLOR": "1",
            "PYTHONPATH": str(root),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_chaos_two_applies_on_one_store_exactly_one_runs(
    tmp_path: Path, moto_endpoint: str
) -> None:
    """Two `reconcile apply` processes, separate working directories (so nothing local is
    shared), one S3 state store, one emulated workspace: one applies, the other is refused
    naming the holder, and the platform received no delete without its receipt in the store."""
    bucket = make_bucket(moto_endpoint)
    platform = _emulator(latency_ms=120)
    with serve_over_loopback(platform) as url:
        folders = [tmp_path / "runner-a", tmp_path / "runner-b"]
        manifests = [_manifest(f, url, moto_endpoint, bucket) for f in folders]
        started = time.monotonic()
        processes = [_apply_process(f, m) for f, m in zip(folders, manifests, strict=True)]
        results = [(p.wait(timeout=120), *p.communicate(timeout=10)) for p in processes]
        took = time.monotonic() - started
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    _, _, refused_err = next(r for r in results if r[0] == 1)
    assert "is locked for fabric:" in refused_err and "held by" in refused_err, refused_err
    records = _records(moto_endpoint, bucket)
    applies = {r.get("apply_id") for r in records}
    assert len(applies) == 1, [(c, o[-800:], e[-800:]) for c, o, e in results]
    assert f"apply {applies.pop()}" in refused_err  # the holder's apply id
    intents = [r for r in records if r["event"] == "delete_intent"]
    assert platform.deletes and len(intents) == len(platform.deletes)
    assert _unreceipted(platform.deletes, records) == []
    assert _locks(moto_endpoint, bucket) == []
    assert not any((f / ".reconcile" / "journal.jsonl").exists() for f in folders)
    print(
        f"\nchaos: 2 applies, exit codes {codes}, {len(platform.deletes)} deletes by one, "
        f"{len(records)} records, 0 without receipt, {took:.2f}s"
    )


def test_state_migrate_copies_the_local_journal_to_the_bucket_once(
    tmp_path: Path, moto_endpoint: str, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = make_bucket(moto_endpoint)
    with serve_over_loopback(_emulator()) as url:
        manifest = _manifest(tmp_path, url, moto_endpoint, bucket)
        text = manifest.read_text()
        # First the team's applies ran with the local store (no [state] table) ...
        manifest.write_text(text[text.index("[providers.fab]") :])
        assert main(["apply", str(manifest), "--auto-approve", "-q"]) == 0
    local = tmp_path / ".reconcile" / "journal.jsonl"
    lines = [line for line in local.read_text().splitlines() if line.strip()]
    # ... then the [state] table names the bucket, and the journal is copied there.
    manifest.write_text(text)
    target = f"s3://{bucket}/{PREFIX}"
    capsys.readouterr()
    assert main(["state", "migrate", str(manifest), "--to", target]) == 0
    said = capsys.readouterr().out
    assert f"Copied {len(lines)} journal record(s) from {tmp_path / '.reconcile'}" in said, said
    records = _records(moto_endpoint, bucket)
    assert [r["event"] for r in records] == [json.loads(line)["event"] for line in lines]
    # A second run copies nothing twice; the journal now reads from the bucket.
    assert main(["state", "migrate", str(manifest), "--to", target]) == 0
    assert "Copied 0 journal record(s)" in capsys.readouterr().out
    assert len(_records(moto_endpoint, bucket)) == len(lines)
    assert main(["journal", str(manifest)]) == 0
    assert records[0]["apply_id"] in capsys.readouterr().out
    # Migrating the store onto itself is refused, not a silent no-op.
    assert main(["state", "migrate", str(manifest), "--to", "local"]) == 1
    assert "already in" in capsys.readouterr().err


def test_a_plan_saved_in_the_bucket_is_applied_from_it(
    tmp_path: Path, moto_endpoint: str, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = make_bucket(moto_endpoint)
    platform = _emulator()
    saved = f"s3://{bucket}/plans/pr-7.json"
    with serve_over_loopback(platform) as url:
        manifest = _manifest(tmp_path, url, moto_endpoint, bucket)
        assert main(["plan", str(manifest), "-o", saved, "--no-color"]) == 0
        said = capsys.readouterr().out
        digest = said.split("(digest ", 1)[1].split(")", 1)[0]
        assert f"reconcile apply {saved}" in said
        # A wrong digest is refused before anything is deleted ...
        code = main(["apply", saved, "--manifests", str(manifest), "--expect-digest", "sha256:0"])
        assert code == 1 and platform.deletes == []
        # ... the approved one deletes what the saved plan lists, with its receipts in the bucket.
        code = main(["apply", saved, "--manifests", str(manifest), "--expect-digest", digest])
        out, err = capsys.readouterr()
        assert code == 0, out + err
    assert not (tmp_path / "plans").exists()  # the plan was never a local file
    records = _records(moto_endpoint, bucket)
    assert platform.deletes and _unreceipted(platform.deletes, records) == []
    assert {r["plan_digest"] for r in records if r["event"] == "apply_started"} == {digest}


def test_the_grace_ledger_lives_in_the_bucket(
    tmp_path: Path, moto_endpoint: str, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = make_bucket(moto_endpoint)
    platform = _emulator()
    with serve_over_loopback(platform) as url:
        manifest = _manifest(tmp_path, url, moto_endpoint, bucket)
        manifest.write_text(manifest.read_text() + 'grace = "7d"\n')
        assert main(["plan", str(manifest), "--no-color", "--format", "json"]) == 0
        reasons = {
            c["action_reason"] for c in json.loads(capsys.readouterr().out)["resource_changes"]
        }
        assert "grace_pending" in reasons
        assert main(["apply", str(manifest), "--auto-approve", "--no-color"]) == 0
        scope = f"fabric:{urlsplit(url).netloc}/ws-demo"
    assert platform.deletes == []
    with open_state(s3_spec(moto_endpoint, bucket), default_dir=Path(), environ=KEYS) as store:
        found = store.get_ledger(scope)
    assert found is not None and found.document["first_seen"]
    assert not (tmp_path / ".reconcile").exists()
