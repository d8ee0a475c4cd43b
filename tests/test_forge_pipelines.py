"""The packaged pipelines: the composite action and the GitLab template pass their linters
(actionlint with shellcheck; GitLab's CI schema), the examples are a few lines that use them,
and applies are never cancelled nor run two at a time."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

ACTION = ROOT / "action" / "action.yml"
TEMPLATE = ROOT / "ci" / "gitlab" / "reconcile.gitlab-ci.yml"
WORKFLOW = ROOT / "examples" / "github-actions" / "reconcile.yml"
INCLUDE = ROOT / "examples" / "gitlab-ci" / ".gitlab-ci.yml"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is not installed: pip install -e '.[test]'"
    return str(path)


def lint(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def local_checkout(tmp_path: Path, workflow: str) -> Path:
    """A repository whose workflow uses the action by path, so actionlint reads its metadata."""
    (tmp_path / ".git").mkdir()  # actionlint looks for the repository's root
    shutil.copytree(ROOT / "action", tmp_path / "action")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    local = workflow.replace("OWNER/reconcile/action@v0.1.0", "./action")
    (tmp_path / ".github" / "workflows" / "reconcile.yml").write_text(local)
    return tmp_path


def test_the_example_workflow_and_the_action_pass_actionlint(tmp_path: Path) -> None:
    checkout = local_checkout(tmp_path, WORKFLOW.read_text(encoding="utf-8"))
    done = lint(tool("actionlint"), "-shellcheck", tool("shellcheck"), "-no-color", cwd=checkout)
    assert done.returncode == 0, done.stdout + done.stderr
    done = lint(tool("actionlint"), "-shellcheck", tool("shellcheck"), str(WORKFLOW))
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_reads_the_actions_inputs(tmp_path: Path) -> None:
    """The check above means something: a misspelled input of the action is caught."""
    broken = WORKFLOW.read_text(encoding="utf-8").replace("{command: plan,", "{comand: plan,")
    done = lint(tool("actionlint"), "-no-color", cwd=local_checkout(tmp_path, broken))
    assert done.returncode == 1
    assert 'input "comand" is not defined in action' in done.stdout
    assert 'missing input "command" which is required' in done.stdout


@pytest.mark.parametrize(
    ("schema", "files"),
    [
        ("vendor.github-actions", [ACTION]),
        ("vendor.github-workflows", [WORKFLOW]),
        ("vendor.gitlab-ci", [TEMPLATE, INCLUDE]),
    ],
)
def test_the_pipelines_match_the_forges_schemas(schema: str, files: list[Path]) -> None:
    done = lint(tool("check-jsonschema"), "--builtin-schema", schema, *map(str, files))
    assert done.returncode == 0, done.stdout + done.stderr


def _scripts() -> list[tuple[str, str]]:
    found = [
        (f"action: {step.get('name', step.get('uses'))}", step["run"])
        for step in load(ACTION)["runs"]["steps"]
        if "run" in step
    ]
    for name, job in load(TEMPLATE).items():
        if isinstance(job, dict):
            for part in ("before_script", "script"):
                if part in job:
                    found.append((f"template: {name}.{part}", "\n".join(job[part])))
    return found


@pytest.mark.parametrize(("where", "script"), _scripts(), ids=lambda value: str(value)[:40])
def test_every_script_passes_shellcheck(tmp_path: Path, where: str, script: str) -> None:
    # GitHub expressions are filled in before the shell sees the script; none is in a script.
    assert "${{" not in script, f"{where}: pass inputs through env, never into the script"
    path = tmp_path / "script.sh"
    path.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + script + "\n")
    done = lint(tool("shellcheck"), "-s", "bash", str(path))
    assert done.returncode == 0, f"{where}:\n{done.stdout}"


def test_an_apply_is_never_cancelled_and_never_runs_twice_at_once() -> None:
    jobs = load(WORKFLOW)["jobs"]
    groups = {name: job["concurrency"]["group"] for name, job in jobs.items()}
    assert len(set(groups.values())) == 3  # apply shares its group with no other run
    # One group per commit: GitHub cancels a pending run when another joins its group, so a
    # shared group would cancel the apply of an earlier merge. Applies queue on the lock.
    assert jobs["apply"]["concurrency"] == {
        "group": "reconcile-apply-${{ github.sha }}",
        "cancel-in-progress": False,
    }
    action = load(ACTION)
    [step] = [s for s in action["runs"]["steps"] if s.get("name") == "apply exactly that plan"]
    assert float(step["env"]["RECONCILE_APPLY_LOCK_TIMEOUT"]) >= 600
    template = load(TEMPLATE)
    assert template["reconcile-apply"]["resource_group"] == "reconcile-apply"
    assert template["reconcile-apply"]["interruptible"] is False


def test_the_examples_are_a_few_lines_that_use_the_packaged_pipelines() -> None:
    for path in (WORKFLOW, INCLUDE):
        text = path.read_text(encoding="utf-8")
        lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        assert len(lines) <= 45, path
        assert not re.search(r"^\s*(run|script):", text, re.MULTILINE), path
    uses = [step["uses"] for job in load(WORKFLOW)["jobs"].values() for step in job["steps"]]
    assert uses.count("OWNER/reconcile/action@v0.1.0") == 3
    assert load(INCLUDE)["include"][0]["file"] == "ci/gitlab/reconcile.gitlab-ci.yml"


def test_every_step_of_the_examples_uses_the_one_remote_state_store() -> None:
    """Plan, apply and drift share the lock, the journal and the grace ledger: a plan made
    against the runner's empty local folder would keep in grace what the apply then deletes."""
    steps = [job["steps"][-1]["with"] for job in load(WORKFLOW)["jobs"].values()]
    assert {step["command"] for step in steps} == {"plan", "apply", "drift"}
    assert {step.get("backend") for step in steps} == {"s3://team-reconcile-state/prod"}
    assert load(INCLUDE)["variables"]["RECONCILE_STATE"].startswith("s3://")
