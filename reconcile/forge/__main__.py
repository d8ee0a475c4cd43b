"""`reconcile forge COMMAND` (or `python -m reconcile.forge COMMAND`): the forge steps of a
GitOps pipeline, each on its own.

    check        refuse a fork's pull request before planning (it gets no secrets)
    comment      post the plan comment, or update the one posted before (found by its marker)
    fetch-plan   for a push: the merged pull request's reviewed plan file, or a refusal
    approval     print the plan digest if a verified approval covers it, else refuse

Exit codes: 0 done; 1 refused or a forge call failed (one line on stderr: the call, its status,
the fix); 2 bad usage; 70 a bug (one line, please report). The token is read from the
environment variable `--token-env` names and never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from reconcile.errors import ReconcileError
from reconcile.files import write_atomically
from reconcile.forge import ForgeError, github, gitlab
from reconcile.forge.approval import Verdict, check_digest, require
from reconcile.forge.comment import DEFAULT_BUDGET, plan_comment
from reconcile.plan import Plan
from reconcile.streams import readers_may_leave

EXIT_REFUSED = 1
EXIT_BUG = 70
APPROVE = {
    "github": "To apply it, approve the pull request with this digest in the review's text; "
    "a push after that needs a new approval.",
    "gitlab": "To apply it, a Maintainer (or an eligible approver) who is not the author "
    "approves the merge request after this note; a push after that needs a new approval.",
}


class Forge(Protocol):
    name: str

    def close(self) -> None: ...
    def change_of_job(self, number: int | None = None) -> dict[str, Any]: ...
    def refuse_fork(self, change: Mapping[str, Any]) -> None: ...
    def verify(self, change: Mapping[str, Any], digest: str) -> Verdict: ...
    def upsert_comment(self, change: Mapping[str, Any], marker: str, body: str) -> str: ...
    def fetch_plan(self, change: Mapping[str, Any], *, artifact: str, member: str) -> bytes: ...


def _github(env: Mapping[str, str], args: argparse.Namespace) -> github.GitHub:
    event: dict[str, Any] = {}
    if env.get("GITHUB_EVENT_PATH"):
        try:
            event = json.loads(Path(env["GITHUB_EVENT_PATH"]).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ForgeError(f"cannot read the event payload GITHUB_EVENT_PATH: {exc}") from None
    default = (event.get("repository") or {}).get("default_branch")
    job = github.Job(
        repository=_required(env, "GITHUB_REPOSITORY"),
        event_name=env.get("GITHUB_EVENT_NAME", ""),
        event=event,
        sha=env.get("GITHUB_SHA", ""),
        branch=args.branch or default or env.get("GITHUB_REF_NAME", "main"),
    )
    rest = github.connect(env, token_env=args.token_env or "GITHUB_TOKEN")
    return github.GitHub(rest, job, commenter=args.commenter or github.DEFAULT_COMMENTER)


def _gitlab(env: Mapping[str, str], args: argparse.Namespace) -> gitlab.GitLab:
    iid = env.get("CI_MERGE_REQUEST_IID", "")
    job = gitlab.Job(
        project=_required(env, "CI_PROJECT_ID"),
        merge_request=int(iid) if iid.isdigit() else None,
        sha=env.get("CI_COMMIT_SHA", ""),
        branch=args.branch or env.get("CI_DEFAULT_BRANCH", "main"),
        job_id=env.get("CI_JOB_ID", "0"),
    )
    rest = gitlab.connect(env, token_env=args.token_env or "GITLAB_API_TOKEN")
    artifacts = None
    if env.get("CI_JOB_TOKEN"):
        artifacts = gitlab.connect(env, token_env="CI_JOB_TOKEN", job_token=True)
    return gitlab.GitLab(rest, job, artifacts=artifacts)


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ForgeError(
            f"environment variable {name} is not set: this step runs in the CI job it is for",
            hint=f"run it in a GitHub Actions or GitLab CI job, or set {name}",
        )
    return value


def _forge_name(env: Mapping[str, str], args: argparse.Namespace) -> str:
    if args.forge:
        return str(args.forge)
    if env.get("GITHUB_ACTIONS") == "true":
        return "github"
    if env.get("GITLAB_CI") == "true":
        return "gitlab"
    raise ForgeError(
        "which forge is this? neither GITHUB_ACTIONS nor GITLAB_CI is set",
        hint="give --forge github or --forge gitlab",
    )


def _read_plan(path: str) -> Plan:
    try:
        data = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ForgeError(
            f"cannot read the plan file {path}: {exc.strerror}",
            hint="make it with `reconcile plan -o` (or fetch it with `fetch-plan`)",
        ) from None
    return Plan.from_json(data, source=path)


# -- the commands -------------------------------------------------------------------------------


def _check(forge: Forge, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    change = forge.change_of_job(args.number)
    forge.refuse_fork(change)
    print(f"{forge.name}: #{change.get('iid', change.get('number'))} comes from this repository")
    return 0


def _comment(forge: Forge, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    plan = _read_plan(args.plan)
    change = forge.change_of_job(args.number)
    forge.refuse_fork(change)
    head = args.head or _head(forge, change, env)
    job = args.job or env.get("CI_JOB_ID") or env.get("GITHUB_RUN_ID") or "0"
    mark, body = plan_comment(
        plan,
        head=head,
        job=job,
        approve=APPROVE[args.forge_name],
        full_plan=args.full_plan or _full_plan_url(env),
        budget=args.budget,
    )
    print(forge.upsert_comment(change, mark, body))
    return 0


def _head(forge: Forge, change: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """The commit the plan was made on: the pull request's head for GitHub's pull_request
    event (GITHUB_SHA is a merge commit there), the pipeline's head for GitLab."""
    if forge.name == "GitHub":
        return str((change.get("head") or {}).get("sha"))
    return env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA") or env.get("CI_COMMIT_SHA") or ""


