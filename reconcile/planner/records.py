"""The plan's records for one provider scope: changes with their address, state digest and live
record, drift with what a `--target` matches it by, and the scope's fingerprint."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from reconcile.diff import field_changes
from reconcile.manifest import Policy
from reconcile.model import (
    FieldChange,
    LiveModel,
    LiveVersion,
    ServiceUse,
    Snapshot,
    digest,
    digest_each,
    model_state,
    version_state,
)
from reconcile.plan import Action, Change, Drift, DriftKind, Kind, ProviderScope, Reason
from reconcile.scope import (
    Key,
    model_address,
    shared_names,
    version_address,
    versions_in_scope,
)


def by_name(versions: Iterable[LiveVersion]) -> list[LiveVersion]:
    """Versions in a fixed order: a plan must not depend on the order a platform lists them in."""
    return sorted(versions, key=_NAME_AND_ID)


_NAME_AND_ID = attrgetter("name", "id")


@dataclass
class Records:
    """Builds and collects the records of one provider scope, in the order they are decided."""

    provider: str
    snapshot: Snapshot
    policy: Policy
    #: The live models in scope.
    models: Sequence[LiveModel]
    changes: list[Change] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    #: What a --target is matched against, one per item of `drift`.
    drift_keys: list[Key] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.uses = self.snapshot.uses()
        self.shared_models = shared_names(self.models)
        #: The digest of each model's `model_state` by the id() of its live record (held by the
        #: snapshot meanwhile), and the scope's fingerprint: made together (`_digest_models`).
        self._digested: tuple[dict[int, str], str] | None = None
        #: Per model id: the version names that repeat among its versions in scope.
        self._shared_versions: dict[str, frozenset[str]] = {}
        #: Per model id: its versions `by_name`, sorted once (a model that goes asks thrice).
        self._by_name: dict[str, list[LiveVersion]] = {}

    def versions_by_name(self, model: LiveModel) -> list[LiveVersion]:
        found = self._by_name.get(model.id)
        if found is None:
            found = self._by_name[model.id] = by_name(model.versions)
        return found

    def model_digest(self, model: LiveModel) -> str:
        """The digest of `model_state`, for a deleted model's `state_digest`."""
        found = self._digest_models()[0].get(id(model))
        return found if found is not None else digest(model_state(model, self.uses))

    def _digest_models(self) -> tuple[dict[int, str], str]:
        """Every model's state digest and the scope's fingerprint (the digest of them all), in
        one pass made once: the states (a dict per version, 100k at scale) are encoded as they
        are made and never held together, which took 40 MB at the top of a large plan."""
        if self._digested is None:
            ordered = sorted(self.models, key=lambda model: model.id)
            each, whole = digest_each(model_state(model, self.uses) for model in ordered)
            self._digested = dict(zip(map(id, ordered), each, strict=True)), whole
        return self._digested

    def model_address(self, model: LiveModel) -> str:
        return model_address(self.provider, model, self.shared_models)

    def version_address(self, model: LiveModel, version: LiveVersion) -> str:
        shared = self._shared_versions.get(model.id)
        if shared is None:
            shared = shared_names(versions_in_scope(model, self.policy))
            self._shared_versions[model.id] = shared
        return version_address(self.model_address(model), version, shared)

    def model_change(
        self,
        model: LiveModel,
        action: Action,
        reason: Reason,
        detail: str,
        *,
        blocked_by: Sequence[ServiceUse] = (),
        version_ids: Sequence[str] = (),
    ) -> None:
        recorded = action is Action.DELETE or reason is Reason.IN_USE
        self.changes.append(
            Change.trusted(
                address=self.model_address(model),
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
                state_digest=self.model_digest(model) if recorded else "",
                before=(
                    model.raw.with_list("versions", (v.raw for v in self.versions_by_name(model)))
                    if recorded
                    else None
                ),
            )
        )

    def version_change(
        self,
        model: LiveModel,
        version: LiveVersion,
        action: Action,
        reason: Reason,
        detail: str,
        *,
        blocked_by: Sequence[ServiceUse] = (),
    ) -> None:
        recorded = action is Action.DELETE or reason is Reason.IN_USE
        self.changes.append(
            Change.trusted(
                address=self.version_address(model, version),
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
        )

    def add_drift(
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

    def attribute_drift(
        self,
        model: LiveModel,
        version: LiveVersion | None,
        declared: Mapping[str, str],
    ) -> None:
        """Drift `changed` for the declared attributes (and a declared name, for an object
        declared by id) that differ from the live ones of `version`, or of `model`."""
        live_object: LiveModel | LiveVersion = model if version is None else version
        changed = field_changes(declared, {"name": live_object.name, **live_object.attributes})
        if not changed:
            return
        if version is None:
            address, key = self.model_address(model), Key(self.provider, model.name, model.id)
        else:
            address = self.version_address(model, version)
            key = Key(self.provider, model.name, model.id, version.name, version.id)
        self.add_drift(
            address=address,
            key=key,
            kind=Kind.MODEL if version is None else Kind.VERSION,
            drift=DriftKind.CHANGED,
            id=live_object.id,
            fields=tuple(changed),
            detail="declared attributes differ from the live ones: "
            + ", ".join(change.field for change in changed),
            hint="reconcile does not update objects: change them on the platform, or "
            "declare the live values",
        )

    def scope(self, scope: str) -> ProviderScope:
        return ProviderScope(
            provider=self.provider,
            type=self.snapshot.provider_type,
            scope=scope,
            location=self.snapshot.location,
            fingerprint=self._digest_models()[1],
            models=len(self.models),
            versions=sum(len(model.versions) for model in self.models),
        )
