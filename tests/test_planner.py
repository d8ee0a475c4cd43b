"""The planner, tested as data: every folder under ``tests/planner_cases/`` is one case.

A case is a real manifest, a compact live state and the plan expected from them; the format is
described in ``tests/planner_cases/README.md``. Adding a case needs no Python. Besides what each
case expects, every plan is checked against invariants that hold whatever the case (unique
addresses, no preset object, deletes carry their live record, the plan survives a JSON round trip).
"""

from __future__ import annotations

import json
import random
import re
import tomllib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import pytest
from pydantic import AwareDatetime, BaseModel, ConfigDict, TypeAdapter, model_validator

from reconcile.cli import main
from reconcile.errors import PlanFileError, ReconcileError
from reconcile.manifest import Manifest
from reconcile.model import LiveModel, LiveVersion, ServiceUse, Snapshot
from reconcile.plan import Action, Plan, Reason, Summary
from reconcile.planner import Ledger, attribute, build_plan, next_ledger
from reconcile.report import MergedPlan, merge, read_documents

CASES_DIR = Path(__file__).parent / "planner_cases"
CASES = sorted(path.name for path in CASES_DIR.iterdir() if path.is_dir())
TOOL_VERSION = "0.0.0-test"

_T = TypeVar("_T")
_Live = TypeVar("_Live", LiveModel, LiveVersion)


# -- the case format ------------------------------------------------------------------------------


class _Strict(BaseModel):
    # extra="forbid": a misspelt key in a case is an error, never a silently ignored expectation.
    model_config = ConfigDict(frozen=True, extra="forbid")


class VersionFixture(_Strict):
    name: str
    id: str | None = None
    created: datetime | None = None
    preset: bool = False
    attributes: dict[str, str | None] = {}


class ModelFixture(_Strict):
    name: str
    id: str | None = None
    created: datetime | None = None
    preset: bool = False
    description: str | None = None
    versions: tuple[VersionFixture, ...] = ()


class ServiceFixture(_Strict):
    id: str
    name: str = ""
    status: str = "RUNNING"
    #: The model served, by id or (unique) name.
    model: str
    #: The version served, by id or (unique within the model) name; left out: the model only.
    version: str | None = None


class ProviderFixture(_Strict):
    location: str = "workspace ws-test"
    models: tuple[ModelFixture, ...] = ()
    services: tuple[ServiceFixture, ...] = ()


class Expected(_Strict):
    #: Input: the --target addresses the plan is limited to.
    targets: tuple[str, ...] = ()
    #: Input: the time of the plan (for min_age, keep_within, grace); left out: unknown.
    now: AwareDatetime | None = None
    #: The case must refuse: a substring of the ReconcileError's message.
    error: str | None = None
    #: Every change of the plan as [address, action, reason]; compared as sorted lists.
    changes: tuple[tuple[str, str, str], ...] = ()
    #: Every drift as [address, kind] or, for attribute drift, [address, kind, [fields]].
    drift: tuple[tuple[str, str] | tuple[str, str, tuple[str, ...]], ...] = ()
    #: Summary counts; only the keys given are compared.
    summary: dict[str, int] = {}
    #: address -> ids of the services blocking it, for every change that names any.
    blocked_by: dict[str, tuple[str, ...]] = {}
    #: One substring per plan warning (none given: the plan must have none).
    warnings: tuple[str, ...] = ()
    #: With `base.toml` (the manifests before the change, `plan --base`): every delete's
    #: address -> "caused_by_change" or "already_undeclared".
    attribution: dict[str, str] = {}

    @model_validator(mode="after")
    def _consistent(self) -> Expected:
        if self.error is not None and (self.changes or self.drift or self.summary):
            raise ValueError("a case that expects an error expects no plan")
        unknown = set(self.summary) - set(Summary.model_fields)
        if unknown:
            raise ValueError(f"unknown summary keys {sorted(unknown)}")
        return self


class Case(NamedTuple):
    manifest: Manifest
    snapshots: dict[str, Snapshot]
    expected: Expected
    #: Input (`ledger.json`, optional): provider -> {"model:ID" / "version:ID" -> first seen}.
    ledger: dict[str, dict[str, datetime]] | None = None
    #: Input (`base.toml`, optional): the manifests before the change, for attribution.
    base: Manifest | None = None


