"""GitHub: the pull request of a job, its verified approvals, the plan comment, the plan artifact.

The REST calls, each with the permission the workflow's `GITHUB_TOKEN` needs for it:

- `GET /repos/{repo}/pulls/{n}`: author, head, fork or not (`pull-requests: read`)
- `GET /repos/{repo}/pulls/{n}/reviews`, every page: the approvals (`pull-requests: read`)
- `GET /repos/{repo}/collaborators/{login}/permission`: an approver's role (metadata: always)
- `GET /repos/{repo}/commits/{sha}/pulls`: the merged pull request of a push (`contents: read`)
- `GET, POST /repos/{repo}/issues/{n}/comments`, `PATCH /repos/{repo}/issues/comments/{id}`:
  the plan comment (`pull-requests: write`)
- `GET /repos/{repo}/actions/runs?head_sha=...&event=pull_request&status=success`,
  `GET /repos/{repo}/actions/runs/{id}/artifacts?name=...` and the archive (a redirect to the
  storage, followed without the token): the reviewed plan (`actions: read`)
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from reconcile.forge import ForgeError, not_merged, short
from reconcile.forge.approval import Approval, Verdict, digests_in, judge
from reconcile.forge.rest import MAX_DOWNLOAD, Rest, token_from

API_VERSION = "2022-11-28"
#: Roles whose approval counts (`role_name`; `permission` says `write` for maintain too).
WRITE_ROLES = frozenset({"admin", "maintain", "write"})
#: Who posts the plan comment: the workflow's GITHUB_TOKEN acts as this app.
DEFAULT_COMMENTER = "github-actions[bot]"
_READ_PULLS = "pull-requests: read"


@dataclass(frozen=True)
class Job:
    """Where the job runs, from the runner's environment."""

    repository: str
    event_name: str
    #: The webhook payload of the event (GITHUB_EVENT_PATH).
    event: Mapping[str, Any]
    #: The commit the job runs on (for a push, the pushed commit).
    sha: str
    #: The branch applies come from.
    branch: str


def connect(
    env: Mapping[str, str], *, token_env: str, transport: httpx.BaseTransport | None = None
) -> Rest:
    token = token_from(env, token_env)
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "reconcile-forge",
    }
    base = env.get("GITHUB_API_URL", "https://api.github.com")
    return Rest(
        base, headers, forge="GitHub", token=token, token_env=token_env, transport=transport
    )


