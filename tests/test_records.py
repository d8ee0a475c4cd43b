"""How a listing makes its raw records: `no_record` (the check of outcomes after the deletes)
keeps none and the same states; `KnownRecords` (the re-listing before the deletes) gives back the
records a plan holds wherever the platform's answer is unchanged, and new ones where it changed."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

from reconcile.manifest import load_manifest
from reconcile.model import (
    EMPTY_RECORD,
    KnownRecords,
    MakeRecord,
    RawRecord,
    Snapshot,
    model_state,
    no_record,
)
from reconcile.providers.base import Provider
from reconcile.wiring import Options, open_providers

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


def _listings(
    tmp_path: Path, maker: Callable[[Snapshot], MakeRecord]
) -> dict[str, tuple[Snapshot, Snapshot]]:
    """Each provider of the demo listed twice: as a plan lists it, then with the records that
    `maker` makes of the first listing."""
    for name in ("reconcile.toml", "emulator-state.json"):
        shutil.copy(DEMO / name, tmp_path / name)
    manifest = load_manifest(tmp_path / "reconcile.toml")
    providers = open_providers(manifest, None, Options(state_dir=tmp_path / ".state"))

    async def twice(provider: Provider) -> tuple[Snapshot, Snapshot]:
        first = await provider.snapshot()
        return first, await provider.snapshot(records=maker(first))

    async def every() -> dict[str, tuple[Snapshot, Snapshot]]:
        try:
            return {name: await twice(provider) for name, provider in providers.items()}
        finally:
            for provider in providers.values():
                await provider.aclose()

    return asyncio.run(every())


def _records(snapshot: Snapshot) -> list[RawRecord]:
    return [
        record
        for model in snapshot.models
        for record in (model.raw, *(version.raw for version in model.versions))
    ]


def test_a_listing_without_records_has_the_same_states_and_empty_records(tmp_path: Path) -> None:
    listings = _listings(tmp_path, lambda first: no_record)
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


def test_a_relisting_gives_back_the_records_a_plan_holds(tmp_path: Path) -> None:
    def held(first: Snapshot) -> MakeRecord:
        # As a plan holds them: a whole model's record joined with its versions'.
        return KnownRecords(
            model.raw.with_list("versions", (version.raw for version in model.versions))
            for model in first.models
        )

    for first, again in _listings(tmp_path, held).values():
        records, reused = _records(first), _records(again)
        assert len(records) == len(reused) > 10
        assert all(mine is theirs for mine, theirs in zip(records, reused, strict=True))


def test_known_records_make_a_new_record_where_the_answer_changed() -> None:
    plans = RawRecord.of({"id": "m1", "name": "a"}).with_list(
        "versions", [RawRecord.of({"id": "v1", "n": 1}), RawRecord.of({"id": "v2", "n": 2})]
    )
    make = KnownRecords([plans])
    parts = list(plans.parts())
    assert [part.text for part in parts] == [
        '{"id":"m1","name":"a"}',
        '{"id":"v1","n":1}',
        '{"id":"v2","n":2}',
    ]
    assert make({"id": "v2", "n": 2}) is parts[2]
    assert make({"id": "m1", "name": "a"}) is parts[0]
    changed = make({"id": "v2", "n": 3})
    assert changed not in parts and changed == RawRecord.of({"id": "v2", "n": 3})
    # Key order is part of the record: the platform's answer is kept as it came.
    assert make({"n": 1, "id": "v1"}) is not parts[1]
    # Integers beyond 64 bits are kept exactly, whichever encoder wrote the held record.
    big = RawRecord.of({"id": "v9", "size": 2**70})
    assert KnownRecords([big])({"id": "v9", "size": 2**70}) is big