def load_case(name: str) -> Case:
    folder = CASES_DIR / name
    manifest = Manifest.model_validate(tomllib.loads((folder / "manifest.toml").read_text()))
    live = json.loads((folder / "live.json").read_text())
    snapshots = {
        provider: _snapshot(manifest, provider, ProviderFixture.model_validate(state))
        for provider, state in live.items()
    }
    expected = Expected.model_validate_json((folder / "expected.json").read_text())
    ledger_file = folder / "ledger.json"
    ledger = _LEDGER.validate_json(ledger_file.read_text()) if ledger_file.exists() else None
    base_file = folder / "base.toml"
    base = (
        Manifest.model_validate(tomllib.loads(base_file.read_text()))
        if base_file.exists()
        else None
    )
    return Case(manifest, snapshots, expected, ledger, base)


_LEDGER = TypeAdapter(dict[str, dict[str, AwareDatetime]])


def _snapshot(manifest: Manifest, provider: str, state: ProviderFixture) -> Snapshot:
    # A provider the manifest does not know keeps a type, so that the planner can refuse it.
    config = manifest.providers.get(provider)
    models = [_live_model(model) for model in state.models]
    ids = [model.id for model in models] + [v.id for model in models for v in model.versions]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"{provider}: ids {duplicated} are used twice; give explicit ids")
    return Snapshot(
        provider=provider,
        provider_type=config.type if config is not None else "unknown",
        location=state.location,
        models=tuple(models),
        services=tuple(_service(service, models) for service in state.services),
    )


def _live_model(fixture: ModelFixture) -> LiveModel:
    model_id = fixture.id or f"m-{fixture.name}"
    versions = tuple(_live_version(version, model_id) for version in fixture.versions)
    raw = fixture.model_dump(mode="json", exclude={"versions"}, exclude_none=True)
    return LiveModel(
        id=model_id,
        name=fixture.name,
        created=fixture.created,
        # As a provider reports it: the description is always there, None when the platform
        # has none.
        attributes={"description": fixture.description},
        preset=fixture.preset,
        versions=versions,
        raw={**raw, "id": model_id},
    )


def _live_version(fixture: VersionFixture, model_id: str) -> LiveVersion:
    version_id = fixture.id or f"{model_id}-{fixture.name}"
    return LiveVersion(
        id=version_id,
        name=fixture.name,
        model_id=model_id,
        created=fixture.created,
        attributes=fixture.attributes,
        preset=fixture.preset,
        raw={**fixture.model_dump(mode="json", exclude_none=True), "id": version_id},
    )


def _service(fixture: ServiceFixture, models: list[LiveModel]) -> ServiceUse:
    model = _one(models, fixture.model, f"service {fixture.id}: model")
    version = (
        None
        if fixture.version is None
        else _one(list(model.versions), fixture.version, f"service {fixture.id}: version")
    )
    return ServiceUse(
        id=fixture.id,
        name=fixture.name,
        status=fixture.status,
        model_id=model.id,
        version_id=version.id if version is not None else None,
    )


def _one(objects: list[_Live], ref: str, what: str) -> _Live:
    by_id = [obj for obj in objects if obj.id == ref]
    found = by_id or [obj for obj in objects if obj.name == ref]
    if len(found) != 1:
        raise ValueError(f"{what} {ref!r} matches {len(found)} live objects; use an id")
    return found[0]


def _plan(case: Case, snapshots: Mapping[str, Snapshot] | None = None) -> Plan:
    return build_plan(
        case.manifest,
        case.snapshots if snapshots is None else snapshots,
        tool_version=TOOL_VERSION,
        targets=case.expected.targets,
        now=case.expected.now,
        ledger=case.ledger,
    )


