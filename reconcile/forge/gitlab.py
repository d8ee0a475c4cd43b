"""GitLab: the merge request of a job, its verified approvals, the plan note, the plan artifact.

Merge request pipelines run on `refs/merge-requests/<iid>/head`, so an artifact cannot be found
by the source branch's name; the plan note names the job that made the plan, and apply downloads
that job's artifact by its id (`GET /projects/:id/jobs/:job_id/artifacts/plan.json`, which the
job token `CI_JOB_TOKEN` may call). Everything else takes a project access token (role Reporter;
scope `read_api` for apply, `api` for the plan job, which posts the note):

| call | for |
|---|---|
| `GET /projects/:id/merge_requests/:iid` | author, head `sha`, fork or not |
| `GET /projects/:id/merge_requests/:iid/approvals` | who approved (`approved_by`) |
| `GET /projects/:id/merge_requests/:iid/approval_state` | eligible approvers (Premium) |
| `GET /projects/:id/members/all/:user_id` | the approver's role (`access_level`) |
| `GET /projects/:id/merge_requests/:iid/versions` | when the head was pushed |
| `GET /projects/:id/merge_requests/:iid/notes` (every page) | the plan note, approval times |
| `POST, PUT /projects/:id/merge_requests/:iid/notes[/:note_id]` | the plan note |
| `GET /user` | the token's own user: the plan note must be its |
| `GET /projects/:id/repository/commits/:sha/merge_requests` | the merged merge request of a push |

GitLab's approvals carry no commit: an approval counts for the head when it was given after the
push that made the head (the merge request version whose `head_commit_sha` is the head).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from reconcile.forge import ForgeError, not_merged, short
from reconcile.forge.approval import Approval, Verdict, judge
from reconcile.forge.comment import NoteFacts, note_facts
from reconcile.forge.rest import Rest, token_from

#: Maintainer: the lowest role whose approval counts without an approval rule naming the user.
MAINTAINER = 40
ROLES = {10: "Guest", 15: "Planner", 20: "Reporter", 30: "Developer", 40: "Maintainer", 50: "Owner"}
_READ = "read_api scope, role Reporter or higher"
_APPROVED = "approved this merge request"


@dataclass(frozen=True)
class Job:
    project: str
    merge_request: int | None
    sha: str
    branch: str
    job_id: str


def connect(
    env: Mapping[str, str],
    *,
    token_env: str,
    job_token: bool = False,
    transport: httpx.BaseTransport | None = None,
) -> Rest:
    token = token_from(env, token_env)
    header = "JOB-TOKEN" if job_token else "PRIVATE-TOKEN"
    base = env.get("CI_API_V4_URL", "https://gitlab.com/api/v4")
    return Rest(
        base,
        {header: token, "User-Agent": "reconcile-forge"},
        forge="GitLab",
        token=token,
        token_env=token_env,
        transport=transport,
    )


def _when(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class GitLab:
    name = "GitLab"

    def __init__(self, rest: Rest, job: Job, *, artifacts: Rest | None = None) -> None:
        self.rest = rest
        self.job = job
        self.artifacts = artifacts or rest
        self._project = f"projects/{job.project}"
        self._me: str | None = None
        self._eligible: set[str] | None = None

    def close(self) -> None:
        self.rest.close()
        if self.artifacts is not self.rest:
            self.artifacts.close()

    def _mr(self, mr: Mapping[str, Any]) -> str:
        return f"{self._project}/merge_requests/{mr['iid']}"

    # -- which merge request ----------------------------------------------------------------

    def merge_request(self, iid: int) -> dict[str, Any]:
        found: dict[str, Any] = self.rest.get(f"{self._project}/merge_requests/{iid}", need=_READ)
        return found

    def change_of_job(self, number: int | None = None) -> dict[str, Any]:
        """The merge request this job is about: given, the pipeline's, or the one a push merged."""
        iid = number if number is not None else self.job.merge_request
        if iid is not None:
            return self.merge_request(iid)
        return self.merged_request(self.job.sha)

    def merged_request(self, sha: str) -> dict[str, Any]:
        path = f"{self._project}/repository/commits/{sha}/merge_requests"
        for mr in self.rest.pages(path, need=_READ):
            made = sha in (mr.get("merge_commit_sha"), mr.get("squash_commit_sha"), mr.get("sha"))
            if mr.get("state") == "merged" and made and mr.get("target_branch") == self.job.branch:
                return self.merge_request(int(mr["iid"]))
        raise not_merged(sha, self.job.branch, "merge request")

    def refuse_fork(self, mr: Mapping[str, Any]) -> None:
        if mr.get("source_project_id") != mr.get("target_project_id"):
            raise ForgeError(
                f"merge request !{mr.get('iid')} comes from a fork (project "
                f"{mr.get('source_project_id')}): its pipeline gets no protected variables, so "
                "reconcile cannot list the platforms, and its plan is never applied",
                hint="push the branch to this project and open the merge request from there",
            )

    # -- the plan note ----------------------------------------------------------------------

    def _my_id(self) -> str:
        if self._me is None:
            me = self.rest.get("user", need="a project access token (its bot user)")
            self._me = str(me.get("id"))
        return self._me

    def _notes(self, mr: Mapping[str, Any]) -> list[dict[str, Any]]:
        params = {"sort": "asc", "order_by": "created_at"}
        return list(self.rest.pages(f"{self._mr(mr)}/notes", params, need=_READ))

    def plan_notes(self, mr: Mapping[str, Any]) -> list[tuple[dict[str, Any], NoteFacts]]:
        """The plan notes this token's user posted (never another user's text)."""
        me = self._my_id()
        found = []
        for note in self._notes(mr):
            facts = note_facts(str(note.get("body") or ""))
            author = str((note.get("author") or {}).get("id"))
            if facts is not None and author == me and not note.get("system"):
                found.append((note, facts))
        return found

    def plan_note(self, mr: Mapping[str, Any], digest: str | None) -> NoteFacts:
        """The facts of the plan note for the merge request's head (and `digest`, if given)."""
        head = mr.get("sha")
        at_head = [facts for _, facts in self.plan_notes(mr) if facts.head == head]
        for facts in at_head:
            if digest is None or facts.digest == digest:
                return facts
        shown = ", ".join(facts.digest for facts in at_head) or "no plan note"
        raise ForgeError(
            f"merge request !{mr['iid']} has no plan note for its head {short(head)}"
            + (f" showing plan {digest} (found: {shown})" if digest else ""),
            hint="the plan job posts it: run the merge request's pipeline again, and apply "
            "only the plan file that pipeline made",
        )

    def upsert_comment(self, mr: Mapping[str, Any], marker: str, body: str) -> str:
        for note, _ in self.plan_notes(mr):
            if str(note.get("body", "")).startswith(marker):
                path = f"{self._mr(mr)}/notes/{note['id']}"
                self.rest.send("PUT", path, {"body": body}, need="api scope, role Reporter")
                return f"updated note {note['id']} of !{mr['iid']}"
        done = self.rest.send(
            "POST", f"{self._mr(mr)}/notes", {"body": body}, need="api scope, role Reporter"
        )
        return f"posted note {done.get('id')} on !{mr['iid']}"

    # -- approvals --------------------------------------------------------------------------

    def _head_pushed_at(self, mr: Mapping[str, Any]) -> datetime:
        for version in self.rest.pages(f"{self._mr(mr)}/versions", need=_READ):
            when = _when(version.get("created_at"))
            if version.get("head_commit_sha") == mr.get("sha") and when is not None:
                return when
        raise ForgeError(
            f"merge request !{mr['iid']}: no version has its head {short(mr.get('sha'))}, so "
            "when it was pushed is unknown and no approval can be tied to it",
            hint="push again, or run the pipeline again once GitLab has processed the push",
        )

    def _approved_at(self, mr: Mapping[str, Any]) -> dict[str, datetime]:
        """When each user last approved: the approvals API's `approved_at` where the instance
        gives it, else the system note "approved this merge request"."""
        times: dict[str, datetime] = {}
        for note in self._notes(mr):
            when = _when(note.get("created_at"))
            body = str(note.get("body") or "").strip().lower()
            if note.get("system") and body.startswith(_APPROVED) and when is not None:
                times[str((note.get("author") or {}).get("id"))] = when
        return times

    def approvals(self, mr: Mapping[str, Any], digest: str) -> list[Approval]:
        answer = self.rest.get(f"{self._mr(mr)}/approvals", need=_READ)
        pushed = self._head_pushed_at(mr)
        noted = self._approved_at(mr)
        found = []
        for entry in answer.get("approved_by") or []:
            user = entry.get("user") or {}
            key = str(user.get("id"))
            when = _when(entry.get("approved_at")) or noted.get(key)
            found.append(
                Approval(
                    user=str(user.get("username")),
                    user_id=key,
                    commit=mr.get("sha") if when is not None and when > pushed else None,
                    digests=frozenset({digest}),
                )
            )
        return found

    def _eligible_approvers(self, mr: Mapping[str, Any]) -> set[str]:
        if self._eligible is None:
            state = self.rest.get_or_none(f"{self._mr(mr)}/approval_state", need=_READ)
            rules = state.get("rules") if isinstance(state, dict) else None
            self._eligible = {
                str(user.get("id"))
                for rule in rules or []
                for user in rule.get("eligible_approvers") or []
            }
        return self._eligible

    def rights_for(self, mr: Mapping[str, Any], approval: Approval) -> str | None:
        member = self.rest.get_or_none(
            f"{self._project}/members/all/{approval.user_id}", need=_READ
        )
        level = member.get("access_level") if isinstance(member, dict) else None
        if isinstance(level, int) and level >= MAINTAINER:
            return None
        if approval.user_id in self._eligible_approvers(mr):
            return None
        has = f"has {ROLES.get(level, level)} access" if level else "is not a project member"
        return f"{has}; approvals need Maintainer or higher, or an approval rule naming them"

    def verify(self, mr: Mapping[str, Any], digest: str) -> Verdict:
        self.plan_note(mr, digest)  # the approvers saw this digest in the plan note
        author = str((mr.get("author") or {}).get("id"))
        return judge(
            self.approvals(mr, digest),
            digest=digest,
            author_id=author,
            head=str(mr.get("sha")),
            rights=lambda approval: self.rights_for(mr, approval),
        )

    # -- the reviewed plan ------------------------------------------------------------------

    def fetch_plan(self, mr: Mapping[str, Any], *, artifact: str, member: str) -> bytes:
        """`member` of the artifacts of the job that the plan note for the head names.
        (`artifact` is GitHub's artifact name; GitLab keeps a job's files together.)"""
        facts = self.plan_note(mr, None)
        path = f"{self._project}/jobs/{facts.job}/artifacts/{member}"
        return self.artifacts.download(path, need="CI_JOB_TOKEN of this project, or read_api")
