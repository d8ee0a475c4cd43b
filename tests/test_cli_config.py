"""The command line as operators configure it: options from the environment, options before the
subcommand, -C, the debug log, --notify and --metrics-file, and what apply prints in a CI log;
end to end against the emulator over loopback (or the demo's in-process one)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconcile.cli import main
from reconcile.emulator import create_app
from tests.conftest import demo_state, serve_over_loopback
from tests.test_cli import DEMO_DELETES, plan_json, run
from tests.test_notify import Receiver, receiver  # noqa: F401  (the fixture)

TOKEN = "cli-config-token-Zq8Wv3Rt"


class InFlight:
    """The emulator, counting the requests it serves at once."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.now = 0
        self.most = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


@pytest.fixture
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[InFlight, Path]]:
    """A Fabric workspace with many models behind a socket (with latency, so requests overlap),
    and a manifest that lists it."""
    state = demo_state()
    state["fabric"]["tokens"] = [TOKEN]
    app = InFlight(create_app(state, latency_ms=30))
    monkeypatch.setenv("CONFIG_TEST_TOKEN", TOKEN)
    for name in ("RECONCILE_PARALLELISM", "RECONCILE_LOG", "NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    with serve_over_loopback(app) as url:
        manifest = tmp_path / "m.toml"
        manifest.write_text(
            f"""
[providers.fab]
type = "fabric"
endpoint = "{url}"
workspace_id = "ws-demo"
credentials = {{ token_env = "CONFIG_TEST_TOKEN" }}

[[models]]
provider = "fab"
name = "support-bot"
versions = ["v7", "v8"]
"""
        )
        yield app, manifest


def test_parallelism_from_the_environment_and_before_the_subcommand(
    platform: tuple[InFlight, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app, manifest = platform
    assert main(["plan", str(manifest), "--parallelism", "8"]) == 0
    assert app.most > 2, "the listing never overlapped requests: the test proves nothing"

    app.most = 0
    monkeypatch.setenv("RECONCILE_PARALLELISM", "1")
    assert main(["plan", str(manifest)]) == 0
    assert app.most == 1

    # Given before the subcommand, an option beats the environment ...
    app.most = 0
    assert main(["--parallelism", "8", "plan", str(manifest)]) == 0
    assert app.most > 1
    # ... and given after it, beats what was given before.
    app.most = 0
    assert main(["--parallelism", "8", "plan", str(manifest), "--parallelism", "1"]) == 0
    assert app.most == 1
    capsys.readouterr()


def test_an_invalid_value_in_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    monkeypatch.setenv("RECONCILE_PARALLELISM", "lots")
    code, out, err = run(capsys, "plan", str(demo))
    assert code == 1
    assert "RECONCILE_PARALLELISM" in err and "'lots'" in err
    assert "Traceback" not in out + err


def test_help_shows_each_options_variable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", "--help")
    assert code == 0
    for variable in ("RECONCILE_PARALLELISM", "RECONCILE_STATE_DIR", "RECONCILE_STATE"):
        assert variable in out


def test_chdir_runs_as_if_started_there(
    capsys: pytest.CaptureFixture[str], demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = demo.parent / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = run(capsys, "-C", str(demo), "plan", ".", "--json")
    assert code == 0, err
    changes = json.loads(out)["resource_changes"]
    deletes = {c["address"] for c in changes if c["actions"] == ["delete"]}
    assert deletes == DEMO_DELETES
    assert (demo / ".reconcile").is_dir() and not (elsewhere / ".reconcile").exists()
    assert Path.cwd() == elsewhere  # the process is back where it was


def test_debug_log_shows_each_request_and_no_secret(
    platform: tuple[InFlight, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, manifest = platform
    log = tmp_path / "reconcile.log"
    code = main(["--log-level", "debug", "--log-file", str(log), "plan", str(manifest)])
    assert code == 0
    text = log.read_text(encoding="utf-8")
    assert "DEBUG reconcile.http: GET http://127.0.0.1:" in text
    assert "/v1/workspaces/ws-demo/models" in text and "-> HTTP 200 in" in text
    assert TOKEN not in text + "".join(capsys.readouterr())
    # The next command without the option writes no more to that file.
    size = log.stat().st_size
    assert main(["plan", str(manifest)]) == 0
    assert log.stat().st_size == size


def test_notify_and_metrics_after_a_plan(
    capsys: pytest.CaptureFixture[str],
    demo: Path,
    receiver: Receiver,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    monkeypatch.setenv("HOOK_URL", receiver.url + "/hook")
    metrics = tmp_path / "reconcile.prom"
    code, _, err = run(
        capsys,
        "plan",
        str(demo),
        "--notify",
        "webhook://env:HOOK_URL",
        "--insecure",
        "--metrics-file",
        str(metrics),
    )
    assert code == 0, err
    assert "Warning" not in err
    [sent] = receiver.requests
    event = sent.json()
    assert event["command"] == "plan"
    assert event["summary"].startswith("Plan: 11 to delete")
    assert event["totals"]["delete"] == 11
    assert set(event["providers"]) == {"fabric-demo", "qianfan-demo"}
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    deletes = [
        sample.value
        for family in families.values()
        for sample in family.samples
        if sample.labels.get("category") == "delete"
    ]
    assert sum(deletes) == 11


def test_a_notification_that_fails_is_a_warning_not_a_failed_apply(
    capsys: pytest.CaptureFixture[str], demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_URL", "http://127.0.0.1:9/nobody-listens")
    code, out, err = run(
        capsys, "apply", str(demo), "--auto-approve", "--notify", "webhook://env:HOOK_URL"
    )
    assert code == 0, err
    assert "Apply complete: 11 deleted" in out
    assert "Warning: notification" in err and "failed" in err


def test_a_missing_notify_variable_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str], demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOBODY_SET_THIS", raising=False)
    code, out, err = run(
        capsys, "apply", str(demo), "--auto-approve", "--notify", "slack://env:NOBODY_SET_THIS"
    )
    assert code == 1
    assert "NOBODY_SET_THIS" in err
    assert "Apply complete" not in out
    assert not (demo / ".reconcile" / "journal.jsonl").exists()


def test_apply_in_a_log_prints_its_id_and_a_line_per_delete(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    code, out, err = run(capsys, "apply", str(demo), "--auto-approve")
    assert code == 0, err
    [started] = [
        line for line in out.splitlines() if line.startswith("Apply ") and "sending" in line
    ]
    apply_id = started.split()[1].rstrip(":")
    assert f"reconcile journal --apply-id {apply_id}" in started
    lines = [line for line in err.splitlines() if line.startswith("  deleted: ")]
    assert {line.split()[1] for line in lines} == DEMO_DELETES
    assert lines[-1].endswith(f"({len(DEMO_DELETES)}/{len(DEMO_DELETES)})")

    # --quiet: neither progress nor a line per delete.
    code, _, err = run(capsys, "plan", str(demo), "--quiet")
    assert code == 0 and "deleted:" not in err


@pytest.mark.parametrize(
    ("env", "coloured"),
    [
        ({"NO_COLOR": ""}, False),
        ({"FORCE_COLOR": "1"}, True),
        ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),
    ],
)
def test_colour_follows_no_color_org_and_force_color(
    capsys: pytest.CaptureFixture[str],
    demo: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    coloured: bool,
) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # Output captured, not a terminal: only FORCE_COLOR can turn colour on here.
    code, out, _ = run(capsys, "plan", str(demo))
    assert code == 0
    assert ("\x1b[" in out) is coloured
    assert plan_json(capsys, demo)["summary"]["delete"] == len(DEMO_DELETES)


def test_an_edited_demo_seed_is_noticed_and_followed(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    code, _, err = run(capsys, "apply", str(demo), "--auto-approve")
    assert code == 0, err
    assert plan_json(capsys, demo)["summary"]["delete"] == 0
    seed = demo / "emulator-state.json"
    state = json.loads(seed.read_text(encoding="utf-8"))
    state["fabric"]["workspaces"]["ws-demo"]["models"][0]["description"] = "edited by hand"
    seed.write_text(json.dumps(state), encoding="utf-8")

    code, out, err = run(capsys, "plan", str(demo), "--json")
    assert code == 0
    assert "emulator-state.json changed since its working copy was made" in err
    assert json.loads(out)["summary"]["delete"] == len(DEMO_DELETES)
    # Said once: the copy now follows the edited seed.
    code, _, err = run(capsys, "plan", str(demo))
    assert code == 0 and "changed since" not in err


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["plan", "--timeout", "nan"], "--timeout"),
        (["plan", "--timeout", "inf"], "--timeout"),
        (["plan", "--max-rps", "nan"], "--max-rps"),
        (["apply", "--lock-timeout", "nan"], "--lock-timeout"),
        (["emulator", "serve", "--latency-ms", "nan"], "--latency-ms"),
        (["emulator", "serve", "--fail-rate", "nan"], "--fail-rate"),
    ],
)
def test_a_number_option_refuses_nan_and_inf(
    capsys: pytest.CaptureFixture[str], args: list[str], option: str
) -> None:
    """click's FloatRange lets nan through any bound and inf through a lower one:
    `--lock-timeout nan` waited for the lock for ever. A usage error, naming the option."""
    assert main(args) == 1
    said = capsys.readouterr().err
    assert f"Invalid value for '{option}'" in said and "is not a finite number" in said
