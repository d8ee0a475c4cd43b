"""`python -m reconcile.report merge`: the per-provider documents of a CI matrix, merged, make the
report one process over all the providers makes; documents that cannot be merged honestly are
refused with one line that names the files."""

from __future__ import annotations

import asyncio
import copy
import html
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconcile import __version__
from reconcile.cli import main as cli_main
from reconcile.drift import build_drift_report
from reconcile.manifest import Manifest, load_manifest
from reconcile.model import LiveModel, LiveVersion, ServiceUse, Snapshot
from reconcile.planner import build_plan
from reconcile.report import MergedDrift, MergedPlan, merge, read_documents
from reconcile.report.__main__ import main
from reconcile.report.render import RENDERERS, render_text
from reconcile.wiring import Options, open_providers
from tests.conftest import DEMO

PROVIDERS = ("fabric-demo", "fabric-staging", "qianfan-demo")

# A third provider: a second Fabric workspace on the demo's emulator, declared differently.
STAGING = """
[providers.fabric-staging]
type = "fabric"
endpoint = "emulator:emulator-state.json"
workspace_id = "ws-staging"
scope = "workspace"

[[models]]
provider = "fabric-staging"
name = "support-bot"
versions = ["v3", "v8"]

[[models]]
provider = "fabric-staging"
name = "embedder-preview"
"""


# -- the matrix, made for real against the emulator ----------------------------------------------


def _three_providers(root: Path) -> Path:
    """The demo with a third provider (a copy of the demo workspace under another id)."""
    manifests = root / "manifests"
    shutil.copytree(DEMO, manifests, ignore=shutil.ignore_patterns(".reconcile"))
    seed = manifests / "emulator-state.json"
    state = json.loads(seed.read_text(encoding="utf-8"))
    workspaces = state["fabric"]["workspaces"]
    workspaces["ws-staging"] = copy.deepcopy(workspaces["ws-demo"])
    seed.write_text(json.dumps(state), encoding="utf-8")
    (manifests / "staging.toml").write_text(STAGING, encoding="utf-8")
    return manifests


async def _listed(manifest: Manifest, state_dir: Path) -> dict[str, Snapshot]:
    providers = open_providers(manifest, None, Options(state_dir=state_dir))
    try:
        return {name: await provider.snapshot() for name, provider in providers.items()}
    finally:
        for provider in providers.values():
            await provider.aclose()


