"""`EmulatorSettings`: one record for how an emulator runs, passed whole; its fields still work
as keywords of `create_app` (the way callers outside the package use it), overriding the record."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from reconcile.emulator import EmulatorSettings, Fault, create_app, serve


def test_a_settings_record_is_passed_whole_and_keywords_override_it(tmp_path: Path) -> None:
    persisted = tmp_path / "state.json"
    persisted.write_text("{}", encoding="utf-8")
    settings = EmulatorSettings(
        persist_path=persisted,
        latency_ms=2,
        latency_jitter_ms=3,
        fail_rate=0.25,
        seed=7,
        faults=["throttle,rps=5,burst=10"],  # type: ignore[arg-type]  # any iterable of specs
        clock=lambda: 42.0,
    )
    assert settings.faults == ("throttle,rps=5,burst=10",)  # kept as a tuple: frozen through
    emulator = create_app({}, settings).state.emulator
    assert emulator.settings is settings
    assert (emulator.persist_path, emulator.latency_ms, emulator.latency_jitter_ms) == (
        persisted,
        2,
        3,
    )
    assert (emulator.fail_rate, emulator.clock()) == (0.25, 42.0)
    assert emulator.faults == (Fault.parse("throttle,rps=5,burst=10"),)
    emulator.persist()
    assert json.loads(persisted.read_text(encoding="utf-8")) == {}

    overridden = create_app({}, settings, fail_rate=0, latency_ms=0).state.emulator
    assert (overridden.fail_rate, overridden.latency_ms, overridden.clock()) == (0, 0, 42.0)
    assert overridden.settings == dataclasses.replace(settings, fail_rate=0, latency_ms=0)


def test_keywords_alone_still_configure_an_app(tmp_path: Path) -> None:
    """`create_app(copy, persist_path=copy)`, as the `emulator:` endpoint wiring calls it."""
    emulator = create_app({}, persist_path=tmp_path / "s.json", seed=3).state.emulator
    assert emulator.settings == EmulatorSettings(persist_path=tmp_path / "s.json", seed=3)


def test_settings_are_frozen_checked_and_refuse_an_unknown_keyword() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        EmulatorSettings().latency_ms = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="fail_rate"):
        EmulatorSettings(fail_rate=2)
    with pytest.raises(ValueError, match="latency"):
        create_app({}, latency_jitter_ms=-1)
    for field in ("latency_ms", "latency_jitter_ms", "fail_rate"):
        with pytest.raises(ValueError, match="must be finite numbers"):
            EmulatorSettings(**{field: float("nan")})
    with pytest.raises(TypeError, match="latency"):
        create_app({}, latency=5)


def test_a_served_state_is_private_and_its_revision_counts_the_handlers_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing outside `serve`'s process reaches its state, so only its handlers change it:
    their changes are counted (listings reuse what they derived while the count holds). An
    in-process app, whose state tests edit in place, has no revision."""
    served: list[Any] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **options: served.append(app))
    monkeypatch.setattr("gc.freeze", lambda: None)  # not this test process's heap
    state_file = tmp_path / "state.json"
    state_file.write_text("{}", encoding="utf-8")
    serve(state_file, port=0)
    emulator = served[0].state.emulator
    assert (emulator.settings.state_private, emulator.revision) == (True, 0)
    emulator.persist()
    assert emulator.revision == 1
    assert create_app({}).state.emulator.revision is None
