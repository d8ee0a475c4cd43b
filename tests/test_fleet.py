"""Many workspaces: each provider scope is listed, planned and applied as its own unit, selected
with --provider and --exclude, and a CI matrix's per-provider JSON merges into the report of one
process. Against the emulator over loopback, with a fault that fails one workspace's listing."""

from __future__ import annotations

import contextlib
import copy
import html
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconcile.cli import main
from reconcile.emulator import create_app
from tests.conftest import demo_state, serve_over_loopback

TOKEN = "fleet-test-token-Qm4Xs9Lp"
WORKSPACES = ("ws-a", "ws-b", "ws-c")


def _state() -> dict[str, Any]:
    state = demo_state()
    workspace = state["fabric"]["workspaces"].pop("ws-demo")
    for name in WORKSPACES:
        state["fabric"]["workspaces"][name] = copy.deepcopy(workspace)
    state["fabric"]["tokens"] = [TOKEN]
    return state


def _manifest(folder: Path, url: str) -> Path:
    tables = [
        f"""
[providers.fab-{name[-1]}]
type = "fabric"
endpoint = "{url}"
workspace_id = "{name}"
scope = "workspace"
allow_empty = true
credentials = {{ token_env = "FLEET_TEST_TOKEN" }}
"""
        for name in WORKSPACES
    ]
    path = folder / "fleet.toml"
    path.write_text(
        "".join(tables)
        + '\n[policy]\nmax_deletes = 100\nretry_attempts = 1\nprotect = ["prod-*"]\n'
    )
    return path


class Platform:
    def __init__(self, faults: list[str]) -> None:
        self.app = create_app(_state(), faults=faults)

    def deleted_in(self) -> dict[str, int]:
        """DELETE requests that succeeded, per workspace."""
        counts = dict.fromkeys(WORKSPACES, 0)
        for request in self.app.state.emulator.requests:
            if request["method"] == "DELETE" and request["status"] < 300:
                counts[request["path"].split("/")[3]] += 1
        return counts


