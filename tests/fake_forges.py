"""Small fake GitHub and GitLab REST servers: exactly the calls `reconcile.forge` makes, with the
documented paths, pagination and permissions, and state a test sets and reads.

- Authentication: a request without the one valid token gets 401 (GitHub: `Authorization:
  Bearer`; GitLab: `PRIVATE-TOKEN`, or `JOB-TOKEN` for the job artifacts API only).
- Pagination: `per_page` is honoured up to `page_size` (2 here, 100 on the real forges, so that
  every listing in a test spans pages); the next page is in a `Link: <...>; rel="next"` header
  (both forges) and `X-Next-Page` (GitLab).
- Permissions: GitHub's `collaborators/{login}/permission` answers `role_name` and the legacy
  `permission` (maintain shows as write, triage as read; a user who is no collaborator reads a
  public repository); GitLab's `members/all/:id` answers `access_level` or 404.
- Time: a clock that advances one second per event, so pushes, approvals and notes are ordered.

Both apps record each call as "METHOD /path" in `calls`.
"""

from __future__ import annotations

import io
import itertools
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from reconcile.forge.__main__ import main

PAGE_SIZE = 2


def run_step(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], env: dict[str, str]
) -> tuple[int, str, str]:
    """One `python -m reconcile.forge` step, in-process: exit code, stdout, stderr."""
    code = main(list(argv), env=env)
    out, err = capsys.readouterr()
    return code, out, err


_EPOCH = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self._ticks = itertools.count(1)

    def now(self) -> str:
        return (_EPOCH + timedelta(seconds=next(self._ticks))).isoformat().replace("+00:00", "Z")


def _page(request: Request, items: list[Any], key: str | None = None) -> Response:
    size = min(int(request.query_params.get("per_page", 30)), PAGE_SIZE)
    page = int(request.query_params.get("page", 1))
    chunk = items[(page - 1) * size : page * size]
    headers = {}
    if page * size < len(items):
        query = dict(request.query_params) | {"page": str(page + 1), "per_page": str(size)}
        link = request.url.replace_query_params(**query)
        headers = {"Link": f'<{link}>; rel="next"', "X-Next-Page": str(page + 1)}
    body: Any = {"total_count": len(items), key: chunk} if key else chunk
    return JSONResponse(body, headers=headers)


def _missing(message: str = "Not Found") -> Response:
    return JSONResponse({"message": message}, status_code=404)


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def _guarded(fake: FakeGitHub | FakeGitLab, route: Route) -> Route:
    """The route, with its call recorded and its token checked first (the fake's `_authorized`)."""
    handler = route.endpoint

    async def endpoint(request: Request) -> Response:
        fake.calls.append(f"{request.method} {request.url.path}")
        refused = fake._authorized(request)
        return refused if refused is not None else await handler(request)

    return Route(route.path, endpoint, methods=list(route.methods or ()), name=route.name)


# -- GitHub ---------------------------------------------------------------------------------------

_LEGACY = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
}


