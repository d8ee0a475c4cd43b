"""The forge a GitOps pipeline runs on (GitHub, GitLab): verified approvals, the plan comment,
and the reviewed plan handed from the pull request's pipeline to the apply after the merge.

`reconcile forge COMMAND` (or `python -m reconcile.forge COMMAND`) runs each step on its own
(`__main__.py`); the pipelines in `action/` and `ci/gitlab/` call it. Everything the forge says
is checked, not trusted: who approved (their rights, not the author, after the last push), which
digest, which plan file.
A refusal or a failed call is a `ForgeError`: one line with the call, its status and the fix.
"""

from __future__ import annotations

import re

from reconcile.errors import ReconcileError

#: A plan digest as `reconcile plan` writes it and a reviewer quotes it.
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class ForgeError(ReconcileError):
    """A forge call failed, or the forge's answer does not allow the step (no valid approval, a
    fork pull request, a push that did not come through a merged pull request)."""

    def __str__(self) -> str:
        # One line: a pipeline log shows the call, the answer and the fix together.
        return f"{self.message} (fix: {self.hint})" if self.hint else self.message


def short(sha: str | None) -> str:
    """A commit as people read it in a forge's web page."""
    return (sha or "?")[:12]


def not_merged(sha: str, branch: str, change: str) -> ForgeError:
    """The refusal of a push that no merged pull (merge) request made."""
    return ForgeError(
        f"commit {short(sha)} on {branch} did not come through a merged {change}: "
        "nothing is applied",
        hint=f"change the manifests through a {change} whose plan was approved; protect the "
        "branch so that nobody pushes to it directly",
    )
