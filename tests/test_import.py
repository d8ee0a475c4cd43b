"""`reconcile import`: what it writes validates, and a plan right after it reports no changes, on
the demo and on a generated workspace of 500 models with every awkward case in it."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from reconcile.cli import main
from reconcile.manifest import ModelSpec, VersionSpec, dump_manifest, load_manifest

SOURCE = """
[providers.gen]
type = "fabric"
endpoint = "emulator:state.json"
workspace_id = "ws-gen"
scope = "workspace"
allow_empty = true

[policy]
ignore = ["scratch-*"]
keep_latest = 0
"""
AWKWARD_NAMES = ['quote"d', "back\\slash", "hash # not a comment", "ünïcødé-模型", "<b>bold</b>"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def generated_state(models: int) -> dict[str, Any]:
    """A Fabric workspace (emulator state format, see reconcile/emulator/fabric.py) of `models`
    models, with a preset, an ignored model, a version in use, two models of one name, a model
    whose versions repeat a name, and names TOML must quote."""
    items: list[dict[str, Any]] = []
    for number in range(models):
        name = f"model-{number:04}"
        if number < len(AWKWARD_NAMES):
            name = AWKWARD_NAMES[number]
        versions = [
            {
                "name": f"v{v}",
                "description": f"{name} v{v}" if v % 2 else "",
                "create_time": f"2024-02-{v + 1:02}T00:00:00.000Z",
                "config": {
                    "llm_model_config": {
                        "base_model_type": "QWEN_2_72B" if number % 3 else "GLM_4_9B",
                        "model_path": f"obs://models/{number}/v{v}/",
                    }
                },
            }
            for v in range(number % 4)
        ]
        items.append({"name": name, "description": f"model {number}", "versions": versions})
    items += [
        {"name": "qwen-public", "visibility": "PUBLIC", "versions": [{"name": "base"}]},
        {"name": "scratch-tmp", "versions": [{"name": "x"}]},
        {"name": "twin", "create_time": "2024-01-01T00:00:00.000Z", "versions": [{"name": "a"}]},
        {"name": "twin", "create_time": "2024-01-02T00:00:00.000Z", "versions": [{"name": "b"}]},
        {"name": "echo", "versions": [{"name": "same"}, {"name": "same"}, {"name": "other"}]},
    ]
    state: dict[str, Any] = {
        "fabric": {
            "tokens": ["demo-fabric-token"],
            "workspaces": {"ws-gen": {"models": items}},
        }
    }
    return state


def imported_plan(
    capsys: pytest.CaptureFixture[str], source: Path, provider: str, output: Path, state: Path
) -> dict[str, Any]:
    code, _, err = run(
        capsys, "import", "--provider", provider, str(source), "--output", str(output),
        "--state-dir", str(state),
    )  # fmt: skip
    assert code == 0, err
    code, out, err = run(capsys, "validate", str(output))
    assert code == 0, err
    code, out, err = run(capsys, "plan", str(output), "--state-dir", str(state))
    assert code == 0, err
    assert "No changes. Live state matches the manifests." in out
    code, out, err = run(capsys, "plan", str(output), "--state-dir", str(state), "--json")
    data: dict[str, Any] = json.loads(out)
    assert data["summary"]["delete"] == 0
    assert data["summary"]["drifted"] == 0
    assert data["summary"]["blocked"] == 0
    return data


@pytest.mark.parametrize("provider", ["fabric-demo", "qianfan-demo"])
def test_import_of_the_demo_then_plan_reports_no_changes(
    capsys: pytest.CaptureFixture[str], demo: Path, provider: str
) -> None:
    state = demo / ".reconcile"
    output = demo / "adopted" / f"{provider}.toml"
    data = imported_plan(capsys, demo, provider, output, state)
    scope = data["scopes"][0]
    assert scope["provider"] == provider
    assert data["summary"]["in_sync"] == scope["models"] + scope["versions"]
    text = output.read_text(encoding="utf-8")
    assert text.startswith(f"# Written by `reconcile import --provider {provider}`")
    # The emulator seed is found from where the new manifest is.
    assert 'endpoint = "emulator:../emulator-state.json"' in text
    if provider == "fabric-demo":
        assert "# id 2b07c96c-3a7a-52ae-ba71-bb190431beff" in text  # support-bot, as a comment
        assert 'name = "support-bot"' in text
        assert 'model_path = "obs://acme-models/support-bot/v3/"' in text
        assert "scratch-exp-1" not in text  # ignored by the copied policy
        assert "qwen2-72b-instruct" not in text  # a PUBLIC preset
        assert 'protect = [\n    "prod-*",\n]' in text


def test_drift_after_import_is_in_sync(capsys: pytest.CaptureFixture[str], demo: Path) -> None:
    state = demo / ".reconcile"
    output = demo / "adopted.toml"
    args = ["--state-dir", str(state)]
    code, _, err = run(capsys, "import", "--provider", "fabric-demo", str(demo), "-o", str(output))
    assert code == 0, err
    code, out, err = run(capsys, "drift", str(output), *args)
    assert code == 0, err
    assert "In sync." in out
    assert "coverage 100.0% (31 of 31 live objects declared)" in out


def test_import_of_a_generated_workspace_of_500_models_then_plan_reports_no_changes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "state.json").write_text(json.dumps(generated_state(500)), encoding="utf-8")
    (tmp_path / "source.toml").write_text(SOURCE, encoding="utf-8")
    output = tmp_path / "imported.toml"
    data = imported_plan(capsys, tmp_path / "source.toml", "gen", output, tmp_path / ".state")
    # 500 models + twin, twin, echo: the preset and the ignored model are not in scope.
    assert data["scopes"][0]["models"] == 503
    kept = [c for c in data["resource_changes"] if c["action_reason"] == "protected"]
    assert [c["name"] for c in kept] == ["twin"]  # the younger twin, which cannot be declared
    text = output.read_text(encoding="utf-8")
    document = tomllib.loads(text)
    names = [model["name"] for model in document["models"]]
    assert len(names) == 502 and len(set(names)) == 502
    assert set(AWKWARD_NAMES) <= set(names)
    twin = next(model for model in document["models"] if model["name"] == "twin")
    assert "id" in twin  # a shared name: declared by id
    echo = next(model for model in document["models"] if model["name"] == "echo")
    assert "versions" not in echo  # its versions repeat a name: left unmanaged, listed
    assert "#   version same id " in text
    assert document["providers"]["gen"]["policy"]["protect"] == ["twin"]
    assert 'Note: 2 live models are named "twin"' in text


def test_import_never_overwrites_without_force(
    capsys: pytest.CaptureFixture[str], demo: Path, tmp_path: Path
) -> None:
    output = tmp_path / "adopted" / "fabric.toml"
    output.parent.mkdir()
    output.write_text("keep me\n", encoding="utf-8")
    command = ["import", "--provider", "fabric-demo", str(demo), "--output", str(output)]
    code, _, err = run(capsys, *command)
    assert code == 1
    assert "exists: nothing was written" in err and "--force" in err
    assert output.read_text(encoding="utf-8") == "keep me\n"
    code, _, err = run(capsys, *command, "--force")
    assert code == 0, err
    assert output.read_text(encoding="utf-8").startswith("# Written by")
    assert [file.name for file in output.parent.iterdir()] == ["fabric.toml"]  # no temporary file


def test_import_to_standard_output_with_a_model_filter(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    code, out, err = run(
        capsys, "import", "--provider", "fabric-demo", "--model", "sup*", str(demo)
    )
    assert code == 0, err
    document = tomllib.loads(out)
    assert [model["name"] for model in document["models"]] == ["support-bot"]
    versions = [version["name"] for version in document["models"][0]["versions"]]
    assert versions == ["v3", "v4", "v5", "v6", "v7", "v8"]
    assert 'only models matching "sup*" were imported' in err


def test_import_of_an_unknown_provider_names_the_known_ones(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    code, _, err = run(capsys, "import", "--provider", "nope", str(demo))
    assert code == 1
    assert "no provider named 'nope'" in err
    assert "fabric-demo" in err


def test_dump_manifest_writes_comments_that_cannot_break_out() -> None:
    text = dump_manifest(
        {"p": {"type": "fabric", "endpoint": "emulator:s.json", "workspace_id": "w"}},
        [ModelSpec(provider="p", name="m", versions=(VersionSpec(name="v", model_path="x"),))],
        header=["a name with a newline\n[providers.evil]"],
        comments={(0,): ["id\r\n1"], (0, 0): ["id 2"]},
    )
    document = tomllib.loads(text)
    assert set(document["providers"]) == {"p"}
    assert document["models"] == [
        {"provider": "p", "name": "m", "versions": [{"name": "v", "model_path": "x"}]}
    ]
    assert "# a name with a newline\\x0a[providers.evil]" in text


def test_dump_manifest_round_trips_through_the_loader(tmp_path: Path) -> None:
    models = [
        ModelSpec(provider="p", name='q"uote', description="multi\nline"),
        ModelSpec(provider="p", name="empty", versions=()),
        ModelSpec(
            provider="p", name="full", id="am-1", versions=(VersionSpec(name="v", id="amv-x"),)
        ),
    ]
    file = tmp_path / "m.toml"
    file.write_text(
        dump_manifest(
            {"p": {"type": "qianfan", "credentials": {"ak_env": "A", "sk_env": "B"}}},
            models,
            policy={"protect": ["prod-*"], "keep_latest": 2},
        ),
        encoding="utf-8",
    )
    loaded = load_manifest(file)
    assert loaded.models == tuple(models)
    assert loaded.policy.protect == ("prod-*",)
    assert loaded.policy.keep_latest == 2
