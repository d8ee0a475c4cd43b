"""Which approvals count for a plan digest: the rules, pure, the same for both forges.

An approval counts only when all of these hold, checked in this order (the cheap ones first; the
rights take a call to the forge for each approver left):

1. it is not by the pull request's author (nobody approves their own change);
2. it was given for the current head (GitHub: the review's `commit_id`; GitLab: approved after
   the push that made the head), so a push after the approval needs a new one;
3. it covers the digest (GitHub: the review's text names it; GitLab: the plan note the pipeline
   posted for that head names it, since GitLab approvals carry no text);
4. the approver has the rights (GitHub: write, maintain or admin; GitLab: Maintainer or higher,
   or an eligible approver of one of the merge request's approval rules).

`judge` returns the approvals that count and, for those that do not, why: the refusal quotes
each reason, so a reviewer sees what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from reconcile.forge import DIGEST, ForgeError, short


@dataclass(frozen=True)
class Approval:
    """One approval as the forge reported it."""

    #: The approver's login (GitHub) or username (GitLab), as shown in messages.
    user: str
    #: The approver's id on the forge (what the author is compared with).
    user_id: str
    #: The head commit the approval was given for; None when the forge cannot tell.
    commit: str | None
    #: The plan digests the approval covers.
    digests: frozenset[str]


@dataclass(frozen=True)
class Verdict:
    digest: str
    accepted: tuple[Approval, ...]
    refused: tuple[str, ...]


def digests_in(text: str) -> frozenset[str]:
    """The plan digests a review or note names (`sha256:` and 64 hex digits, lower case)."""
    return frozenset(DIGEST.findall(text or ""))


def _plain_reason(approval: Approval, *, digest: str, author_id: str, head: str) -> str | None:
    if approval.user_id == author_id:
        return "is the author of the change: nobody approves their own change"
    if approval.commit != head:
        given = f"commit {short(approval.commit)}" if approval.commit else "an earlier commit"
        return f"approved {given}, before the last push (head {short(head)}): approve again"
    if digest not in approval.digests:
        if approval.digests:
            other = ", ".join(sorted(d[:19] + "…" for d in approval.digests))
            return f"approved another plan ({other}), not {digest[:19]}…"
        return f"does not name the plan digest {digest}"
    return None


def check_digest(digest: str) -> str:
    if not DIGEST.fullmatch(digest):
        raise ForgeError(
            f"{digest[:80]!r} is not a plan digest",
            hint="give the plan's digest as `reconcile plan` prints it: sha256: and 64 hex digits",
        )
    return digest


def judge(
    approvals: Iterable[Approval],
    *,
    digest: str,
    author_id: str,
    head: str,
    rights: Callable[[Approval], str | None],
) -> Verdict:
    """Sort approvals into those that count for `digest` and the reasons of the others.
    `rights(approval)` is None when the approver may approve, else why not."""
    check_digest(digest)
    accepted: list[Approval] = []
    refused: list[str] = []
    for approval in approvals:
        reason = _plain_reason(approval, digest=digest, author_id=author_id, head=head)
        if reason is None:
            reason = rights(approval)
        if reason is None:
            accepted.append(approval)
        else:
            refused.append(f"@{approval.user} {reason}")
    return Verdict(digest=digest, accepted=tuple(accepted), refused=tuple(refused))


def require(verdict: Verdict, *, change: str) -> Sequence[Approval]:
    """The approvals that count, or a refusal that says why none does."""
    if verdict.accepted:
        return verdict.accepted
    why = "; ".join(verdict.refused) if verdict.refused else "nobody approved it"
    raise ForgeError(
        f"plan {verdict.digest} is not approved for {change}: {why}",
        hint="a maintainer who is not the author approves the current head, quoting the digest "
        "(GitHub: in the approving review; GitLab: approve the merge request after the plan note)",
    )
