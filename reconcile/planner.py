"""The planner: `build_plan(manifest, snapshots) -> Plan`, a pure function.

No I/O, no clock, no environment: the same manifest and live state always give the same plan.
The decision table is DESIGN.md's "What a plan decides"; each decision carries its reason.
"""

from __future__ import annotations

import difflib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconcile.diff import field_changes
from reconcile.errors import GuardError, PlanError, ReconcileError
from reconcile.manifest import Manifest, ModelSpec, Policy, VersionSpec, is_glob_match
from reconcile.model import (
    FieldChange,
    LiveModel,
    LiveVersion,
    ServiceUse,
    Snapshot,
    digest,
    model_state,
    version_state,
)
from reconcile.plan import (
    Action,
    Change,
    Drift,
    DriftKind,
    Kind,
    Plan,
    ProviderScope,
    Reason,
    Summary,
)
from reconcile.scope import (
    Key,
    Target,
    declared_address,
    ignored_by,
    model_address,
    models_in_scope,
    parse_target,
    quote,
    shared_names,
    version_address,
    version_path,
    versions_in_scope,
)

_OLDEST = datetime.min.replace(tzinfo=UTC)


def build_plan(
    manifest: Manifest,
    snapshots: Mapping[str, Snapshot],
    *,
    tool_version: str,
    targets: Sequence[str] = (),
    refuse_empty: bool = True,
) -> Plan:
    """Decide, for every live object in scope of every provider in `snapshots`, what to do.

    `refuse_empty`: a "workspace" scope with no declared model (and no allow_empty) raises
    GuardError. A read-only report passes False to show what such a plan would delete.
    """
    selected = [parse_target(text) for text in targets]
    changes: list[Change] = []
    drift: list[Drift] = []
    drift_keys: list[Key] = []
    scopes: list[ProviderScope] = []
    for provider in manifest.providers:
        snapshot = snapshots.get(provider)
        if snapshot is None:
            continue
        planner = _ProviderPlanner(manifest, provider, snapshot, refuse_empty=refuse_empty)
        planner.run()
        changes.extend(planner.changes)
        drift.extend(planner.drift)
        drift_keys.extend(planner.drift_keys)
        scopes.append(planner.scope())
    unknown = sorted(set(snapshots) - set(manifest.providers))
    if unknown:
        raise ReconcileError(f"live state given for providers not in the manifest: {unknown}")

    warnings: list[str] = []
    if selected:
        changes, drift = _select(selected, changes, drift, drift_keys, snapshots)
        warnings.append(
            "Resource targeting is in effect: this plan covers only "
            + ", ".join(targets)
            + ". It may not show everything the manifests would change; use --target only for "
            "exceptional situations, never routinely."
        )
    plan = Plan(
        tool_version=tool_version,
        manifest_digest=manifest.digest(),
        scopes=tuple(scopes),
        resource_changes=tuple(changes),
        drift=tuple(drift),
        targets=tuple(targets),
        warnings=tuple(warnings),
        summary=_summarise(changes, drift),
    )
    return plan.sealed()


def _change_key(change: Change) -> Key:
    if change.kind is Kind.MODEL:
        return Key(change.provider, change.name, change.id)
    return Key(change.provider, change.model_name or "", change.model_id, change.name, change.id)


def _select(
    targets: Sequence[Target],
    changes: list[Change],
    drift: list[Drift],
    drift_keys: Sequence[Key],
    snapshots: Mapping[str, Snapshot],
) -> tuple[list[Change], list[Drift]]:
    """The changes and drift that `targets` select. A target that selects nothing is refused:
    "No changes" would say that the object it names is in sync."""
    change_keys = [_change_key(change) for change in changes]
    for target in targets:
        if not any(map(target.selects, change_keys)) and not any(map(target.selects, drift_keys)):
            raise _selects_nothing(target, changes, drift, snapshots)
    return (
        [c for c, key in zip(changes, change_keys, strict=True) if _any_selects(targets, key)],
        [d for d, key in zip(drift, drift_keys, strict=True) if _any_selects(targets, key)],
    )