def _stamped(document: Any, manifests: Path) -> Any:
    """What the CLI adds to a document it saves (neither is in a plan's digest)."""
    created = datetime.now(UTC).isoformat(timespec="seconds")
    return document.model_copy(update={"created_at": created, "manifest_path": str(manifests)})


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One process over the three providers (`reconcile plan`/`drift`, in `whole/`), and one
    document per provider as each job of a matrix makes it (planned from its own listing only,
    in `plans/` and `drift/`)."""
    root = tmp_path_factory.mktemp("matrix")
    manifests = _three_providers(root)
    state_dir = root / "state"
    (root / "whole").mkdir()
    common = ["--state-dir", str(state_dir), "-q"]
    assert cli_main(["plan", str(manifests), "-o", str(root / "whole/plan.json"), *common]) == 0
    drift_file = str(root / "whole/drift.json")
    assert cli_main(["drift", str(manifests), "--format", "json", "-o", drift_file, *common]) == 2
    manifest = load_manifest(manifests)
    assert tuple(sorted(manifest.providers)) == PROVIDERS
    snapshots = asyncio.run(_listed(manifest, state_dir))
    for folder in ("plans", "drift"):
        (root / folder).mkdir()
    for provider, snapshot in snapshots.items():
        one = {provider: snapshot}
        plan = build_plan(manifest, one, tool_version=__version__)
        (root / f"plans/{provider}.json").write_text(_stamped(plan, manifests).to_json())
        plan = build_plan(manifest, one, tool_version=__version__, refuse_empty=False)
        report = build_drift_report(plan, manifest, one)
        (root / f"drift/{provider}.json").write_text(_stamped(report, manifests).to_json())
    return root


def _body(rendered: str) -> str:
    """A rendered report without its footer (the files it was merged from)."""
    return rendered.split("Merged from ")[0]


def test_merged_plans_of_a_matrix_equal_the_plan_of_one_process(matrix: Path) -> None:
    parts = merge(read_documents([str(matrix / "plans/*.json")]))
    whole = merge(read_documents([str(matrix / "whole/plan.json")]))
    assert isinstance(parts, MergedPlan)
    assert isinstance(whole, MergedPlan)
    assert [source.providers for source in parts.sources] == [(p,) for p in PROVIDERS]
    assert parts.total == whole.total
    assert [row.model_copy(update={"file": ""}) for row in parts.providers] == [
        row.model_copy(update={"file": ""}) for row in whole.providers
    ]
    assert parts.changes == whole.changes
    assert parts.drift == whole.drift
    # Counted as the plan's own summary counts.
    summary = json.loads((matrix / "whole/plan.json").read_text())["summary"]
    total = parts.total
    assert (total.delete.objects, total.blocked.objects, total.protected.objects) == (
        summary["delete"],
        summary["blocked"],
        summary["protected"],
    )
    assert (total.kept.objects, total.drifted.objects, total.in_sync.objects) == (
        summary["kept"],
        summary["drifted"],
        summary["in_sync"],
    )
    # Every provider has something to delete: the merge is not vacuous.
    assert all(row.counts.delete.objects for row in parts.providers)
    # And the rendered reports say the same, but for the files they came from.
    for fmt, render in RENDERERS.items():
        if fmt != "json":
            assert _body(render(parts)) == _body(render(whole)), fmt


def test_merged_drift_reports_of_a_matrix_equal_the_report_of_one_process(matrix: Path) -> None:
    parts = merge(read_documents([str(matrix / "drift/*.json")]))
    whole = merge(read_documents([str(matrix / "whole/drift.json")]))
    assert isinstance(parts, MergedDrift)
    assert isinstance(whole, MergedDrift)
    assert len(parts.sources) == 3
    assert parts.total == whole.total
    assert parts.drifted is whole.drifted is True
    assert [row.counts for row in parts.providers] == [row.counts for row in whole.providers]
    assert parts.items == whole.items
    one = json.loads((matrix / "whole/drift.json").read_text())
    assert parts.total.model_dump(mode="json") == one["total"]
    for fmt, render in RENDERERS.items():
        if fmt != "json":
            assert _body(render(parts)) == _body(render(whole)), fmt


def test_merge_from_the_command_line_writes_a_versioned_json_report(
    matrix: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    files = [str(matrix / "plans" / f"{p}.json") for p in PROVIDERS]
    assert main(["merge", *files, "--format", "json", "-o", str(out)]) == 0
    assert "3 documents and 3 providers" in capsys.readouterr().out
    document = json.loads(out.read_text())
    assert document["format_version"] == 1
    assert document["kind"] == "plan"
    assert [row["provider"] for row in document["providers"]] == list(PROVIDERS)
    assert [row["file"] for row in document["providers"]] == files
    assert document["total"]["delete"]["objects"] == sum(
        row["counts"]["delete"]["objects"] for row in document["providers"]
    )
    # Exit 2 on deletes only when asked, as plan --detailed-exitcode.
    assert main(["merge", *files, "--detailed-exitcode", "-o", str(out)]) == 2
    # With the manifests: every provider is covered.
    manifests = str(matrix / "manifests")
    assert main(["merge", str(matrix / "drift/*.json"), "--manifests", manifests]) == 0
    assert "reconcile report: drift of 3 providers" in capsys.readouterr().out


def test_merge_refuses_documents_that_leave_out_a_provider_of_the_manifests(
    matrix: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two = [str(matrix / "plans" / f"{p}.json") for p in PROVIDERS[:2]]
    code = main(["merge", *two, "--manifests", str(matrix / "manifests")])
    assert code == 1
    error = capsys.readouterr().err
    assert "no document covers 1 of the manifests' 3 providers: qianfan-demo" in error
    assert error.count("\n") == 1


def test_a_plan_made_without_some_providers_says_so_in_the_merged_report(
    matrix: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A matrix job whose plan could not list a provider: the merged report names it, as the
    plan itself does, in every format."""
    from reconcile.plan import Plan, Unlisted

    source = matrix / "plans/fabric-demo.json"
    plan = Plan.from_json(source.read_text(), source=str(source))
    unlisted = (Unlisted(provider="qianfan-demo", error="list models: HTTP 500"),)
    partial = tmp_path / "fabric-demo.json"
    partial.write_text(plan.model_copy(update={"unlisted": unlisted}).sealed().to_json())
    for fmt in ("text", "markdown", "html"):
        assert main(["merge", str(partial), "--format", fmt]) == 0
        out = html.unescape(capsys.readouterr().out)
        assert 'provider "qianfan-demo" could not be listed, so this plan says nothing' in out
        assert "HTTP 500" in out


def test_providers_prints_the_manifests_provider_names_as_a_json_list(
    matrix: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["providers", str(matrix / "manifests")]) == 0
    assert sorted(json.loads(capsys.readouterr().out)) == list(PROVIDERS)


# -- refusals, on documents planned from live state given as data ---------------------------------

MANIFEST = """
[providers.{name}]
type = "fabric"
endpoint = "emulator:state.json"
workspace_id = "ws-1"
scope = "workspace"

[[models]]
provider = "{name}"
name = "{declared}"
"""


