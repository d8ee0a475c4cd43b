"""Provider-neutral records of live state.

A provider lists a platform scope (a Fabric workspace, a Qianfan account) into one `Snapshot`: its
models, their versions and the inference services that use them. Records are frozen; `raw` keeps
every field the platform returned so that a delete's journal receipt could re-register the object.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, SkipValidation


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServiceUse(Record):
    """An inference service that serves a model (and, where the platform says, one version of it).

    Only services whose status is not a terminal "deleted" one are kept by providers: those are
    the ones that make a version undeletable.
    """

    id: str
    name: str
    status: str
    model_id: str
    version_id: str | None = None


class LiveVersion(Record):
    id: str
    name: str
    model_id: str
    #: When the platform created it; None when the platform did not say (sorted as oldest).
    created: datetime | None = None
    #: Attributes a manifest may declare and that are compared for drift
    #: (`description`, `base_model_type`, `model_path`); absent keys were not reported.
    attributes: dict[str, str | None] = {}
    #: A platform preset (PUBLIC on Fabric, System/PlatformPreset on Qianfan): never in scope.
    preset: bool = False
    #: Everything the platform returned for this version, as it returned it. Kept as given, not
    #: validated or copied: it is the platform's JSON, and a listing holds 100k of them.
    raw: SkipValidation[dict[str, Any]] = {}


class LiveModel(Record):
    id: str
    name: str
    created: datetime | None = None
    attributes: dict[str, str | None] = {}
    preset: bool = False
    versions: tuple[LiveVersion, ...] = ()
    raw: SkipValidation[dict[str, Any]] = {}


class FieldChange(Record):
    """One declared attribute whose live value differs."""

    field: str
    declared: Any
    live: Any


class Snapshot(Record):
    """All live objects of one provider scope, listed completely (or not at all)."""

    provider: str
    provider_type: str
    #: Human words for where these objects live, e.g. "workspace ws-7f3a".
    location: str
    models: tuple[LiveModel, ...]
    services: tuple[ServiceUse, ...] = ()

    def uses(self) -> Uses:
        """Which services make which objects undeletable."""
        by_version: dict[str, list[ServiceUse]] = {}
        by_model: dict[str, list[ServiceUse]] = {}
        for service in self.services:
            by_model.setdefault(service.model_id, []).append(service)
            if service.version_id is not None:
                by_version.setdefault(service.version_id, []).append(service)
        return Uses(by_version=by_version, by_model=by_model)


class Uses(Record):
    #: Version id -> the services that serve that version.
    by_version: dict[str, list[ServiceUse]]
    #: Model id -> every service that serves the model (any of its versions, or the model itself).
    by_model: dict[str, list[ServiceUse]]


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def _canonical(value: Any) -> bytes:
    return _CANONICAL.encode(value).encode()


def digest(value: Any) -> str:
    """sha256 of the canonical JSON of `value`, as `sha256:<hex>`."""
    return "sha256:" + hashlib.sha256(_canonical(value)).hexdigest()


def version_state(version: LiveVersion, uses: Uses) -> dict[str, Any]:
    """What about a version, if it changed, makes a plan that deletes it stale: a rename, other
    attributes, a service that started using it (or its whole model)."""
    by_model = uses.by_model.get(version.model_id)
    by_version = uses.by_version.get(version.id)
    used_by: list[str] = []
    if by_model or by_version:  # most versions are used by nothing: skip the work
        services = (by_version or []) + [s for s in by_model or [] if s.version_id is None]
        used_by = sorted(service.id for service in services)
    return {
        "id": version.id,
        "name": version.name,
        "preset": version.preset,
        "attributes": version.attributes,
        "used_by": used_by,
    }


def model_state(model: LiveModel, uses: Uses) -> dict[str, Any]:
    """What about a model, if it changed, makes a plan that deletes it stale: a version added or
    removed, a renamed model, a service that started using it."""
    return {
        "id": model.id,
        "name": model.name,
        "preset": model.preset,
        "attributes": model.attributes,
        "used_by": sorted(service.id for service in uses.by_model.get(model.id, [])),
        # Sorted: platforms promise no listing order, and the digest must not depend on one.
        "versions": [
            version_state(version, uses) for version in sorted(model.versions, key=lambda v: v.id)
        ],
    }
