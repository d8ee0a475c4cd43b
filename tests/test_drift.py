"""Drift reports: each category on generated states (as data, no network), then `reconcile drift`
on the demo in every format, read-only."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconcile.cli import main
from reconcile.drift import CATEGORIES, Category, DriftReport, build_drift_report
from reconcile.manifest import load_manifest
from reconcile.model import LiveModel, LiveVersion, ServiceUse, Snapshot
from reconcile.planner import build_plan

HEADER = """
[providers.p]
type = "fabric"
endpoint = "emulator:state.json"
workspace_id = "ws-1"
scope = "{scope}"
"""


def version(model: str, name: str, day: int, **attributes: str) -> LiveVersion:
    return LiveVersion(
        id=f"{model}-{name}",
        name=name,
        model_id=model,
        created=datetime(2024, 1, day, tzinfo=UTC),
        attributes=attributes,
    )


def model(
    model_id: str, name: str, *versions: LiveVersion, preset: bool = False, **attributes: str
) -> LiveModel:
    return LiveModel(
        id=model_id, name=name, versions=versions, preset=preset, attributes=attributes
    )


def report_for(
    tmp_path: Path,
    manifest: str,
    models: list[LiveModel],
    *,
    scope: str = "workspace",
    services: tuple[ServiceUse, ...] = (),
) -> DriftReport:
    file = tmp_path / "m.toml"
    file.write_text(HEADER.format(scope=scope) + manifest, encoding="utf-8")
    loaded = load_manifest(file)
    snapshots = {
        "p": Snapshot(
            provider="p",
            provider_type="fabric",
            location="workspace ws-1",
            models=tuple(models),
            services=services,
        )
    }
    plan = build_plan(loaded, snapshots, tool_version="test")
    return build_drift_report(plan, loaded, snapshots)


def categories(report: DriftReport) -> dict[str, set[str]]:
    """Category -> the addresses of its items."""
    found: dict[str, set[str]] = {category.value: set() for category in CATEGORIES}
    for provider in report.providers:
        for item in provider.items:
            found[item.category.value].add(item.address)
    return found


def test_a_workspace_that_matches_its_manifest_is_in_sync_with_full_coverage(
    tmp_path: Path,
) -> None:
    report = report_for(
        tmp_path,
        """
[[models]]
provider = "p"
name = "bot"
description = "a bot"
versions = ["v1", "v2"]
""",
        [model("m1", "bot", version("m1", "v1", 1), version("m1", "v2", 2), description="a bot")],
    )
    assert not report.drifted
    assert report.total.in_sync == 3
    assert report.total.live == 3
    assert report.total.coverage == 1.0
    assert report.providers[0].items == ()


def test_changed_attributes_are_reported_field_by_field(tmp_path: Path) -> None:
    report = report_for(
        tmp_path,
        """
[[models]]
provider = "p"
name = "bot"
description = "nightly"
[[models.versions]]
name = "v1"
model_path = "obs://b/v1/"
""",
        [
            model(
                "m1",
                "bot",
                version("m1", "v1", 1, model_path="obs://b/v1-rc/"),
                description="daily",
            )
        ],
    )
    assert report.drifted
    assert report.total.changed == 2
    assert report.total.in_sync == 0
    items = {item.address: item for item in report.providers[0].items}
    assert [(f.field, f.live, f.declared) for f in items["p/bot"].fields] == [
        ("description", "daily", "nightly")
    ]
    assert [(f.field, f.live, f.declared) for f in items["p/bot/v1"].fields] == [
        ("model_path", "obs://b/v1-rc/", "obs://b/v1/")
    ]
    # Changed objects are declared: they count in the coverage.
    assert report.total.coverage == 1.0


def test_a_changed_model_declared_without_versions_takes_its_versions_in_sync(
    tmp_path: Path,
) -> None:
    report = report_for(
        tmp_path,
        '[[models]]\nprovider = "p"\nname = "bot"\ndescription = "new"\n',
        [model("m1", "bot", version("m1", "v1", 1), version("m1", "v2", 2), description="old")],
    )
    assert (report.total.changed, report.total.in_sync) == (1, 2)
    assert [item.versions for item in report.providers[0].items] == [0]


def test_declared_objects_that_are_not_live_are_missing(tmp_path: Path) -> None:
    report = report_for(
        tmp_path,
        """
