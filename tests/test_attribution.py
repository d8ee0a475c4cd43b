"""`plan --base PATH|REF`: one listing, planned against the manifests of the change and of its
base, each delete labelled. End to end with the demo in a real git repository (the planner's
rule itself is in the planner data cases whose names start with "attribution-")."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from reconcile.forge.comment import plan_comment
from reconcile.plan import Plan
from tests.test_cli import DEMO_DELETES, run

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.test", *args],
        cwd=folder,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(demo: Path) -> Path:
    """The demo in a git repository, its manifest committed; then the change: support-bot no
    longer declares v7. v7, the newest undeclared version now, is kept by keep_latest = 1, and
    v6, kept by that rule before, goes: the change causes the delete of a version it does not
    name, which a diff of the manifests would never show."""
    _git(demo, "init", "-q")
    (demo / ".gitignore").write_text(".reconcile/\n")
    _git(demo, "add", ".")
    _git(demo, "commit", "-q", "-m", "manifests")
    manifest = demo / "reconcile.toml"
    manifest.write_text(
        manifest.read_text().replace('versions = ["v7", "v8"]', 'versions = ["v8"]')
    )
    return demo


def _labels(out: str) -> dict[str, str]:
    attribution = json.loads(out)["attribution"]
    labels = dict.fromkeys(attribution["caused_by_change"], "caused_by_change")
    return labels | dict.fromkeys(attribution["already_undeclared"], "already_undeclared")


def test_a_git_ref_as_base_labels_each_delete(
    capsys: pytest.CaptureFixture[str], repo: Path
) -> None:
    code, out, err = run(capsys, "plan", str(repo), "--json", "--base", "HEAD")
    assert code == 0, err
    labels = _labels(out)
    caused = {"fabric-demo/support-bot/v6"}
    assert labels == dict.fromkeys(caused, "caused_by_change") | dict.fromkeys(
        DEMO_DELETES, "already_undeclared"
    )
    # The labels say why, not what: the digest is that of the same plan without --base.
    code, plain, _ = run(capsys, "plan", str(repo), "--json")
    assert json.loads(plain)["plan_digest"] == json.loads(out)["plan_digest"]
    assert json.loads(plain)["attribution"] is None

    code, text, _ = run(capsys, "plan", str(repo), "--base", "HEAD")
    assert "Against HEAD: this change causes 1 of the deletes; 11 were already undeclared" in text
    assert "  caused by this change: fabric-demo/support-bot/v6" in text


def test_a_folder_as_base_and_the_comment_leads_with_what_the_change_causes(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path
) -> None:
    before = tmp_path / "before"
    before.mkdir()
    shown = subprocess.run(
        ["git", "show", "HEAD:reconcile.toml"], cwd=repo, check=True, capture_output=True
    )
    (before / "reconcile.toml").write_bytes(shown.stdout)
    code, out, err = run(capsys, "plan", str(repo), "--json", "--base", str(before))
    assert code == 0, err
    assert _labels(out)["fabric-demo/support-bot/v6"] == "caused_by_change"
    plan = Plan.from_json(out, source="plan.json")
    _, comment = plan_comment(
        plan,
        head="0123456789abcdef0123456789abcdef01234567",
        job="1",
        approve="approve it",
        full_plan="x",
    )
    caused = comment.index("What this change causes")
    assert caused < comment.index("Plan digest") < comment.index("Deletes by model")
    assert "This change causes 1 delete" in comment


def test_a_base_that_is_neither_a_path_nor_a_ref_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], repo: Path
) -> None:
    code, out, err = run(capsys, "plan", str(repo), "--base", "no-such-branch")
    assert code == 1
    assert "--base no-such-branch: not a path, and git cannot read it" in err
    assert "Traceback" not in out + err