@pytest.fixture
def broken_b(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Platform, Path]]:
    """Three workspaces; every listing of ws-b fails with a 500."""
    monkeypatch.setenv("FLEET_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("NO_COLOR", "1")
    platform = Platform(["status,status=500,method=GET,path=/v1/workspaces/ws-b/*"])
    with serve_over_loopback(platform.app) as url:
        yield platform, _manifest(tmp_path, url)


def test_one_failing_provider_of_three_the_others_are_planned_and_reported(
    broken_b: tuple[Platform, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, manifest = broken_b
    code = main(["plan", str(manifest), "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert 'provider "fab-b" could not be listed' in err and "HTTP 500" in err
    plan = json.loads(out)
    assert [scope["provider"] for scope in plan["scopes"]] == ["fab-a", "fab-c"]
    providers = {change["provider"] for change in plan["resource_changes"]}
    assert providers == {"fab-a", "fab-c"}
    # drift too: the others reported, exit 1.
    code = main(["drift", str(manifest), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 1 and 'provider "fab-b" could not be listed' in err
    report = json.loads(out)
    assert [p["provider"] for p in report["providers"]] == ["fab-a", "fab-c"]
    assert [item["provider"] for item in report["unlisted"]] == ["fab-b"]
    # A report written to a file, read later, says so too, in every format.
    for fmt in ("text", "markdown", "html"):
        written = manifest.parent / f"drift.{fmt}"
        assert main(["drift", str(manifest), "--format", fmt, "-o", str(written)]) == 1
        shown = html.unescape(written.read_text(encoding="utf-8"))
        assert 'provider "fab-b" could not be listed, so this report says nothing of it' in shown
        assert "HTTP 500" in shown


def test_apply_deletes_nothing_anywhere_unless_keep_going(
    broken_b: tuple[Platform, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    platform, manifest = broken_b
    code = main(["apply", str(manifest), "--auto-approve"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "refusing to apply" in err and "nothing was deleted anywhere" in err
    assert platform.deleted_in() == dict.fromkeys(WORKSPACES, 0)
    # A plan with a failed provider is not saved to be applied later.
    saved = tmp_path / "plan.json"
    assert main(["plan", str(manifest), "-o", str(saved)]) == 1
    assert not saved.exists()
    assert "was not saved" in capsys.readouterr().err

    code = main(["apply", str(manifest), "--auto-approve", "--keep-going"])
    _applied_all_but_b(platform, code, capsys)


def test_provider_globs_and_excludes_choose_what_is_planned(
    broken_b: tuple[Platform, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    platform, manifest = broken_b
    # Leaving the broken workspace out makes a clean plan.
    code = main(["plan", str(manifest), "--json", "--provider", "fab-[ac]"])
    out, err = capsys.readouterr()
    assert code == 0, err
    plan = json.loads(out)
    assert [scope["provider"] for scope in plan["scopes"]] == ["fab-a", "fab-c"]

    code = main(["plan", str(manifest), "--provider", "nothing-*"])
    assert code == 1
    assert "--provider nothing-* names no provider" in capsys.readouterr().err

    deletes = {c["address"] for c in plan["resource_changes"] if c["actions"] == ["delete"]}
    assert "fab-a/legacy-qa" in deletes
    code = main(
        [
            "apply",
            str(manifest),
            "--auto-approve",
            "--provider",
            "fab-a",
            "--exclude",
            "fab-a/legacy-qa",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Resource exclusion is in effect" in out
    paths = [r["path"] for r in platform.app.state.emulator.requests if r["method"] == "DELETE"]
    assert paths and all("/ws-a/" in path for path in paths)
    legacy = next(c["id"] for c in plan["resource_changes"] if c["address"] == "fab-a/legacy-qa")
    assert not any(legacy in path for path in paths)

    code = main(["plan", str(manifest), "--provider", "fab-a", "--exclude", "fab-a/no-such"])
    assert code == 1
    assert "--exclude fab-a/no-such selects nothing" in capsys.readouterr().err


def test_report_merge_of_a_matrix_equals_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLEET_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("NO_COLOR", "1")
    platform = Platform([])
    with serve_over_loopback(platform.app) as url:
        manifest = _manifest(tmp_path, url)
        assert main(["providers", str(manifest), "--json"]) == 0
        matrix = [row["name"] for row in json.loads(capsys.readouterr().out)]
        assert matrix == ["fab-a", "fab-b", "fab-c"]
        for name in matrix:
            assert main(["plan", str(manifest), "--json", "--provider", name]) == 0
            (tmp_path / f"plan-{name}.json").write_text(capsys.readouterr().out)
        assert main(["plan", str(manifest), "--json"]) == 0
        (tmp_path / "one.json").write_text(capsys.readouterr().out)

    pattern = str(tmp_path / "plan-*.json")
    assert main(["report", "merge", pattern, "--format", "json", "--manifests", str(manifest)]) == 0
    merged = json.loads(capsys.readouterr().out)
    assert main(["report", "merge", str(tmp_path / "one.json"), "--format", "json"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert merged["total"] == single["total"]
    assert merged["total"]["delete"]["objects"] > 0
    # Each row names the file it came from; the rest is the same.
    rows = [{k: v for k, v in row.items() if k != "file"} for row in merged["providers"]]
    assert rows == [{k: v for k, v in row.items() if k != "file"} for row in single["providers"]]
    assert merged["changes"] == single["changes"]
    assert merged["drift"] == single["drift"]


def test_a_template_of_200_workspaces_loads_validates_and_plans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLEET_TEST_TOKEN", TOKEN)
    state = demo_state()
    workspace = state["fabric"]["workspaces"].pop("ws-demo")
    ids = [f"ws-{k:03d}" for k in range(200)]
    for where in ids:
        state["fabric"]["workspaces"][where] = copy.deepcopy(workspace)
    state["fabric"]["tokens"] = [TOKEN]
    rows = ", ".join(f'"{where}"' for where in ids[:-1])
    with serve_over_loopback(create_app(state)) as url:
        manifest = tmp_path / "fleet.toml"
        manifest.write_text(
            f"""
[providers.fab]
type = "fabric"
endpoint = "{url}"
workspaces = [{rows}, {{ workspace_id = "{ids[-1]}", project_id = "proj-last" }}]
credentials = {{ token_env = "FLEET_TEST_TOKEN" }}
scope = "workspace"

[policy]
protect = ["prod-*"]
max_deletes = 100000

[[models]]
provider = "fab"
name = "support-bot"
versions = ["v7", "v8"]

[[models]]
provider = "fab"
name = "legacy-qa"
workspaces = ["ws-007"]
"""
        )
        assert main(["validate", str(manifest)]) == 0
        assert "200 provider(s), 201 model(s)" in capsys.readouterr().out
        plans = []
        for _ in range(2):
            assert main(["plan", str(manifest), "--json", "--quiet"]) == 0
            plans.append(json.loads(capsys.readouterr().out))
    first, second = plans
    assert [scope["provider"] for scope in first["scopes"]] == [f"fab.{where}" for where in ids]
    addresses = [change["address"] for change in first["resource_changes"]]
    assert len(addresses) == len(set(addresses))  # unique
    assert addresses == [change["address"] for change in second["resource_changes"]]  # stable
    assert first["plan_digest"] == second["plan_digest"]
    deletes = {c["address"] for c in first["resource_changes"] if c["actions"] == ["delete"]}
    # legacy-qa is declared in ws-007 only: deleted everywhere else.
    assert "fab.ws-007/legacy-qa" not in deletes
    assert "fab.ws-006/legacy-qa" in deletes and "fab.ws-199/legacy-qa" in deletes
    assert not any(address.endswith("/support-bot/v7") for address in deletes)


@pytest.mark.parametrize(
    ("table", "model", "said"),
    [
        ('workspace_id = "ws-1"\nworkspaces = ["ws-2"]', "", "not both"),
        ("workspaces = []", "", "non-empty array"),
        ('workspaces = ["ws-1", "ws-1"]', "", "listed twice"),
        ('workspaces = [{ project_id = "p" }]', "", "workspace_id"),
        ('workspaces = ["ws-1"]', 'workspaces = ["ws-2"]', "'ws-2' not in provider 'fab'"),
        ('workspace_id = "ws-1"', 'workspaces = ["ws-1"]', "has no workspaces"),
    ],
)
def test_a_template_that_cannot_be_expanded_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, model: str, said: str
) -> None:
    manifest = tmp_path / "m.toml"
    manifest.write_text(
        f'[providers.fab]\ntype = "fabric"\nendpoint = "https://fabric.example.com"\n{table}\n'
        'credentials = { token_env = "FABRIC_TOKEN" }\n\n'
        f'[[models]]\nprovider = "fab"\nname = "m"\n{model}\n'
    )
    assert main(["validate", str(manifest)]) == 1
    err = capsys.readouterr().err
    assert said in err and f"{manifest}:" in err
    assert "Traceback" not in err


class _Tally:
    """Requests in flight at once over several emulators, each served on its own thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def counting(self, app: Any) -> Any:
        async def counted(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                await app(scope, receive, send)
            finally:
                with self.lock:
                    self.now -= 1

        return counted


def test_providers_on_different_endpoints_share_one_total_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--parallelism auto` adapts per endpoint; `--max-parallelism` bounds them together, so
    two platforms that each allow more than it never see more than it between them."""
    monkeypatch.setenv("FLEET_TEST_TOKEN", TOKEN)
    tally = _Tally()
    with contextlib.ExitStack() as stack:
        urls = [
            stack.enter_context(
                serve_over_loopback(tally.counting(create_app(_state(), latency_ms=30)))
            )
            for _ in range(2)
        ]
        manifest = tmp_path / "two.toml"
        manifest.write_text(
            "".join(
                f"""
[providers.fab-{index}]
type = "fabric"
endpoint = "{url}"
workspace_id = "ws-a"
allow_empty = true
credentials = {{ token_env = "FLEET_TEST_TOKEN" }}
"""
                for index, url in enumerate(urls)
            )
        )
        code = main(["plan", str(manifest), "--json", "--max-parallelism", "3", "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert {scope["provider"] for scope in json.loads(out)["scopes"]} == {"fab-0", "fab-1"}
    assert tally.most == 3


def test_a_plan_json_carries_the_providers_that_failed_and_apply_refuses_it(
    broken_b: tuple[Platform, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`plan --json > plan.json` keeps what `plan -o` would refuse to save: the plan names the
    provider that could not be listed, and applying it refuses without --keep-going."""
    platform, manifest = broken_b
    assert main(["plan", str(manifest), "--json"]) == 1
    out = capsys.readouterr().out
    document = json.loads(out)
    assert [item["provider"] for item in document["unlisted"]] == ["fab-b"]
    assert "HTTP 500" in document["unlisted"][0]["error"]
    saved = tmp_path / "copied-plan.json"
    saved.write_text(out, encoding="utf-8")

    # Shown later (the text a reviewer reads, the pull request's markdown), it still says so.
    for fmt in ("text", "markdown"):
        assert main(["show", str(saved), "--format", fmt]) == 0
        shown = capsys.readouterr().out
        assert 'provider "fab-b" could not be listed, so this plan says nothing of it' in shown
        assert "HTTP 500" in shown

    code = main(["apply", str(saved)])
    _, err = capsys.readouterr()
    assert code == 1
    assert 'could not be listed ("fab-b")' in err and "nothing was deleted anywhere" in err
    assert platform.deleted_in() == dict.fromkeys(WORKSPACES, 0)

    # Removing the record breaks the digest: a copy cannot be made to hide it.
    edited = {**document, "unlisted": []}
    saved.write_text(json.dumps(edited), encoding="utf-8")
    assert main(["apply", str(saved)]) == 1
    assert "the file was edited" in capsys.readouterr().err
    assert platform.deleted_in() == dict.fromkeys(WORKSPACES, 0)

    saved.write_text(out, encoding="utf-8")
    code = main(["apply", str(saved), "--keep-going"])
    _applied_all_but_b(platform, code, capsys)


def _applied_all_but_b(platform: Platform, code: int, capsys: pytest.CaptureFixture[str]) -> None:
    """--keep-going: exit 3, fab-b named as skipped, exactly ws-a's and ws-c's deletes."""
    out, err = capsys.readouterr()
    assert code == 3, err
    assert '--keep-going: skipping "fab-b"' in err
    deleted = platform.deleted_in()
    assert deleted["ws-b"] == 0
    assert deleted["ws-a"] == deleted["ws-c"] > 0
    assert f"{deleted['ws-a'] * 2} deleted" in out
