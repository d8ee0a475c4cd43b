"""The pure guards of issue 16: max_delete_percent and mode = "observe"."""

from __future__ import annotations

from typing import Any

import pytest

from reconcile import guards
from reconcile.errors import GuardError
from reconcile.manifest import Manifest
from reconcile.model import LiveModel, LiveVersion, Snapshot
from reconcile.plan import Plan
from reconcile.planner import build_plan


def _manifest(**policy: Any) -> Manifest:
    provider = {"type": "fabric", "endpoint": "https://f.example.test", "workspace_id": "ws"}
    return Manifest.model_validate(
        {
            "providers": {"a": provider, "b": {**provider, "policy": policy}},
            "models": [
                {"provider": name, "name": "bot", "versions": ["v0"]} for name in ("a", "b")
            ],
        }
    )


def _snapshot(provider: str, versions: int) -> Snapshot:
    """One model "bot" with versions v0..v(N-1): all but v0 undeclared, so deleted."""
    model_id = f"m-{provider}"
    return Snapshot(
        provider=provider,
        provider_type="fabric",
        location="workspace ws",
        models=(
            LiveModel(
                id=model_id,
                name="bot",
                versions=tuple(
                    LiveVersion(id=f"{model_id}-v{n}", name=f"v{n}", model_id=model_id)
                    for n in range(versions)
                ),
            ),
        ),
    )


def _plan(manifest: Manifest, a: int = 2, b: int = 4) -> Plan:
    snapshots = {"a": _snapshot("a", a), "b": _snapshot("b", b)}
    return build_plan(manifest, snapshots, tool_version="t")


def test_max_delete_percent_refuses_the_provider_over_its_share() -> None:
    # b: 5 live objects (the model and 4 versions), 3 deletes = 60%.
    manifest = _manifest(max_delete_percent=50)
    plan = _plan(manifest)
    limits = guards.max_delete_percent_limits(manifest)
    assert limits == {"b": 50}
    with pytest.raises(GuardError) as raised:
        guards.check_max_delete_percent(plan.deletes(), plan.scopes, limits)
    message = str(raised.value)
    assert 'provider "b": 3 of 5 live objects (60.0%), max_delete_percent is 50' in message
    assert "nothing was deleted" in message and '"a"' not in message
    assert "max_delete_percent" in (raised.value.hint or "")


@pytest.mark.parametrize("limit", [60, 100])
def test_max_delete_percent_lets_a_share_at_or_under_it_pass(limit: float) -> None:
    manifest = _manifest(max_delete_percent=limit)
    plan = _plan(manifest)
    guards.check_max_delete_percent(
        plan.deletes(), plan.scopes, guards.max_delete_percent_limits(manifest)
    )


def test_max_delete_percent_counts_a_whole_model_with_its_versions() -> None:
    manifest = Manifest.model_validate(
        {
            "providers": {
                "b": {
                    "type": "fabric",
                    "endpoint": "https://f.example.test",
                    "workspace_id": "ws",
                    "scope": "workspace",
                    "allow_empty": True,
                    "policy": {"max_delete_percent": 99},
                }
            }
        }
    )
    plan = build_plan(manifest, {"b": _snapshot("b", 3)}, tool_version="t")
    assert [len(change.version_ids) for change in plan.deletes()] == [3]
    with pytest.raises(GuardError, match=r"4 of 4 live objects \(100.0%\)"):
        guards.check_max_delete_percent(
            plan.deletes(), plan.scopes, guards.max_delete_percent_limits(manifest)
        )


def test_max_delete_percent_refuses_deletes_of_a_scope_it_cannot_count() -> None:
    manifest = _manifest(max_delete_percent=100)
    plan = _plan(manifest)
    with pytest.raises(GuardError, match=r'"b": 3 of 0 live objects \(all\)'):
        guards.check_max_delete_percent(plan.deletes(), (), {"b": 100})


def test_observe_mode_refuses_the_deletes_of_that_provider_only() -> None:
    manifest = _manifest(mode="observe")
    plan = _plan(manifest)
    assert {change.provider for change in plan.deletes()} == {"a", "b"}
    assert any('provider "b" has mode = "observe"' in warning for warning in plan.warnings)
    with pytest.raises(GuardError) as raised:
        guards.check_observe_only(plan.deletes(), manifest)
    assert 'mode = "observe" is set for provider "b" (3 objects)' in str(raised.value)
    assert '"a"' not in str(raised.value)
    guards.check_observe_only([c for c in plan.deletes() if c.provider == "a"], manifest)


def test_observe_mode_set_globally_refuses_every_provider() -> None:
    manifest = _manifest().model_copy(
        update={"policy": _manifest().policy.model_copy(update={"mode": "observe"})}
    )
    plan = _plan(manifest)
    with pytest.raises(GuardError, match=r'provider "a" .*provider "b"'):
        guards.check_observe_only(plan.deletes(), manifest)