[[models]]
provider = "p"
name = "bot"
versions = ["v1", "v9"]

[[models]]
provider = "p"
name = "ghost"
""",
        [model("m1", "bot", version("m1", "v1", 1))],
    )
    assert categories(report)["missing"] == {"p/bot/v9", "p/ghost"}
    assert report.total.missing == 2
    assert report.total.live == 2  # missing declarations are not live objects
    assert report.drifted


def test_what_apply_would_delete_is_unmanaged_and_counts_every_version(tmp_path: Path) -> None:
    report = report_for(
        tmp_path,
        """
[[models]]
provider = "p"
name = "bot"
versions = ["v2"]

[[models]]
provider = "p"
name = "old"
absent = true
""",
        [
            model("m1", "bot", version("m1", "v1", 1), version("m1", "v2", 2)),
            model(
                "m2", "stray", version("m2", "a", 1), version("m2", "b", 2), version("m2", "c", 3)
            ),
            model("m3", "old", version("m3", "x", 1)),
        ],
    )
    found = categories(report)
    assert found["unmanaged"] == {"p/bot/v1", "p/stray", "p/old"}
    # The stray model and its 3 versions, the absent model and its version, one version.
    assert report.total.unmanaged == 4 + 2 + 1
    items = {item.address: item for item in report.providers[0].items}
    assert items["p/stray"].versions == 3
    assert items["p/stray"].reason == "not_in_manifest"
    assert items["p/old"].reason == "declared_absent"
    assert report.total.coverage == pytest.approx(2 / 9)


def test_in_use_and_protected_objects_are_blocked(tmp_path: Path) -> None:
    report = report_for(
        tmp_path,
        """
[policy]
protect = ["prod-*"]

[[models]]
provider = "p"
name = "bot"
versions = ["v3"]
""",
        [
            model("m1", "bot", version("m1", "v1", 1), version("m1", "v3", 3)),
            model("m2", "prod-x", version("m2", "a", 1), version("m2", "b", 2)),
        ],
        services=(
            ServiceUse(
                id="svc-1", name="canary", status="RUNNING", model_id="m1", version_id="m1-v1"
            ),
        ),
    )
    items = {item.address: item for item in report.providers[0].items}
    assert items["p/bot/v1"].category is Category.BLOCKED
    assert items["p/bot/v1"].reason == "in_use"
    assert [s.id for s in items["p/bot/v1"].blocked_by] == ["svc-1"]
    assert items["p/prod-x"].category is Category.BLOCKED
    assert items["p/prod-x"].reason == "protected"
    assert items["p/prod-x"].versions == 2  # held with their model
    assert report.total.blocked == 1 + 3
    assert report.drifted  # blocked objects are drift, unlike in a plan's exit code


def test_several_live_objects_with_one_declared_name_are_ambiguous(tmp_path: Path) -> None:
    report = report_for(
        tmp_path,
        """
[[models]]
provider = "p"
name = "twin"
""",
        [
            model("m1", "twin", version("m1", "v1", 1)),
            model("m2", "twin", version("m2", "v1", 1), version("m2", "v2", 2)),
        ],
    )
    assert categories(report)["ambiguous"] == {"p/twin#m1", "p/twin#m2"}
    assert report.total.ambiguous == 5  # two models and their three versions
    assert report.total.coverage == 0.0
    assert report.drifted


def test_objects_kept_by_policy_are_kept_and_not_drift(tmp_path: Path) -> None:
    report = report_for(
        tmp_path,
        """
[policy]
keep_latest = 1

[[models]]
provider = "p"
name = "bot"
versions = ["v1"]

