"""`python -m reconcile.forge` against a fake GitLab over loopback: approvals through the merge
request approvals API (rights, not the author, after the last push), the digest from the plan
note the pipeline posted (never from free text), the plan fetched by the job the note names, and
one merge request from plan to apply against the emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconcile.cli import main as reconcile
from tests.conftest import serve_over_loopback
from tests.fake_forges import FakeGitLab, run_step
from tests.test_forge_comment import make_plan

HEAD = "c0ffee" + "0" * 34
NEXT = "beef" + "1" * 36
MERGE = "feed" + "2" * 36
PLAN = make_plan(models=1, versions_each=2, blocked=1, ambiguous=0)
DIGEST = PLAN.plan_digest
OTHER = "sha256:" + "9" * 64


@dataclass
class Lab:
    fake: FakeGitLab
    url: str
    plan: Path

    def env(self, *, push: bool = False, **extra: str) -> dict[str, str]:
        base = {
            "GITLAB_CI": "true",
            "CI_API_V4_URL": f"{self.url}/api/v4",
            "CI_PROJECT_ID": str(self.fake.project),
            "CI_DEFAULT_BRANCH": "main",
            "GITLAB_API_TOKEN": self.fake.api_token,
            "CI_JOB_TOKEN": self.fake.job_token,
            "CI_JOB_ID": "77",
            "CI_JOB_URL": "https://gitlab.invalid/acme/models/-/jobs/77",
        }
        if push:
            base |= {"CI_COMMIT_SHA": MERGE, "CI_PIPELINE_SOURCE": "push", "CI_JOB_ID": "90"}
        else:
            base |= {"CI_COMMIT_SHA": HEAD, "CI_MERGE_REQUEST_IID": "3"}
        return base | extra

    def run(
        self, capsys: pytest.CaptureFixture[str], *argv: str, env: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        return run_step(capsys, argv, env or self.env())

    def post_plan(self, capsys: pytest.CaptureFixture[str], **env: str) -> None:
        code, _, err = self.run(capsys, "comment", "--plan", str(self.plan), env=self.env(**env))
        assert code == 0, err


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    fake = FakeGitLab()
    fake.user("ana", 40)  # Maintainer
    fake.user("bo", 40)  # the author, a Maintainer too
    fake.user("cy", 30)  # Developer
    fake.user("ed")  # no member
    fake.open_mr(3, "bo", HEAD)
    plan = tmp_path / "plan.json"
    plan.write_text(PLAN.to_json())
    with serve_over_loopback(fake.app()) as url:
        yield Lab(fake, url, plan)


def approval(
    lab: Lab, capsys: pytest.CaptureFixture[str], digest: str = DIGEST
) -> tuple[int, str, str]:
    return lab.run(capsys, "approval", "--digest", digest)


def test_a_maintainers_approval_after_the_plan_note_counts(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    lab.post_plan(capsys)
    lab.fake.approve(3, "ana")
    code, out, err = approval(lab, capsys)
    assert code == 0, err
    assert out == DIGEST + "\n" and "approved by @ana" in err


@pytest.mark.parametrize(
    ("approver", "reason"),
    [
        ("bo", "@bo is the author of the change"),
        ("cy", "@cy has Developer access; approvals need Maintainer or higher"),
        ("ed", "@ed is not a project member"),
    ],
)
def test_an_approval_by_the_author_a_developer_or_a_non_member_is_refused(
    lab: Lab, capsys: pytest.CaptureFixture[str], approver: str, reason: str
) -> None:
    lab.post_plan(capsys)
    lab.fake.approve(3, approver)
    code, out, err = approval(lab, capsys)
    assert code == 1 and out == ""
    assert reason in err and len(err.strip().splitlines()) == 1


def test_an_eligible_approver_of_a_rule_counts_without_maintainer(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    lab.fake.eligible = {lab.fake.users["cy"]}
    lab.post_plan(capsys)
    lab.fake.approve(3, "cy")
    code, _, err = approval(lab, capsys)
    assert code == 0, err


def test_an_approval_before_the_last_push_is_refused(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    lab.post_plan(capsys)
    lab.fake.approve(3, "ana")
    lab.fake.push(3, NEXT)
    code, _, err = approval(lab, capsys)
    assert code == 1 and f"has no plan note for its head {NEXT[:12]}" in err
    lab.post_plan(capsys, CI_COMMIT_SHA=NEXT)  # the pipeline of the push
    code, _, err = approval(lab, capsys)
    assert code == 1
    assert "@ana approved an earlier commit, before the last push" in err


def test_another_digest_than_the_plan_note_shows_is_refused(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    lab.post_plan(capsys)
    lab.fake.approve(3, "ana")
    code, _, err = approval(lab, capsys, OTHER)
    assert code == 1
    assert f"showing plan {OTHER} (found: {DIGEST})" in err


def test_free_text_notes_and_forged_plan_notes_count_for_nothing(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    lab.post_plan(capsys)
    lab.fake.comment(3, "ana", f"approve-plan {DIGEST}")
    code, _, err = approval(lab, capsys)
    assert code == 1 and "nobody approved it" in err
    forged = (
        f"<!-- reconcile-plan:fab -->\n<!-- reconcile-facts digest:{OTHER} head:{HEAD} job:1 -->"
    )
    lab.fake.comment(3, "bo", forged)
    lab.fake.approve(3, "ana")
    code, _, err = approval(lab, capsys, OTHER)
    assert code == 1 and "has no plan note" in err


def test_every_page_of_notes_is_read_and_a_second_run_updates_the_one_note(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(5):
        lab.fake.comment(3, "cy", f"remark {n}")
    lab.post_plan(capsys)
    lab.post_plan(capsys)
    ours = [n for n in lab.fake.notes[3] if n["author"]["id"] == lab.fake.bot["id"]]
    assert len(ours) == 1  # on the fourth page of two
    assert (
        lab.fake.calls.count("PUT /api/v4/projects/7/merge_requests/3/notes/" + str(ours[0]["id"]))
        == 1
    )
    assert "https://gitlab.invalid/acme/models/-/jobs/77/artifacts/browse" in ours[0]["body"]


def test_a_fork_merge_request_and_a_direct_push_are_refused(
    lab: Lab, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lab.fake.open_mr(4, "mallory", HEAD, fork=99)
    code, _, err = lab.run(capsys, "check", env=lab.env(CI_MERGE_REQUEST_IID="4"))
    assert code == 1 and "merge request !4 comes from a fork (project 99)" in err
    code, _, err = lab.run(
        capsys, "fetch-plan", "--out", str(tmp_path / "p"), env=lab.env(push=True)
    )
    assert code == 1
    assert f"commit {MERGE[:12]} on main did not come through a merged merge request" in err


def test_one_merge_request_from_plan_to_apply(
    lab: Lab, capsys: pytest.CaptureFixture[str], demo: Path, tmp_path: Path
) -> None:
    """Plan in the merge request pipeline, note, approve, merge; the main pipeline fetches the
    plan by the job the note names (job token), verifies the approval, applies that plan."""
    plan = tmp_path / "mr" / "plan.json"
    plan.parent.mkdir()
    assert reconcile(["plan", str(demo), "-o", str(plan), "--quiet"]) == 0
    lab.plan = plan
    lab.post_plan(capsys)
    lab.fake.job_files[77] = {"plan.json": plan.read_bytes()}
    lab.fake.approve(3, "ana")
    lab.fake.merge(3, MERGE)

    reviewed = tmp_path / "reviewed-plan.json"
    push = lab.env(push=True)
    code, _, err = lab.run(capsys, "fetch-plan", "--out", str(reviewed), env=push)
    assert code == 0, err
    assert "GET /api/v4/projects/7/jobs/77/artifacts/plan.json" in lab.fake.calls
    code, out, err = lab.run(capsys, "approval", "--plan", str(reviewed), env=push)
    assert code == 0, err
    assert out.strip() == json.loads(plan.read_text())["plan_digest"]
    code = reconcile(["apply", str(reviewed), "--expect-digest", out.strip(), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Apply complete: 11 deleted" in out
    # The artifact is fetched with the job token: a wrong one is refused by that call.
    code, _, err = lab.run(
        capsys, "fetch-plan", "--out", str(reviewed), env=push | {"CI_JOB_TOKEN": "wrong"}
    )
    assert code == 1
    assert "GET /projects/7/jobs/77/artifacts/plan.json answered HTTP 401" in err
    assert "$CI_JOB_TOKEN" in err
