"""The command line end to end, against the emulator: in-process (the demo's `emulator:` endpoint)
and over a real loopback socket (a uvicorn server and an `http://127.0.0.1` endpoint)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconcile import heap
from reconcile.cli import main
from reconcile.emulator import create_app
from tests.conftest import ROOT, demo_state, run_on_terminal, serve_over_loopback

# What the demo plan must delete (addresses), and keep, given examples/demo as shipped.
DEMO_DELETES = {
    "fabric-demo/embedder-preview/p1",
    "fabric-demo/embedder-preview/p3",
    "fabric-demo/embedder-preview/p4",
    "fabric-demo/legacy-qa",
    "fabric-demo/old-chat",
    "fabric-demo/summarizer/2024-04",
    "fabric-demo/support-bot/v3",
    "fabric-demo/support-bot/v4",
    "qianfan-demo/chat-assistant/V1",
    "qianfan-demo/faq-bot",
    "qianfan-demo/legacy-ranker",
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def live_state(demo: Path) -> dict[str, Any]:
    """The demo's emulated platforms as the emulator holds them now (its persisted copy)."""
    copy = demo / ".reconcile" / "emulator" / "emulator-state.json"
    state: dict[str, Any] = json.loads(copy.read_text(encoding="utf-8"))
    return state


def live_ids(state: dict[str, Any]) -> set[str]:
    """Every model and version id of the Fabric workspace and of the Qianfan account."""
    ids = set()
    for model in state["fabric"]["workspaces"]["ws-demo"]["models"]:
        ids.add(model["id"])
        ids.update(version["id"] for version in model["versions"])
    for model_set in state["qianfan"]["model_sets"]:
        ids.add(model_set["modelSetId"])
        ids.update(version["modelId"] for version in model_set["versions"])
    return ids


def plan_json(capsys: pytest.CaptureFixture[str], path: Path) -> dict[str, Any]:
    code, out, _ = run(capsys, "plan", str(path), "--json")
    assert code == 0
    data: dict[str, Any] = json.loads(out)
    return data


def test_demo_plan_shows_every_kind_of_line(capsys: pytest.CaptureFixture[str], demo: Path) -> None:
    code, out, err = run(capsys, "plan", str(demo))
    assert code == 0, err
    assert "  - delete model fabric-demo/legacy-qa (with 5 versions)" in out
    assert "  - delete version fabric-demo/support-bot/v3" in out
    assert "  ! blocked version fabric-demo/support-bot/v5" in out
    assert '"support-bot-canary"' in out  # the service that blocks it is named
    assert "  = keep model fabric-demo/prod-translator" in out
    assert 'protect pattern "prod-*"' in out
    assert "  ~ missing model fabric-demo/classifier" in out
    assert "scratch-exp-1" not in out  # ignored
    assert "qwen2-72b-instruct" not in out  # PUBLIC preset
    assert (
        "qianfan-demo (qianfan, the Qianfan account, scope workspace): "
        "4 models, 10 versions in scope" in out
    )
    assert "  - delete model qianfan-demo/faq-bot (with 2 versions)" in out
    assert "  - delete model qianfan-demo/legacy-ranker (with 2 versions)" in out
    assert "  - delete version qianfan-demo/chat-assistant/V1" in out
    assert "  ! blocked version qianfan-demo/chat-assistant/V2" in out
    assert '"chat-assistant-canary", Serving' in out
    assert "  = keep version qianfan-demo/chat-assistant/V3" in out
    assert '~ description: "daily digests" (live) -> "weekly digests" (declared)' in out
    assert "scratch-qf-notes" not in out  # ignored
    assert "ERNIE-Speed" not in out and "ernie-speed-prod" not in out  # System preset
    assert "Plan: 11 to delete, 4 blocked, 4 drifted." in out
    assert "Kept: 1 protected, 3 by retention rules." in out
    assert "\x1b[" not in out  # no colour when not a terminal


