"""What every platform provider offers the rest of reconcile, and what a platform is."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from reconcile.errors import ReconcileError
from reconcile.model import MakeRecord, RawRecord, Snapshot

if TYPE_CHECKING:
    from reconcile.providers.http import ErrorMapper, Http

#: Progress of a long operation: (what, done, total or None when not known yet).
Progress = Callable[[str, int, int | None], None]


class Provider(Protocol):
    #: The provider's name in the manifest (`[providers.NAME]`).
    name: str
    #: The platform type ("fabric", "qianfan").
    type: str
    #: How many whole models one `delete_models` call removes at most (1: one call per model).
    model_delete_batch: int

    async def snapshot(
        self, progress: Progress | None = None, *, records: MakeRecord = RawRecord.of
    ) -> Snapshot:
        """List every live object in scope, completely, or raise `ProviderError`.

        A listing that is incomplete or inconsistent in any way raises
        `ListingIncompleteError`: a plan is never made from part of a workspace. `records`
        makes each object's `raw` record from what the platform returned: `no_record` keeps
        none (the check of outcomes after the deletes only asks what exists), `KnownRecords`
        reuses the records a plan holds (the re-listing before the deletes).
        """
        ...

    async def delete_version(self, model_id: str, version_id: str) -> None:
        """Delete one version. `NotFoundError` when it is already gone."""
        ...

    async def delete_models(self, model_ids: Sequence[str]) -> list[ReconcileError | None]:
        """Delete whole models (at most `model_delete_batch`), each with all its versions.

        One outcome per id, in order: None when deleted, `NotFoundError` when already gone, another
        `ReconcileError` when refused or failed.
        """
        ...

    async def aclose(self) -> None: ...


# -- what a platform is, for the registry ---------------------------------------------------------


class Signable(Protocol):
    """A request as a signer reads it and adds its headers to: the `Outgoing` that `Http` sends
    over its own pool, or an httpx.Request (other transports, tests, the SDKs' vectors)."""

    method: str
    url: httpx.URL
    headers: httpx.Headers

    @property
    def content(self) -> bytes: ...


#: Signs a request in place (adds its date and Authorization headers).
Signer = Callable[[Signable], None]


@dataclass(frozen=True)
class Keys:
    """Credential values, read from the environment by the app layer (never from a manifest)."""

    token: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    security_token: str | None = None

    def values(self) -> tuple[str | None, ...]:
        return (self.token, self.access_key, self.secret_key, self.security_token)


@dataclass(frozen=True)
class Auth:
    """How a platform's requests carry the keys: fixed headers, a signer, or both."""

    headers: Mapping[str, str] = field(default_factory=dict)
    sign: Signer | None = None


@dataclass(frozen=True)
class Opening:
    """What the app layer hands a platform to open one provider.

    `spec` is the provider's manifest table (each platform reads its own fields from it);
    `endpoint` turns a URL of the manifest into the one to send to (checked, or the emulator's);
    `http` sends to it with the provider's credentials, limits and retries.
    """

    name: str
    spec: Any
    http: Http
    endpoint: Callable[[str], str]


@dataclass(frozen=True)
class Platform:
    """One entry of the registry of platforms (`reconcile.providers.PLATFORMS`), by type."""

    #: The manifest's `type = "..."`, and the provider's `type`.
    type: str
    #: The platform's name in messages ("Fabric").
    title: str
    #: Reads a failed response: what the platform refused, and how.
    map_error: ErrorMapper
    #: Signs with the keys, or refuses them: (keys, the manifest table, the clock) -> auth.
    authenticate: Callable[[Keys, Any, Callable[[], datetime]], Auth]
    #: The provider, ready to list and delete.
    open: Callable[[Opening], Provider]
    #: The base URL the built-in emulator answers on, and the credentials it accepts.
    emulator_url: str
    emulator_keys: Keys
    #: Whether a token (`token_env`) and a security token (`security_token_env`) can be used.
    accepts_token: bool = False
    accepts_security_token: bool = False
    #: The AK and SK variables read when a manifest names none (the platform SDK's); None: the
    #: manifest must name them.
    default_key_env: tuple[str, str] | None = None