[[models]]
provider = "p"
name = "solo"
versions = []
""",
        [
            model("m1", "bot", version("m1", "v1", 1), version("m1", "v2", 2)),
            model("m2", "solo", version("m2", "only", 1)),
            model("m3", "unlisted", version("m3", "a", 1)),
        ],
        scope="declared",
    )
    items = {item.address: item for item in report.providers[0].items}
    assert items["p/bot/v2"].reason == "retention_keep_latest"
    assert items["p/solo/only"].reason in ("retention_keep_latest", "last_version")
    assert items["p/unlisted"].reason == "not_managed"
    assert items["p/unlisted"].versions == 1
    assert {item.category for item in items.values()} == {Category.KEPT}
    assert report.total.kept == 1 + 1 + 2
    assert not report.drifted
    assert report.total.coverage == pytest.approx(3 / 7)


def test_presets_and_ignored_objects_are_not_in_scope(tmp_path: Path) -> None:
    report = report_for(
        tmp_path,
        """
[policy]
ignore = ["scratch-*", "bot/tmp-*"]

[[models]]
provider = "p"
name = "bot"
""",
        [
            model("m1", "bot", version("m1", "v1", 1), version("m1", "tmp-1", 2)),
            model("m2", "scratch-a", version("m2", "a", 1)),
            model("m3", "qwen", version("m3", "base", 1), preset=True),
        ],
    )
    assert report.total.live == 2  # bot and its v1
    assert report.total.in_sync == 2
    assert not report.drifted


def test_every_live_object_is_in_exactly_one_category(tmp_path: Path) -> None:
    """Categories partition the live objects: their counts add up to `live`."""
    report = report_for(
        tmp_path,
        """
[policy]
protect = ["keep-*"]
keep_latest = 1

[[models]]
provider = "p"
name = "a"
description = "x"
versions = ["1", "4"]

[[models]]
provider = "p"
name = "twin"