def test_the_readme_shows_exactly_what_the_demo_plan_prints(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    state_dir = str(tmp_path / "state")
    code, out, err = run(capsys, "plan", "examples/demo", "--state-dir", state_dir)
    assert code == 0, err
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The demo, step by step", 1)[1]
    shown = section.split("for both platforms:\n\n```\n", 1)[1].split("```", 1)[0]
    assert shown == out


def test_detailed_exitcode_is_2_when_something_would_be_deleted(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    code, _, _ = run(capsys, "plan", str(demo), "--detailed-exitcode")
    assert code == 2


def test_a_command_leaves_nothing_frozen_out_of_the_collectors_reach(demo: Path) -> None:
    """A plan freezes what it made (no collector pass over it while rendering) and keeps it
    until the command ends (the program exits without freeing it); `main` gives it back to
    the collector, for a process that goes on after the command."""
    assert main(["plan", str(demo), "-q"]) == 0
    assert gc.get_freeze_count() == 0
    assert not heap._outliving


def test_the_program_exits_with_its_code_once_all_it_wrote_is_written(demo: Path) -> None:
    """`python -m reconcile` ends without freeing what the command made: its output to a pipe
    (block-buffered), its debug log and the apply's journal are whole, and its code is the
    command's."""
    log = demo / "debug.log"
    program = [sys.executable, "-m", "reconcile", "--log-level", "debug", "--log-file", str(log)]
    planned = subprocess.run(
        [*program, "plan", str(demo), "--json", "--detailed-exitcode"],
        capture_output=True,
        check=False,
    )
    assert planned.returncode == 2, planned.stderr
    changes = json.loads(planned.stdout)["resource_changes"]
    deletes = {change["address"] for change in changes if change["actions"] == ["delete"]}
    assert deletes and log.read_text(encoding="utf-8").endswith("\n")
    applied = subprocess.run(
        [*program, "apply", str(demo), "--auto-approve"], capture_output=True, check=False
    )
    assert applied.returncode == 0, applied.stderr
    assert f"Apply complete: {len(deletes)} deleted" in applied.stdout.decode()
    journal = (demo / ".reconcile" / "journal.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in journal.splitlines()]
    outcomes = {r["address"] for r in records if r.get("outcome") == "deleted"}
    assert (outcomes, records[-1]["event"]) == (deletes, "apply_finished")


def _reader_gone() -> int:
    """The writing end of a pipe whose reader has already gone (`| head` once it has read
    its lines): every write to it fails with a broken pipe."""
    import os

    reader, writer = os.pipe()
    os.close(reader)
    return writer


def _run_program(args: list[str], **streams: Any) -> subprocess.CompletedProcess[bytes]:
    import os

    try:
        return subprocess.run(
            [sys.executable, "-m", "reconcile", *args], check=False, timeout=120, **streams
        )
    finally:
        for value in streams.values():
            if isinstance(value, int) and value > 2:
                os.close(value)


def _deleted(demo: Path) -> set[str]:
    journal = (demo / ".reconcile" / "journal.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in journal.splitlines()]
    assert records[-1]["event"] == "apply_finished"
    return {r["address"] for r in records if r.get("outcome") == "deleted"}


def _planned_deletes(demo: Path) -> set[str]:
    planned = _run_program(["plan", str(demo), "--json"], capture_output=True)
    changes = json.loads(planned.stdout)["resource_changes"]
    return {change["address"] for change in changes if change["actions"] == ["delete"]}


def test_a_reader_that_leaves_changes_neither_what_a_command_does_nor_its_code(
    demo: Path,
) -> None:
    """`reconcile plan --json | head`: the reader goes away, the next write fails with a broken
    pipe. The command goes on silently and exits with the code its work earned: the plan's, and
    an apply's (which deleted everything, its summary unread), never 1 ("nothing deleted")."""
    planned = _run_program(
        ["plan", str(demo), "--json", "--detailed-exitcode"],
        stdout=_reader_gone(),
        stderr=subprocess.PIPE,
    )
    assert (planned.returncode, planned.stderr) == (2, b"")
    deletes = _planned_deletes(demo)
    applied = _run_program(
        ["apply", str(demo), "--auto-approve"], stdout=_reader_gone(), stderr=subprocess.PIPE
    )
    assert applied.returncode == 0, applied.stderr
    assert b"Error" not in applied.stderr and b"Traceback" not in applied.stderr
    assert deletes and _deleted(demo) == deletes


def test_an_apply_whose_progress_reader_leaves_finishes_every_delete(demo: Path) -> None:
    """The progress lines (stderr) find their reader gone at the first delete: the apply sends
    and journals every delete all the same, and says so on stdout."""
    deletes = _planned_deletes(demo)
    applied = _run_program(
        ["apply", str(demo), "--auto-approve"], stdout=subprocess.PIPE, stderr=_reader_gone()
    )
    assert applied.returncode == 0
    assert f"Apply complete: {len(deletes)} deleted".encode() in applied.stdout
    assert _deleted(demo) == deletes


def test_diagnostics_that_cannot_be_written_never_stop_an_apply(demo: Path) -> None:
    """Standard error on a full disk (`2>/dev/full`): the delete lines fail from the first,
    and the apply stopped between two deletes (1 deleted, 6 sent with no known outcome, exit
    1). They are let go; every delete is sent and journaled. Standard output on a full disk
    is the command's failure, before anything is deleted."""
    deletes = _planned_deletes(demo)
    with open("/dev/full", "w") as full:  # noqa: PTH123  # a device, not a path to handle
        shown = _run_program(["plan", str(demo)], stdout=full, stderr=subprocess.PIPE)
        assert (shown.returncode, b"No space left on device" in shown.stderr) == (1, True)
        refused = _run_program(["apply", str(demo), "--auto-approve"], stdout=full)
        assert refused.returncode == 1
        assert not (demo / ".reconcile" / "journal.jsonl").exists()
        applied = _run_program(
            ["apply", str(demo), "--auto-approve"], stdout=subprocess.PIPE, stderr=full
        )
    assert applied.returncode == 0
    assert f"Apply complete: {len(deletes)} deleted".encode() in applied.stdout
    assert _deleted(demo) == deletes


def test_an_apply_whose_summary_cannot_be_written_says_so_and_keeps_its_code(
    capsys: pytest.CaptureFixture[str], demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary is the one thing an apply writes to stdout after its deletes: a disk full
    by then does not make the apply's exit code say that nothing was deleted."""
    import click

    from reconcile.render import text

    summary = "the summary"
    echo = click.echo

    def full_disk(message: Any = None, *args: Any, **kwargs: Any) -> None:
        if message == summary:
            raise OSError(28, "No space left on device")
        echo(message, *args, **kwargs)

    monkeypatch.setattr(text, "render_apply_result", lambda result, planned: summary)
    monkeypatch.setattr(click, "echo", full_disk)
    deletes = _planned_deletes(demo)
    assert main(["apply", str(demo), "--auto-approve"]) == 0
    said = capsys.readouterr().err
    assert "the apply's summary could not be written" in said
    assert "No space left on device" in said and "reconcile journal --apply-id" in said
    assert _deleted(demo) == deletes


def test_a_log_file_that_cannot_be_written_is_a_warning_once(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    """`--log-file` on a full disk printed a "--- Logging error ---" traceback per record,
    and the flush on closing it raised out of the command after its work: a plan exited 1.
    One warning now; the plan's code, and an apply that deletes everything."""
    log = ["--log-level", "debug", "--log-file", "/dev/full"]
    assert main([*log, "plan", str(demo), "--detailed-exitcode"]) == 2
    said = capsys.readouterr().err
    assert said.count("Warning: the log file /dev/full could not be written") == 1
    assert "Traceback" not in said and "Logging error" not in said
    deletes = _planned_deletes(demo)
    assert main([*log, "apply", str(demo), "--auto-approve"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert _deleted(demo) == deletes


def test_a_program_started_without_its_standard_streams_runs_as_with_dev_null(
    demo: Path,
) -> None:
    """Started with descriptors 0-2 closed (`reconcile plan >&- 2>&-`), the first sockets took
    their numbers: the event loop's libuv aborted the process; an apply without stdin asking
    for approval failed as a bug (70). The null device is held there: no terminal to ask on."""
    import os

    def close_standard_streams() -> None:
        for descriptor in (0, 1, 2):
            os.close(descriptor)

    args = [sys.executable, "-m", "reconcile", "plan", str(demo), "--detailed-exitcode"]
    planned = subprocess.run(args, preexec_fn=close_standard_streams, check=False, timeout=120)
    assert planned.returncode == 2
    deletes = _planned_deletes(demo)
    args = [sys.executable, "-m", "reconcile", "apply", str(demo)]
    asked = subprocess.run(args, preexec_fn=close_standard_streams, check=False, timeout=120)
    assert asked.returncode == 1
    assert not (demo / ".reconcile" / "journal.jsonl").exists()
    args = [sys.executable, "-m", "reconcile", "apply", str(demo), "--auto-approve"]
    applied = subprocess.run(args, preexec_fn=close_standard_streams, check=False, timeout=120)
    assert applied.returncode == 0
    assert _deleted(demo) == deletes


def test_an_interactive_apply_whose_plan_went_unread_is_refused(demo: Path) -> None:
    """On a terminal, approval follows the plan shown: when the plan's reader went away (stdout
    a closed pipe), `yes` would approve what nobody saw. Refused, nothing deleted."""
    import os
    import pty

    leader, follower = pty.openpty()  # the follower is closed with the other streams
    try:
        applied = _run_program(
            ["apply", str(demo)], stdin=follower, stdout=_reader_gone(), stderr=subprocess.PIPE
        )
    finally:
        os.close(leader)
    assert applied.returncode == 1
    assert b"the plan could not be shown" in applied.stderr
    assert not (demo / ".reconcile" / "journal.jsonl").exists()


def test_a_plan_file_is_replaced_whole_or_not_at_all(
    capsys: pytest.CaptureFixture[str], demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`plan -o` over a plan file that a write cannot finish (a full disk, Ctrl-C) leaves the
    file as it was, not half of a new one, and nothing beside it."""
    from reconcile.plan import Plan

    out = demo / "plan.json"
    assert main(["plan", str(demo), "-o", str(out)]) == 0
    before = out.read_bytes()

    def full_disk(self: Plan) -> Iterator[str]:
        yield '{"format_version": '
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Plan, "json_chunks", full_disk)
    capsys.readouterr()
    assert main(["plan", str(demo), "-o", str(out)]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert not [p for p in demo.iterdir() if p.name.startswith(".plan.json")]


def test_apply_deletes_exactly_the_planned_objects_then_plan_has_no_changes(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    planned = plan_json(capsys, demo)
    deletes = [c for c in planned["resource_changes"] if c["actions"] == ["delete"]]
    assert {c["address"] for c in deletes} == DEMO_DELETES
    before = live_ids(live_state(demo))
    expected_gone = set()
    for change in deletes:
        expected_gone.add(change["id"])
        if change["kind"] == "model":
            expected_gone.update(change["version_ids"])

    code, out, err = run(capsys, "apply", str(demo), "--auto-approve")
    assert code == 0, err
    assert "Apply complete: 11 deleted, 0 already gone." in out
    after = live_ids(live_state(demo))
    assert before - after == expected_gone
    assert after <= before

    code, out, _ = run(capsys, "plan", str(demo), "--detailed-exitcode")
    assert code == 0
    assert "No changes." in out
    assert "- delete" not in out
    assert "! blocked version fabric-demo/support-bot/v5" in out  # still reported
    assert "! blocked version qianfan-demo/chat-assistant/V2" in out


def test_apply_without_a_terminal_and_without_auto_approve_refuses(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    before = live_ids(live_state_after_plan(capsys, demo))
    code, _, err = run(capsys, "apply", str(demo))
    assert code == 1
    assert "no terminal" in err
    assert live_ids(live_state(demo)) == before


def live_state_after_plan(capsys: pytest.CaptureFixture[str], demo: Path) -> dict[str, Any]:
    run(capsys, "plan", str(demo))
    return live_state(demo)


def test_every_delete_is_journaled_with_its_full_record(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    code, _, _ = run(capsys, "apply", str(demo), "--auto-approve")
    assert code == 0
    records = [
        json.loads(line)
        for line in (demo / ".reconcile" / "journal.jsonl").read_text().splitlines()
    ]
    intents = {r["address"]: r for r in records if r["event"] == "delete_intent"}
    outcomes = {r["address"]: r for r in records if r["event"] == "delete_outcome"}
    assert set(intents) == DEMO_DELETES == set(outcomes)
    assert all(r["outcome"] == "deleted" for r in outcomes.values())
    legacy = intents["fabric-demo/legacy-qa"]["record"]
    assert legacy["name"] == "legacy-qa"
    assert len(legacy["versions"]) == 5  # a model's receipt holds its versions
    assert legacy["versions"][0]["config"]["llm_model_config"]["model_path"].startswith("obs://")
    faq = intents["qianfan-demo/faq-bot"]["record"]
    assert (faq["modelSetId"], faq["modelSetName"]) == ("am-f9qb3n7xk2le", "faq-bot")
    assert faq["description"] == "FAQ answers (superseded by chat-assistant)"
    assert [v["modelVersionIdStr"] for v in faq["versions"]] == [
        "amv-f9v1a6s2d8fg",
        "amv-f9v2h4j6k1lz",
    ]
    # Every intent precedes its outcome.
    order = [(r["event"], r.get("address")) for r in records]
    for address in DEMO_DELETES:
        assert order.index(("delete_intent", address)) < order.index(("delete_outcome", address))


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (bytes(range(128, 256)), "not UTF-8 text: byte 0 is 0x80"),
        (b'{"format_version": "\xff\xfe"}', "not UTF-8 text: byte 20 is 0xff"),
        (b"\x00" * 4096, "it does not start as JSON"),
        (b"plan: yes\n", "it does not start as JSON"),
    ],
)
def test_a_plan_file_that_is_not_one_is_refused_naming_it(
    capsys: pytest.CaptureFixture[str], demo: Path, content: bytes, said: str
) -> None:
    """A binary or a file of another encoding given as a plan file failed as a bug (exit 70,
    UnicodeDecodeError); a device (`show /dev/urandom`) was read forever. Refused at once,
    naming the file, by `show` and by `apply`, nothing deleted."""
    plan = demo / "plan.json"
    plan.write_bytes(content)
    for command in (["show", str(plan)], ["apply", str(plan)]):
        assert main(command) == 1
        assert f"{plan}: not a plan file ({said}" in capsys.readouterr().err
    assert not (demo / ".reconcile" / "journal.jsonl").exists()


def test_a_device_given_as_a_plan_file_is_refused_at_its_first_bytes() -> None:
    assert main(["show", "/dev/zero"]) == 1


def test_saved_plan_applies_exactly_its_list(
    capsys: pytest.CaptureFixture[str], demo: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    code, out, _ = run(capsys, "plan", str(demo), "-o", str(plan_file))
    assert code == 0
    saved = json.loads(plan_file.read_text())
    assert saved["format_version"] == 3
    assert saved["plan_digest"] in out
    code, out, _ = run(capsys, "show", str(plan_file))
    assert code == 0 and "Plan: 11 to delete" in out
    code, out, err = run(capsys, "apply", str(plan_file), "--expect-digest", saved["plan_digest"])
    assert code == 0, err
    assert "Apply complete: 11 deleted" in out


def test_saved_plan_is_refused_when_a_target_became_in_use(
    capsys: pytest.CaptureFixture[str], demo: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    run(capsys, "plan", str(demo), "-o", str(plan_file))
    copy = demo / ".reconcile" / "emulator" / "emulator-state.json"
    state = json.loads(copy.read_text())
    workspace = state["fabric"]["workspaces"]["ws-demo"]
    support = next(m for m in workspace["models"] if m["name"] == "support-bot")
    v3 = next(v for v in support["versions"] if v["name"] == "v3")
    workspace["service_instances"].append(
        {
            "id": "svc-new-0001",
            "name": "late-deploy",
            "status": "RUNNING",
            "source": {"id": support["id"], "version_id": v3["id"]},
        }
    )
    copy.write_text(json.dumps(state))
    before = live_ids(live_state(demo))

    code, _, err = run(capsys, "apply", str(plan_file))
    assert code == 1
    assert "the plan is stale" in err
    assert "fabric-demo/support-bot/v3: now used by inference service svc-new-0001" in err
    assert live_ids(live_state(demo)) == before


def test_saved_plan_is_refused_when_a_qianfan_target_became_in_use(
    capsys: pytest.CaptureFixture[str], demo: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    run(capsys, "plan", str(demo), "-o", str(plan_file))
    copy = demo / ".reconcile" / "emulator" / "emulator-state.json"
    state = json.loads(copy.read_text())
    state["qianfan"]["services"].append(
        {
            "serviceId": "svco-latedeploy",
            "name": "late-deploy",
            "modelSetId": "am-f9qb3n7xk2le",
            "modelId": "amv-f9v2h4j6k1lz",
            "runStatus": "Deploying",
        }
    )
    copy.write_text(json.dumps(state))
    before = live_ids(live_state(demo))

    code, _, err = run(capsys, "apply", str(plan_file))
    assert code == 1
    assert "the plan is stale" in err
    assert "qianfan-demo/faq-bot: now used by inference service svco-latedeploy" in err
    assert live_ids(live_state(demo)) == before


def test_saved_plan_is_refused_when_the_manifest_changed(
    capsys: pytest.CaptureFixture[str], demo: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    run(capsys, "plan", str(demo), "-o", str(plan_file))
    manifest = demo / "reconcile.toml"
    manifest.write_text(
        manifest.read_text().replace('versions = ["v7", "v8"]', 'versions = ["v8"]')
    )
    code, _, err = run(capsys, "apply", str(plan_file))
    assert code == 1
    assert "manifests" in err and "changed since the plan" in err


def test_expect_digest_mismatch_refuses(capsys: pytest.CaptureFixture[str], demo: Path) -> None:
    before = live_ids(live_state_after_plan(capsys, demo))
    code, _, err = run(
        capsys, "apply", str(demo), "--auto-approve", "--expect-digest", "sha256:0000"
    )
    assert code == 1
    assert "not the expected sha256:0000" in err
    assert live_ids(live_state(demo)) == before


def test_max_deletes_guard_refuses_before_any_delete(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    before = live_ids(live_state_after_plan(capsys, demo))
    code, _, err = run(capsys, "apply", str(demo), "--auto-approve", "--max-deletes", "7")
    assert code == 1
    # Objects count, not calls: fabric-demo's 8 deletes remove 16 objects (two whole models).
    assert 'provider "fabric-demo": 16 objects to delete, max_deletes is 7)' in err
    assert "qianfan-demo" not in err  # its 7 objects are within the limit
    assert live_ids(live_state(demo)) == before


def test_reset_restores_the_seed(capsys: pytest.CaptureFixture[str], demo: Path) -> None:
    run(capsys, "apply", str(demo), "--auto-approve")
    code, _, _ = run(capsys, "emulator", "reset", str(demo))
    assert code == 0
    code, out, _ = run(capsys, "plan", str(demo))
    assert "Plan: 11 to delete" in out


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"\x93\x00binary", "is not UTF-8 text: byte 0 is 0x93"),
        (b"{bad", "is not valid JSON"),
        (b"[]", "must hold a JSON object at the top"),
        (b'{"fabric": []}', "emulator state: fabric: must be an object"),
    ],
)
def test_a_served_emulator_s_bad_state_file_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, said: str
) -> None:
    """`emulator serve --state FILE` with a file it cannot use failed as a bug (exit 70),
    whatever the message said; the in-process emulator already said it as an error."""
    state = tmp_path / "state.json"
    state.write_bytes(content)
    code, _, err = run(capsys, "emulator", "serve", "--state", str(state), "--port", "9")
    assert code == 1
    assert said in err and "bug" not in err


def test_a_served_emulator_that_cannot_listen_is_an_error_of_ours() -> None:
    """A port already in use: uvicorn logged why and exited 3, reconcile's code for an apply
    whose deletes failed. Exit 1, with an error that names the address."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        state = str(ROOT / "examples" / "demo" / "emulator-state.json")
        served = _run_program(
            ["emulator", "serve", "--state", state, "--port", str(port)], capture_output=True
        )
    assert served.returncode == 1
    assert f"Error: the emulator could not serve on 127.0.0.1:{port}".encode() in served.stderr


def test_a_bad_manifest_is_one_clear_error_with_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[providers.p]\ntype = "fabric"\nendpoint = "emulator:x.json"\nworkspace_id = "ws"\n\n'
        '[[models]]\nprovider = "p"\nnmae = "x"\n'
    )
    code, out, err = run(capsys, "plan", str(bad))
    assert code == 1
    assert out == ""
    assert f"{bad}:8" in err
    assert "nmae" in err and "Traceback" not in err


def test_validate_checks_without_network(capsys: pytest.CaptureFixture[str], demo: Path) -> None:
    code, out, _ = run(capsys, "validate", str(demo))
    assert code == 0
    assert "valid: 2 provider(s), 7 model(s), 7 declared version(s)" in out
    assert not (demo / ".reconcile").exists()  # nothing was listed, no emulator started


# -- over a real loopback socket ----------------------------------------------------------------

SECRET_TOKEN = "tok-Zq8sW1-very-secret-value"


def loopback_manifest(tmp_path: Path, url: str) -> Path:
    manifest = tmp_path / "loopback.toml"
    manifest.write_text(
        f"""
[providers.fabric-lb]
type = "fabric"
endpoint = "{url}"
workspace_id = "ws-demo"
scope = "workspace"
credentials = {{ token_env = "RECONCILE_TEST_TOKEN" }}

[policy]
protect = ["prod-*"]
keep_latest = 1

[[models]]
provider = "fabric-lb"
name = "support-bot"
versions = ["v7", "v8"]
"""
    )
    return manifest


@pytest.mark.loopback
def test_plan_and_apply_over_a_real_socket_never_show_the_token(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = demo_state()
    state["fabric"]["tokens"] = [SECRET_TOKEN]
    app = create_app(state)
    monkeypatch.setenv("RECONCILE_TEST_TOKEN", SECRET_TOKEN)
    with serve_over_loopback(app) as url:
        manifest = loopback_manifest(tmp_path, url)
        plan_file = tmp_path / "plan.json"
        code, plan_out, err = run(capsys, "plan", str(manifest), "-o", str(plan_file))
        assert code == 0, err
        assert "- delete model fabric-lb/legacy-qa" in plan_out
        code, apply_out, apply_err = run(capsys, "apply", str(manifest), "--auto-approve")
        assert code == 0, apply_err
        emulator = app.state.emulator
        deletes = [r for r in emulator.requests if r["method"] == "DELETE"]
        assert deletes and all(r["status"] in (200, 202) for r in deletes)
        remaining = {m["name"] for m in emulator.state["fabric"]["workspaces"]["ws-demo"]["models"]}
        assert "legacy-qa" not in remaining and "prod-translator" in remaining
        # The token never appears in anything the user or a pipeline sees or keeps.
        journal = (tmp_path / ".reconcile" / "journal.jsonl").read_text()
        for text in (plan_out, err, apply_out, apply_err, plan_file.read_text(), journal):
            assert SECRET_TOKEN not in text


@pytest.mark.loopback
def test_a_wrong_token_is_one_line_naming_the_call_and_status(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILE_TEST_TOKEN", SECRET_TOKEN)
    with serve_over_loopback(create_app(demo_state())) as url:
        code, out, err = run(capsys, "plan", str(loopback_manifest(tmp_path, url)))
    assert code == 1
    assert "fabric-lb: list" in err
    assert "HTTP 401 APIG.1002: Incorrect token or token resolution failed" in err
    assert SECRET_TOKEN not in err + out


def test_a_missing_credential_variable_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECONCILE_TEST_TOKEN", raising=False)
    code, _, err = run(capsys, "plan", str(loopback_manifest(tmp_path, "http://127.0.0.1:9")))
    assert code == 1
    assert "environment variable RECONCILE_TEST_TOKEN" in err


# -- a real terminal ----------------------------------------------------------------------------


def test_interactive_apply_accepts_only_yes(capsys: pytest.CaptureFixture[str], demo: Path) -> None:
    before = live_ids(live_state_after_plan(capsys, demo))
    code, screen = run_on_terminal(["apply", str(demo)], ["y"])
    assert "Only 'yes' will be accepted" in screen
    assert code == 1
    assert live_ids(live_state(demo)) == before

    code, screen = run_on_terminal(["apply", str(demo)], ["yes"])
    assert code == 0, screen
    assert "Apply complete: 11 deleted" in screen