@dataclass
class FakeGitHub:
    repository: str = "acme/models"
    token: str = "ghs_fake_token_for_tests"
    #: login -> user id; the workflow's token acts as github-actions[bot].
    users: dict[str, int] = field(default_factory=lambda: {"github-actions[bot]": 41898282})
    #: login -> role on the repository (admin, maintain, write, triage, read).
    roles: dict[str, str] = field(default_factory=dict)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    #: artifact id -> zip archive.
    archives: dict[int, bytes] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    clock: Clock = field(default_factory=Clock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    # -- what a test does -------------------------------------------------------------------

    def user(self, login: str, role: str | None = None) -> dict[str, Any]:
        self.users.setdefault(login, next(self._ids))
        if role:
            self.roles[login] = role
        return {"login": login, "id": self.users[login], "type": "User"}

    def open_pull(self, number: int, author: str, head: str, *, fork: str | None = None) -> None:
        repo = {"full_name": fork or self.repository}
        self.pulls[number] = {
            "number": number,
            "state": "open",
            "user": self.user(author),
            "head": {"sha": head, "ref": f"change-{number}", "repo": repo},
            "base": {"ref": "main", "repo": {"full_name": self.repository}},
            "merged_at": None,
            "merge_commit_sha": None,
        }

    def push(self, number: int, head: str) -> None:
        self.pulls[number]["head"]["sha"] = head

    def review(self, number: int, login: str, state: str, body: str = "") -> None:
        commit = self.pulls[number]["head"]["sha"]
        self.reviews.setdefault(number, []).append(
            {
                "id": next(self._ids),
                "user": self.user(login),
                "state": state,
                "body": body,
                "commit_id": commit,
                "submitted_at": self.clock.now(),
            }
        )

    def merge(self, number: int, merge_sha: str) -> None:
        self.pulls[number] |= {"state": "closed", "merged_at": self.clock.now()}
        self.pulls[number]["merge_commit_sha"] = merge_sha

    def upload(self, head: str, name: str, files: dict[str, bytes]) -> int:
        """A successful pull_request run on `head` that kept artifact `name`."""
        artifact = next(self._ids)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for path, data in files.items():
                archive.writestr(path, data)
        self.archives[artifact] = buffer.getvalue()
        run = {"id": next(self._ids), "head_sha": head, "event": "pull_request"}
        self.runs.append(run | {"status": "success", "artifacts": [(artifact, name)]})
        return artifact

    # -- the API ----------------------------------------------------------------------------

    def app(self) -> Starlette:
        base = "/repos/{owner}/{repo}"
        routes = [
            Route(base + "/pulls/{n:int}", self._pull),
            Route(base + "/pulls/{n:int}/reviews", self._reviews),
            Route(base + "/collaborators/{login}/permission", self._permission),
            Route(base + "/commits/{sha}/pulls", self._commit_pulls),
            Route(base + "/issues/{n:int}/comments", self._comments, methods=["GET", "POST"]),
            Route(base + "/issues/comments/{id:int}", self._edit_comment, methods=["PATCH"]),
            Route(base + "/actions/runs", self._runs),
            Route(base + "/actions/runs/{id:int}/artifacts", self._artifacts),
            Route(base + "/actions/artifacts/{id:int}/zip", self._archive, name="archive"),
            Route("/storage/{id:int}", self._storage),
        ]
        return Starlette(routes=[_guarded(self, route) for route in routes])

    def _authorized(self, request: Request) -> Response | None:
        if request.url.path.startswith("/storage/"):
            return None  # the storage URL is signed; GitHub sends no token there
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        owner, repo = request.path_params.get("owner"), request.path_params.get("repo")
        if f"{owner}/{repo}" != self.repository:
            return _missing()
        return None

    async def _pull(self, request: Request) -> Response:
        pull = self.pulls.get(request.path_params["n"])
        return JSONResponse(pull) if pull else _missing()

    async def _reviews(self, request: Request) -> Response:
        return _page(request, self.reviews.get(request.path_params["n"], []))

    async def _permission(self, request: Request) -> Response:
        login = request.path_params["login"]
        if login not in self.users:
            return _missing(f"{login} is not a user")
        role = self.roles.get(login, "read")
        user = {"login": login, "id": self.users[login]}
        return JSONResponse({"permission": _LEGACY[role], "role_name": role, "user": user})

    async def _commit_pulls(self, request: Request) -> Response:
        sha = request.path_params["sha"]
        found = [
            pull
            for pull in self.pulls.values()
            if sha in (pull["merge_commit_sha"], pull["head"]["sha"])
        ]
        return _page(request, found)

    async def _comments(self, request: Request) -> Response:
        number = request.path_params["n"]
        if request.method == "GET":
            return _page(request, self.comments.get(number, []))
        body = (await request.json())["body"]
        if len(body) > 65536:
            return JSONResponse({"message": "Validation Failed: body is too long"}, 422)
        comment = {
            "id": next(self._ids),
            "body": body,
            "user": self.user("github-actions[bot]") | {"type": "Bot"},
            "html_url": f"https://github.invalid/{self.repository}/pull/{number}#c",
        }
        self.comments.setdefault(number, []).append(comment)
        return JSONResponse(comment, status_code=201)

    async def _edit_comment(self, request: Request) -> Response:
        for comment in itertools.chain.from_iterable(self.comments.values()):
            if comment["id"] == request.path_params["id"]:
                if comment["user"]["login"] != "github-actions[bot]":
                    return JSONResponse({"message": "Forbidden"}, status_code=403)
                comment["body"] = (await request.json())["body"]
                return JSONResponse(comment)
        return _missing()

    async def _runs(self, request: Request) -> Response:
        query = request.query_params
        found = [
            {key: run[key] for key in ("id", "head_sha", "event", "status")}
            for run in self.runs
            if all(query.get(key, run[key]) == run[key] for key in ("head_sha", "event", "status"))
        ]
        return _page(request, found, key="workflow_runs")

    async def _artifacts(self, request: Request) -> Response:
        name = request.query_params.get("name")
        found = [
            {
                "id": artifact,
                "name": artifact_name,
                "expired": False,
                "archive_download_url": str(
                    request.url_for(
                        "archive",
                        owner=request.path_params["owner"],
                        repo=request.path_params["repo"],
                        id=artifact,
                    )
                ),
            }
            for run in self.runs
            if run["id"] == request.path_params["id"]
            for artifact, artifact_name in run["artifacts"]
            if name in (None, artifact_name)
        ]
        return _page(request, found, key="artifacts")

    async def _archive(self, request: Request) -> Response:
        artifact = request.path_params["id"]
        if artifact not in self.archives:
            return _missing()
        return RedirectResponse(f"/storage/{artifact}", status_code=302)

    async def _storage(self, request: Request) -> Response:
        return Response(self.archives[request.path_params["id"]], media_type="application/zip")


# -- GitLab ---------------------------------------------------------------------------------------


@dataclass
class FakeGitLab:
    project: int = 7
    api_token: str = "glpat-fake-token-for-tests"
    job_token: str = "glcbt-fake-job-token"
    #: The project access token's bot user: the plan notes are its.
    bot: dict[str, Any] = field(default_factory=lambda: {"id": 900, "username": "project_7_bot"})
    #: user id -> access level (30 Developer, 40 Maintainer, 50 Owner).
    members: dict[int, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    #: Eligible approvers of the approval rules (Premium); None: the Free tier (404).
    eligible: set[int] | None = None
    mrs: dict[int, dict[str, Any]] = field(default_factory=dict)
    versions: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    approved: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    #: job id -> {path: bytes}
    job_files: dict[int, dict[str, bytes]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    clock: Clock = field(default_factory=Clock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    def user(self, name: str, level: int | None = None) -> dict[str, Any]:
        self.users.setdefault(name, next(self._ids))
        if level is not None:
            self.members[self.users[name]] = level
        return {"id": self.users[name], "username": name}

    def open_mr(self, iid: int, author: str, head: str, *, fork: int | None = None) -> None:
        self.mrs[iid] = {
            "iid": iid,
            "project_id": self.project,
            "state": "opened",
            "author": self.user(author),
            "sha": head,
            "source_project_id": fork or self.project,
            "target_project_id": self.project,
            "target_branch": "main",
            "merge_commit_sha": None,
            "squash_commit_sha": None,
        }
        self.versions[iid] = [
            {"id": next(self._ids), "head_commit_sha": head, "created_at": self.clock.now()}
        ]

    def push(self, iid: int, head: str) -> None:
        self.mrs[iid]["sha"] = head
        version = {"id": next(self._ids), "head_commit_sha": head, "created_at": self.clock.now()}
        self.versions[iid].insert(0, version)  # newest first, as GitLab lists them

    def approve(self, iid: int, name: str) -> None:
        user = self.user(name)
        self.approved.setdefault(iid, []).append({"user": user})
        self._note(iid, user, "approved this merge request", system=True)

    def comment(self, iid: int, name: str, body: str) -> None:
        self._note(iid, self.user(name), body, system=False)

    def merge(self, iid: int, merge_sha: str) -> None:
        self.mrs[iid] |= {"state": "merged", "merge_commit_sha": merge_sha}

    def _note(self, iid: int, author: dict[str, Any], body: str, *, system: bool) -> dict[str, Any]:
        note = {
            "id": next(self._ids),
            "body": body,
            "author": author,
            "system": system,
            "created_at": self.clock.now(),
        }
        self.notes.setdefault(iid, []).append(note)
        return note

    def app(self) -> Starlette:
        base = "/api/v4/projects/{project:int}"
        mr = base + "/merge_requests/{iid:int}"
        routes = [
            Route("/api/v4/user", self._me),
            Route(mr, self._mr),
            Route(mr + "/approvals", self._approvals),
            Route(mr + "/approval_state", self._approval_state),
            Route(mr + "/versions", self._versions),
            Route(mr + "/notes", self._notes, methods=["GET", "POST"]),
            Route(mr + "/notes/{note:int}", self._edit_note, methods=["PUT"]),
            Route(base + "/members/all/{user:int}", self._member),
            Route(base + "/repository/commits/{sha}/merge_requests", self._commit_mrs),
            Route(base + "/jobs/{job:int}/artifacts/{path:path}", self._artifact),
        ]
        return Starlette(routes=[_guarded(self, route) for route in routes])

    def _authorized(self, request: Request) -> Response | None:
        if request.headers.get("private-token") == self.api_token:
            pass
        elif request.headers.get("job-token") == self.job_token and "/artifacts/" in str(
            request.url.path
        ):
            pass  # the job token reaches the job artifacts API, not the others
        else:
            return JSONResponse({"message": "401 Unauthorized"}, status_code=401)
        project = request.path_params.get("project")
        if project is not None and project != self.project:
            return _missing("404 Project Not Found")
        return None

    async def _me(self, request: Request) -> Response:
        return JSONResponse(self.bot)

    async def _mr(self, request: Request) -> Response:
        found = self.mrs.get(request.path_params["iid"])
        return JSONResponse(found) if found else _missing("404 Merge Request Not Found")

    async def _approvals(self, request: Request) -> Response:
        iid = request.path_params["iid"]
        return JSONResponse({"iid": iid, "approved_by": self.approved.get(iid, [])})

    async def _approval_state(self, request: Request) -> Response:
        if self.eligible is None:
            return _missing()
        users = [{"id": user} for user in sorted(self.eligible)]
        return JSONResponse({"rules": [{"name": "platform", "eligible_approvers": users}]})

    async def _versions(self, request: Request) -> Response:
        return _page(request, self.versions.get(request.path_params["iid"], []))

    async def _notes(self, request: Request) -> Response:
        iid = request.path_params["iid"]
        if request.method == "GET":
            return _page(request, self.notes.get(iid, []))
        note = self._note(iid, self.bot, (await request.json())["body"], system=False)
        return JSONResponse(note, status_code=201)

    async def _edit_note(self, request: Request) -> Response:
        for note in self.notes.get(request.path_params["iid"], []):
            if note["id"] == request.path_params["note"]:
                if note["author"]["id"] != self.bot["id"]:
                    return JSONResponse({"message": "403 Forbidden"}, status_code=403)
                note["body"] = (await request.json())["body"]
                return JSONResponse(note)
        return _missing("404 Note Not Found")

    async def _member(self, request: Request) -> Response:
        level = self.members.get(request.path_params["user"])
        if level is None:
            return _missing("404 Member Not Found")
        return JSONResponse({"id": request.path_params["user"], "access_level": level})

    async def _commit_mrs(self, request: Request) -> Response:
        sha = request.path_params["sha"]
        found = [mr for mr in self.mrs.values() if sha in (mr["merge_commit_sha"], mr["sha"])]
        return _page(request, found)

    async def _artifact(self, request: Request) -> Response:
        files = self.job_files.get(request.path_params["job"], {})
        data = files.get(request.path_params["path"])
        return Response(data) if data is not None else _missing("404 Not found")
