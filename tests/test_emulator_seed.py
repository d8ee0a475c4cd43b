"""A working copy of a seed state knows whether its seed changed since it was made, so that an
edited seed is noticed instead of silently ignored (issue 18); `emulator reset` starts over."""

from __future__ import annotations

import json
import os
from pathlib import Path

from reconcile.cli import main
from reconcile.emulator import create_app
from reconcile.emulator.store import copy_seed, seed_changed, seed_record


def seed_file(tmp_path: Path) -> Path:
    seed = tmp_path / "emulator-state.json"
    seed.write_text(json.dumps({"qianfan": {"access_keys": {"ak": "sk"}}}), encoding="utf-8")
    return seed


def test_a_fresh_copy_is_the_seed_and_its_own_deletes_do_not_make_it_stale(
    tmp_path: Path,
) -> None:
    seed = seed_file(tmp_path)
    copy = tmp_path / "state" / "emulator" / seed.name
    copy_seed(seed, copy)
    assert copy.read_bytes() == seed.read_bytes()
    assert not seed_changed(seed, copy)
    # The emulator persists its changes into the copy: that is not a change of the seed.
    emulator = create_app(copy, persist_path=copy).state.emulator
    emulator.state["qianfan"]["access_keys"].clear()
    emulator.persist()
    assert not seed_changed(seed, copy)


def test_an_edited_seed_is_noticed_until_the_copy_is_made_again(tmp_path: Path) -> None:
    seed = seed_file(tmp_path)
    copy = tmp_path / "copy.json"
    copy_seed(seed, copy)
    seed.write_text(json.dumps({"qianfan": {"access_keys": {"ak2": "sk2"}}}), encoding="utf-8")
    assert seed_changed(seed, copy)
    # Touching the copy later (a persisted delete) does not hide the edit.
    os.utime(copy, (seed.stat().st_mtime + 60,) * 2)
    assert seed_changed(seed, copy)
    copy_seed(seed, copy)
    assert not seed_changed(seed, copy)


def test_a_copy_without_a_record_is_judged_by_modification_times(tmp_path: Path) -> None:
    seed = seed_file(tmp_path)
    copy = tmp_path / "copy.json"
    copy.write_bytes(seed.read_bytes())  # as copies were made before records were kept
    os.utime(seed, (1_000_000, 1_000_000))
    os.utime(copy, (2_000_000, 2_000_000))
    assert not seed_changed(seed, copy)
    os.utime(seed, (3_000_000, 3_000_000))
    assert seed_changed(seed, copy)


def test_emulator_reset_removes_the_copies_and_their_records(tmp_path: Path) -> None:
    seed = seed_file(tmp_path)
    (tmp_path / "reconcile.toml").write_text(
        '[providers.q]\ntype = "qianfan"\nendpoint = "emulator:emulator-state.json"\n',
        encoding="utf-8",
    )
    copy = tmp_path / ".reconcile" / "emulator" / seed.name
    copy_seed(seed, copy)
    assert seed_record(copy).exists()
    assert main(["emulator", "reset", str(tmp_path)]) == 0
    assert not copy.exists() and not seed_record(copy).exists()
