"""What every platform provider offers the rest of reconcile."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from reconcile.errors import ReconcileError
from reconcile.model import Snapshot

#: Progress of a long operation: (what, done, total or None when not known yet).
Progress = Callable[[str, int, int | None], None]


class Provider(Protocol):
    #: The provider's name in the manifest (`[providers.NAME]`).
    name: str
    #: The platform type ("fabric", "qianfan").
    type: str
    #: How many whole models one `delete_models` call removes at most (1: one call per model).
    model_delete_batch: int

    async def snapshot(self, progress: Progress | None = None, *, records: bool = True) -> Snapshot:
        """List every live object in scope, completely, or raise `ProviderError`.

        A listing that is incomplete or inconsistent in any way raises
        `ListingIncompleteError`: a plan is never made from part of a workspace. With
        `records=False` the objects' `raw` records are left empty: a re-check before deleting
        compares states, and the receipts come from the approved plan.
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
