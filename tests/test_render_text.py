"""Every renderer shows platform-provided text escaped: a name holding a newline, a terminal
escape sequence or a bidi override can neither forge a line of a plan nor reach a terminal.

The cases are data: each hostile name is given to every format, in the places a platform's text
reaches (a deleted model's name, a kept version's name, a drifted description).
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest

from reconcile.drift import DriftReport, build_drift_report
from reconcile.manifest import load_manifest
from reconcile.model import Snapshot, printable
from reconcile.plan import Plan
from reconcile.planner import build_plan
from reconcile.render.html import render_drift_html
from reconcile.render.json import render_drift_json, render_plan_json
from reconcile.render.markdown import render_drift_markdown, render_plan_markdown
from reconcile.render.text import render_drift, render_plan
from tests.test_drift import HEADER, model, version

#: name -> what must not appear in any rendering of it.
HOSTILE_NAMES = {
    # A forged plan line: a newline, then what a kept model's line looks like.
    "legacy\n  = keep model fab/prod-db": "\n  = keep model fab/prod-db",
    "legacy\r  = keep model fab/prod-db": "\r",
    # Clear the screen, set the window title, ring the bell.
    "evil\x1b[2J\x1b]0;approved\x07": "\x1b",
    # A C1 control (CSI in one byte) and a next-line character.
    "evil\x9b31m\x85done": "\x9b",
    # Right-to-left override: shows "bot-dorp" as something else.
    "bot\u202edorp": "\u202e",
    "zero\u200bwidth\u2028line": "\u2028",
}
#: What a terminal style code of our own looks like; any other escape is forged.
OWN_STYLE = re.compile(r"\x1b\[[0-9;]*m")


def hostile_report(tmp_path: Path, name: str) -> tuple[Plan, DriftReport]:
    """A plan and a drift report where `name` is a deleted model's, a deleted version's and a
    drifted description."""
    file = tmp_path / "m.toml"
    file.write_text(
        HEADER.format(scope="workspace")
        + '[[models]]\nprovider = "p"\nname = "bot"\nversions = ["v1"]\ndescription = "x"\n',
        encoding="utf-8",
    )
    manifest = load_manifest(file)
    live = (
        model("m1", "bot", version("m1", "v1", 1), version("m1", name, 2), description=name),
        model("m2", name, version("m2", name, 1)),
    )
    snapshots = {
        "p": Snapshot(provider="p", provider_type="fabric", location="workspace ws-1", models=live)
    }
    plan = build_plan(manifest, snapshots, tool_version="test")
    return plan, build_drift_report(plan, manifest, snapshots)


def unprintable(text: str) -> set[str]:
    """The characters of `text`, other than line breaks between our own lines, that a terminal
    or a page would not show as themselves."""
    return {
        char
        for char in text.replace("\n", "")
        if not char.isprintable() and unicodedata.category(char) != "Zs"
    }


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=ascii)
@pytest.mark.parametrize("color", [False, True])
def test_the_text_plan_and_drift_show_hostile_names_escaped(
    tmp_path: Path, name: str, color: bool
) -> None:
    plan, report = hostile_report(tmp_path, name)
    for rendered in (render_plan(plan, color=color), render_drift(report, color=color)):
        own = OWN_STYLE.sub("", rendered)
        assert HOSTILE_NAMES[name] not in own
        assert not unprintable(own)
        assert printable(name) in own  # shown, as visible escapes
        # No line of the plan is one the platform wrote.
        assert not any(line.startswith("  = keep model fab/prod-db") for line in own.splitlines())


def test_a_forged_line_stays_on_the_line_of_the_name_that_holds_it(tmp_path: Path) -> None:
    plan, _ = hostile_report(tmp_path, "legacy\n  = keep model fab/prod-db")
    lines = render_plan(plan).splitlines()
    # The address quotes the name (scope.py), escaped, on the delete's own line.
    held = [line for line in lines if line.startswith('  - delete model p/"legacy\\n  = keep')]
    assert len(held) == 1
    assert not any(line.startswith("  = keep model fab/prod-db") for line in lines)


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=ascii)
def test_markdown_and_html_show_hostile_names_escaped(tmp_path: Path, name: str) -> None:
    plan, report = hostile_report(tmp_path, name)
    for rendered in (
        render_plan_markdown(plan),
        render_drift_markdown(report),
        render_drift_html(report),
    ):
        assert HOSTILE_NAMES[name] not in rendered
        assert not unprintable(rendered)


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=ascii)
def test_json_keeps_names_exact_and_escaped_by_json(tmp_path: Path, name: str) -> None:
    plan, report = hostile_report(tmp_path, name)
    rendered = render_plan_json(plan)
    assert not unprintable(rendered)
    names = {change["name"] for change in json.loads(rendered)["resource_changes"]}
    assert name in names  # JSON readers get the name exactly as the platform has it
    drift = render_drift_json(report)
    assert not unprintable(drift)
    assert json.loads(drift) == json.loads(report.to_json())