def _full_plan_url(env: Mapping[str, str]) -> str:
    if env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        run = f"{env.get('GITHUB_REPOSITORY')}/actions/runs/{env['GITHUB_RUN_ID']}"
        return f"{server}/{run} (artifacts)"
    if env.get("CI_JOB_URL"):
        return f"{env['CI_JOB_URL']}/artifacts/browse"
    return ""


def _fetch_plan(forge: Forge, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    change = forge.change_of_job(args.number)
    forge.refuse_fork(change)
    data = forge.fetch_plan(change, artifact=args.artifact, member=args.member)
    plan = Plan.from_bytes(data, source=args.member)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, data)
    number = change.get("iid", change.get("number"))
    print(f"{forge.name}: plan {plan.plan_digest} of #{number} written to {out}", file=sys.stderr)
    return 0


def _approval(forge: Forge, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    digest = check_digest(args.digest or _read_plan(args.plan).plan_digest)
    change = forge.change_of_job(args.number)
    forge.refuse_fork(change)
    number = change.get("iid", change.get("number"))
    approvals = require(forge.verify(change, digest), change=f"#{number}")
    names = ", ".join(f"@{a.user}" for a in approvals)
    print(f"{forge.name}: plan {digest} of #{number} approved by {names}", file=sys.stderr)
    print(digest)
    return 0


COMMANDS = {"check": _check, "comment": _comment, "fetch-plan": _fetch_plan, "approval": _approval}


def parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--forge", choices=["github", "gitlab"], help="default: from the CI's environment"
    )
    common.add_argument(
        "--token-env",
        metavar="NAME",
        help="the variable holding the API token (GITHUB_TOKEN; GITLAB_API_TOKEN)",
    )
    common.add_argument(
        "--pr", "--mr", dest="number", type=int, help="the pull/merge request (default: the job's)"
    )
    common.add_argument(
        "--branch", help="the branch applies come from (default: the default branch)"
    )
    common.add_argument("--commenter", help="GitHub: the login that posts the plan comment")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", parents=[common], help="refuse a fork's pull request")
    comment = commands.add_parser(
        "comment", parents=[common], help="post or update the plan comment"
    )
    comment.add_argument("--plan", required=True, help="the plan file (reconcile plan -o)")
    comment.add_argument(
        "--full-plan", help="where the full plan is (default: the run's artifacts)"
    )
    comment.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help="characters at most")
    comment.add_argument("--head", help="the commit planned (default: the job's)")
    comment.add_argument("--job", help="the job keeping the plan artifact (default: this job)")
    fetch = commands.add_parser("fetch-plan", parents=[common], help="the reviewed plan of a merge")
    fetch.add_argument("--out", required=True, help="where to write the plan file")
    fetch.add_argument("--artifact", default="reconcile-plan", help="GitHub: the artifact's name")
    fetch.add_argument("--member", default="plan.json", help="the plan file in the artifact")
    approval = commands.add_parser("approval", parents=[common], help="verify the plan's approval")
    which = approval.add_mutually_exclusive_group(required=True)
    which.add_argument("--digest", help="the plan digest (sha256:...)")
    which.add_argument("--plan", help="the plan file whose digest must be approved")
    return parser


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    prog: str = "python -m reconcile.forge",
) -> int:
    with readers_may_leave():
        return _main(argv, os.environ if env is None else env, prog)


def _main(argv: Sequence[str] | None, env: Mapping[str, str], prog: str) -> int:
    try:
        args = parser(prog).parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        args.forge_name = _forge_name(env, args)
        forge: Forge = _github(env, args) if args.forge_name == "github" else _gitlab(env, args)
        try:
            return COMMANDS[args.command](forge, args, env)
        finally:
            forge.close()
    except ReconcileError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # the edge: one line, never a traceback
        print(
            f"error: unexpected {type(error).__name__} in reconcile.forge; please report it "
            "with the job's log",
            file=sys.stderr,
        )
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
