"""The decisions for one provider scope: DESIGN.md's "What a plan decides", each with its reason.

Over 450 lines on purpose: it is that decision table, read top to bottom (models, the versions
of a declared model, models that should go); splitting it would scatter one table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from reconcile.errors import GuardError, PlanError
from reconcile.manifest import Manifest, ModelSpec, VersionSpec, is_glob_match
from reconcile.model import LiveModel, LiveVersion, ServiceUse, Snapshot
from reconcile.plan import Action, DriftKind, Kind, ProviderScope, Reason
from reconcile.planner.matching import Found, Resolution, claimed_twice, resolve
from reconcile.planner.records import Records
from reconcile.planner.retention import Clock, created_order, rollback_targets
from reconcile.scope import (
    Key,
    declared_address,
    ignored_by,
    models_in_scope,
    quote,
    version_path,
    versions_in_scope,
)

#: Why a version must stay (None: it may go), in words, and the services that hold it.
_Hold = tuple[Reason | None, str, Sequence[ServiceUse]]


def _services_text(services: Sequence[ServiceUse]) -> str:
    return ", ".join(f'{s.id} ("{s.name}", {s.status})' for s in services)


def _unique(services: Iterable[ServiceUse]) -> list[ServiceUse]:
    seen: dict[str, ServiceUse] = {}
    for service in services:
        seen.setdefault(service.id, service)
    return sorted(seen.values(), key=lambda s: s.id)


def _claim(spec: ModelSpec | VersionSpec, live: LiveModel | LiveVersion, origin: str = "") -> str:
    """How a declaration names a live object, for the message that refuses a second one."""
    named = f'"{spec.name}"' + (f" with id {spec.id}" if spec.id is not None else "") + origin
    return named + (" (by id)" if spec.id == live.id else " (by name)")


def _refuse_claimed_twice(clashes: Iterable[str]) -> None:
    found = list(clashes)
    if found:
        raise PlanError(
            "two declarations claim one live object, so which one wins would decide what is "
            "deleted: nothing was planned, nothing deleted\n"
            + "\n".join(f"  - {clash}" for clash in found),
            hint="declare each live object once: remove one of the two declarations, or correct "
            "its name or id",
        )


@dataclass(frozen=True)
class _Declaration:
    """What the messages about one resolved declaration say: where, what and how to address it."""

    #: "model", or "version" with `of` = ' of "MODEL"'.
    noun: str
    of: str
    #: " at FILE:LINE" (the model's table, for a version too), or "".
    origin: str
    #: What the declaration wants of the object: "to keep" or "to delete".
    purpose: str
    address: str
    key: Key


class ProviderPlanner:
    """Decides, for every live object in scope of one provider, what the plan does with it."""

    def __init__(
        self,
        manifest: Manifest,
        provider: str,
        snapshot: Snapshot,
        *,
        refuse_empty: bool = True,
        now: datetime | None = None,
        first_seen: Mapping[str, datetime] | None = None,
    ) -> None:
        self.manifest = manifest
        self.provider = provider
        self.snapshot = snapshot
        self.refuse_empty = refuse_empty
        self.config = manifest.providers[provider]
        self.policy = manifest.policy_for(provider)
        self.clock = Clock(self.policy, now, first_seen or {})
        #: Declarations that can have no effect, as "<what> (<where>): <fix>".
        self.warnings: list[str] = []
        self.specs = []
        for spec in manifest.models_for(provider):
            pattern = ignored_by(self.policy, spec.name)
            if pattern is None:
                self.specs.append(spec)
            else:
                self._warn(
                    spec,
                    f'model "{spec.name}" is declared, but matches ignore pattern "{pattern}": '
                    "reconcile never manages it",
                    "remove the declaration, or the ignore pattern",
                )
        self.in_scope = models_in_scope(snapshot, self.policy)
        self.records = Records(provider, snapshot, self.policy, self.in_scope)
        #: Per model id: its rollback targets (version id -> the version in use, its services).
        self._rollback: dict[str, dict[str, tuple[LiveVersion, list[ServiceUse]]]] = {}
        #: Per declaration: " at FILE:LINE", said on each line of its model's versions.
        self._origins: dict[str, str] = {}

    def scope(self) -> ProviderScope:
        return self.records.scope(self.config.scope)

    def _origin(self, spec: ModelSpec) -> str:
        key = f"models.{spec.provider}/{spec.name}"
        origin = self._origins.get(key)
        if origin is None:
            location = self.manifest.origins.get(key)
            origin = self._origins[key] = f" at {location}" if location else ""
        return origin

    def _warn(self, spec: ModelSpec, what: str, fix: str) -> None:
        """A declaration that can have no effect: "<what> (<where>): <fix>", as validate says."""
        key = f"models.{spec.provider}/{spec.name}"
        self.warnings.append(f"{what} ({self.manifest.origins.get(key, key)}): {fix}")

    # -- models -----------------------------------------------------------------------------------

    def run(self) -> None:
        matched, held = self._match_models()
        self._refuse_empty()
        for model in self.in_scope:
            spec = matched.get(model.id)
            if model.id in held:
                self.records.model_change(model, Action.NOOP, Reason.AMBIGUOUS, held[model.id])
            elif spec is not None and not spec.absent:
                self._declared_model(model, spec)
            elif spec is not None:
                self._remove_model(
                    model, Reason.DECLARED_ABSENT, f"declared absent = true{self._origin(spec)}"
                )
            elif self.config.scope == "workspace":
                self._remove_model(
                    model,
                    Reason.NOT_IN_MANIFEST,
                    f'not declared, and scope = "workspace" makes the manifests the whole truth '
                    f"for {self.snapshot.location}",
                )

    def _refuse_empty(self) -> None:
        declared = [spec for spec in self.specs if not spec.absent]
        empty = self.config.scope == "workspace" and not declared and not self.config.allow_empty
        if empty and self.refuse_empty:
            raise GuardError(
                f'provider "{self.provider}" has scope = "workspace" and no declared model: '
                f"the plan would delete everything in {self.snapshot.location}",
                hint=f"declare the models to keep, or set allow_empty = true in "
                f"[providers.{self.provider}] if emptying it is really what you want",
            )

    def _match_models(self) -> tuple[dict[str, ModelSpec], dict[str, str]]:
        """Declarations matched to live models (by model id); and the live models no plan may
        touch because a declaration cannot tell them apart (id -> why)."""
        matched: dict[str, ModelSpec] = {}
        held: dict[str, str] = {}
        resolutions = resolve(self.specs, self.in_scope)
        _refuse_claimed_twice(
            f'live model "{model.name}" (id {model.id}) is claimed by two declarations: '
            f"{_claim(first, model, self._origin(first))} and "
            f"{_claim(second, model, self._origin(second))}"
            for model, first, second in claimed_twice(resolutions)
        )
        for resolution in resolutions:
            spec = resolution.spec
            if resolution.found is Found.MATCHED:
                matched[resolution.objects[0].id] = spec
            elif resolution.found is Found.MISSING:
                self._missing_model(spec)
            else:
                declaration = _Declaration(
                    noun="model",
                    of="",
                    origin=self._origin(spec),
                    purpose="to delete" if spec.absent else "to keep",
                    address=declared_address(self.provider, spec.name),
                    key=Key(self.provider, spec.name, spec.id),
                )
                held.update(self._held(resolution, declaration))
        return matched, held

    def _is_preset(self, spec: ModelSpec) -> bool:
        return any(
            model.preset and (model.id == spec.id if spec.id else model.name == spec.name)
            for model in self.snapshot.models
        )

    def _missing_model(self, spec: ModelSpec) -> None:
        if spec.absent and self._is_preset(spec):
            self._warn(
                spec,
                f'model "{spec.name}" is declared absent = true, but the live model is a '
                "platform preset, which reconcile never deletes",
                "remove the declaration",
            )
        if spec.absent:
            return
        if self._is_preset(spec):
            detail = (
                f"declared{self._origin(spec)}, but the live model of that name is a platform "
                "preset, which reconcile never manages"
            )
            hint = "remove the declaration: presets are not yours to keep or delete"
        else:
            detail = f"declared{self._origin(spec)}, not found in {self.snapshot.location}"
            hint = (
                "reconcile does not create models: register it on the platform, or remove the "
                "declaration"
            )
        self.records.add_drift(
            address=declared_address(self.provider, spec.name),
            key=Key(self.provider, spec.name, spec.id),
            kind=Kind.MODEL,
            drift=DriftKind.MISSING,
            id=spec.id,
            detail=detail,
            hint=hint,
        )

    def _held(
        self,
        resolution: Resolution[ModelSpec, LiveModel] | Resolution[VersionSpec, LiveVersion],
        declaration: _Declaration,
    ) -> dict[str, str]:
        """The live objects a declaration cannot tell apart (id -> why none is deleted), and the
        ambiguous drift that says so."""
        spec, noun = resolution.spec, declaration.noun
        ids = ", ".join(item.id for item in resolution.namesakes)
        if resolution.found is Found.WRONG_ID:
            where = f"names another {noun}" if resolution.id_live else "is not live"
            why = (
                f"declared{declaration.origin} with id {spec.id}, which {where}, while live "
                f'{noun}(s) named "{spec.name}" have id(s) {ids}: none of them is deleted. Fix the '
                "id or the name in the declaration"
            )
            detail = f"declared id {spec.id} {where}; live id(s) of that name: {ids}"
            hint = f"correct the id in the declaration{declaration.origin}"
            drift_id = spec.id
        else:
            count = len(resolution.objects)
            why = (
                f'{count} live {noun}s are named "{spec.name}": none of them is deleted. Add the '
                f"id of the one {declaration.purpose} to the declaration{declaration.origin}"
            )
            detail = f'{count} live {noun}s{declaration.of} are named "{spec.name}" (ids {ids})'
            hint = f"add the id of the one {declaration.purpose} to the declaration"
            hint += declaration.origin
            drift_id = None
        self.records.add_drift(
            address=declaration.address,
            key=declaration.key,
            kind=Kind.MODEL if noun == "model" else Kind.VERSION,
            drift=DriftKind.AMBIGUOUS,
            id=drift_id,
            detail=detail,
            hint=hint,
        )
        return {item.id: why for item in resolution.objects}

    def _declared_model(self, model: LiveModel, spec: ModelSpec) -> None:
        self.records.model_change(
            model, Action.NOOP, Reason.DECLARED, f"declared{self._origin(spec)}"
        )
        declared = spec.declared_attributes()
        if spec.id is not None and spec.name != model.name:
            declared = {"name": spec.name, **declared}
        self.records.attribute_drift(model, None, declared)
        if spec.versions is not None:
            self._declared_versions(model, spec, spec.versions)

    # -- versions of a declared model -------------------------------------------------------------

    def _declared_versions(
        self, model: LiveModel, spec: ModelSpec, version_specs: Sequence[VersionSpec]
    ) -> None:
        live = versions_in_scope(model, self.policy)
        version_specs = self._managed_versions(model, spec, version_specs)
        matched: dict[str, VersionSpec] = {}
        #: Live versions a declaration cannot tell apart: version id -> why none is deleted.
        held: dict[str, str] = {}
        resolutions = resolve(version_specs, live)
        _refuse_claimed_twice(
            f'live version "{version.name}" (id {version.id}) of model "{model.name}" is claimed '
            f"by two of its declared versions{self._origin(spec)}: {_claim(first, version)} and "
            f"{_claim(second, version)}"
            for version, first, second in claimed_twice(resolutions)
        )
        for resolution in resolutions:
            vspec = resolution.spec
            address = f"{self.records.model_address(model)}/{quote(vspec.name)}"
            key = Key(self.provider, model.name, model.id, vspec.name, vspec.id)
            if resolution.found is Found.MATCHED:
                matched[resolution.objects[0].id] = vspec
            elif resolution.found is Found.MISSING:
                self.records.add_drift(
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
            else:
                declaration = _Declaration(
                    noun="version",
                    of=f' of "{model.name}"',
                    origin=self._origin(spec),
                    purpose="to keep",
                    address=address,
                    key=key,
                )
                held.update(self._held(resolution, declaration))
        undeclared = self._keep_declared(model, spec, live, matched, held)
        self._retain(model, spec, undeclared)

    def _managed_versions(
        self, model: LiveModel, spec: ModelSpec, version_specs: Sequence[VersionSpec]
    ) -> list[VersionSpec]:
        """Ignored versions are not managed: a declaration of one is neither matched nor missing,
        and is warned about."""
        managed = []
        for vspec in version_specs:
            pattern = ignored_by(self.policy, version_path(model.name, vspec.name))
            if pattern is None:
                managed.append(vspec)
                continue
            self._warn(
                spec,
                f'version "{vspec.name}" of model "{model.name}" is declared, but matches ignore '
                f'pattern "{pattern}": reconcile never manages it',
                "remove it from the declaration, or the ignore pattern",
            )
        return managed

    def _keep_declared(
        self,
        model: LiveModel,
        spec: ModelSpec,
        live: Sequence[LiveVersion],
        matched: dict[str, VersionSpec],
        held: dict[str, str],
    ) -> list[LiveVersion]:
        """The lines of the declared and the held versions; the undeclared ones, returned."""
        undeclared: list[LiveVersion] = []
        for version in live:
            version_spec = matched.get(version.id)
            if version.id in held:
                self.records.version_change(
                    model, version, Action.NOOP, Reason.AMBIGUOUS, held[version.id]
                )
            elif version_spec is not None:
                self.records.version_change(
                    model, version, Action.NOOP, Reason.DECLARED, f"declared{self._origin(spec)}"
                )
                declared = version_spec.declared_attributes()
                if version_spec.id is not None and version_spec.name != version.name:
                    declared = {"name": version_spec.name, **declared}
                self.records.attribute_drift(model, version, declared)
            else:
                undeclared.append(version)
        return undeclared

    def _retain(self, model: LiveModel, spec: ModelSpec, undeclared: list[LiveVersion]) -> None:
        """The undeclared versions of a declared model: held, kept by retention, or deleted."""
        newest = sorted(undeclared, key=created_order, reverse=True)[: self.policy.keep_latest]
        keep = {version.id for version in newest}
        deletable: list[LiveVersion] = []
        for version in undeclared:
            reason, detail, services = self._version_hold(model, version, spec)
            if reason is None and version.id in keep:
                reason = Reason.RETENTION_KEEP_LATEST
                detail = (
                    f"one of the {self.policy.keep_latest} newest undeclared versions kept by "
                    f"policy keep_latest = {self.policy.keep_latest}"
                )
            within = self.clock.within(version.created) if reason is None else None
            if within is not None:
                reason, detail = Reason.RETENTION_KEEP_WITHIN, within
            if reason is None:
                deletable.append(version)
                continue
            self.records.version_change(
                model, version, Action.NOOP, reason, detail, blocked_by=services
            )
        if deletable and len(deletable) == len(model.versions):
            # Nothing else would be left: the last version of a declared model stays.
            last = max(deletable, key=created_order)
            deletable.remove(last)
            self.records.version_change(
                model,
                last,
                Action.NOOP,
                Reason.LAST_VERSION,
                f'the last version of declared model "{model.name}" is never deleted; '
                f"declare the versions to keep{self._origin(spec)}",
            )
        for version in deletable:
            self._delete_version(
                model,
                version,
                Reason.NOT_IN_MANIFEST,
                f'not declared among the versions of "{model.name}"{self._origin(spec)}',
            )

    def _delete_version(
        self, model: LiveModel, version: LiveVersion, reason: Reason, why: str
    ) -> None:
        """A version that may go: deleted, unless its grace period still runs."""
        pending, note = self.clock.pending(Kind.VERSION, version.id)
        if pending is not None:
            self.records.version_change(
                model, version, Action.NOOP, Reason.GRACE_PENDING, f"{pending} (then: {why})"
            )
        else:
            self.records.version_change(model, version, Action.DELETE, reason, why + note)

    def _version_hold(
        self, model: LiveModel, version: LiveVersion, spec: ModelSpec | None
    ) -> _Hold:
        """Why an otherwise deletable version must stay: protected or in use (None: it may go)."""
        pattern = is_glob_match(
            self.policy.protect, model.name, version_path(model.name, version.name)
        )
        if pattern is not None:
            return Reason.PROTECTED, f'matches protect pattern "{pattern}"', ()
        if spec is not None and spec.protect:
            return Reason.PROTECTED, f"model declared protect = true{self._origin(spec)}", ()
        uses = self.records.uses
        by_version = uses.by_version.get(version.id)
        by_model = uses.by_model.get(model.id)
        services = (
            _unique(
                [
                    *(by_version or ()),
                    # A service that names the model but no version serves one we cannot tell
                    # apart: it holds every version of the model.
                    *(s for s in by_model or () if not s.version_id),
                ]
            )
            if by_version or by_model
            else []
        )
        if services:
            return (
                Reason.IN_USE,
                f"used by inference service {_services_text(services)}: delete those services "
                "(or point them at another version) first, then plan again",
                services,
            )
        target = self._rollback_targets(model).get(version.id)
        if target is not None:
            used, users = target
            count = self.policy.keep_before_in_use
            return (
                Reason.ROLLBACK_TARGET,
                f'rollback target: one of the {count} versions created just before "{used.name}", '
                f"which inference service {_services_text(_unique(users))} uses (policy "
                f"keep_before_in_use = {count})",
                (),
            )
        too_new = self.clock.too_new(version.created)
        if too_new is not None:
            return Reason.TOO_NEW, too_new, ()
        return None, "", ()

    def _rollback_targets(
        self, model: LiveModel
    ) -> dict[str, tuple[LiveVersion, list[ServiceUse]]]:
        targets = self._rollback.get(model.id)
        if targets is None:
            targets = self._rollback[model.id] = rollback_targets(
                model, self.records.uses.by_version, self.policy.keep_before_in_use
            )
        return targets

    # -- models that should go --------------------------------------------------------------------

    def _remove_model(self, model: LiveModel, reason: Reason, why: str) -> None:
        """A model that should go: whole if nothing in it must stay, else version by version."""
        pattern = is_glob_match(self.policy.protect, model.name)
        if pattern is not None:
            self.records.model_change(
                model,
                Action.NOOP,
                Reason.PROTECTED,
                f'matches protect pattern "{pattern}" (otherwise: {why})',
            )
            return
        too_new = self.clock.too_new(model.created)
        if too_new is not None:
            self.records.model_change(
                model, Action.NOOP, Reason.TOO_NEW, f"{too_new} (otherwise: {why})"
            )
            return
        deletable, held, blocking = self._hold_versions(model)
        if not blocking and not held:
            pending, note = self.clock.pending(Kind.MODEL, model.id)
            if pending is not None:
                self.records.model_change(
                    model, Action.NOOP, Reason.GRACE_PENDING, f"{pending} (then: {why})"
                )
                return
            self.records.model_change(
                model,
                Action.DELETE,
                reason,
                why + note,
                version_ids=[version.id for version in self.records.versions_by_name(model)],
            )
            return
        for version in deletable:
            self._delete_version(model, version, reason, why)
        if blocking:
            self.records.model_change(
                model,
                Action.NOOP,
                Reason.IN_USE,
                f"would be deleted ({why}), but inference service "
                f"{_services_text(_unique(blocking))} uses it: delete those services first, "
                "then plan again",
                blocked_by=_unique(blocking),
            )
        else:
            self.records.model_change(
                model,
                Action.NOOP,
                Reason.PROTECTED,
                f"would be deleted ({why}), but it holds versions that must stay: "
                + "; ".join(held),
            )

    def _hold_versions(
        self, model: LiveModel
    ) -> tuple[list[LiveVersion], list[str], list[ServiceUse]]:
        """The versions of a model that should go: those that may go; why the others stay (in
        words); and the services that use the model or its versions. Held versions get a line."""
        deletable: list[LiveVersion] = []
        held: list[str] = []
        blocking: list[ServiceUse] = list(self.records.uses.by_model.get(model.id, []))
        for version in self.records.versions_by_name(model):
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
            self.records.version_change(
                model, version, Action.NOOP, hold, detail, blocked_by=services
            )
        return deletable, held, blocking