[[models]]
provider = "p"
name = "gone"
absent = true
""",
        [
            model("m1", "a", *(version("m1", str(n), n) for n in range(1, 6)), description="y"),
            model("m2", "twin", version("m2", "v", 1)),
            model("m3", "twin"),
            model("m4", "keep-me", version("m4", "k", 1)),
            model("m5", "gone", version("m5", "g", 1)),
            model("m6", "other", version("m6", "o1", 1), version("m6", "o2", 2)),
        ],
        services=(
            ServiceUse(id="s", name="s", status="RUNNING", model_id="m1", version_id="m1-2"),
        ),
    )
    total = report.total
    live_categories = [c for c in CATEGORIES if c is not Category.MISSING]
    assert sum(total.of(c) for c in live_categories) == total.live == 6 + 2 + 1 + 2 + 2 + 3
    assert report.providers[0].counts == total


# -- the command, on the demo -------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def drift_json(capsys: pytest.CaptureFixture[str], demo: Path) -> dict[str, Any]:
    code, out, err = run(capsys, "drift", str(demo), "--format", "json")
    assert code == 2, err
    data: dict[str, Any] = json.loads(out)
    return data


def test_drift_on_the_demo_reports_every_kind_of_drift(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    code, out, err = run(capsys, "drift", str(demo))
    assert code == 2, err
    assert "fabric-demo (fabric, workspace ws-demo, scope workspace)" in out
    assert "  ~ changed model fabric-demo/summarizer" in out
    assert '~ description: "daily summaries" (live) -> "nightly summaries" (declared)' in out
    assert "  ~ missing model fabric-demo/classifier" in out
    assert "  - unmanaged model fabric-demo/legacy-qa (with 5 versions)" in out
    assert "  ! blocked version fabric-demo/support-bot/v5" in out
    assert "  ! blocked model fabric-demo/prod-translator (with 4 versions)" in out
    assert "  = kept version fabric-demo/support-bot/v6" in out
    assert "scratch-exp-1" not in out  # ignored
    assert "Drift: " in out
    assert "coverage" in out
    assert "\x1b[" not in out


def test_drift_json_is_versioned_and_adds_up(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    data = drift_json(capsys, demo)
    assert data["format_version"] == 1
    assert data["drifted"] is True
    assert data["manifest_digest"].startswith("sha256:")
    assert data["plan_digest"].startswith("sha256:")
    assert data["created_at"]
    fabric = next(p for p in data["providers"] if p["provider"] == "fabric-demo")
    counts = fabric["counts"]
    # examples/demo: 6 models and 25 versions in scope (see the plan's scope line).
    assert counts["live"] == 31
    assert counts == {
        "live": 31,
        "declared": 5,
        "coverage": pytest.approx(5 / 31),
        "in_sync": 3,
        "changed": 2,
        "missing": 1,
        "unmanaged": 16,
        "blocked": 8,
        "ambiguous": 0,
        "kept": 2,
    }
    total = data["total"]
    for key in (
        "live",
        "declared",
        "in_sync",
        "changed",
        "missing",
        "unmanaged",
        "blocked",
        "kept",
    ):
        assert total[key] == sum(p["counts"][key] for p in data["providers"])
    item = next(i for i in fabric["items"] if i["address"] == "fabric-demo/support-bot/v5")
    assert item["category"] == "blocked"
    assert item["reason"] == "in_use"
    assert item["blocked_by"][0]["name"] == "support-bot-canary"
    assert set(item) == {
        "category", "address", "provider", "kind", "id", "reason", "detail", "hint", "fields",
        "blocked_by", "versions",
    }  # fmt: skip


def test_drift_writes_any_format_to_a_file(
    capsys: pytest.CaptureFixture[str], demo: Path, tmp_path: Path
) -> None:
    for fmt in ("text", "json", "markdown", "html"):
        target = tmp_path / f"drift.{fmt}"
        code, out, err = run(capsys, "drift", str(demo), "--format", fmt, "--output", str(target))
        assert code == 2, err
        assert f"Wrote the drift report ({fmt}) to {target}" in out
        # (HTML may break a name after "/" and "-" only: <wbr>)
        assert "fabric-demo/summarizer" in target.read_text(encoding="utf-8").replace("<wbr>", "")


def test_drift_is_read_only_and_ignores_the_apply_lock(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    from reconcile.state import StateSpec, open_state

    first = drift_json(capsys, demo)
    state_file = demo / ".reconcile" / "emulator" / "emulator-state.json"
    before = state_file.read_bytes()
    store = open_state(StateSpec(), default_dir=demo / ".reconcile", environ={})
    with store.acquire("*", "apply"):
        second = drift_json(capsys, demo)
    assert state_file.read_bytes() == before
    assert first["total"] == second["total"]


def test_drift_exits_0_when_in_sync(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    state = {
        "fabric": {
            "tokens": ["demo-fabric-token"],
            "workspaces": {"ws-1": {"models": [{"name": "bot", "versions": [{"name": "v1"}]}]}},
        }
    }
    (tmp_path / "state.json").write_text(json.dumps(state), encoding="utf-8")
    (tmp_path / "m.toml").write_text(
        HEADER.format(scope="workspace") + '[[models]]\nprovider = "p"\nname = "bot"\n'
        'versions = ["v1"]\n',
        encoding="utf-8",
    )
    code, out, err = run(capsys, "drift", str(tmp_path / "m.toml"))
    assert code == 0, err
    assert "In sync." in out
    assert "coverage 100.0% (2 of 2 live objects declared)" in out


def test_drift_on_a_broken_manifest_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "m.toml").write_text("[providers.p]\ntype = 'nope'\n", encoding="utf-8")
    code, _, err = run(capsys, "drift", str(tmp_path / "m.toml"))
    assert code == 1
    assert "unknown provider type" in err


def test_an_empty_workspace_scope_is_reported_by_drift_but_refused_by_plan(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    """Without allow_empty, a "workspace" scope with nothing declared refuses to plan deletes;
    the read-only drift report still shows everything it holds, as unmanaged."""
    manifest = demo / "reconcile.toml"
    text = manifest.read_text()
    manifest.write_text(text[: text.index("[[models]]")])
    code, _, err = run(capsys, "plan", str(demo))
    assert code == 1
    assert 'has scope = "workspace" and no declared model' in err
    code, out, _ = run(capsys, "drift", str(demo), "--format", "json")
    assert code == 2
    report = json.loads(out)
    fabric = next(p for p in report["providers"] if p["provider"] == "fabric-demo")
    assert fabric["counts"]["unmanaged"] > 0
    assert fabric["counts"]["in_sync"] == 0
