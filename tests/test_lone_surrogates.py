"""A platform's JSON may hold a lone surrogate: `"\\ud800"` is valid JSON, and Python reads it as
the one code point U+D800, which UTF-8 cannot encode. Such text from a platform (a description, a
version's name, a model's name) must not turn a plan, its saved file, the apply's receipts, a
drift report, a merged report, an import or the emulator's own state into a crash: each document
is written so that it reads back as the platform's text, and what TOML cannot hold is left out of
an import with a note, never declared in a way that makes the next apply delete it.

Each command runs as a user runs it (a subprocess, its real stdout and stderr) on a copy of the
demo whose seed holds such text.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconcile.emulator import create_app
from reconcile.emulator.store import load_state, save_state
from reconcile.model import json_text
from tests.conftest import EmulatorTransport, demo_state

#: The model added to the demo's Fabric workspace, undeclared, so the plan deletes it.
ODD_MODEL = "old\ud800chat"
ODD_MODEL_ID = "0d0d0d0d-3a7a-52ae-ba71-bb190431beff"
#: A version of support-bot renamed: undeclared, deleted by the plan.
ODD_VERSION = "v\udfff3"
#: How an address shows the odd model: quoted, with JSON's escape.
ODD_ADDRESS = 'fabric-demo/"old\\ud800chat"'


@pytest.fixture
def odd_demo(demo: Path) -> Path:
    seed = demo / "emulator-state.json"
    state = json.loads(seed.read_text(encoding="utf-8"))
    models = state["fabric"]["workspaces"]["ws-demo"]["models"]
    for model in models:
        model["description"] = f"{model.get('description', '')} \ud800"
        for version in model["versions"]:
            version["description"] = f"{version.get('description', '')} \udfff"
    (bot,) = [m for m in models if m["name"] == "support-bot"]
    bot["versions"][0]["name"] = ODD_VERSION  # v3, which the manifest does not declare
    (old,) = [m for m in models if m["name"] == "old-chat"]
    odd = json.loads(json.dumps(old))
    odd.update(name=ODD_MODEL, id=ODD_MODEL_ID)
    for number, version in enumerate(odd["versions"]):
        version["id"] = f"{number + 1:032x}"
    models.append(odd)
    seed.write_text(json.dumps(state), encoding="ascii")  # the surrogates as JSON escapes
    return demo


def run(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`reconcile ARGS` as a user runs it: stdout and stderr are real, strict UTF-8 streams."""
    process = subprocess.run(
        [sys.executable, "-m", "reconcile", *args],
        cwd=where,
        capture_output=True,
        env={**os.environ, "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"},
        timeout=120,
    )
    out, err = process.stdout.decode(), process.stderr.decode()  # strict: valid UTF-8 only
    assert "unexpected error" not in err and "Traceback" not in err, err
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def emulated_fabric(demo: Path) -> list[dict[str, Any]]:
    state = load_state(demo / ".reconcile" / "emulator" / "emulator-state.json")
    models: list[dict[str, Any]] = state["fabric"]["workspaces"]["ws-demo"]["models"]
    return models