# -- every case -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_planner_case(name: str) -> None:
    """The plan made from the case's manifest and live state is exactly the expected one."""
    case = load_case(name)
    expected = case.expected
    if expected.error is not None:
        with pytest.raises(ReconcileError) as raised:
            _plan(case)
        assert expected.error in str(raised.value)
        return

    plan = _plan(case)
    changes = sorted(
        [change.address, *(str(action) for action in change.actions), str(change.action_reason)]
        for change in plan.resource_changes
    )
    assert changes == sorted(list(row) for row in expected.changes)
    drift = sorted(
        [item.address, str(item.drift)]
        + ([sorted(field.field for field in item.fields)] if item.fields else [])
        for item in plan.drift
    )
    assert drift == sorted(
        [row[0], row[1], *([sorted(row[2])] if len(row) == 3 else [])] for row in expected.drift
    )
    blocked_by = {
        change.address: sorted(service.id for service in change.blocked_by)
        for change in plan.resource_changes
        if change.blocked_by
    }
    assert blocked_by == {address: sorted(ids) for address, ids in expected.blocked_by.items()}
    summary = plan.summary.model_dump()
    assert {key: summary[key] for key in expected.summary} == expected.summary
    assert len(plan.warnings) == len(expected.warnings)
    for warning, substring in zip(plan.warnings, expected.warnings, strict=True):
        assert substring in warning
    _check_invariants(plan, case.snapshots)
    if case.base is not None:
        _check_attribution(case, plan)
    else:
        assert not expected.attribution, "an attribution case needs a base.toml"


def _check_attribution(case: Case, plan: Plan) -> None:
    """The plan labelled against the same listing planned with the manifests before the change;
    the labels change nothing the plan deletes, nor its digest."""
    assert case.base is not None
    listed = {name: snap for name, snap in case.snapshots.items() if name in case.base.providers}
    before = build_plan(
        case.base, listed, tool_version=TOOL_VERSION, now=case.expected.now, ledger=case.ledger
    )
    labelled = attribute(plan, before, "base.toml")
    assert labelled.attribution is not None
    found = dict.fromkeys(labelled.attribution.caused_by_change, "caused_by_change")
    found |= dict.fromkeys(labelled.attribution.already_undeclared, "already_undeclared")
    assert found == case.expected.attribution
    assert labelled.compute_digest() == plan.plan_digest
    assert labelled.resource_changes == plan.resource_changes


def _check_invariants(plan: Plan, snapshots: Mapping[str, Snapshot]) -> None:
    """What holds for every plan, whatever the case."""
    addresses = [change.address for change in plan.resource_changes]
    assert len(addresses) == len(set(addresses)), "an address appears twice"

    models = {(s.provider, m.id): m for s in snapshots.values() for m in s.models}
    versions = {
        (s.provider, v.id): v for s in snapshots.values() for m in s.models for v in m.versions
    }
    deleted_models = {(c.provider, c.id) for c in plan.deletes() if c.kind == "model"}
    for change in plan.resource_changes:
        live: LiveModel | LiveVersion = (
            models[change.provider, change.id]
            if change.kind == "model"
            else versions[change.provider, change.id]
        )
        assert not live.preset, f"{change.address}: a preset object is in the plan"
        assert change.actions in ((Action.DELETE,), (Action.NOOP,))
        if change.is_delete:
            assert change.before is not None and change.state_digest, change.address
        if change.action_reason is Reason.IN_USE:
            assert change.blocked_by, f"{change.address}: in use, but by nothing"
        if change.is_delete and isinstance(live, LiveModel):
            assert sorted(change.version_ids) == sorted(v.id for v in live.versions)
        if change.is_delete and change.kind == "version":
            assert (change.provider, change.model_id) not in deleted_models, (
                f"{change.address}: deleted on its own and with its model"
            )

    assert plan.plan_digest == plan.compute_digest()
    assert Plan.from_json(plan.to_json(), source="test") == plan
    for change in plan.deletes():
        # An edited record is an edited plan, even where orjson alone could not tell.
        assert change.before is not None
        edited = json.loads(plan.to_json())
        for saved in edited["resource_changes"]:
            if saved["address"] == change.address:
                saved["before"]["edited"] = 123456789012345678901234567890
        with pytest.raises(PlanFileError, match="the file was edited"):
            Plan.from_json(json.dumps(edited), source="edited.json")
        break


# -- determinism ----------------------------------------------------------------------------------

PLAN_CASES = [name for name in CASES if load_case(name).expected.error is None]


def _reordered(
    snapshots: Mapping[str, Snapshot], rng: random.Random | None, *, versions: bool
) -> dict[str, Snapshot]:
    """The same live state listed in another order (reversed when `rng` is None)."""

    def order(items: tuple[_T, ...]) -> tuple[_T, ...]:
        if rng is None:
            return items[::-1]
        shuffled = list(items)
        rng.shuffle(shuffled)
        return tuple(shuffled)

    result: dict[str, Snapshot] = {}
    for provider in order(tuple(snapshots)):
        snapshot = snapshots[provider]
        models = tuple(
            model.model_copy(update={"versions": order(model.versions)}) if versions else model
            for model in snapshot.models
        )
        result[provider] = snapshot.model_copy(
            update={"models": order(models), "services": order(snapshot.services)}
        )
    return result