class GitHub:
    name = "GitHub"

    def __init__(self, rest: Rest, job: Job, *, commenter: str = DEFAULT_COMMENTER) -> None:
        self.rest = rest
        self.job = job
        self.commenter = commenter
        self._repo = f"repos/{job.repository}"
        self._roles: dict[str, str | None] = {}

    def close(self) -> None:
        self.rest.close()

    # -- which pull request -----------------------------------------------------------------

    def pull(self, number: int) -> dict[str, Any]:
        pull: dict[str, Any] = self.rest.get(f"{self._repo}/pulls/{number}", need=_READ_PULLS)
        return pull

    def change_of_job(self, number: int | None = None) -> dict[str, Any]:
        """The pull request this job is about: given, the event's, or the one a push merged."""
        if number is not None:
            return self.pull(number)
        event_pull = self.job.event.get("pull_request")
        if isinstance(event_pull, dict) and isinstance(event_pull.get("number"), int):
            return self.pull(event_pull["number"])
        if self.job.event_name == "push":
            return self.merged_pull(self.job.sha)
        raise ForgeError(
            f"a {self.job.event_name!r} event names no pull request",
            hint="run this step on pull_request and push events, or give --pr NUMBER",
        )

    def merged_pull(self, sha: str) -> dict[str, Any]:
        """The pull request whose merge made commit `sha` on the apply branch; refused if none."""
        for pull in self.rest.pages(f"{self._repo}/commits/{sha}/pulls", need="contents: read"):
            merged = pull.get("merged_at") and pull.get("merge_commit_sha") == sha
            if merged and (pull.get("base") or {}).get("ref") == self.job.branch:
                return self.pull(int(pull["number"]))
        raise not_merged(sha, self.job.branch, "pull request")

    def refuse_fork(self, pull: Mapping[str, Any]) -> None:
        head_repo = ((pull.get("head") or {}).get("repo") or {}).get("full_name")
        if head_repo != self.job.repository:
            where = head_repo or "a deleted fork"
            raise ForgeError(
                f"pull request #{pull.get('number')} comes from {where}, not from "
                f"{self.job.repository}: GitHub gives a fork's pull request no secrets, so "
                "reconcile cannot list the platforms, and its plan is never applied",
                hint="push the branch to this repository and open the pull request from there",
            )

    # -- approvals --------------------------------------------------------------------------

    def approvals(self, pull: Mapping[str, Any]) -> list[Approval]:
        """Each reviewer's approving reviews since their last change request (a dismissed
        approval has state DISMISSED and so is not one)."""
        standing: dict[str, list[Approval]] = {}
        path = f"{self._repo}/pulls/{pull['number']}/reviews"
        for review in self.rest.pages(path, need=_READ_PULLS):
            user = review.get("user") or {}
            key = str(user.get("id"))
            if review.get("state") == "CHANGES_REQUESTED":
                standing[key] = []
            elif review.get("state") == "APPROVED":
                approval = Approval(
                    user=str(user.get("login")),
                    user_id=key,
                    commit=review.get("commit_id"),
                    digests=digests_in(str(review.get("body") or "")),
                )
                standing.setdefault(key, []).append(approval)
        return [approval for approvals in standing.values() for approval in approvals]

    def rights(self, approval: Approval) -> str | None:
        """None when the reviewer has write, maintain or admin on the repository."""
        if approval.user not in self._roles:
            answer = self.rest.get_or_none(
                f"{self._repo}/collaborators/{approval.user}/permission", need="metadata: read"
            )
            role = None
            if isinstance(answer, dict):
                role = answer.get("role_name") or answer.get("permission")
            self._roles[approval.user] = role
        role = self._roles[approval.user]
        if role in WRITE_ROLES:
            return None
        has = f"has {role} permission" if role and role != "none" else "is not a collaborator"
        return f"{has} on {self.job.repository}; approvals need write, maintain or admin"

    def verify(self, pull: Mapping[str, Any], digest: str) -> Verdict:
        author = str((pull.get("user") or {}).get("id"))
        head = str((pull.get("head") or {}).get("sha"))
        return judge(
            self.approvals(pull), digest=digest, author_id=author, head=head, rights=self.rights
        )

    # -- the plan comment ---------------------------------------------------------------------

    def upsert_comment(self, pull: Mapping[str, Any], marker: str, body: str) -> str:
        """Update the comment that starts with `marker` (posted by the commenter), else post
        one. Returns what was done and the comment's URL."""
        path = f"{self._repo}/issues/{pull['number']}/comments"
        for comment in self.rest.pages(path, need=_READ_PULLS):
            login = (comment.get("user") or {}).get("login")
            if login == self.commenter and str(comment.get("body", "")).startswith(marker):
                done = self.rest.send(
                    "PATCH",
                    f"{self._repo}/issues/comments/{comment['id']}",
                    {"body": body},
                    need="pull-requests: write",
                )
                return f"updated {done.get('html_url', comment['id'])}"
        done = self.rest.send("POST", path, {"body": body}, need="pull-requests: write")
        return f"posted {done.get('html_url', done.get('id'))}"

    # -- the reviewed plan ------------------------------------------------------------------

    def fetch_plan(self, pull: Mapping[str, Any], *, artifact: str, member: str) -> bytes:
        """`member` of the newest unexpired artifact `artifact` of a successful pull_request
        run on the pull request's head."""
        head = str((pull.get("head") or {}).get("sha"))
        runs = self.rest.pages(
            f"{self._repo}/actions/runs",
            {"head_sha": head, "event": "pull_request", "status": "success"},
            need="actions: read",
            key="workflow_runs",
        )
        for run in sorted(runs, key=lambda run: int(run.get("id", 0)), reverse=True):
            found = self.rest.pages(
                f"{self._repo}/actions/runs/{run['id']}/artifacts",
                {"name": artifact},
                need="actions: read",
                key="artifacts",
            )
            for item in found:
                if item.get("name") == artifact and not item.get("expired"):
                    data = self.rest.download(item["archive_download_url"], need="actions: read")
                    return _unzip(data, member, source=f"artifact {artifact} of run {run['id']}")
        raise ForgeError(
            f"no successful pull_request run of #{pull['number']} on its head {short(head)} "
            f"kept an artifact {artifact!r}: there is no reviewed plan to apply",
            hint="the plan job uploads it; run the pull request's workflow again before "
            "merging (artifacts expire, after 90 days by default)",
        )


def _unzip(data: bytes, member: str, *, source: str) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if archive.getinfo(member).file_size > MAX_DOWNLOAD:
                raise ForgeError(f"{source}: {member} is larger than {MAX_DOWNLOAD >> 20} MiB")
            return archive.read(member)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ForgeError(
            f"{source} holds no {member} ({type(exc).__name__})",
            hint="upload the plan file under that name in the plan job",
        ) from None