def test_a_saved_plan_holds_the_platforms_text_and_its_apply_deletes_exactly_it(
    odd_demo: Path,
) -> None:
    planned = run(odd_demo, "plan", ".", "-o", "plan.json", "-q")
    assert planned.returncode == 0, planned.stderr
    assert ODD_ADDRESS in planned.stdout
    document = json.loads((odd_demo / "plan.json").read_bytes().decode())  # strict UTF-8
    deleted = {
        (c.get("model_name"), c["name"])
        for c in document["resource_changes"]
        if c["actions"] == ["delete"]
    }
    assert {(None, ODD_MODEL), ("support-bot", ODD_VERSION)} <= deleted

    applied = run(odd_demo, "apply", "plan.json", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    assert f"deleted: {ODD_ADDRESS}" in applied.stderr  # the progress lines
    models = emulated_fabric(odd_demo)
    assert ODD_MODEL not in {m["name"] for m in models}
    (bot,) = [m for m in models if m["name"] == "support-bot"]
    assert ODD_VERSION not in {v["name"] for v in bot["versions"]}
    # The receipts: every line of the journal is UTF-8 JSON, the odd model's delete among them.
    journal = [
        json.loads(line)
        for path in (odd_demo / ".reconcile").rglob("*.jsonl")
        for line in path.read_bytes().decode().splitlines()
    ]
    assert any(ODD_MODEL in json.dumps(record, ensure_ascii=False) for record in journal), (
        "no receipt names the odd model"
    )


def test_drift_reports_and_their_merge_are_written_in_every_format(odd_demo: Path) -> None:
    for fmt in ("json", "markdown", "html", "text"):
        drift = run(odd_demo, "drift", ".", "--provider", "fabric-demo", "--format", fmt)
        assert drift.returncode == 2, drift.stderr  # drifted
        written = run(odd_demo, "drift", ".", "--format", fmt, "-o", f"drift.{fmt}")
        assert written.returncode == 2, written.stderr
        (odd_demo / f"drift.{fmt}").read_bytes().decode()  # strict UTF-8
    report = json.loads((odd_demo / "drift.json").read_text(encoding="utf-8"))
    assert ODD_ADDRESS in {item["address"] for item in items(report)}
    assert {
        "field": "description",
        "declared": "nightly summaries",
        "live": "daily summaries \ud800",
    } in [field for item in items(report) for field in item["fields"]]

    run(odd_demo, "drift", ".", "--provider", "fabric-demo", "--format", "json", "-o", "a.json")
    run(odd_demo, "drift", ".", "--provider", "qianfan-demo", "--format", "json", "-o", "b.json")
    merged = run(odd_demo, "report", "merge", "a.json", "b.json", "--format", "json", "-o", "m")
    assert merged.returncode == 0, merged.stderr
    merged_items = json.loads((odd_demo / "m").read_bytes().decode())["items"]
    assert sorted(merged_items, key=lambda item: item["address"]) == items(report)


def items(report: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(
        (item for provider in report["providers"] for item in provider["items"]),
        key=lambda item: item["address"],
    )


def test_import_leaves_out_what_toml_cannot_hold_and_the_next_plan_deletes_nothing(
    odd_demo: Path, tmp_path: Path
) -> None:
    adopted = tmp_path / "adopted"
    adopted.mkdir()
    imported = run(
        tmp_path, "import", "--provider", "fabric-demo", str(odd_demo), "-o", "adopted/f.toml"
    )
    assert imported.returncode == 0, imported.stderr
    notes = imported.stderr
    assert 'model "old\\ud800chat"' in notes and "it is kept as protected" in notes
    assert 'model "support-bot" has live versions that have names TOML cannot hold' in notes
    assert 'the description of model "summarizer" is not declared' in notes
    text = (adopted / "f.toml").read_bytes().decode()  # strict UTF-8
    assert '"old?chat"' in text  # the protect pattern: `?` where the surrogate was

    planned = run(tmp_path, "plan", "adopted/f.toml", "--detailed-exitcode")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "No changes" in planned.stdout
    assert "1 protected" in planned.stdout


def test_the_emulator_serves_and_saves_what_it_was_given(tmp_path: Path) -> None:
    """The emulator is the other end: a record it holds with a lone surrogate is answered and
    saved as the same text (orjson refuses it; the fallback writes its escape)."""
    state = demo_state()
    (model, *_) = state["fabric"]["workspaces"]["ws-demo"]["models"]
    model["description"] = "odd \ud800"

    async def listed() -> httpx.Response:
        transport = EmulatorTransport(app=create_app(state))
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
            return await client.get(
                "/v1/workspaces/ws-demo/models",
                headers={"X-Auth-Token": state["fabric"]["tokens"][0]},
            )

    answer = asyncio.run(listed())
    assert answer.status_code == 200, answer.text
    answer.content.decode()  # strict UTF-8
    assert "odd \ud800" in {m["description"] for m in answer.json()["models"]}

    path = tmp_path / "state.json"
    save_state(state, path)
    path.read_bytes().decode()
    saved = load_state(path)["fabric"]["workspaces"]["ws-demo"]["models"]
    assert saved[0]["description"] == "odd \ud800"


@pytest.mark.parametrize(
    ("value", "ascii_only"),
    [
        ({"name": "模型 \u202e"}, False),
        ({"name": "模型 \ud800", "n": 2**70}, True),
        ({"nested": [{"id": "\udfff"}]}, True),
    ],
)
def test_json_text_always_encodes_and_reads_back(value: dict[str, Any], ascii_only: bool) -> None:
    text = json_text(value, indent=2)
    assert json.loads(text.encode().decode()) == value
    assert text.isascii() == ascii_only  # readable unless UTF-8 cannot hold it
