"""`python -m reconcile.forge` against a fake GitHub over loopback: which approvals count, the
one plan comment, fork pull requests and pushes refused, and one pull request from plan to apply
against the emulator."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconcile.cli import main as reconcile
from tests.conftest import ROOT, serve_over_loopback
from tests.fake_forges import FakeGitHub, run_step
from tests.test_forge_comment import make_plan

HEAD = "c0ffee" + "0" * 34
NEXT = "beef" + "1" * 36
MERGE = "feed" + "2" * 36


@dataclass
class Hub:
    fake: FakeGitHub
    url: str
    tmp: Path

    def env(
        self, event_name: str = "pull_request", number: int | None = 7, **extra: str
    ) -> dict[str, str]:
        event: dict[str, Any] = {"repository": {"default_branch": "main"}}
        if number is not None and event_name == "pull_request":
            event["pull_request"] = {"number": number}
        path = self.tmp / "event.json"
        path.write_text(json.dumps(event))
        return {
            "GITHUB_ACTIONS": "true",
            "GITHUB_API_URL": self.url,
            "GITHUB_SERVER_URL": "https://github.invalid",
            "GITHUB_REPOSITORY": self.fake.repository,
            "GITHUB_TOKEN": self.fake.token,
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": str(path),
            "GITHUB_SHA": MERGE if event_name == "push" else "0" * 40,
            "GITHUB_RUN_ID": "555",
        } | extra

    def run(
        self, capsys: pytest.CaptureFixture[str], *argv: str, env: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        return run_step(capsys, argv, env or self.env())


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    fake = FakeGitHub()
    fake.user("ana", "maintain")  # the reviewer
    fake.user("bo", "admin")  # the author, an admin
    fake.open_pull(7, "bo", HEAD)
    with serve_over_loopback(fake.app()) as url:
        yield Hub(fake, url, tmp_path)


DIGEST = make_plan(models=1, versions_each=2, blocked=0, ambiguous=0).plan_digest
OTHER = "sha256:" + "9" * 64


def approved(hub: Hub, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    return hub.run(capsys, "approval", "--digest", DIGEST)


def test_an_approval_by_a_maintainer_at_the_head_naming_the_digest_counts(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.fake.review(7, "ana", "APPROVED", f"Plan looks right: {DIGEST}")
    code, out, err = approved(hub, capsys)
    assert code == 0, err
    assert out == DIGEST + "\n"
    assert "approved by @ana" in err


@pytest.mark.parametrize(
    ("reviewer", "role", "reason"),
    [
        ("bo", None, "@bo is the author of the change"),
        ("cy", "read", "@cy has read permission on acme/models; approvals need write"),
        ("di", "triage", "@di has triage permission"),
        ("ed", None, "@ed has read permission"),  # no collaborator: reads a public repository
    ],
)
def test_an_approval_by_the_author_or_without_write_rights_is_refused(
    hub: Hub, capsys: pytest.CaptureFixture[str], reviewer: str, role: str | None, reason: str
) -> None:
    hub.fake.user(reviewer, role)
    hub.fake.review(7, reviewer, "APPROVED", DIGEST)
    code, out, err = approved(hub, capsys)
    assert code == 1 and out == ""
    assert reason in err
    assert err.startswith(f"error: plan {DIGEST} is not approved for #7: ")
    assert len(err.strip().splitlines()) == 1


def test_an_approval_before_the_last_push_is_refused(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.fake.review(7, "ana", "APPROVED", DIGEST)
    hub.fake.push(7, NEXT)
    code, _, err = approved(hub, capsys)
    assert code == 1
    assert f"approved commit {HEAD[:12]}, before the last push (head {NEXT[:12]})" in err


def test_an_approval_of_another_digest_or_of_none_is_refused(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.fake.review(7, "ana", "APPROVED", f"ok {OTHER}")
    hub.fake.user("fa", "write")
    hub.fake.review(7, "fa", "APPROVED", "LGTM")
    code, _, err = approved(hub, capsys)
    assert code == 1
    assert "@ana approved another plan (sha256:999999999999…)" in err
    assert f"@fa does not name the plan digest {DIGEST}" in err


def test_a_change_request_after_an_approval_withdraws_it(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.fake.review(7, "ana", "APPROVED", DIGEST)
    hub.fake.review(7, "ana", "CHANGES_REQUESTED", "wait")
    code, _, err = approved(hub, capsys)
    assert code == 1 and "nobody approved it" in err


def test_every_page_of_reviews_is_read(hub: Hub, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(5):
        hub.fake.review(7, "bo", "COMMENTED", "hmm")
    hub.fake.review(7, "ana", "APPROVED", DIGEST)  # on the fourth page of two
    code, _, err = approved(hub, capsys)
    assert code == 0, err
    assert hub.fake.calls.count("GET /repos/acme/models/pulls/7/reviews") == 3


def test_a_second_run_updates_the_one_plan_comment(
    hub: Hub, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(make_plan(models=1, versions_each=2, blocked=1, ambiguous=0).to_json())
    hub.fake.comments[7] = [  # someone quoting the marker: never edited
        {"id": 1, "body": "<!-- reconcile-plan:fab -->\nme too", "user": {"login": "ana"}}
    ]
    for _ in range(2):
        code, out, err = hub.run(capsys, "comment", "--plan", str(plan))
        assert code == 0, err
    assert out.startswith("updated ")
    ours = [c for c in hub.fake.comments[7] if c["user"]["login"] == "github-actions[bot]"]
    assert len(ours) == 1 and len(hub.fake.comments[7]) == 2
    assert ours[0]["body"].startswith("<!-- reconcile-plan:fab -->\n<!-- reconcile-facts ")
    assert f"head:{HEAD}" in ours[0]["body"]
    assert "https://github.invalid/acme/models/actions/runs/555" in ours[0]["body"]


def test_a_500_delete_plan_comment_keeps_every_blocked_object_within_githubs_limit(
    hub: Hub, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(make_plan(models=5, versions_each=100, blocked=10, ambiguous=2).to_json())
    code, _, err = hub.run(capsys, "comment", "--plan", str(plan), "--budget", "4000")
    assert code == 0, err
    (comment,) = hub.fake.comments[7]
    assert len(comment["body"]) <= 4000
    assert all(f"busy-{b}`" in comment["body"] for b in range(10))


def test_a_fork_pull_request_is_refused_before_planning(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.fake.open_pull(8, "mallory", HEAD, fork="mallory/models")
    code, out, err = hub.run(capsys, "check", env=hub.env(number=8))
    assert code == 1 and out == ""
    assert "pull request #8 comes from mallory/models, not from acme/models" in err
    assert "(fix: push the branch to this repository" in err


def test_a_push_that_no_merged_pull_request_made_is_refused(
    hub: Hub, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = hub.run(
        capsys, "fetch-plan", "--out", str(tmp_path / "p.json"), env=hub.env("push", None)
    )
    assert code == 1
    assert f"commit {MERGE[:12]} on main did not come through a merged pull request" in err
    assert not (tmp_path / "p.json").exists()


def test_a_bad_token_is_one_line_with_the_call_and_the_fix_and_never_the_token(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = hub.run(
        capsys, "approval", "--digest", DIGEST, env=hub.env(GITHUB_TOKEN="ghs_wrong_secret_value")
    )
    assert code == 1
    assert err == (
        "error: GitHub API: GET /repos/acme/models/pulls/7 answered HTTP 401 (Bad credentials) "
        "(fix: the token in $GITHUB_TOKEN is missing, expired or not valid for this GitHub)\n"
    )
    assert "ghs_wrong" not in err


def test_one_pull_request_from_plan_to_apply(
    hub: Hub, capsys: pytest.CaptureFixture[str], demo: Path, tmp_path: Path
) -> None:
    """The walk-through: plan, comment, approve, merge, fetch the reviewed plan, verify the
    approval, apply exactly that plan against the emulator."""
    plan = tmp_path / "pr" / "plan.json"
    plan.parent.mkdir()
    assert reconcile(["plan", str(demo), "-o", str(plan), "--quiet"]) == 0
    assert hub.run(capsys, "check")[0] == 0
    assert hub.run(capsys, "comment", "--plan", str(plan))[0] == 0
    digest = json.loads(plan.read_text())["plan_digest"]
    assert digest in hub.fake.comments[7][0]["body"]
    hub.fake.upload(HEAD, "reconcile-plan", {"plan.json": plan.read_bytes()})
    hub.fake.review(7, "ana", "APPROVED", f"approve {digest}")
    hub.fake.merge(7, MERGE)

    push = hub.env("push", None)
    reviewed = tmp_path / "reviewed" / "plan.json"
    code, _, err = hub.run(capsys, "fetch-plan", "--out", str(reviewed), env=push)
    assert code == 0, err
    assert reviewed.read_bytes() == plan.read_bytes()
    code, out, err = hub.run(capsys, "approval", "--plan", str(reviewed), env=push)
    assert code == 0, err
    assert out.strip() == digest
    code = reconcile(["apply", str(reviewed), "--expect-digest", out.strip(), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Apply complete: 11 deleted" in out


@pytest.mark.parametrize("command", [("reconcile.forge",), ("reconcile", "forge")])
def test_the_step_runs_as_a_script_and_never_prints_a_traceback(
    hub: Hub, command: tuple[str, ...]
) -> None:
    env = hub.env() | {"PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", *command, "approval", "--digest", "sha256:nothex"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: 'sha256:nothex' is not a plan digest")
    assert "Traceback" not in done.stderr


def test_reconcile_forge_approval_prints_the_approved_digest_and_refuses_the_authors(
    hub: Hub, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The click command the action and the template run: the same step, the job's environment."""
    for name, value in hub.env().items():
        monkeypatch.setenv(name, value)
    hub.fake.review(7, "bo", "APPROVED", f"approve {DIGEST}")  # the author
    assert reconcile(["forge", "approval", "--digest", DIGEST]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    hub.fake.review(7, "ana", "APPROVED", f"approve {DIGEST}")
    assert reconcile(["forge", "approval", "--digest", DIGEST]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == DIGEST
    assert "approved by @ana" in err


def test_a_token_given_instead_of_a_variable_name_is_refused_and_never_echoed(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = hub.run(capsys, "check", "--token-env", "ghp_abcdefghijklmnop0123456789")
    assert code == 1 and "not a token: the value given is not shown" in err
    assert "ghp_" not in err


def test_a_token_is_never_sent_in_clear_text_off_this_machine(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = hub.run(capsys, "check", env=hub.env(GITHUB_API_URL="http://api.example"))
    assert code == 1 and "is not https: a token is never sent in clear text" in err
