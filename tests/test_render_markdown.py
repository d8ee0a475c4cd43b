"""Markdown for pull requests: plans and drift reports, checked for what they say and for names
from the platforms that try to break out of a table, a code span or into HTML."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reconcile.cli import main
from reconcile.model import ServiceUse
from reconcile.render.markdown import code, render_drift_markdown, render_plan_markdown, text
from reconcile.scope import quote
from tests.test_drift import model, report_for, version

HOSTILE = "<script>alert(1)</script>|`x`@team[a](b)"


def without_code_spans(markdown: str) -> str:
    return re.sub(r"(`+)(?:(?!\1).)*?\1", "", markdown)


def table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| ")]


def cells(row: str) -> int:
    """Cells of a table row, as GitHub splits them: on pipes not escaped with a backslash."""
    return len(re.findall(r"(?<!\\)\|", row)) - 1


def test_code_spans_hold_anything_shown_exactly() -> None:
    assert code("plain") == "`plain`"
    assert code("a`b") == "``a`b``"
    assert code("`edge`") == "`` `edge` ``"
    assert code("a|b") == "`a\\|b`"  # a pipe would end the table cell, even in a code span
    assert code("two\nlines") == "`two lines`"


def test_sentences_are_escaped_for_markdown_and_html() -> None:
    assert text("<b>bold</b> *x* @team") == "\\<b\\>bold\\</b\\> \\*x\\* \\@team"
    assert text("a|b\nc") == "a\\|b c"


def test_a_drift_report_with_hostile_names_stays_inside_its_table(tmp_path: Path) -> None:
    report = report_for(
        tmp_path,
        '[[models]]\nprovider = "p"\nname = "bot"\ndescription = "'
        + HOSTILE.replace('"', "")
        + '"\n',
        [
            model("m1", "bot", version("m1", "v1", 1), description="live <b>desc</b>"),
            model("m2", HOSTILE, version("m2", "v|1", 1)),
        ],
    )
    markdown = render_drift_markdown(report)
    assert "<script" not in without_code_spans(markdown)
    assert "@team" not in without_code_spans(markdown).replace("\\@team", "")
    rows = table_rows(markdown)
    assert rows
    for row in rows:
        expected = 10 if row.startswith("| provider") or "(fabric," in row else 5
        assert cells(row) == expected, row
    assert code(f"p/{quote(HOSTILE)}") in markdown  # its address, as scope.py quotes it


def test_drift_markdown_puts_a_summary_table_first_and_folds_the_details(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    code_, out, err = main(["drift", str(demo), "--format", "markdown"]), *capsys.readouterr()
    assert code_ == 2, err
    lines = out.splitlines()
    assert lines[0].startswith("### reconcile drift: ") and "drifted, coverage" in lines[0]
    table = lines.index(
        "| provider | live | coverage | in sync | changed | missing | unmanaged | blocked "
        "| ambiguous | kept |"
    )
    assert table < out.index("<details")
    assert (
        "| `fabric-demo` (fabric, workspace ws-demo) | 31 | 16.1% | 3 | 2 | 1 | 16 | 8 | 0 | 2 |"
        in out
    )
    assert "| **total** |" in out  # the demo has two providers
    assert "<details open><summary>fabric-demo: 2 changed</summary>" in out
    assert (
        "<details><summary>fabric-demo: 4 blocked (8 objects with their versions)</summary>" in out
    )
    assert (
        "| model | `fabric-demo/summarizer` | `85b8ba50-1c4a-5d8e-afc0-b12cc8312da5` | "
        '`description`: `"daily summaries"` → `"nightly summaries"` |'
    ) in out
    assert "| model | `fabric-demo/classifier` | – | – | **missing**:" in out
    assert "used by `90678011-54d1-5d97-96f6-3dd6aea94f6a` (`support-bot-canary`)" in out
    assert out.count("<details") == out.count("</details>")
    assert "plan `sha256:" in out


def test_plan_markdown_shows_deletes_blocked_drift_and_the_digest_to_approve(
    capsys: pytest.CaptureFixture[str], demo: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "plan.json"
    assert main(["plan", str(demo), "-o", str(saved), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    digest = json.loads(saved.read_text(encoding="utf-8"))["plan_digest"]
    assert out.startswith("### reconcile plan: 11 to delete, 4 blocked, 4 drifted\n")
    assert (
        "| `fabric-demo` | fabric, workspace ws-demo | workspace | 6 models, 25 versions "
        "| 8 | 3 | 3 | 3 |" in out
    )
    assert f"Plan digest: `{digest}`" in out
    assert f"--expect-digest {digest}" in out
    assert "<details open><summary>11 to delete</summary>" in out
    assert "| model | `fabric-demo/legacy-qa` (with 5 versions) |" in out
    assert "**declared\\_absent**: declared absent = true" in out
    assert "(`support-bot-canary`, RUNNING)" in out
    assert "<summary>4 drifted</summary>" in out
    assert "| missing | model | `fabric-demo/classifier` | – |" in out

    assert main(["show", str(saved), "--format", "markdown"]) == 0
    shown = capsys.readouterr().out
    assert shown.split("<sub>")[0] == out.split("<sub>")[0]


def test_plan_json_keeps_its_old_flag(capsys: pytest.CaptureFixture[str], demo: Path) -> None:
    assert main(["plan", str(demo), "--json"]) == 0
    old = json.loads(capsys.readouterr().out)
    assert main(["plan", str(demo), "--format", "json"]) == 0
    new = json.loads(capsys.readouterr().out)
    assert old["plan_digest"] == new["plan_digest"]
    assert main(["plan", str(demo), "--json", "--format", "markdown"]) == 1
    assert "disagree" in capsys.readouterr().err


def test_a_plan_without_changes_says_so(tmp_path: Path) -> None:
    report_dir = tmp_path / "sync"
    report_dir.mkdir()
    from reconcile.manifest import load_manifest
    from reconcile.model import Snapshot
    from reconcile.planner import build_plan

    (report_dir / "m.toml").write_text(
        '[providers.p]\ntype = "fabric"\nendpoint = "emulator:s.json"\nworkspace_id = "w"\n'
        '[[models]]\nprovider = "p"\nname = "bot"\n',
        encoding="utf-8",
    )
    manifest = load_manifest(report_dir / "m.toml")
    snapshot = Snapshot(
        provider="p", provider_type="fabric", location="w", models=(model("1", "bot"),)
    )
    markdown = render_plan_markdown(build_plan(manifest, {"p": snapshot}, tool_version="t"))
    assert markdown.startswith("### reconcile plan: no changes\n")
    assert "Nothing to delete; live state matches the manifests." in markdown
    assert "<details" not in markdown


def test_long_reports_stay_under_githubs_comment_limit(tmp_path: Path) -> None:
    live = [model(f"m{n}", f"stray-{n:04}", version(f"m{n}", "v1", 1)) for n in range(2000)]
    report = report_for(
        tmp_path, '[[models]]\nprovider = "p"\nname = "stray-0000"\n', live,
        services=(ServiceUse(id="s", name="s", status="RUNNING", model_id="m1"),),
    )  # fmt: skip
    markdown = render_drift_markdown(report)
    assert len(markdown) < 65_536
    assert "… and " in markdown and "more, left out" in markdown
    assert "| **total** |" not in markdown  # one provider: its row is the total
    assert "| `p` (fabric, workspace ws-1) | 4000 |" in markdown