def _any_selects(targets: Sequence[Target], key: Key) -> bool:
    return any(target.selects(key) for target in targets)


def _selects_nothing(
    target: Target,
    changes: Sequence[Change],
    drift: Sequence[Drift],
    snapshots: Mapping[str, Snapshot],
) -> PlanError:
    """Why `target` selects nothing: the version of a model that has one line for all its
    versions (deleted whole, held whole, or declared without versions), or no such address."""
    whole = Target(target.text, target.provider, target.model)
    for change in changes:
        if change.kind is not Kind.MODEL or not whole.selects(_change_key(change)):
            continue
        within = _version_of(snapshots, change, target)
        if within is None:
            continue
        fate = (
            "deletes it whole, so this version is deleted with it"
            if change.is_delete
            else "has one line for the model and its versions: this version stays"
        )
        return PlanError(
            f"--target {target.text} selects no line of the plan: version {quote(within.name)} "
            f"belongs to model {change.address}, and the plan {fate} "
            f"({change.action_reason.value}: {change.detail})",
            hint=f"target the model instead: --target {change.address}",
        )
    addresses = sorted({c.address for c in changes} | {d.address for d in drift})
    close = difflib.get_close_matches(target.text, addresses, n=3, cutoff=0.5)
    hint = (
        "the closest addresses in this plan: " + ", ".join(close)
        if close
        else "no address of this plan is close to it; run plan without --target to see them all"
    )
    return PlanError(f"--target {target.text} selects nothing in this plan", hint=hint)


def _version_of(
    snapshots: Mapping[str, Snapshot], change: Change, target: Target
) -> LiveVersion | None:
    """The live version of `change`'s model that `target` names, if any."""
    snapshot = snapshots.get(change.provider)
    if snapshot is None or target.version is None:
        return None
    for model in snapshot.models:
        if model.id == change.id:
            for version in model.versions:
                if target.version.names(version.name, version.id):
                    return version
    return None


def _summarise(changes: Iterable[Change], drift: Sequence[Drift]) -> Summary:
    counts = Counter(change.action_reason for change in changes if not change.is_delete)
    return Summary(
        delete=sum(1 for change in changes if change.is_delete),
        blocked=counts[Reason.IN_USE] + counts[Reason.AMBIGUOUS],
        protected=counts[Reason.PROTECTED],
        kept=counts[Reason.RETENTION_KEEP_LATEST] + counts[Reason.LAST_VERSION],
        drifted=len(drift),
        in_sync=counts[Reason.DECLARED],
    )


def _newest_first(version: LiveVersion) -> tuple[datetime, str, str]:
    return (version.created or _OLDEST, version.name, version.id)


def _by_name(versions: Iterable[LiveVersion]) -> list[LiveVersion]:
    """Versions in a fixed order: a plan must not depend on the order a platform lists them in."""
    return sorted(versions, key=lambda v: (v.name, v.id))


def _services_text(services: Sequence[ServiceUse]) -> str:
    return ", ".join(f'{s.id} ("{s.name}", {s.status})' for s in services)