def _orders(snapshots: Mapping[str, Snapshot], *, versions: bool) -> Iterator[dict[str, Snapshot]]:
    yield _reordered(snapshots, None, versions=versions)
    for seed in range(5):
        yield _reordered(snapshots, random.Random(seed), versions=versions)


@pytest.mark.parametrize("name", PLAN_CASES)
def test_plan_is_deterministic_whatever_the_order_of_models_and_services(name: str) -> None:
    """Same inputs, same plan_digest; listing models, services or providers in another order
    changes nothing either."""
    case = load_case(name)
    first = _plan(case)
    assert _plan(case).plan_digest == first.plan_digest
    for snapshots in _orders(case.snapshots, versions=False):
        assert _plan(case, snapshots).plan_digest == first.plan_digest


def test_plan_digest_ignores_the_order_versions_are_listed_in() -> None:
    """Platforms list versions in no promised order: a plan (and the staleness check's digests)
    must not depend on it."""
    changed = []
    for name in PLAN_CASES:
        case = load_case(name)
        first = _plan(case).plan_digest
        if any(_plan(case, s).plan_digest != first for s in _orders(case.snapshots, versions=True)):
            changed.append(name)
    assert changed == []


def test_the_digest_encodes_each_change_as_pydantic_serializes_it() -> None:
    """`Change.json_value` is `model_dump(mode="json")` made by hand for speed: for every change
    of every case (each reason, services, whole-model and version records), both encode to the
    same canonical bytes, so plan digests are what they always were."""
    from reconcile.model import _canonical

    seen = set()
    for name in PLAN_CASES:
        for change in _plan(load_case(name)).resource_changes:
            assert _canonical(change.json_value()) == _canonical(change.model_dump(mode="json"))
            seen.add((change.action_reason, bool(change.blocked_by), change.before is None))
    assert len(seen) > 10  # the cases cover many kinds of change, services and records included


def test_the_plan_file_is_the_plan_dumped_whole_byte_for_byte() -> None:
    """`Plan.to_json` writes a field and a change at a time (orjson for the changes, the standard
    encoder for what orjson refuses): for every case the text is the one encoding the whole
    `model_dump(mode="json")` at once gives, and it reads back as the plan."""
    from reconcile.model import json_text

    for name in PLAN_CASES:
        plan = _plan(load_case(name))
        text = plan.to_json()
        assert text == json_text(plan.model_dump(mode="json"), indent=2) + "\n", name
        assert Plan.from_json(text, source=name) == plan


@pytest.mark.parametrize(
    "record",
    [{"id": "v1", "size": 2**70}, {"id": "v1", "note": "odd \ud800"}, {}],
    ids=["a-long-integer", "a-lone-surrogate", "empty"],
)
def test_a_plan_file_holds_records_orjson_refuses(record: dict[str, object]) -> None:
    from reconcile.model import RawRecord, json_text

    plan = _plan(load_case(PLAN_CASES[0]))
    changes = list(plan.resource_changes)
    changes[0] = changes[0].model_copy(update={"before": RawRecord.of(record)})
    odd = plan.model_copy(update={"resource_changes": tuple(changes)}).sealed()
    text = odd.to_json()
    text.encode()  # UTF-8 whatever the record holds
    assert json.loads(text) == json.loads(json_text(odd.model_dump(mode="json")))
    assert json.loads(text)["resource_changes"][0]["before"] == record
    assert Plan.from_json(text, source="odd") == odd


# -- one live object, two declarations ---------------------------------------------------------


