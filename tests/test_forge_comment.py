"""The plan comment: whatever the plan's size, the summary, the digest and every blocked and
ambiguous object are in it; then the deletes by model; then the rest; and it says what it left
out and where the full plan is. Pure: no forge here (see test_forge_github/gitlab for posting)."""

from __future__ import annotations

import re

from reconcile.forge.comment import (
    Section,
    fit_comment,
    marker,
    note_facts,
    plan_comment,
    plan_sections,
)
from reconcile.model import ServiceUse
from reconcile.plan import Action, Change, Kind, Plan, ProviderScope, Reason, Summary

HEAD = "a1" * 20


def _change(
    provider: str,
    kind: Kind,
    ident: str,
    name: str,
    reason: Reason,
    *,
    model: tuple[str, str] | None = None,
    versions: tuple[str, ...] = (),
    services: tuple[ServiceUse, ...] = (),
) -> Change:
    delete = reason in (Reason.NOT_IN_MANIFEST, Reason.DECLARED_ABSENT)
    address = f"{provider}/{model[1]}/{name}" if model else f"{provider}/{name}"
    return Change(
        address=address,
        provider=provider,
        kind=kind,
        id=ident,
        name=name,
        model_id=model[0] if model else None,
        model_name=model[1] if model else None,
        actions=(Action.DELETE if delete else Action.NOOP,),
        action_reason=reason,
        detail=f"{reason.value} detail",
        blocked_by=services,
        version_ids=versions,
        state_digest="sha256:" + "1" * 64,
    )


def make_plan(
    *, models: int = 5, versions_each: int = 100, blocked: int = 10, ambiguous: int = 2
) -> Plan:
    """A plan of `models` models whose undeclared versions all go (models x versions_each
    deletes), one whole-model delete, `blocked` versions in use and `ambiguous` models."""
    changes = []
    for m in range(models):
        model = (f"m{m}", f"model-{m}")
        for v in range(versions_each):
            changes.append(
                _change(
                    "fab", Kind.VERSION, f"m{m}v{v}", f"v{v}", Reason.NOT_IN_MANIFEST, model=model
                )
            )
    changes.append(
        _change("fab", Kind.MODEL, "gone", "legacy", Reason.NOT_IN_MANIFEST, versions=("g1", "g2"))
    )
    for b in range(blocked):
        service = ServiceUse(id=f"svc-{b}", name=f"serving-{b}", status="RUNNING", model_id="m0")
        changes.append(
            _change(
                "fab",
                Kind.VERSION,
                f"in-use-{b}",
                f"busy-{b}",
                Reason.IN_USE,
                model=("m0", "model-0"),
                services=(service,),
            )
        )
    for a in range(ambiguous):
        changes.append(_change("fab", Kind.MODEL, f"twin-{a}", f"twin-{a}", Reason.AMBIGUOUS))
    scope = ProviderScope(
        provider="fab",
        type="fabric",
        scope="workspace",
        location="ws",
        fingerprint="sha256:" + "2" * 64,
        models=models,
        versions=0,
    )
    deletes = sum(1 for c in changes if c.is_delete)
    return Plan(
        tool_version="0.1.0",
        manifest_digest="sha256:" + "3" * 64,
        scopes=(scope,),
        resource_changes=tuple(changes),
        summary=Summary(delete=deletes, blocked=blocked + ambiguous),
    ).sealed()


def test_a_500_delete_plan_keeps_every_blocked_object_and_says_what_it_left_out() -> None:
    plan = make_plan(models=5, versions_each=100, blocked=10, ambiguous=2)
    _, body = plan_comment(
        plan,
        head=HEAD,
        job="42",
        approve="Approve it.",
        full_plan="https://ci.invalid/run/1",
        budget=3_000,
    )
    assert len(body) <= 3_000
    for b in range(10):
        assert f"`fab/model-0/busy-{b}`" in body
    assert "`fab/twin-0`" in body and "`fab/twin-1`" in body
    assert plan.plan_digest in body
    assert "503 objects in all" in body  # 500 versions + 1 model + its 2 versions
    assert "1 model whole (with 2 versions), and 500 versions" in body
    assert "Left out to fit this comment" in body and "https://ci.invalid/run/1" in body
    # The order of what matters: summary, digest, blocked, then deletes by model, then the rest.
    assert body.index("Plan digest") < body.index("busy-0") < body.index("Left out")


