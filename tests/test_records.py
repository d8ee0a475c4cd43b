"""A listing with `records=False` (the applier's re-check) has the same states, no raw records."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from reconcile.manifest import load_manifest
from reconcile.model import EMPTY_RECORD, Snapshot, model_state
from reconcile.wiring import Options, open_providers

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


def _listings(tmp_path: Path) -> dict[str, tuple[Snapshot, Snapshot]]:
    for name in ("reconcile.toml", "emulator-state.json"):
        shutil.copy(DEMO / name, tmp_path / name)
    manifest = load_manifest(tmp_path / "reconcile.toml")
    providers = open_providers(manifest, None, Options(state_dir=tmp_path / ".state"))

    async def both() -> dict[str, tuple[Snapshot, Snapshot]]:
        try:
            return {
                name: (await provider.snapshot(), await provider.snapshot(records=False))
                for name, provider in providers.items()
            }
        finally:
            for provider in providers.values():
                await provider.aclose()

    return asyncio.run(both())


def test_a_listing_without_records_has_the_same_states_and_empty_records(tmp_path: Path) -> None:
    listings = _listings(tmp_path)
    assert {snapshot.provider_type for snapshot, _ in listings.values()} == {"fabric", "qianfan"}
    for full, light in listings.values():
        assert [m.id for m in full.models] == [m.id for m in light.models]
        full_uses, light_uses = full.uses(), light.uses()
        for with_raw, without in zip(full.models, light.models, strict=True):
            assert model_state(with_raw, full_uses) == model_state(without, light_uses)
            assert with_raw.raw != EMPTY_RECORD and without.raw is EMPTY_RECORD
            assert all(version.raw is EMPTY_RECORD for version in without.versions)
            assert all(version.raw != EMPTY_RECORD for version in with_raw.versions)
        assert full.services == light.services