def test_two_declarations_of_one_live_model_are_refused_naming_both_tables(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    """support-bot is declared by name (keeping v7, v8), and again by its id under another name
    (keeping v3): whichever won, the plan deleted versions the other keeps. Refused, with the file
    and line of both tables; nothing deleted."""
    manifest = demo / "reconcile.toml"
    manifest.write_text(
        manifest.read_text(encoding="utf-8")
        + '\n[[models]]\nprovider = "fabric-demo"\nname = "support-bot-renamed"\n'
        'id = "2b07c96c-3a7a-52ae-ba71-bb190431beff"\nversions = ["v3"]\n',
        encoding="utf-8",
    )
    code = main(["apply", str(demo), "--auto-approve"])
    out, err = capsys.readouterr()
    assert code == 1, out
    assert "- delete" not in out
    assert "Traceback" not in err
    assert 'live model "support-bot" (id 2b07c96c-3a7a-52ae-ba71-bb190431beff)' in err
    assert f'"support-bot" at {manifest.name}:21 (by name)' in err
    assert (
        f'"support-bot-renamed" with id 2b07c96c-3a7a-52ae-ba71-bb190431beff at {manifest.name}:'
        in err
    )
    assert "nothing deleted" in err
    assert "Apply complete" not in out


# -- declarations that can have no effect -------------------------------------------------------


def test_plan_warns_of_declarations_that_can_have_no_effect(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    """absent = true on a preset, and a declared model an ignore pattern takes out of scope:
    plan says so above the plan (and in its JSON), with the table's file:line and the fix."""
    manifest = demo / "reconcile.toml"
    text = manifest.read_text(encoding="utf-8")
    line = text.count("\n") + 2
    manifest.write_text(
        text + '\n[[models]]\nprovider = "fabric-demo"\nname = "qwen2-72b-instruct"\n'
        'absent = true\n\n[[models]]\nprovider = "fabric-demo"\nname = "scratch-exp-1"\n',
        encoding="utf-8",
    )
    code = main(["plan", str(demo)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert (
        'Warning: model "qwen2-72b-instruct" is declared absent = true, but the live model is a '
        f"platform preset, which reconcile never deletes ({manifest.name}:{line}): remove the "
        "declaration" in out
    )
    assert (
        'Warning: model "scratch-exp-1" is declared, but matches ignore pattern "scratch-*": '
        f"reconcile never manages it ({manifest.name}:{line + 5}): remove the declaration, or the "
        "ignore pattern" in out
    )
    assert out.index("Warning:") < out.index("fabric-demo (")
    code = main(["plan", str(demo), "--json"])
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert len(warnings) == 2


@pytest.mark.parametrize("name", PLAN_CASES)
def test_a_merged_report_counts_every_reason_as_the_plan_summary_does(
    name: str, tmp_path: Path
) -> None:
    """The report merge counts kept, blocked and protected lines by `REASON_GROUPS`: a reason
    added to the plan (too_new, rollback_target, grace_pending...) is never counted as in sync."""
    plan = _plan(load_case(name)).model_copy(update={"created_at": "2026-06-01T00:00:00+00:00"})
    (tmp_path / "plan.json").write_text(plan.to_json())
    merged = merge(read_documents([str(tmp_path / "plan.json")]))
    assert isinstance(merged, MergedPlan)
    total, summary = merged.total, plan.summary
    assert (total.delete.objects, total.blocked.objects, total.protected.objects) == (
        summary.delete,
        summary.blocked,
        summary.protected,
    )
    assert (total.kept.objects, total.in_sync.objects) == (summary.kept, summary.in_sync)


# -- the grace period across runs (issue 16) -------------------------------------------------------

GRACE_MANIFEST = """\
[providers.p]
type = "fabric"
endpoint = "https://fabric.example.test"
workspace_id = "ws"

[policy]
grace = "7d"

[[models]]
provider = "p"
name = "bot"
versions = {versions}
"""


def _grace_run(declared: list[str], now: datetime, ledger: Ledger) -> tuple[Plan, Ledger]:
    """One plan at `now` and the ledger apply would write after it."""
    manifest = Manifest.model_validate(
        tomllib.loads(GRACE_MANIFEST.format(versions=json.dumps(declared)))
    )
    model = LiveModel(
        id="m-bot",
        name="bot",
        versions=tuple(
            LiveVersion(id=f"m-bot-{name}", name=name, model_id="m-bot") for name in ("v1", "v2")
        ),
    )
    snapshot = Snapshot(provider="p", provider_type="fabric", location="ws", models=(model,))
    plan = build_plan(manifest, {"p": snapshot}, tool_version="t", now=now, ledger=ledger)
    return plan, next_ledger(plan, ledger, now)


def _fate(plan: Plan, address: str) -> tuple[str, str]:
    change = next(c for c in plan.resource_changes if c.address == address)
    return str(change.actions[0]), str(change.action_reason)


def test_grace_over_three_runs_with_a_moving_clock_is_pending_pending_deleted() -> None:
    start = datetime(2026, 6, 1, tzinfo=UTC)
    plan, ledger = _grace_run(["v1"], start, {})
    assert _fate(plan, "p/bot/v2") == ("no-op", "grace_pending")
    assert "deleted from 2026-06-08T00:00:00Z" in plan.resource_changes[-1].detail
    assert ledger == {"p": {"version:m-bot-v2": start}}

    plan, ledger = _grace_run(["v1"], start + timedelta(days=3), ledger)
    assert _fate(plan, "p/bot/v2") == ("no-op", "grace_pending")
    assert ledger == {"p": {"version:m-bot-v2": start}}, "the first-seen time is kept"

    plan, ledger = _grace_run(["v1"], start + timedelta(days=7), ledger)
    assert _fate(plan, "p/bot/v2") == ("delete", "not_in_manifest")
    assert [change.address for change in plan.deletes()] == ["p/bot/v2"]


def test_grace_starts_again_for_an_object_declared_in_between() -> None:
    start = datetime(2026, 6, 1, tzinfo=UTC)
    _, ledger = _grace_run(["v1"], start, {})
    plan, ledger = _grace_run(["v1", "v2"], start + timedelta(days=3), ledger)
    assert _fate(plan, "p/bot/v2") == ("no-op", "declared")
    assert ledger == {"p": {}}, "a declared object is forgotten"
    plan, ledger = _grace_run(["v1"], start + timedelta(days=8), ledger)
    assert _fate(plan, "p/bot/v2") == ("no-op", "grace_pending")
    assert ledger == {"p": {"version:m-bot-v2": start + timedelta(days=8)}}


def test_next_ledger_keeps_what_a_targeted_plan_or_another_provider_does_not_cover() -> None:
    start = datetime(2026, 6, 1, tzinfo=UTC)
    plan, _ = _grace_run(["v1"], start, {})
    targeted = plan.model_copy(update={"targets": ("p/bot/v1",), "resource_changes": ()})
    previous = {"p": {"version:m-bot-v2": start}, "q": {"model:m-x": start}}
    assert next_ledger(targeted, previous, start + timedelta(days=1)) == previous
    # Untargeted, an object the plan no longer has is gone: forgotten.
    empty = plan.model_copy(update={"resource_changes": ()})
    assert next_ledger(empty, previous, start) == {"p": {}, "q": {"model:m-x": start}}


def test_plan_json_printed_in_pieces_is_the_whole_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    """`plan --json` prints the plan as it is made, each piece escaped on its own (a character
    that is not printable becomes its \\u escape): joined, the pieces are the document escaped
    whole, whatever the platform's names hold and wherever the pieces break."""
    from reconcile.render import json as render_json
    from reconcile.render.json import plan_json_pieces, printable_json

    monkeypatch.setattr(render_json, "_PIECE", 40)
    for name in PLAN_CASES:
        plan = _plan(load_case(name))
        changes = [
            change.model_copy(update={"detail": f"{change.detail} \u202e\x1b[2J 模型 \ud800"})
            for change in plan.resource_changes
        ]
        plan = plan.model_copy(update={"resource_changes": tuple(changes)})
        pieces = list(plan_json_pieces(plan))
        assert len(pieces) > 1 or not changes
        assert "".join(pieces) == printable_json(plan.to_json()), name
        "".join(pieces).encode()


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda doc: doc["resource_changes"][1].pop("address"), "resource_changes.1.address"),
        (lambda doc: doc["resource_changes"][0].update(actions="delete"), "resource_changes.0"),
        (lambda doc: doc.update(scopes="all"), "scopes"),
    ],
    ids=["a-change-without-address", "a-change-with-bad-actions", "bad-scopes"],
)
def test_an_invalid_plan_file_names_where(edit: Any, where: str) -> None:
    """Changes are read one at a time (a large plan's parsed JSON is dropped as they are made):
    an invalid one is still named by its place in the file."""
    plan = _plan(load_case(PLAN_CASES[0]))
    assert len(plan.resource_changes) > 1
    document = json.loads(plan.to_json())
    edit(document)
    with pytest.raises(PlanFileError, match=rf"invalid plan file at {re.escape(where)}"):
        Plan.from_json(json.dumps(document), source="edited.json")