def test_a_model_deleted_whole_with_no_versions_left_is_not_said_to_take_0_versions() -> None:
    empty = _change("fab", Kind.MODEL, "bare", "bare", Reason.NOT_IN_MANIFEST)
    plan = Plan(
        tool_version="0.1.0",
        manifest_digest="sha256:" + "3" * 64,
        scopes=make_plan().scopes,
        resource_changes=(empty,),
        summary=Summary(delete=1),
    ).sealed()
    _, body = plan_comment(
        plan, head=HEAD, job="42", approve="Approve it.", full_plan="https://ci.invalid/run/1"
    )
    assert "1 model whole, and 0 versions of models that stay" in body
    assert "- `fab/bare`: the model (not_in_manifest)" in body
    assert "0 version" not in body.replace("0 versions of models that stay", "")


def test_the_blocked_list_stays_whole_even_when_the_deletes_alone_would_fill_the_budget() -> None:
    plan = make_plan(models=20, versions_each=500, blocked=30, ambiguous=3)
    body = fit_comment(plan_sections(plan, approve="x"), 60_000, full_plan="URL")
    assert len(body) <= 60_000
    assert all(f"busy-{b}`" in body for b in range(30))
    assert re.search(r"Left out to fit this comment:\*\* \d+ of 21 models with deletes", body)


def test_a_small_plan_fits_whole_and_names_where_the_full_plan_is() -> None:
    plan = make_plan(models=1, versions_each=3, blocked=1, ambiguous=0)
    body = fit_comment(plan_sections(plan, approve="x"), 60_000, full_plan="URL")
    assert "Left out" not in body
    assert "versions (not_in_manifest): `v0`, `v1`, `v2`" in body
    assert "The full plan: URL" in body


def test_kept_sections_fall_back_to_compact_rows_and_then_say_how_many_are_not_listed() -> None:
    rows = tuple(f"- long row {i} " + "x" * 100 for i in range(100))
    compact = tuple(f"- `obj-{i}` in_use" for i in range(100))
    sections = [
        Section("### head", ("summary",), keep=True),
        Section("#### blocked", rows, keep=True, noun="blocked objects", compact=compact),
    ]
    body = fit_comment(sections, 1_000 + 400)
    assert "long row" not in body and "`obj-0` in_use" in body
    assert re.search(r"\d+ of 100 blocked objects", body)


def test_the_marker_and_facts_lead_the_body_and_only_they_are_read_back() -> None:
    plan = make_plan(models=1, versions_each=1, blocked=0, ambiguous=0)
    mark, body = plan_comment(plan, head=HEAD, job="42", approve="x", full_plan="")
    assert mark == "<!-- reconcile-plan:fab -->" == marker(plan)
    assert body.startswith(mark + "\n")
    facts = note_facts(body)
    assert facts is not None
    assert (facts.digest, facts.head, facts.job) == (plan.plan_digest, HEAD, "42")
    # A forged facts line further down (a platform name, a user's note) is never read.
    forged = (
        f"{mark}\nsomething\n<!-- reconcile-facts digest:{plan.plan_digest} head:{HEAD} job:1 -->"
    )
    assert note_facts(forged) is None


def test_names_from_the_platform_cannot_break_out_of_their_code_span() -> None:
    hostile = "x` <!-- reconcile-plan:fab --> @team\n<script>"
    change = _change("fab", Kind.MODEL, "h", hostile, Reason.IN_USE)
    plan = make_plan(models=1, versions_each=1, blocked=0, ambiguous=0)
    plan = plan.model_copy(update={"resource_changes": (*plan.resource_changes, change)}).sealed()
    body = fit_comment(plan_sections(plan, approve="x"), 60_000)
    row = next(line for line in body.splitlines() if "reconcile-plan:fab" in line)
    assert row.startswith("- model ``") and "\n" not in row and "<script>" in row
    assert "``fab/x` <!-- reconcile-plan:fab --> @team <script>``" in row