@dataclass
class _ProviderPlanner:
    """The decisions for one provider scope; `run()` fills `changes` and `drift`."""

    manifest: Manifest
    provider: str
    snapshot: Snapshot
    refuse_empty: bool = True
    changes: list[Change] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    #: What a --target is matched against, one per item of `drift`.
    drift_keys: list[Key] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.config = self.manifest.providers[self.provider]
        self.policy: Policy = self.manifest.policy_for(self.provider)
        self.uses = self.snapshot.uses()
        #: `_model_state` by the id() of the live record (held by the snapshot meanwhile).
        self._states: dict[int, dict[str, Any]] = {}
        self.specs = [
            spec
            for spec in self.manifest.models_for(self.provider)
            if ignored_by(self.policy, spec.name) is None
        ]
        self.in_scope = models_in_scope(self.snapshot, self.policy)
        self.shared_model_names = shared_names(self.in_scope)

    # -- helpers ------------------------------------------------------------------------------

    def _model_state(self, model: LiveModel) -> dict[str, Any]:
        """`model_state`, made once per model: a deleted model's digest and the scope's
        fingerprint both need it (10k models, 100k versions at scale)."""
        state = self._states.get(id(model))
        if state is None:
            state = self._states[id(model)] = model_state(model, self.uses)
        return state

    def _origin(self, spec: ModelSpec) -> str:
        location = self.manifest.origins.get(f"models.{spec.provider}/{spec.name}")
        return f" at {location}" if location else ""

    def _model_address(self, model: LiveModel) -> str:
        return model_address(self.provider, model, self.shared_model_names)

    def _version_address(
        self, model: LiveModel, version: LiveVersion, shared: frozenset[str]
    ) -> str:
        return version_address(self._model_address(model), version, shared)

    def _drift(
        self,
        *,
        address: str,
        key: Key,
        kind: Kind,
        drift: DriftKind,
        detail: str,
        hint: str,
        id: str | None = None,
        fields: tuple[FieldChange, ...] = (),
    ) -> None:
        self.drift_keys.append(key)
        self.drift.append(
            Drift(
                address=address,
                provider=self.provider,
                kind=kind,
                drift=drift,
                id=id,
                fields=fields,
                detail=detail,
                hint=hint,
            )
        )

    def _model_change(
        self,
        model: LiveModel,
        action: Action,
        reason: Reason,
        detail: str,
        *,
        blocked_by: Sequence[ServiceUse] = (),
        version_ids: Sequence[str] = (),
    ) -> Change:
        recorded = action is Action.DELETE or reason is Reason.IN_USE
        return Change.trusted(
            address=self._model_address(model),
            provider=self.provider,
            kind=Kind.MODEL,
            id=model.id,
            name=model.name,
            model_id=None,
            model_name=None,
            actions=(action,),
            action_reason=reason,
            detail=detail,
            blocked_by=tuple(blocked_by),
            version_ids=tuple(version_ids),
            state_digest=digest(self._model_state(model)) if recorded else "",
            before=(
                model.raw.with_list("versions", (v.raw for v in _by_name(model.versions)))
                if recorded
                else None
            ),
        )

    def _version_change(
        self,
        model: LiveModel,
        version: LiveVersion,
        shared: frozenset[str],
        action: Action,
        reason: Reason,
        detail: str,
        *,
        blocked_by: Sequence[ServiceUse] = (),
    ) -> Change:
        recorded = action is Action.DELETE or reason is Reason.IN_USE
        return Change.trusted(
            address=self._version_address(model, version, shared),
            provider=self.provider,
            kind=Kind.VERSION,
            id=version.id,
            name=version.name,
            model_id=model.id,
            model_name=model.name,
            actions=(action,),
            action_reason=reason,
            detail=detail,
            blocked_by=tuple(blocked_by),
            version_ids=(),
            state_digest=digest(version_state(version, self.uses)) if recorded else "",
            before=version.raw if recorded else None,
        )

    # -- the decisions ------------------------------------------------------------------------

    def run(self) -> None:
        matched, ambiguous = self._match_models()
        declared = [spec for spec in self.specs if not spec.absent]
        empty = self.config.scope == "workspace" and not declared and not self.config.allow_empty
        if empty and self.refuse_empty:
            raise GuardError(
                f'provider "{self.provider}" has scope = "workspace" and no declared model: '
                f"the plan would delete everything in {self.snapshot.location}",
                hint=f"declare the models to keep, or set allow_empty = true in "
                f"[providers.{self.provider}] if emptying it is really what you want",
            )
        for model in self.in_scope:
            if model.id in ambiguous:
                self.changes.append(
                    self._model_change(model, Action.NOOP, Reason.AMBIGUOUS, ambiguous[model.id])
                )
                continue
            found = matched.get(model.id)
            if found is not None and not found.absent:
                self._declared_model(model, found)
            elif found is not None:
                self._remove_model(
                    model, Reason.DECLARED_ABSENT, f"declared absent = true{self._origin(found)}"
                )
            elif self.config.scope == "workspace":
                self._remove_model(
                    model,
                    Reason.NOT_IN_MANIFEST,
                    f'not declared, and scope = "workspace" makes the manifests the whole truth '
                    f"for {self.snapshot.location}",
                )

    def _is_preset(self, spec: ModelSpec) -> bool:
        return any(
            model.preset and (model.id == spec.id if spec.id else model.name == spec.name)
            for model in self.snapshot.models
        )

    def _match_models(self) -> tuple[dict[str, ModelSpec], dict[str, str]]:
        """Declarations matched to live models; and the live models no plan may touch because a
        declaration cannot tell them apart (id -> why)."""
        by_id = {model.id: model for model in self.in_scope}
        by_name: dict[str, list[LiveModel]] = defaultdict(list)
        for model in self.in_scope:
            by_name[model.name].append(model)
        matched: dict[str, ModelSpec] = {}
        ambiguous: dict[str, str] = {}
        for spec in self.specs:
            if spec.id is not None:
                candidates = [by_id[spec.id]] if spec.id in by_id else []
                # The id picks one of several namesakes: the others are undeclared. But when the
                # id is gone (a re-registered model?) or names a model of another name, the live
                # models that carry the declared name are what the author may have meant: never
                # guess, hold them all (and the id's model too).
                picked = bool(candidates) and candidates[0].name == spec.name
                namesakes = [] if picked else by_name.get(spec.name, [])
                if namesakes:
                    ids = ", ".join(model.id for model in namesakes)
                    where = "is not live" if not candidates else "names another model"
                    for model in (*namesakes, *candidates):
                        ambiguous[model.id] = (
                            f"declared{self._origin(spec)} with id {spec.id}, which {where}, "
                            f'while live model(s) named "{spec.name}" have id(s) {ids}: none of '
                            "them is deleted. Fix the id or the name in the declaration"
                        )
                    self._drift(
                        address=declared_address(self.provider, spec.name),
                        key=Key(self.provider, spec.name, spec.id),
                        kind=Kind.MODEL,
                        drift=DriftKind.AMBIGUOUS,
                        id=spec.id,
                        detail=f"declared id {spec.id} {where}; live id(s) of that name: " + ids,
                        hint=f"correct the id in the declaration{self._origin(spec)}",
                    )
                    continue
            else:
                candidates = by_name.get(spec.name, [])
            if len(candidates) == 1:
                matched[candidates[0].id] = spec
            elif len(candidates) > 1:
                for model in candidates:
                    ambiguous[model.id] = (
                        f'{len(candidates)} live models are named "{spec.name}", declared'
                        f"{self._origin(spec)}: none of them is deleted. Add the id of the one "
                        f"{'to delete' if spec.absent else 'to keep'} to the declaration"
                    )
                self._drift(
                    address=declared_address(self.provider, spec.name),
                    key=Key(self.provider, spec.name, spec.id),
                    kind=Kind.MODEL,
                    drift=DriftKind.AMBIGUOUS,
                    detail=f'{len(candidates)} live models are named "{spec.name}" (ids '
                    + ", ".join(model.id for model in candidates)
                    + ")",
                    hint=f"add the id of the one {'to delete' if spec.absent else 'to keep'} "
                    f"to the declaration{self._origin(spec)}",
                )
            elif not spec.absent and self._is_preset(spec):
                self._drift(
                    address=declared_address(self.provider, spec.name),
                    key=Key(self.provider, spec.name, spec.id),
                    kind=Kind.MODEL,
                    drift=DriftKind.MISSING,
                    id=spec.id,
                    detail=f"declared{self._origin(spec)}, but the live model of that name is "
                    "a platform preset, which reconcile never manages",
                    hint="remove the declaration: presets are not yours to keep or delete",
                )
            elif not spec.absent:
                self._drift(
                    address=declared_address(self.provider, spec.name),
                    key=Key(self.provider, spec.name, spec.id),
                    kind=Kind.MODEL,
                    drift=DriftKind.MISSING,
                    id=spec.id,
                    detail=f"declared{self._origin(spec)}, not found in {self.snapshot.location}",
                    hint="reconcile does not create models: register it on the platform, "
                    "or remove the declaration",
                )
        return matched, ambiguous

    def _declared_model(self, model: LiveModel, spec: ModelSpec) -> None:
        self.changes.append(
            self._model_change(model, Action.NOOP, Reason.DECLARED, f"declared{self._origin(spec)}")
        )
        declared = spec.declared_attributes()
        if spec.id is not None and spec.name != model.name:
            declared = {"name": spec.name, **declared}
        live = {"name": model.name, **model.attributes}
        self._attribute_drift(
            self._model_address(model),
            Key(self.provider, model.name, model.id),
            Kind.MODEL,
            model.id,
            declared,
            live,
        )
        if spec.versions is not None:
            self._declared_versions(model, spec, spec.versions)

    def _attribute_drift(
        self,
        address: str,
        key: Key,
        kind: Kind,
        object_id: str,
        declared: Mapping[str, str],
        live: Mapping[str, str | None],
    ) -> None:
        changed = field_changes(declared, live)
        if changed:
            self._drift(
                address=address,
                key=key,
                kind=kind,
                drift=DriftKind.CHANGED,
                id=object_id,
                fields=tuple(changed),
                detail="declared attributes differ from the live ones: "
                + ", ".join(change.field for change in changed),
                hint="reconcile does not update objects: change them on the platform, or "
                "declare the live values",
            )

    def _declared_versions(
        self, model: LiveModel, spec: ModelSpec, version_specs: Sequence[VersionSpec]
    ) -> None:
        live = versions_in_scope(model, self.policy)
        shared = shared_names(live)
        by_id = {version.id: version for version in live}
        # Ignored versions are not managed: a declaration of one is neither matched nor missing.
        version_specs = [
            vspec
            for vspec in version_specs
            if ignored_by(self.policy, version_path(model.name, vspec.name)) is None
        ]
        matched: dict[str, VersionSpec] = {}
        #: Live versions a declaration cannot tell apart: version id -> why none is deleted.
        ambiguous: dict[str, str] = {}
        for vspec in version_specs:
            address = f"{self._model_address(model)}/{quote(vspec.name)}"
            key = Key(self.provider, model.name, model.id, vspec.name, vspec.id)
            namesakes = [version for version in live if version.name == vspec.name]
            if vspec.id is not None:
                candidates = [by_id[vspec.id]] if vspec.id in by_id else []
                picked = bool(candidates) and candidates[0].name == vspec.name
                others = [] if picked else namesakes
                if others:
                    # The id is gone or names a version of another name: the versions that carry
                    # the declared name may be the one meant. Hold them all, and the id's too.
                    ids = ", ".join(version.id for version in others)
                    where = "is not live" if not candidates else "names another version"
                    for version in (*others, *candidates):
                        ambiguous[version.id] = (
                            f"declared{self._origin(spec)} with id {vspec.id}, which {where}, "
                            f'while live version(s) named "{vspec.name}" have id(s) {ids}: none '
                            "of them is deleted. Fix the id or the name in the declaration"
                        )
                    self._drift(
                        address=address,
                        key=key,
                        kind=Kind.VERSION,
                        drift=DriftKind.AMBIGUOUS,
                        id=vspec.id,
                        detail=f"declared id {vspec.id} {where}; live id(s) of that name: {ids}",
                        hint=f"correct the id in the declaration{self._origin(spec)}",
                    )
                    continue
            else:
                candidates = namesakes
            if len(candidates) == 1:
                matched[candidates[0].id] = vspec
            elif candidates:
                for version in candidates:
                    ambiguous[version.id] = (
                        f'{len(candidates)} live versions are named "{version.name}": none of '
                        f"them is deleted. Add the id of the one to keep to the declaration"
                        f"{self._origin(spec)}"
                    )
                self._drift(
                    address=address,
                    key=key,
                    kind=Kind.VERSION,
                    drift=DriftKind.AMBIGUOUS,
                    detail=f'{len(candidates)} live versions of "{model.name}" are named '
                    f'"{vspec.name}" (ids {", ".join(v.id for v in candidates)})',
                    hint="add the id of the one to keep to the declaration" + self._origin(spec),
                )
            else:
                self._drift(
                    address=address,
                    key=key,
                    kind=Kind.VERSION,
                    drift=DriftKind.MISSING,
                    id=vspec.id,
                    detail=f"declared{self._origin(spec)}, not found among the versions of "
                    f'"{model.name}"',
                    hint="reconcile does not create versions: register it on the platform, "
                    "or remove it from the declaration",
                )

        undeclared: list[LiveVersion] = []
        for version in live:
            version_spec = matched.get(version.id)
            if version.id in ambiguous:
                self.changes.append(
                    self._version_change(
                        model,
                        version,
                        shared,
                        Action.NOOP,
                        Reason.AMBIGUOUS,
                        ambiguous[version.id],
                    )
                )
            elif version_spec is not None:
                self.changes.append(
                    self._version_change(
                        model,
                        version,
                        shared,
                        Action.NOOP,
                        Reason.DECLARED,
                        f"declared{self._origin(spec)}",
                    )
                )
                declared = version_spec.declared_attributes()
                if version_spec.id is not None and version_spec.name != version.name:
                    declared = {"name": version_spec.name, **declared}
                self._attribute_drift(
                    self._version_address(model, version, shared),
                    Key(self.provider, model.name, model.id, version.name, version.id),
                    Kind.VERSION,
                    version.id,
                    declared,
                    {"name": version.name, **version.attributes},
                )
            else:
                undeclared.append(version)

        keep = {
            v.id
            for v in sorted(undeclared, key=_newest_first, reverse=True)[: self.policy.keep_latest]
        }
        deletable: list[LiveVersion] = []
        for version in undeclared:
            reason, detail, services = self._version_hold(model, version, spec)
            if reason is None and version.id in keep:
                reason = Reason.RETENTION_KEEP_LATEST
                detail = (
                    f"one of the {self.policy.keep_latest} newest undeclared versions kept by "
                    f"policy keep_latest = {self.policy.keep_latest}"
                )
            if reason is None:
                deletable.append(version)
                continue
            self.changes.append(
                self._version_change(
                    model, version, shared, Action.NOOP, reason, detail, blocked_by=services
                )
            )
        if deletable and len(deletable) == len(model.versions):
            # Nothing else would be left: the last version of a declared model stays.
            last = max(deletable, key=_newest_first)
            deletable.remove(last)
            self.changes.append(
                self._version_change(
                    model,
                    last,
                    shared,
                    Action.NOOP,
                    Reason.LAST_VERSION,
                    f'the last version of declared model "{model.name}" is never deleted; '
                    f"declare the versions to keep{self._origin(spec)}",
                )
            )
        for version in deletable:
            self.changes.append(
                self._version_change(
                    model,
                    version,
                    shared,
                    Action.DELETE,
                    Reason.NOT_IN_MANIFEST,
                    f'not declared among the versions of "{model.name}"{self._origin(spec)}',
                )
            )

    def _version_hold(
        self, model: LiveModel, version: LiveVersion, spec: ModelSpec | None
    ) -> tuple[Reason | None, str, Sequence[ServiceUse]]:
        """Why an otherwise deletable version must stay: protected or in use (None: it may go)."""
        pattern = is_glob_match(
            self.policy.protect, model.name, version_path(model.name, version.name)
        )
        if pattern is not None:
            return Reason.PROTECTED, f'matches protect pattern "{pattern}"', ()
        if spec is not None and spec.protect:
            return Reason.PROTECTED, f"model declared protect = true{self._origin(spec)}", ()
        services = _unique(
            [
                *self.uses.by_version.get(version.id, []),
                # A service that names the model but no version serves one we cannot tell
                # apart: it holds every version of the model.
                *(s for s in self.uses.by_model.get(model.id, []) if not s.version_id),
            ]
        )
        if services:
            return (
                Reason.IN_USE,
                f"used by inference service {_services_text(services)}: delete those services "
                "(or point them at another version) first, then plan again",
                services,
            )
        return None, "", ()

    def _remove_model(self, model: LiveModel, reason: Reason, why: str) -> None:
        """A model that should go: whole if nothing in it must stay, else version by version."""
        pattern = is_glob_match(self.policy.protect, model.name)
        if pattern is not None:
            self.changes.append(
                self._model_change(
                    model,
                    Action.NOOP,
                    Reason.PROTECTED,
                    f'matches protect pattern "{pattern}" (otherwise: {why})',
                )
            )
            return
        shared = shared_names(versions_in_scope(model, self.policy))
        deletable: list[LiveVersion] = []
        held: list[str] = []
        blocking: list[ServiceUse] = list(self.uses.by_model.get(model.id, []))
        for version in _by_name(model.versions):
            if ignored_by(self.policy, version_path(model.name, version.name)) is not None:
                held.append(f'version "{version.name}" matches an ignore pattern')
                continue
            if version.preset:
                # Presets are never in scope: not deleted, and not taken along with their model.
                held.append(f'version "{version.name}" is a platform preset')
                continue
            hold, detail, services = self._version_hold(model, version, None)
            if hold is None:
                deletable.append(version)
                continue
            if hold is Reason.IN_USE:
                blocking.extend(services)
            else:
                held.append(f'version "{version.name}" {detail}')
            self.changes.append(
                self._version_change(
                    model, version, shared, Action.NOOP, hold, detail, blocked_by=services
                )
            )
        if not blocking and not held:
            self.changes.append(
                self._model_change(
                    model,
                    Action.DELETE,
                    reason,
                    why,
                    version_ids=[version.id for version in _by_name(model.versions)],
                )
            )
            return
        for version in deletable:
            self.changes.append(
                self._version_change(model, version, shared, Action.DELETE, reason, why)
            )
        if blocking:
            self.changes.append(
                self._model_change(
                    model,
                    Action.NOOP,
                    Reason.IN_USE,
                    f"would be deleted ({why}), but inference service "
                    f"{_services_text(_unique(blocking))} uses it: delete those services first, "
                    "then plan again",
                    blocked_by=_unique(blocking),
                )
            )
        else:
            self.changes.append(
                self._model_change(
                    model,
                    Action.NOOP,
                    Reason.PROTECTED,
                    f"would be deleted ({why}), but it holds versions that must stay: "
                    + "; ".join(held),
                )
            )

    def scope(self) -> ProviderScope:
        return ProviderScope(
            provider=self.provider,
            type=self.snapshot.provider_type,
            scope=self.config.scope,
            location=self.snapshot.location,
            fingerprint=digest(
                [self._model_state(model) for model in sorted(self.in_scope, key=lambda m: m.id)]
            ),
            models=len(self.in_scope),
            versions=sum(len(model.versions) for model in self.in_scope),
        )


def _unique(services: Iterable[ServiceUse]) -> list[ServiceUse]:
    seen: dict[str, ServiceUse] = {}
    for service in services:
        seen.setdefault(service.id, service)
    return sorted(seen.values(), key=lambda s: s.id)