def _documents(
    folder: Path,
    names: tuple[str, ...] = ("a", "b"),
    *,
    declared: str = "kept",
    live: str = "gone",
    drift: bool = False,
) -> list[Path]:
    """One plan (or drift report) per provider of one manifest: each declares `declared` and
    finds `live` too (to delete)."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest_file = folder / "m.toml"
    manifest_file.write_text(
        "".join(MANIFEST.format(name=name, declared=declared) for name in names)
    )
    manifest = load_manifest(manifest_file)
    written = []
    for name in names:
        models = (
            LiveModel(id=f"{name}-1", name=declared),
            LiveModel(
                id=f"{name}-2",
                name=live,
                versions=(LiveVersion(id=f"{name}-2v", name="v1", model_id=f"{name}-2"),),
            ),
        )
        one = {name: Snapshot(provider=name, provider_type="fabric", location="ws", models=models)}
        plan = build_plan(manifest, one, tool_version="test")
        document = build_drift_report(plan, manifest, one) if drift else plan
        path = folder / f"{'drift' if drift else 'plan'}-{name}.json"
        path.write_text(document.to_json())
        written.append(path)
    return written


def _refused(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    assert main(["merge", *map(str, args)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("Error: ")
    assert captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err
    return captured.err


def test_documents_from_different_manifests_are_refused_naming_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = _documents(tmp_path / "one")
    _, b = _documents(tmp_path / "two", declared="other")
    error = _refused(capsys, a, b)
    assert "different manifests" in error
    assert f"{a} from sha256:" in error
    assert f"{b} from sha256:" in error


def test_plans_and_drift_reports_are_not_merged_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan, _ = _documents(tmp_path)
    _, report = _documents(tmp_path, drift=True)
    error = _refused(capsys, plan, report)
    assert f"cannot merge plans with drift reports: {plan} is a plan, {report} is a drift" in error


@pytest.mark.parametrize("drift", [False, True], ids=["plans", "drift reports"])
def test_a_provider_covered_twice_is_refused_naming_both_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], drift: bool
) -> None:
    a, b = _documents(tmp_path, drift=drift)
    copy_of_a = tmp_path / "again.json"
    shutil.copy(a, copy_of_a)
    error = _refused(capsys, a, b, copy_of_a)
    assert f"provider a is covered twice: by {a} and by {copy_of_a}" in error


def test_a_plan_covering_every_provider_and_one_of_them_again_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = _documents(tmp_path / "one", ("a", "b"))
    both_file = tmp_path / "both.toml"
    shutil.copy(tmp_path / "one" / "m.toml", both_file)
    manifest = load_manifest(both_file)
    snapshots = {
        name: Snapshot(provider=name, provider_type="fabric", location="ws", models=())
        for name in ("a", "b")
    }
    whole = tmp_path / "whole.json"
    plan = build_plan(manifest, snapshots, tool_version="test", refuse_empty=False)
    whole.write_text(plan.to_json())
    assert f"provider a is covered twice: by {a} and by {whole}" in _refused(capsys, a, whole)


def test_an_edited_plan_is_refused_by_its_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _documents(tmp_path)
    document = json.loads(a.read_text())
    document["summary"]["delete"] = 0
    a.write_text(json.dumps(document))
    error = _refused(capsys, a, b)
    assert f"{a}: plan_digest does not match the plan's content" in error
    assert "(fix: never edit a plan file; make a new plan)" in error


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "not a JSON document"),
        ('{"format_version": 2}', "neither a plan"),
        ("[1, 2]", "neither a plan"),
        (b"\xff\xfe", "not UTF-8"),
        ('{"resource_changes": [], "format_version": 1}', "plan format_version 1 is not"),
        ('{"providers": [], "total": {}, "format_version": 9}', "format_version 9 is not"),
        ('{"providers": [], "total": {}, "format_version": 1}', "invalid drift report at"),
        ('{"kind": "plan", "sources": []}', "is a merged report already"),
    ],
)
def test_a_file_that_is_not_a_document_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes, words: str
) -> None:
    a, _ = _documents(tmp_path)
    bad = tmp_path / "bad.json"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        bad.write_text(content)
    error = _refused(capsys, a, bad)
    assert f"Error: {bad}: " in error
    assert words in error


def test_a_glob_that_matches_nothing_and_a_missing_file_are_errors_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = _documents(tmp_path)
    pattern = str(tmp_path / "plans" / "*.json")
    assert f"{pattern}: no file matches this pattern" in _refused(capsys, a, pattern)
    missing = tmp_path / "missing.json"
    assert f"{missing}: no such file" in _refused(capsys, a, missing)
    assert f"{tmp_path}: is a folder" in _refused(capsys, a, tmp_path)


def test_a_document_that_covers_no_provider_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = _documents(tmp_path)
    manifest = load_manifest(tmp_path / "m.toml")
    empty = tmp_path / "empty.json"
    empty.write_text(build_plan(manifest, {}, tool_version="test").to_json())
    assert f"{empty}: covers no provider scope" in _refused(capsys, a, empty)


def test_documents_of_other_manifests_than_those_given_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _documents(tmp_path / "one")
    _documents(tmp_path / "two", declared="other")
    error = _refused(capsys, a, b, "--manifests", tmp_path / "two" / "m.toml")
    assert "made from other manifests" in error


def test_globs_are_expanded_sorted_and_a_file_given_twice_is_read_once(tmp_path: Path) -> None:
    a, b = _documents(tmp_path, ("b", "a"))
    report = merge(read_documents([str(tmp_path / "plan-*.json"), str(a)]))
    assert [source.file for source in report.sources] == [str(b), str(a)]
    assert [row.provider for row in report.providers] == ["a", "b"]


# -- escaping --------------------------------------------------------------------------------------

HOSTILE = "x<img src=y onerror=alert(1)>|@here`**"


def test_platform_names_are_escaped_in_markdown_and_html_and_text(tmp_path: Path) -> None:
    manifest_file = tmp_path / "m.toml"
    manifest_file.write_text(MANIFEST.format(name="a", declared="kept"))
    manifest = load_manifest(manifest_file)
    service = ServiceUse(id="s-1", name=HOSTILE, status="RUNNING\x1b[31m", model_id="m-2")
    models = (
        LiveModel(id="m-1", name="kept"),
        LiveModel(id="m-2", name=HOSTILE, versions=()),
        LiveModel(id="m-3", name="gone\x1b]0;title\x07"),
    )
    snapshots = {
        "a": Snapshot(
            provider="a", provider_type="fabric", location="ws", models=models, services=(service,)
        )
    }
    plan = build_plan(manifest, snapshots, tool_version="test")
    (tmp_path / "plan.json").write_text(plan.to_json())
    report = merge(read_documents([str(tmp_path / "plan.json")]))
    markdown = RENDERERS["markdown"](report)
    html = RENDERERS["html"](report)
    text = render_text(report)
    # In markdown, names are code spans (never interpreted: the name opens the span, "`x<img")
    # and sentences are backslash-escaped ("x\\<img", "\\@here").
    # (an address quotes a name that holds whitespace: scope.py)
    assert set(re.findall(r"(..)<img", markdown)) == {"`x", '"x', "x\\"}
    assert '``a/"x<img src=y onerror=alert(1)>\\|@here`**"``' in markdown
    assert set(re.findall(r"(.)@here", markdown)) <= {"\\", "|"}
    assert "<img" not in html
    assert "&lt;img src=y onerror=alert(1)&gt;" in html
    assert "<script" not in html
    assert "http" not in html.replace("http-equiv", "")
    assert "\x1b" not in text
    assert "\x07" not in text
    assert HOSTILE in text


def test_markdown_stops_item_rows_at_its_budget_and_says_how_many_it_left_out(
    matrix: Path,
) -> None:
    from reconcile.report.render import render_markdown

    report = merge(read_documents([str(matrix / "plans/*.json")]))
    full = render_markdown(report)
    short = render_markdown(report, budget=2_000)
    assert len(short) < len(full)
    left = re.findall(r"… and (\d+) more, left out", short)
    shown = short.count("\n| version |") + short.count("\n| model |")
    assert left
    assert shown + sum(map(int, left)) == full.count("\n| version |") + full.count("\n| model |")


def test_merged_json_is_escaped_for_terminals_and_is_the_whole_dump(tmp_path: Path) -> None:
    """`report merge --format json` prints as `plan --json` does: a bidi override or a C1
    control in a platform's name is its `\\u` escape (JSON would let it through), and the
    document, encoded a change at a time, reads back as the merged report."""
    import json

    from reconcile.model import json_text
    from reconcile.report.merge import to_json

    manifest_file = tmp_path / "m.toml"
    manifest_file.write_text(MANIFEST.format(name="a", declared="kept"))
    manifest = load_manifest(manifest_file)
    odd = "gone\u202eevil\x85"
    models = (LiveModel(id="m-1", name="kept"), LiveModel(id="m-3", name=odd))
    snapshots = {"a": Snapshot(provider="a", provider_type="fabric", location="ws", models=models)}
    plan = build_plan(manifest, snapshots, tool_version="test")
    (tmp_path / "plan.json").write_text(plan.to_json())
    report = merge(read_documents([str(tmp_path / "plan.json")]))
    assert isinstance(report, MergedPlan) and report.changes
    assert to_json(report) == json_text(report.model_dump(mode="json"), indent=2) + "\n"
    printed = RENDERERS["json"](report)
    assert "\u202e" not in printed and "\x85" not in printed
    assert json.loads(printed) == json.loads(to_json(report))
    assert odd in {change["name"] for change in json.loads(printed)["changes"]}
