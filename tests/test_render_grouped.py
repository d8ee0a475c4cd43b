"""The text plan at scale: deletes grouped under their model, one reason line per run of objects
that share it, a summary by kind and by reason counted as `max_deletes` counts, `--compact`, and
lines that fit 100 columns. Cases are data: manifest lines, live models, the plan's lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.cli import main
from reconcile.manifest import load_manifest
from reconcile.model import ServiceUse, Snapshot
from reconcile.planner import build_plan
from reconcile.render.text import WIDTH, render_plan
from tests.scale_plans import scale_plan
from tests.test_drift import HEADER, model, version

WHOLE = '(because not_in_manifest: not declared, and scope = "workspace" makes the manifests the'

#: (id, manifest, live models, services, compact, the plan's lines before its summary)
CASES = [
    (
        "versions-of-one-model-share-a-header-and-a-reason",
        '[[models]]\nprovider = "p"\nname = "bot"\nversions = ["v1"]\n',
        [model("m1", "bot", *(version("m1", f"v{n}", n) for n in range(1, 4)))],
        (),
        False,
        [
            "  p/bot: 2 versions to delete",
            "    - delete version p/bot/v2  id=m1-v2",
            "    - delete version p/bot/v3  id=m1-v3",
            "        # (because not_in_manifest: not declared among the versions of "
            '"bot" at m.toml:7)',
        ],
    ),
    (
        "whole-model-deletes-in-a-row-share-one-reason-line",
        "",
        [model("m1", "a", version("m1", "v1", 1)), model("m2", "b", version("m2", "v1", 1))],
        (),
        False,
        [
            "  - delete model p/a (with 1 version)  id=m1",
            "  - delete model p/b (with 1 version)  id=m2",
            f"      # {WHOLE}",
            "      #   whole truth for workspace ws-1)",
        ],
    ),
    (
        "a-blocked-model-holds-its-blocked-version-under-it",
        "",
        [model("m1", "a", version("m1", "v1", 1), version("m1", "v2", 2))],
        (ServiceUse(id="s1", name="svc", status="RUNNING", model_id="m1", version_id="m1-v2"),),
        False,
        [
            "  - delete version p/a/v1  id=m1-v1",
            f"      # {WHOLE}",
            "      #   whole truth for workspace ws-1)",
            "  ! blocked model p/a  id=m1",
            '      # (because in_use: would be deleted (not declared, and scope = "workspace" '
            "makes the manifests",
            '      #   the whole truth for workspace ws-1), but inference service s1 ("svc", '
            "RUNNING) uses it:",
            "      #   delete those services first, then plan again)",
            "    ! blocked version p/a/v2  id=m1-v2",
            '        # (because in_use: used by inference service s1 ("svc", RUNNING):',
            "        #   delete those services (or point them at another version) first, then "
            "plan again)",
        ],
    ),
    (
        "compact-is-one-line-per-object-without-reasons-or-headers",
        '[[models]]\nprovider = "p"\nname = "bot"\nversions = ["v1"]\n',
        [
            model("m1", "bot", *(version("m1", f"v{n}", n) for n in range(1, 4))),
            model("m2", "old", version("m2", "v1", 1)),
        ],
        (),
        True,
        [
            "  - delete version p/bot/v2  id=m1-v2",
            "  - delete version p/bot/v3  id=m1-v3",
            "  - delete model p/old (with 1 version)  id=m2",
        ],
    ),
]


@pytest.mark.parametrize(
    ("manifest", "live", "services", "compact", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_grouped_plan_lines(
    tmp_path: Path,
    manifest: str,
    live: list,  # type: ignore[type-arg]
    services: tuple[ServiceUse, ...],
    compact: bool,
    expected: list[str],
) -> None:
    file = tmp_path / "m.toml"
    file.write_text(HEADER.format(scope="workspace") + manifest, encoding="utf-8")
    snapshot = Snapshot(
        provider="p",
        provider_type="fabric",
        location="workspace ws-1",
        models=tuple(live),
        services=services,
    )
    plan = build_plan(load_manifest(file), {"p": snapshot}, tool_version="test", refuse_empty=False)
    lines = render_plan(plan, compact=compact).splitlines()
    assert lines[1 : 1 + len(expected)] == expected
    assert lines[1 + len(expected)] == ""  # nothing else in the provider's section


#: The 500-delete plan's summary: the Terraform-like line first (parsed by the benchmark and
#: tests), then the deletes by kind and by reason, objects counted as `max_deletes` counts them.
SUMMARY = [
    "Plan: 500 to delete, 2 blocked, 0 drifted.",
    "500 deletes: 292 models with 1,752 versions, 208 versions; 2,252 objects.",
    "  not_in_manifest: 292 models with 1,752 versions, 208 versions; 2,252 objects",
]


def test_a_500_delete_plan_fits_100_columns_and_counts_by_kind_and_reason(
    tmp_path: Path,
) -> None:
    plan = scale_plan(tmp_path)
    lines = render_plan(plan).splitlines()
    assert lines[-len(SUMMARY) :] == SUMMARY
    assert max(len(line) for line in lines) <= WIDTH
    # One reason line (two, wrapped) per model group, not one per object: before this change
    # every one of the 500 deletes carried its own.
    reasons = [line for line in lines if line.lstrip().startswith("# (because")]
    assert len(reasons) < 100
    # Every version delete is under its model's header.
    assert sum(line.startswith("  fabric-prod/") for line in lines) == 70
    assert sum(line.startswith("    - delete version ") for line in lines) == 208
    # The model's address with its versions and its id: the whole delete, over two lines.
    assert "  - delete model fabric-prod/ads-ranker-0002 (with 6 versions)" in lines


def test_the_compact_500_delete_plan_is_one_line_per_object(tmp_path: Path) -> None:
    plan = scale_plan(tmp_path)
    lines = render_plan(plan, compact=True).splitlines()
    objects = [line for line in lines if line.startswith(("  - delete ", "  ! blocked "))]
    assert len(objects) == 502
    assert all("  id=" in line for line in objects)
    assert not any("#" in line.split("  id=")[0] for line in objects)
    assert not any(line.lstrip().startswith("# ") for line in lines)
    assert lines[-len(SUMMARY) :] == SUMMARY
    assert len(lines) == 502 + 1 + 1 + len(SUMMARY)  # + the provider line and a blank


def test_plan_and_show_take_compact(capsys: pytest.CaptureFixture[str], demo: Path) -> None:
    saved = demo / "plan.json"
    assert main(["plan", str(demo), "-o", str(saved), "--compact"]) == 0
    planned = capsys.readouterr().out
    assert main(["show", str(saved), "--compact"]) == 0
    shown = capsys.readouterr().out
    for out in (planned, shown):
        assert "  - delete version fabric-demo/support-bot/v3  id=" in out
        assert "# (because" not in out
        assert "Plan: 11 to delete, 4 blocked, 4 drifted." in out
    assert main(["show", str(saved)]) == 0
    assert "# (because" in capsys.readouterr().out


def test_drift_text_groups_versions_under_their_model_and_counts_by_kind_and_reason(
    tmp_path: Path,
) -> None:
    """Drift reads like the plan: a model's versions under one header, one reason line per run
    that shares it, and per category its objects by kind (counted as `max_deletes` counts) and
    by reason."""
    from reconcile.drift import build_drift_report
    from reconcile.render.text import render_drift

    file = tmp_path / "m.toml"
    manifest = '[[models]]\nprovider = "p"\nname = "bot"\nversions = ["v1"]\n'
    file.write_text(HEADER.format(scope="workspace") + manifest, encoding="utf-8")
    live = [
        model("m1", "bot", *(version("m1", f"v{n}", n) for n in range(1, 4))),
        model("m2", "old", version("m2", "v1", 1), version("m2", "v2", 2)),
    ]
    snapshot = Snapshot(
        provider="p", provider_type="fabric", location="workspace ws-1", models=tuple(live)
    )
    loaded = load_manifest(file)
    plan = build_plan(loaded, {"p": snapshot}, tool_version="test", refuse_empty=False)
    report = build_drift_report(plan, loaded, {"p": snapshot})
    lines = render_drift(report).splitlines()
    assert lines[2:9] == [
        "  unmanaged: 1 model with 2 versions, 2 versions; 5 objects",
        "    by reason: not_in_manifest 3",
        "  p/bot: 2 versions unmanaged",
        "    - unmanaged version p/bot/v2  id=m1-v2",
        "    - unmanaged version p/bot/v3  id=m1-v3",
        '        # (not_in_manifest: not declared among the versions of "bot" at m.toml:7)',
        "  - unmanaged model p/old (with 2 versions)  id=m2",
    ]
    assert all(len(line) <= WIDTH for line in lines)


def test_a_tally_names_versions_only_where_whole_model_deletes_take_some() -> None:
    from reconcile.render import DeleteTally

    tally = DeleteTally()
    tally.add(0, model=True)  # a model with no versions left, deleted whole
    tally.add(0, model=False)
    assert tally.words() == "1 model, 1 version; 2 objects"
    tally.add(3, model=True)
    assert tally.words() == "2 models with 3 versions, 1 version; 6 objects"
