"""The plan comment: one per pull request and set of providers, found by a hidden marker and
updated in place, that says first what a reviewer must see whatever the plan's size.

`plan_sections` reads the plan (the JSON file `reconcile plan -o` writes, not the markdown
renderer's output) into sections in the order of what matters; `fit_comment` (pure) fits them
into a character budget: the summary (deletes by kind), the digest and every blocked and
ambiguous object are always kept; then the deletes grouped by model; then the rest (drift, what
is kept). What did not fit is counted, with the address of the full plan.

The body's first line is the marker, its second the facts the apply step reads back from a
GitLab note (digest, head commit, the job that holds the plan file); both are HTML comments, not
shown. Only those two lines are ever parsed: text from a platform is in the rows below them,
escaped, one row a line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reconcile.forge import DIGEST
from reconcile.plan import Change, Kind, Plan, Reason
from reconcile.render import count
from reconcile.render.markdown import code, text

#: GitHub refuses a comment over 65,536 characters; GitLab's notes take 1,000,000, but a
#: reviewer reads: one budget for both, with room for the marker and the notes below it.
DEFAULT_BUDGET = 60_000
MARKER_PREFIX = "<!-- reconcile-plan:"
_FACTS = re.compile(
    r"<!-- reconcile-facts digest:(sha256:[0-9a-f]{64}) head:([0-9a-f]{7,64}) job:([0-9]+) -->"
)
_KEY = re.compile(r"[^A-Za-z0-9_.,-]+")


@dataclass(frozen=True)
class Section:
    """A part of the comment: a heading and rows (one markdown line each)."""

    heading: str
    rows: tuple[str, ...]
    #: Kept whole whatever the budget (the summary, the digest, what is blocked).
    keep: bool = False
    #: What a row is, for the note of what was left out ("models with deletes").
    noun: str = "rows"
    #: Shorter rows to use for a kept section when the full rows do not fit.
    compact: tuple[str, ...] = ()


@dataclass(frozen=True)
class NoteFacts:
    digest: str
    head: str
    #: The CI job that made the plan and keeps it as an artifact ("0": not said).
    job: str


def marker(plan: Plan) -> str:
    """The hidden first line that finds this comment again: one per set of providers."""
    key = _KEY.sub("_", ",".join(sorted(scope.provider for scope in plan.scopes))) or "none"
    return f"{MARKER_PREFIX}{key} -->"


def facts_line(digest: str, head: str, job: str) -> str:
    if not DIGEST.fullmatch(digest) or not re.fullmatch(r"[0-9a-f]{7,64}", head):
        raise ValueError("a plan note's facts are a digest and a commit")
    return f"<!-- reconcile-facts digest:{digest} head:{head} job:{int(job or 0)} -->"


def note_facts(body: str) -> NoteFacts | None:
    """The facts of a plan comment, read from its second line only; None for other comments."""
    lines = body.split("\n", 2)
    if len(lines) < 2 or not lines[0].startswith(MARKER_PREFIX):
        return None
    found = _FACTS.fullmatch(lines[1].strip())
    return NoteFacts(*found.groups()) if found else None


# -- the sections of a plan ---------------------------------------------------------------------


def _summary(plan: Plan) -> Section:
    deletes = plan.deletes()
    models = [c for c in deletes if c.kind is Kind.MODEL]
    with_models = sum(len(c.version_ids) for c in models)
    versions = len(deletes) - len(models)
    blocked = [c for c in plan.resource_changes if c.action_reason is Reason.IN_USE]
    ambiguous = [c for c in plan.resource_changes if c.action_reason is Reason.AMBIGUOUS]
    objects = len(deletes) + with_models
    title = f"### reconcile plan: {count(objects, 'object')} to delete"
    along = f" (with {count(with_models, 'version')})" if with_models else ""
    rows = [
        f"**To delete: {count(objects, 'object')} in all**: {count(len(models), 'model')} "
        f"whole{along}, and {count(versions, 'version')} of models that stay.",
        f"**Never deleted: {len(blocked)} blocked** (an inference service uses them) and "
        f"**{len(ambiguous)} ambiguous** (several live objects answer to one declared name): "
        "all listed below.",
        f"Drifted: {len(plan.drift)}; kept by protect or retention rules: "
        f"{sum(1 for c in plan.resource_changes if c.is_kept)}.",
    ]
    rows += [f"> **Warning:** {text(warning)}" for warning in plan.warnings]
    return Section(title, tuple(rows), keep=True)


def _digest(plan: Plan, approve: str) -> Section:
    row = f"Plan digest: {code(plan.plan_digest)}. {approve}"
    return Section("", (row,), keep=True)


def _services(change: Change) -> str:
    return ", ".join(f"{code(s.id)} ({code(s.name)}, {text(s.status)})" for s in change.blocked_by)


def _blocked(plan: Plan) -> Section:
    held = sorted(
        (c for c in plan.resource_changes if c.is_blocked), key=lambda c: (c.provider, c.address)
    )
    rows, compact = [], []
    for change in held:
        what = f"- {change.kind.value} {code(change.address)} **{change.action_reason.value}**"
        why = f"used by {_services(change)}" if change.blocked_by else text(change.detail)
        rows.append(f"{what}: {why}")
        compact.append(f"- {code(change.address)} {change.action_reason.value}")
    heading = f"#### Blocked and ambiguous: {len(held)}, never deleted" if held else ""
    return Section(heading, tuple(rows), keep=True, noun="blocked objects", compact=tuple(compact))


def _model_rows(deletes: Sequence[Change]) -> list[str]:
    groups: dict[tuple[str, str], list[Change]] = {}
    for change in deletes:
        model = change.id if change.kind is Kind.MODEL else (change.model_id or "")
        groups.setdefault((change.provider, model), []).append(change)
    rows = []
    for (provider, _), changes in sorted(groups.items()):
        whole = [c for c in changes if c.kind is Kind.MODEL]
        if whole:
            taken = len(whole[0].version_ids)
            with_its = f", with its {count(taken, 'version')}" if taken else ""
            rows.append(
                f"- {code(whole[0].address)}: the model{with_its} ({whole[0].action_reason.value})"
            )
            continue
        first = changes[0]
        names = ", ".join(code(c.name) for c in sorted(changes, key=lambda c: c.name))
        reasons = ", ".join(sorted({c.action_reason.value for c in changes}))
        rows.append(
            f"- {code(provider)} model {code(first.model_name or '')}: "
            f"{count(len(changes), 'version')} ({reasons}): {names}"
        )
    return rows


def _rest(plan: Plan) -> Section:
    rows = [
        f"- drift {item.drift.value}: {item.kind.value} {code(item.address)}: {text(item.detail)}"
        for item in plan.drift
    ]
    rows += [
        f"- kept {change.kind.value} {code(change.address)} ({change.action_reason.value})"
        for change in sorted(plan.resource_changes, key=lambda c: c.address)
        if change.is_kept
    ]
    return Section("#### Drift, and what is kept", tuple(rows), noun="drift and kept rows")


def _caused(plan: Plan) -> list[Section]:
    """With `plan --base`: first, what this change causes (the rest came from outside git)."""
    labels = plan.attribution
    if labels is None:
        return []
    lead = (
        f"**This change causes {count(len(labels.caused_by_change), 'delete')}** (declared or "
        f"kept before it, against {code(labels.base)}); "
        f"{count(len(labels.already_undeclared), 'delete')} were already undeclared before it "
        "(drift from outside git)."
    )
    return [
        Section("#### What this change causes", (lead,), keep=True),
        Section(
            "",
            tuple(f"- delete {code(address)}" for address in labels.caused_by_change),
            noun="deletes this change causes",
        ),
    ]


def plan_sections(plan: Plan, *, approve: str) -> list[Section]:
    """The plan's sections in the order of what a reviewer must see. `approve` says how to
    approve it on this forge."""
    deletes = _model_rows(plan.deletes())
    return [
        _summary(plan),
        *_caused(plan),
        _digest(plan, approve),
        _blocked(plan),
        Section("#### Deletes by model", tuple(deletes), noun="models with deletes"),
        _rest(plan),
    ]


# -- fitting ------------------------------------------------------------------------------------


def _block(heading: str, rows: Iterable[str]) -> str:
    return "\n".join(([heading, ""] if heading else []) + list(rows))


def _size(parts: Iterable[str]) -> int:
    return sum(len(part) + 2 for part in parts)


def _kept(sections: Sequence[Section], room: int) -> tuple[list[str], list[str]]:
    """The kept sections (compact where the full rows do not fit), and what they left out."""
    full = [_block(s.heading, s.rows) for s in sections]
    if _size(full) <= room:
        return full, []
    parts: list[str] = []
    left: list[str] = []
    for section in sections:
        rows = list(section.compact or section.rows)
        while rows and _size([*parts, _block(section.heading, rows)]) > room and section.compact:
            rows.pop()
        parts.append(_block(section.heading, rows))
        if len(rows) < len(section.rows):
            left.append(f"{len(section.rows) - len(rows)} of {len(section.rows)} {section.noun}")
    return parts, left


def fit_comment(
    sections: Sequence[Section], budget: int = DEFAULT_BUDGET, *, full_plan: str = ""
) -> str:
    """The comment: kept sections whole, then the others row by row in order while the budget
    lasts, then a note of what was left out and where the full plan is."""
    footer_room = 400 + len(full_plan)
    kept, left = _kept([s for s in sections if s.keep], budget - footer_room)
    parts = list(kept)
    full = False
    for section in sections:
        if section.keep or not section.rows:
            continue
        rows: list[str] = []
        for row in section.rows:
            if (
                full
                or _size([*parts, _block(section.heading, [*rows, row])]) > budget - footer_room
            ):
                full = True
                break
            rows.append(row)
        if rows:
            parts.append(_block(section.heading, rows))
        if len(rows) < len(section.rows):
            left.append(f"{len(section.rows) - len(rows)} of {len(section.rows)} {section.noun}")
    where = f"the full plan: {full_plan}" if full_plan else "the full plan is the plan file"
    if left:
        parts.append(f"**Left out to fit this comment:** {'; '.join(left)}. Read {where}.")
    elif full_plan:
        parts.append(f"<sub>{where[0].upper()}{where[1:]}</sub>")
    return "\n\n".join(parts) + "\n"


def plan_comment(
    plan: Plan, *, head: str, job: str, approve: str, full_plan: str, budget: int = DEFAULT_BUDGET
) -> tuple[str, str]:
    """The marker and the whole body of the plan comment."""
    mark = marker(plan)
    head_lines = f"{mark}\n{facts_line(plan.plan_digest, head, job)}\n\n"
    body = fit_comment(
        plan_sections(plan, approve=approve), budget - len(head_lines), full_plan=full_plan
    )
    return mark, head_lines + body
