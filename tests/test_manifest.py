"""Loading manifests: good ones load into the schema; bad ones raise a ManifestError with a line."""

from __future__ import annotations

import json
import string
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.errors import ManifestError
from reconcile.manifest import (
    FabricProvider,
    Loc,
    Location,
    Manifest,
    Policy,
    QianfanProvider,
    VersionSpec,
    line_of,
    load_manifest,
    manifest_files,
    parse_duration,
    scan_key_lines,
    toml_path,
)

BAD_MANIFESTS = Path(__file__).parent / "bad_inputs" / "manifests"
BAD_CASES = sorted(path.name for path in BAD_MANIFESTS.glob("*.toml"))

#: The example of DESIGN.md's "Manifests" section, verbatim.
DESIGN_EXAMPLE = """\
[providers.fabric-prod]
type = "fabric"
endpoint = "https://fabric.cn-north-4.myhuaweicloud.com"
services_endpoint = "https://fabric-ep.cn-north-4.myhuaweicloud.com"
workspace_id = "ws-7f3a"
project_id = "0a1b2c"
credentials = { ak_env = "HUAWEICLOUD_SDK_AK", sk_env = "HUAWEICLOUD_SDK_SK" }  # or { token_env = "..." }
scope = "declared"        # "declared": only declared models are managed; "workspace": the manifest is the whole truth

[providers.qianfan]
type = "qianfan"
credentials = { ak_env = "QIANFAN_ACCESS_KEY", sk_env = "QIANFAN_SECRET_KEY" }
scope = "workspace"

[policy]                  # global; a [providers.X.policy] table overrides per provider
protect = ["prod-*"]      # glob on model or "model/version" names: never deleted, whatever else says
ignore  = ["scratch-*"]   # not managed at all: never deleted, never reported as drift
keep_latest = 2           # undeclared versions of a managed model: keep the N newest anyway
max_deletes = 25          # apply refuses a plan that deletes more (override: --max-deletes)

[[models]]
provider = "fabric-prod"
name = "support-bot"
versions = ["v7", "v8"]   # short form: names only

[[models]]
provider = "fabric-prod"
name = "summarizer"
description = "nightly summaries"          # optional: compared, reported as drift when it differs
[[models.versions]]
name = "2024-06"
base_model_type = "QWEN_2_72B"             # optional attributes: compared, drift when different
model_path = "obs://models/summarizer/2024-06/"
protect = true

[[models]]
provider = "qianfan"
name = "old-chat"
absent = true             # declared removal: delete it (works in either scope)
"""  # noqa: E501

EMULATED_PROVIDER = """\
[providers.demo]
type = "fabric"
endpoint = "emulator:state.json"
workspace_id = "ws-demo"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    return caught.value


# --- Good manifests -------------------------------------------------------------------------------


def test_design_example_loads_with_origins(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path / "prod.toml", DESIGN_EXAMPLE))

    fabric, qianfan = manifest.providers["fabric-prod"], manifest.providers["qianfan"]
    assert isinstance(fabric, FabricProvider)
    assert fabric.workspace_id == "ws-7f3a"
    assert fabric.credentials is not None
    assert fabric.credentials.ak_env == "HUAWEICLOUD_SDK_AK"
    assert isinstance(qianfan, QianfanProvider)
    assert qianfan.endpoint == "https://qianfan.baidubce.com"
    assert qianfan.scope == "workspace"
    assert manifest.policy == Policy(
        protect=("prod-*",), ignore=("scratch-*",), keep_latest=2, max_deletes=25
    )
    support_bot, summarizer, old_chat = manifest.models
    assert support_bot.versions == (VersionSpec(name="v7"), VersionSpec(name="v8"))
    assert summarizer.versions == (
        VersionSpec(
            name="2024-06",
            base_model_type="QWEN_2_72B",
            model_path="obs://models/summarizer/2024-06/",
            protect=True,
        ),
    )
    assert old_chat.absent and old_chat.versions is None
    file = str(tmp_path / "prod.toml")
    assert manifest.origins == {
        "providers.fabric-prod": Location(file=file, line=1),
        "providers.qianfan": Location(file=file, line=10),
        "models.fabric-prod/support-bot": Location(file=file, line=21),
        "models.fabric-prod/summarizer": Location(file=file, line=26),
        "models.qianfan/old-chat": Location(file=file, line=36),
    }
    assert manifest.root == tmp_path / "prod.toml"


def test_short_long_and_inline_version_forms_mean_the_same(tmp_path: Path) -> None:
    head = EMULATED_PROVIDER + '[[models]]\nprovider = "demo"\nname = "bot"\n'
    short = load_manifest(write(tmp_path / "short.toml", head + 'versions = ["v1", "v2"]\n'))
    long = load_manifest(
        write(
            tmp_path / "long.toml",
            head + '[[models.versions]]\nname = "v1"\n\n[[models.versions]]\nname = "v2"\n',
        )
    )
    inline = load_manifest(
        write(tmp_path / "inline.toml", head + 'versions = [{ name = "v1" }, "v2"]\n')
    )
    assert short.models == long.models == inline.models
    assert short.digest() == long.digest() == inline.digest()


def test_model_without_versions_key_manages_the_model_only(tmp_path: Path) -> None:
    text = EMULATED_PROVIDER + '[[models]]\nprovider = "demo"\nname = "bot"\n'
    (model,) = load_manifest(write(tmp_path / "m.toml", text)).models
    assert model.versions is None


def test_folder_merges_files_in_name_order_with_relative_origins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "manifests" / "20-models.toml", '[[models]]\nprovider = "demo"\nname = "b"\n')
    write(
        tmp_path / "manifests" / "10-providers.toml",
        EMULATED_PROVIDER + '\n[[models]]\nprovider = "demo"\nname = "a"\n',
    )
    write(tmp_path / "manifests" / "30-policy.toml", "[policy]\nkeep_latest = 3\n")
    write(tmp_path / "manifests" / "notes.md", "not a manifest")
    monkeypatch.chdir(tmp_path)

    manifest = load_manifest(Path("manifests"))

    assert [model.name for model in manifest.models] == ["a", "b"]
    assert manifest.policy.keep_latest == 3
    assert manifest.origins == {
        "providers.demo": Location(file="manifests/10-providers.toml", line=1),
        "models.demo/a": Location(file="manifests/10-providers.toml", line=6),
        "models.demo/b": Location(file="manifests/20-models.toml", line=1),
    }
    assert manifest.root == Path("manifests")


def test_policy_for_merges_a_provider_override_over_the_global_policy(tmp_path: Path) -> None:
    text = (
        EMULATED_PROVIDER
        + "\n[providers.demo.policy]\nkeep_latest = 5\nprotect = []\n"
        + '\n[providers.other]\ntype = "qianfan"\nendpoint = "emulator:state.json"\n'
        + '\n[policy]\nkeep_latest = 1\nprotect = ["prod-*"]\nmax_deletes = 7\n'
    )
    manifest = load_manifest(write(tmp_path / "m.toml", text))
    assert manifest.policy_for("demo") == Policy(keep_latest=5, protect=(), max_deletes=7)
    assert manifest.policy_for("other") == Policy(keep_latest=1, protect=("prod-*",), max_deletes=7)


def test_models_for_lists_one_providers_models_in_order(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path / "prod.toml", DESIGN_EXAMPLE))
    assert [model.name for model in manifest.models_for("fabric-prod")] == [
        "support-bot",
        "summarizer",
    ]
    assert [model.name for model in manifest.models_for("qianfan")] == ["old-chat"]


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:8080", "http://localhost:9000/api", "http://[::1]:80", "emulator:s.json"],
)
def test_loopback_http_and_emulator_endpoints_need_no_tls(tmp_path: Path, endpoint: str) -> None:
    text = f'[providers.local]\ntype = "qianfan"\nendpoint = "{endpoint}"\n'
    text += 'credentials = { ak_env = "QIANFAN_AK", sk_env = "QIANFAN_SK" }\n'
    manifest = load_manifest(write(tmp_path / "m.toml", text))
    assert manifest.providers["local"].endpoint == endpoint


#: (endpoint, accepted without --insecure): the one rule of reconcile.endpoints.
ENDPOINT_RULES = [
    ("https://fabric.cn-north-4.myhuaweicloud.com", True),
    ("http://127.0.0.1:8080", True),
    ("http://localhost:9000/api", True),
    ("http://[::1]:80", True),
    # Loopback by address but not one of the loopback names: `plan` always refused it, and
    # `validate` now does too (the stricter of the two rules).
    ("http://127.0.0.2:8080", False),
    ("http://127.1.2.3", False),
    ("http://example.com", False),
    ("ftp://example.com", False),
    ("https://user:hunter2@example.com", False),
]


@pytest.mark.parametrize(("endpoint", "accepted"), ENDPOINT_RULES)
def test_validate_and_the_http_layer_apply_one_endpoint_rule(
    tmp_path: Path, endpoint: str, accepted: bool
) -> None:
    from reconcile.errors import ReconcileError
    from reconcile.providers.http import check_endpoint

    text = f'[providers.p]\ntype = "qianfan"\nendpoint = "{endpoint}"\n'
    path = write(tmp_path / "m.toml", text)
    if accepted:
        assert load_manifest(path).providers["p"].endpoint == endpoint
        assert check_endpoint(endpoint) == endpoint.rstrip("/")
    else:
        error = load_error(path)
        assert str(error).startswith(f"{path}:3: providers.p.endpoint: ")
        assert "hunter2" not in str(error)
        with pytest.raises(ReconcileError) as refused:
            check_endpoint(endpoint)
        assert "hunter2" not in str(refused.value)
        # --insecure lets plain http through to any host, in both places alike.
        if endpoint.startswith("http://"):
            assert load_manifest(path, insecure=True).providers["p"].endpoint == endpoint
            assert check_endpoint(endpoint, insecure=True) == endpoint


def test_digest_ignores_comments_layout_and_file_split(tmp_path: Path) -> None:
    one = load_manifest(write(tmp_path / "one.toml", DESIGN_EXAMPLE))
    providers, _, rest = DESIGN_EXAMPLE.partition("[policy]")
    write(tmp_path / "split" / "a.toml", providers)
    write(tmp_path / "split" / "b.toml", "# policy and models\n[policy]" + rest)
    assert load_manifest(tmp_path / "split").digest() == one.digest()


def test_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + EMULATED_PROVIDER.encode())
    assert list(load_manifest(path).providers) == ["demo"]


def test_manifest_files_lists_toml_files_by_name_skipping_hidden_ones(tmp_path: Path) -> None:
    for name in ["b.toml", "a.toml", ".#a.toml", "c.txt"]:
        write(tmp_path / name, "")
    (tmp_path / "sub.toml").mkdir()
    assert manifest_files(tmp_path) == [tmp_path / "a.toml", tmp_path / "b.toml"]
    assert manifest_files(tmp_path / "b.toml") == [tmp_path / "b.toml"]


def test_manifest_is_frozen(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path / "prod.toml", DESIGN_EXAMPLE))
    with pytest.raises(ValueError, match="frozen"):
        manifest.models[0].name = "other"  # type: ignore[misc]


def test_large_manifest_loads(tmp_path: Path) -> None:
    """2,000 models of 5 versions in the long form (timing is measured outside the tests)."""
    lines = [EMULATED_PROVIDER]
    for model in range(2000):
        lines.append(f'[[models]]\nprovider = "demo"\nname = "model-{model}"\n')
        lines.extend(f'[[models.versions]]\nname = "v{version}"\n' for version in range(5))
    manifest = load_manifest(write(tmp_path / "big.toml", "\n".join(lines)))
    assert len(manifest.models) == 2000
    # 4 provider lines and a blank one, then 19 lines a model: 4 of its own, 3 a version.
    assert manifest.origins["models.demo/model-1999"].line == 5 + 1999 * 19 + 1


# --- Bad manifests: one data-driven test over tests/bad_inputs/manifests -------------------------


def test_every_bad_manifest_case_has_its_expected_text() -> None:
    expected = sorted(path.with_suffix(".toml").name for path in BAD_MANIFESTS.glob("*.expected"))
    assert expected == BAD_CASES
    assert len(BAD_CASES) >= 20


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_manifest_is_reported_with_file_line_and_fix(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(BAD_MANIFESTS)
    error = load_error(Path(case))
    expected = Path(case).with_suffix(".expected").read_text(encoding="utf-8").strip()
    assert str(error).splitlines()[0] == expected
    assert error.file == case
    assert "pydantic" not in str(error)
    assert "Input should be" not in str(error)
    assert error.hint, "every manifest error says how to fix it"


@pytest.mark.parametrize(
    ("case", "secret"),
    [
        ("credentials_literal_secret.toml", "q8Zt/1xY9w+Kd3LmN0pQr7sTuV2wXyZ4aBcDeFgH"),
        ("credentials_literal_access_key.toml", "HPUAK3X9ZB7LMN2RT4WQ"),
        ("endpoint_with_password.toml", "hunter2"),
    ],
)
def test_errors_never_repeat_a_secret(case: str, secret: str) -> None:
    error = load_error(BAD_MANIFESTS / case)
    assert secret not in str(error)


def test_a_secret_of_the_wrong_type_is_not_repeated(tmp_path: Path) -> None:
    text = EMULATED_PROVIDER + "credentials = { token_env = 123456789 }\n"
    error = load_error(write(tmp_path / "m.toml", text))
    assert "123456789" not in str(error)
    assert str(error).startswith(
        f"{tmp_path / 'm.toml'}:5: providers.demo.credentials.token_env: expected a string"
    )


def test_a_misspelt_required_key_is_reported_before_the_missing_one(tmp_path: Path) -> None:
    text = EMULATED_PROVIDER + '[[models]]\nprovider = "demo"\nnmae = "bot"\n'
    error = load_error(write(tmp_path / "m.toml", text))
    assert error.message.endswith("models[0]: unknown key 'nmae' (did you mean 'name'?)")
    assert error.line == 7


def test_the_topmost_problem_of_a_file_is_reported(tmp_path: Path) -> None:
    text = (
        '[[models]]\nprovider = "demo"\nname = "bot"\nabsent = "no"\n\n'
        + EMULATED_PROVIDER
        + "scope = 1\n"
    )
    error = load_error(write(tmp_path / "m.toml", text))
    assert (error.line, error.message.split(": ")[1]) == (4, "models[0].absent")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[" * 5000 + "]" * 5000, "values are nested too deeply to read"),
        ("1" * 5000, "a number has too many digits"),
        ("0x" + "f" * 5000, "models[0].name: expected a string, got a huge integer"),
    ],
)
def test_pathological_values_are_reported_not_crashed_on(
    tmp_path: Path, value: str, message: str
) -> None:
    text = EMULATED_PROVIDER + f'[[models]]\nprovider = "demo"\nname = {value}\n'
    error = load_error(write(tmp_path / "m.toml", text))
    assert error.message.endswith(message)


# --- Folder-level problems ------------------------------------------------------------------------


def test_model_declared_in_two_files_names_both_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = '[[models]]\nprovider = "demo"\nname = "bot"\n'
    write(tmp_path / "m" / "a.toml", EMULATED_PROVIDER + "\n" + model)
    write(tmp_path / "m" / "b.toml", "# more models\n\n" + model)
    monkeypatch.chdir(tmp_path)
    error = load_error(Path("m"))
    assert str(error).splitlines()[0] == (
        "m/b.toml:3: models[0]: model 'bot' of provider 'demo' is declared twice "
        "(m/a.toml:6 and m/b.toml:3)"
    )


def test_model_id_declared_in_two_files_names_both_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path / "m" / "a.toml",
        EMULATED_PROVIDER + '[[models]]\nprovider = "demo"\nname = "bot"\nid = "m-1"\n',
    )
    write(tmp_path / "m" / "b.toml", '[[models]]\nprovider = "demo"\nname = "bot2"\nid = "m-1"\n')
    monkeypatch.chdir(tmp_path)
    error = load_error(Path("m"))
    assert str(error).splitlines()[0] == (
        "m/b.toml:1: models[0].id: model id 'm-1' of provider 'demo' is declared twice "
        "(m/a.toml:5 and m/b.toml:1)"
    )


def test_provider_defined_in_two_files_names_both_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "m" / "a.toml", EMULATED_PROVIDER)
    write(tmp_path / "m" / "b.toml", "\n" + EMULATED_PROVIDER)
    monkeypatch.chdir(tmp_path)
    error = load_error(Path("m"))
    assert str(error).splitlines()[0] == (
        "m/b.toml:2: providers.demo: provider 'demo' is defined twice (m/a.toml:1 and m/b.toml:2)"
    )


def test_policy_in_two_files_names_both_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "m" / "a.toml", EMULATED_PROVIDER + "\n[policy]\nkeep_latest = 1\n")
    write(tmp_path / "m" / "b.toml", "[policy]\nkeep_latest = 2\n")
    monkeypatch.chdir(tmp_path)
    error = load_error(Path("m"))
    assert str(error).splitlines()[0] == (
        "m/b.toml:1: policy: [policy] is defined twice (m/a.toml:6 and m/b.toml:1)"
    )
    assert error.hint is not None and "[providers.NAME.policy]" in error.hint


def test_model_may_reference_a_provider_of_another_file(tmp_path: Path) -> None:
    write(tmp_path / "m" / "models.toml", '[[models]]\nprovider = "demo"\nname = "bot"\n')
    write(tmp_path / "m" / "providers.toml", EMULATED_PROVIDER)
    assert [model.name for model in load_manifest(tmp_path / "m").models] == ["bot"]


def test_empty_folder_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    write(tmp_path / "empty" / "readme.md", "no manifests here")
    monkeypatch.chdir(tmp_path)
    error = load_error(Path("empty"))
    assert str(error).splitlines()[0] == "empty: no *.toml manifest in this folder"


def test_missing_path_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    error = load_error(Path("nowhere.toml"))
    assert str(error).splitlines()[0] == "nowhere.toml: no such file or folder"


def test_a_syntax_error_in_a_later_file_names_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "m" / "a.toml", EMULATED_PROVIDER)
    write(tmp_path / "m" / "b.toml", "[[models]]\nprovider = demo\n")
    monkeypatch.chdir(tmp_path)
    error = load_error(Path("m"))
    assert (error.file, error.line) == ("m/b.toml", 2)
    assert error.message.startswith("m/b.toml:2: invalid TOML: ")


# --- The key-line scanner -------------------------------------------------------------------------


def test_scanner_maps_headers_keys_and_array_of_tables_indexes() -> None:
    lines = scan_key_lines(DESIGN_EXAMPLE)
    assert lines[("providers", "fabric-prod")] == 1
    assert lines[("providers", "fabric-prod", "credentials", "sk_env")] == 7
    assert lines[("policy", "ignore")] == 17
    assert lines[("models", 0, "versions", 1)] == 24
    assert lines[("models", 1)] == 26
    assert lines[("models", 1, "versions", 0)] == 30
    assert lines[("models", 1, "versions", 0, "protect")] == 34
    assert lines[("models", 2, "absent")] == 39


def test_scanner_numbers_nested_arrays_of_tables_per_parent() -> None:
    text = """\
[[models]]
name = "a"
[[models.versions]]
name = "a1"
[[models.versions]]
name = "a2"
[[models]]
name = "b"
[[models.versions]]
name = "b1"
"""
    lines = scan_key_lines(text)
    assert lines[("models", 0, "versions", 1, "name")] == 6
    assert lines[("models", 1, "versions", 0)] == 9
    assert ("models", 1, "versions", 1) not in lines


def test_scanner_reads_dotted_quoted_and_inline_keys() -> None:
    text = """\
[providers]
fabric.type = "fabric"
"quoted key".type = 'qianfan'
fabric . 'credentials' . token_env = "T"  # a comment
inline = { a = 1, b.c = { d = "x" } }
"esc\\u0041ped" = 1
"""
    lines = scan_key_lines(text)
    assert tomllib.loads(text)["providers"]["escAped"] == 1
    assert lines[("providers", "fabric")] == 2
    assert lines[("providers", "quoted key", "type")] == 3
    assert lines[("providers", "fabric", "credentials", "token_env")] == 4
    assert lines[("providers", "inline", "b", "c", "d")] == 5
    assert lines[("providers", "escAped")] == 6


def test_scanner_reads_multi_line_arrays_and_strings() -> None:
    text = '''\
versions = [
  "v1",  # one
  { name = "v2", protect = true },

  "v3",
]
description = """
[[models]]
name = "not a key"
"""
literal = \'\'\'
x = 1\'\'\'
after = 1
stamps = [1979-05-27 07:32:00, 1980-01-01 00:00:00]
last = 2
'''
    lines = scan_key_lines(text)
    assert lines[("versions", 0)] == 2
    assert lines[("versions", 1, "protect")] == 3
    assert lines[("versions", 2)] == 5
    assert lines[("description",)] == 7
    assert lines[("after",)] == 13
    assert lines[("stamps", 1)] == 14
    assert lines[("last",)] == 15
    assert ("models",) not in lines and ("name",) not in lines and ("x",) not in lines


def test_scanner_prefers_a_tables_own_header_over_an_implied_one() -> None:
    text = "[providers.x.policy]\nkeep_latest = 1\n\n[providers.x]\ntype = 'fabric'\n"
    lines = scan_key_lines(text)
    assert lines[("providers", "x")] == 4
    assert lines[("providers",)] == 1


def test_scanner_handles_crlf_line_ends() -> None:
    lines = scan_key_lines('[a]\r\nb = "x"\r\n\r\n[[c]]\r\nd = [\r\n  1,\r\n  2,\r\n]\r\ne = 1\r\n')
    assert lines == {
        ("a",): 1,
        ("a", "b"): 2,
        ("c",): 4,
        ("c", 0): 4,
        ("c", 0, "d"): 5,
        ("c", 0, "d", 0): 6,
        ("c", 0, "d", 1): 7,
        ("c", 0, "e"): 9,
    }


def test_line_of_falls_back_to_the_nearest_enclosing_table() -> None:
    lines: dict[Loc, int] = {("models",): 3, ("models", 0): 3, ("models", 0, "name"): 5}
    assert line_of(lines, ("models", 0, "name")) == 5
    assert line_of(lines, ("models", 0, "versions", 2, "name")) == 3
    assert line_of(lines, ("policy", "keep_latest")) is None
    assert line_of(lines, ()) is None


def test_toml_path_quotes_what_toml_would_quote() -> None:
    assert toml_path(("models", 2, "versions", 0, "nmae")) == "models[2].versions[0].nmae"
    assert toml_path(("providers", "fabric prod", "type")) == 'providers."fabric prod".type'
    assert toml_path(()) == ""


# --- Nothing but ManifestError escapes -----------------------------------------------------------

HEADERS = [
    "[providers.demo]",
    "[providers.q]",
    "[providers.demo.policy]",
    "[policy]",
    "[[models]]",
    "[[models]]",
    "[[models.versions]]",
    "[models]",
    "",
]
KEY_LINES = [
    'type = "fabric"',
    'type = "qianfan"',
    'endpoint = "emulator:state.json"',
    'endpoint = "http://example.com"',
    'workspace_id = "ws-1"',
    'workspace_id = "ws/1"',
    'credentials = { token_env = "T" }',
    'credentials = { ak_env = "A" }',
    "keep_latest = -1",
    "keep_latest = 2",
    'protect = ["a*"]',
    'provider = "demo"',
    'provider = "q"',
    'name = "m"',
    'name = "v"',
    'id = "1"',
    'versions = ["v1", "v1"]',
    'versions = [\n  "v1",\n  { name = "v2" },\n]',
    "absent = true",
    "protect = true",
    'nmae = "x"',
    '"quoted" = 1',
    'a.b = """\n[[models]]\n"""',
    "x = [[1], {a = 2}]",
    "# comment",
    "=",
    "[",
    'name = "unclosed',
]
#: A file of sections: a header, then key lines with distinct keys (so that most files parse).
SECTIONS = st.lists(
    st.tuples(
        st.sampled_from(HEADERS),
        st.lists(st.sampled_from(KEY_LINES), max_size=6, unique_by=lambda line: line[:4]),
    ),
    max_size=8,
).map(lambda sections: "\n".join(f"{head}\n" + "\n".join(keys) for head, keys in sections))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "fuzz.toml"


def load_bytes_or_manifest_error(scratch: Path, data: bytes) -> Manifest | None:
    scratch.write_bytes(data)
    try:
        manifest = load_manifest(scratch)
    except ManifestError as error:
        assert error.file == str(scratch)
        return None
    assert set(manifest.providers) == {
        key.removeprefix("providers.") for key in manifest.origins if key.startswith("providers.")
    }
    assert all(
        f"models.{model.provider}/{model.name}" in manifest.origins for model in manifest.models
    )
    return manifest


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_random_bytes_raise_nothing_but_manifest_error(scratch: Path, data: bytes) -> None:
    load_bytes_or_manifest_error(scratch, data)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=300)
@given(SECTIONS)
def test_random_toml_sections_raise_nothing_but_manifest_error(scratch: Path, text: str) -> None:
    load_bytes_or_manifest_error(scratch, text.encode())


KEYS = st.sampled_from(
    [
        "type",
        "endpoint",
        "workspace_id",
        "credentials",
        "token_env",
        "ak_env",
        "sk_env",
        "scope",
        "policy",
        "keep_latest",
        "protect",
        "name",
        "provider",
        "versions",
        "absent",
        "id",
        "description",
    ]
) | st.text(string.ascii_letters + string.digits + " .-_'\"\\é", min_size=1, max_size=8)
SCALARS = (
    st.sampled_from(["fabric", "qianfan", "emulator:s.json", "demo", "declared", "v1", "HOME"])
    | st.text(max_size=10)
    | st.integers(-5, 5)
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.dates()
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)


def key_paths(value: Any, loc: Loc = ()) -> list[Loc]:
    paths: list[Loc] = [loc] if loc else []
    if isinstance(value, dict):
        for key, item in value.items():
            paths.extend(key_paths(item, (*loc, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths.extend(key_paths(item, (*loc, index)))
    return paths


@st.composite
def manifest_like(draw: st.DrawFn) -> dict[str, Any]:
    """A valid manifest document, then up to three random changes (replace, delete or add a key)."""
    provider = st.fixed_dictionaries(
        {
            "type": st.sampled_from(["fabric", "qianfan"]),
            "endpoint": st.sampled_from(["emulator:s.json", "http://127.0.0.1:1"]),
        },
        optional={
            "scope": st.sampled_from(["declared", "workspace"]),
            "credentials": st.sampled_from([{"token_env": "T"}, {"ak_env": "A", "sk_env": "S"}]),
            "policy": st.sampled_from([{"keep_latest": 1}, {"protect": ["a*"]}]),
        },
    )
    providers = draw(st.dictionaries(st.sampled_from(["demo", "q"]), provider, min_size=1))
    for table in providers.values():
        if table["type"] == "fabric":
            table["workspace_id"] = "ws-1"
    model = st.fixed_dictionaries(
        {"provider": st.sampled_from(sorted(providers)), "name": st.sampled_from(["m", "n", "o"])},
        optional={
            "versions": st.lists(
                st.sampled_from(["v1", "v2", {"name": "v3", "protect": True}]),
                max_size=3,
                unique_by=str,
            ),
            "id": st.sampled_from(["id-1", "id-2", "id-3"]),
            "description": st.text(max_size=5),
        },
    )
    models = draw(st.lists(model, max_size=4, unique_by=lambda table: table["name"]))
    document: dict[str, Any] = {"providers": providers, "models": models}
    if draw(st.booleans()):
        document["policy"] = {"keep_latest": 2, "ignore": ["tmp-*"]}
    for _ in range(draw(st.integers(0, 3))):
        paths = key_paths(document)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = document
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(KEYS)] = draw(VALUES)
    return document


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=200)
@given(manifest_like(), st.booleans())
def test_random_manifest_structures_raise_nothing_but_manifest_error(
    scratch: Path, document: dict[str, Any], multiline: bool
) -> None:
    text = tomli_w.dumps(document, multiline_strings=multiline)
    load_bytes_or_manifest_error(scratch, text.encode())


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=5), st.booleans())
def test_scanner_finds_every_key_and_element_of_a_document(
    document: dict[str, Any], multiline: bool
) -> None:
    text = tomli_w.dumps(document, multiline_strings=multiline)
    lines = scan_key_lines(text)
    text_lines = text.splitlines()
    for path in key_paths(tomllib.loads(text)):
        assert path in lines, (path, text)
        assert 1 <= lines[path] <= len(text_lines)


# --- Every error in one run (issue 12) -----------------------------------------------------------

TWO_BAD_FILES = {
    "a.toml": """\
[providers.fab]
type = "fabric"
endpoint = "http://example.com"
workspace_id = "ws-1"
credentials = { token_env = "FABRIC_TOKEN" }

[policy]
keep_latest = -1
""",
    "b.toml": """\
[[models]]
provider = "fab"
name = ""

[[models]]
provider = "fab"
name = "bot"
colour = "blue"
""",
}


def test_every_error_of_every_file_is_reported_at_once(tmp_path: Path) -> None:
    for name, text in TWO_BAD_FILES.items():
        write(tmp_path / "m" / name, text)
    error = load_error(tmp_path / "m")
    a, b = str(tmp_path / "m" / "a.toml"), str(tmp_path / "m" / "b.toml")
    problems = [str(problem).splitlines()[0] for problem in getattr(error, "problems", [error])]
    assert problems == [
        f"{a}:3: providers.fab.endpoint: 'http://example.com' is plain http:// to a host that is "
        "not loopback",
        f"{a}:8: policy.keep_latest: must be 0 or more, got -1",
        f"{b}:3: models[0].name: must not be empty",
        f"{b}:8: models[1]: unknown key 'colour'",
    ]
    # It reads as its first problem, as a single error did.
    assert str(error).splitlines()[0] == problems[0]
    assert (error.file, error.line) == (a, 3)


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_validate_and_plan_print_every_error_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    from reconcile.cli import main

    for name, text in TWO_BAD_FILES.items():
        write(tmp_path / "m" / name, text)
    code = main([command, str(tmp_path / "m")])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 4
    assert all(f"{tmp_path / 'm'}/" in line for line in errors)
    assert err.count("  hint: ") == 4
    assert "4 errors in 2 files" in err
    assert "Traceback" not in err


def test_a_file_that_does_not_parse_does_not_hide_the_others(tmp_path: Path) -> None:
    write(tmp_path / "m" / "a.toml", "[providers.fab\n")
    write(tmp_path / "m" / "b.toml", '[[models]]\nprovider = "fab"\nname = ""\n')
    error = load_error(tmp_path / "m")
    lines = [str(problem).splitlines()[0] for problem in getattr(error, "problems", [error])]
    assert len(lines) == 2
    assert lines[0].startswith(f"{tmp_path / 'm' / 'a.toml'}:1: invalid TOML")
    # The provider may be declared in the file that could not be read: no "no provider" error.
    assert lines[1] == f"{tmp_path / 'm' / 'b.toml'}:3: models[0].name: must not be empty"


# --- Declared ids and credentials a platform cannot use (issue 12) -------------------------------

FABRIC_HEAD = EMULATED_PROVIDER
QIANFAN_HEAD = '[providers.demo]\ntype = "qianfan"\nendpoint = "emulator:state.json"\n'


@pytest.mark.parametrize(
    ("head", "declaration", "at", "rule"),
    [
        (FABRIC_HEAD, 'id = "../../admin%2Fx"', "models[0].id", "a Fabric model id"),
        (FABRIC_HEAD, 'id = "m 1"', "models[0].id", "a Fabric model id"),
        (FABRIC_HEAD, 'id = "a-b-c-d-e-f-0123456789012345678901234"', "models[0].id", "Fabric"),
        (
            FABRIC_HEAD,
            'versions = [{ name = "v1", id = "../v1" }]',
            "models[0].versions[0].id",
            "a Fabric version id",
        ),
        (QIANFAN_HEAD, 'id = "../../admin%2Fx"', "models[0].id", "a Qianfan model id"),
        (QIANFAN_HEAD, 'id = "585"', "models[0].id", "a Qianfan model id is 'am-'"),
        (
            QIANFAN_HEAD,
            'versions = [{ name = "v1", id = "am-1" }]',
            "models[0].versions[0].id",
            "a Qianfan version id is 'amv-'",
        ),
    ],
)
def test_a_declared_id_no_platform_id_can_be_is_refused(
    tmp_path: Path, head: str, declaration: str, at: str, rule: str
) -> None:
    text = head + f'\n[[models]]\nprovider = "demo"\nname = "bot"\n{declaration}\n'
    path = write(tmp_path / "m.toml", text)
    error = load_error(path)
    first = str(error).splitlines()[0]
    assert first.startswith(f"{path}:{text.count(chr(10))}: {at}: invalid id ")
    assert rule in first
    assert error.hint


@pytest.mark.parametrize(
    ("head", "declaration"),
    [
        (FABRIC_HEAD, 'id = "b6bd4abb-0c1d-4e2f-8a9b-0123456789ab"'),
        (FABRIC_HEAD, 'versions = [{ name = "v1", id = "0123456789abcdef0123456789abcdef" }]'),
        (QIANFAN_HEAD, 'id = "am-g73j3faikzpz"'),
        (QIANFAN_HEAD, 'versions = [{ name = "v1", id = "amv-g73j3faikzpz" }]'),
    ],
)
def test_ids_of_the_platforms_shape_load(tmp_path: Path, head: str, declaration: str) -> None:
    text = head + f'\n[[models]]\nprovider = "demo"\nname = "bot"\n{declaration}\n'
    assert load_manifest(write(tmp_path / "m.toml", text)).models[0].name == "bot"


@pytest.mark.parametrize(
    ("credentials", "key"),
    [
        ('{ token_env = "QIANFAN_TOKEN" }', "token_env"),
        (
            '{ ak_env = "QIANFAN_ACCESS_KEY", sk_env = "QIANFAN_SECRET_KEY", '
            'security_token_env = "QIANFAN_STS" }',
            "security_token_env",
        ),
    ],
)
def test_qianfan_credentials_are_ak_sk_only(tmp_path: Path, credentials: str, key: str) -> None:
    text = '[providers.qf]\ntype = "qianfan"\n' + f"credentials = {credentials}\n"
    path = write(tmp_path / "m.toml", text)
    error = load_error(path)
    assert str(error).startswith(
        f"{path}:3: providers.qf.credentials.{key}: Qianfan signs requests with AK/SK (an access "
        f"key and a secret key) only: {key} is not supported"
    )
    assert error.hint is not None
    assert "QIANFAN_ACCESS_KEY" in error.hint
    assert "HUAWEICLOUD" not in error.hint


# --- Secrets pasted where a variable's name belongs (issue 12) -----------------------------------

PASTED_SECRETS = [
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC",  # an IAM token (its start)
    "MIIDzTCCArWgAwIBAgI",
    "HPUAKXZBLMNRTWQPLKJH",  # a Huawei AK, letters only
    "ABCDEFGHIJKLMNOPQRST",
    "HPUAK3X9ZB7LMN2RT4WQ",
    "q8Zt1xY9wKd3LmN0pQr7sTuV2wXyZ4aBcDeFgH",  # a secret key
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",  # a Qianfan AK (32 hex)
    "a3f9c2e1b7d4f6a8",
    "kqhkiG9w0BAQEF_AASCBKcwggSjAgE",  # base64url holds '_'
    "X" * 120,
]
VARIABLE_NAMES = [
    "HUAWEICLOUD_SDK_AK",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    "QIANFAN_ACCESS_KEY",
    "QIANFANACCESSKEY",
    "FABRIC_TOKEN_2024",
    "fabric_prod_ak",
    "AWS_SECRET_ACCESS_KEY",
    "QianfanAccessKey",
    "_PRIVATE",
    "T",
]


@pytest.mark.parametrize("secret", PASTED_SECRETS)
@pytest.mark.parametrize("platform", ["fabric", "qianfan"])
def test_a_pasted_key_or_token_is_refused_and_never_repeated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], secret: str, platform: str
) -> None:
    from reconcile.cli import main

    head = FABRIC_HEAD if platform == "fabric" else QIANFAN_HEAD
    text = head + f'credentials = {{ ak_env = "{secret}", sk_env = "OK_NAME" }}\n'
    path = write(tmp_path / "m.toml", text)
    error = load_error(path)
    assert str(error).startswith(
        f"{path}:{text.count(chr(10))}: providers.demo.credentials.ak_env: expected the NAME of "
        "an environment "
        "variable, got "
    )
    assert secret not in str(error)
    assert secret[:12] not in str(error)
    # The hint names the platform's own variables.
    assert error.hint is not None
    own, other = (
        ("HUAWEICLOUD_SDK_AK", "QIANFAN") if platform == "fabric" else ("QIANFAN", "HUAWEI")
    )
    assert own in error.hint
    assert other not in error.hint
    assert main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert secret[:12] not in out + err


@pytest.mark.parametrize("name", VARIABLE_NAMES)
def test_variable_names_are_accepted(tmp_path: Path, name: str) -> None:
    text = QIANFAN_HEAD + f'credentials = {{ ak_env = "{name}", sk_env = "QIANFAN_SK" }}\n'
    credentials = load_manifest(write(tmp_path / "m.toml", text)).providers["demo"].credentials
    assert credentials is not None
    assert credentials.ak_env == name


def test_the_hint_for_a_value_that_is_no_name_at_all_names_qianfans_variables(
    tmp_path: Path,
) -> None:
    text = QIANFAN_HEAD + 'credentials = { ak_env = "q8Zt/1xY9w+Kd3Lm", sk_env = "SK" }\n'
    error = load_error(write(tmp_path / "m.toml", text))
    assert "q8Zt" not in str(error)
    assert error.hint is not None
    assert 'ak_env = "QIANFAN_ACCESS_KEY"' in error.hint
    assert "HUAWEICLOUD" not in error.hint


# --- The plan does not depend on how the manifest path is spelt (issue 12) -----------------------


def test_a_plans_digest_does_not_depend_on_how_the_manifest_path_is_spelt(
    demo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconcile.cli import main

    monkeypatch.chdir(demo.parent)
    plans = []
    for spelling in ("demo", "demo/", str(demo), f"{demo}/reconcile.toml", "./demo/../demo"):
        assert main(["plan", spelling, "--json", "--state-dir", str(demo / ".state")]) == 0
        plans.append(json.loads(capsys.readouterr().out))
    assert len({plan["plan_digest"] for plan in plans}) == 1
    # What differs is only what the digest leaves out: the path as given, and the time.
    details = {change["detail"] for change in plans[0]["resource_changes"]}
    assert "declared at reconcile.toml:27" in details
    assert all(str(demo) not in change["detail"] for change in plans[2]["resource_changes"])
    assert plans[2]["manifest_path"] == str(demo)


# --- Declarations that can have no effect (issue 12) ---------------------------------------------


def test_validate_warns_about_a_declaration_an_ignore_pattern_matches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconcile.cli import main

    text = (
        EMULATED_PROVIDER
        + '\n[providers.demo.policy]\nignore = ["scratch-*", "bot/tmp-*"]\n'
        + '\n[[models]]\nprovider = "demo"\nname = "scratch-1"\n'
        + '\n[[models]]\nprovider = "demo"\nname = "bot"\nversions = ["v1", "tmp-2"]\n'
        + '\n[[models]]\nprovider = "demo"\nname = "kept"\n'
    )
    path = write(tmp_path / "m.toml", text)
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "valid: 1 provider(s), 3 model(s)" in out
    assert err.splitlines() == [
        f"warning: model demo/scratch-1 is declared but matches the ignore pattern 'scratch-*', "
        f"so the declaration has no effect ({path}:9): remove the declaration, or narrow the "
        "ignore pattern so that it is managed",
        f"warning: version demo/bot/tmp-2 is declared but matches the ignore pattern "
        f"'bot/tmp-*', so the declaration has no effect ({path}:13): remove the declaration, or "
        "narrow the ignore pattern so that it is managed",
    ]


def test_validate_prints_no_warning_for_the_demo(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    from reconcile.cli import main

    assert main(["validate", str(demo)]) == 0
    assert capsys.readouterr().err == ""


# --- Durations (issue 16) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", timedelta(seconds=45)),
        ("90m", timedelta(minutes=90)),
        ("24h", timedelta(hours=24)),
        ("30d", timedelta(days=30)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_a_duration_is_a_whole_number_and_a_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "line", "said"),
    [
        ("24", 7, "a duration needs a unit"),
        ('"24"', 7, "invalid duration '24'"),
        ('"1.5h"', 7, "invalid duration '1.5h'"),
        ('"3y"', 7, "invalid duration '3y'"),
        ("true", 7, "a duration needs a unit"),
    ],
)
def test_a_duration_without_a_known_unit_is_refused_at_its_line_listing_the_units(
    tmp_path: Path, value: str, line: int, said: str
) -> None:
    for key in ("min_age", "keep_within", "grace"):
        path = write(tmp_path / "m.toml", EMULATED_PROVIDER + f"\n[policy]\n{key} = {value}\n")
        message = str(load_error(path))
        assert f"m.toml:{line}: policy.{key}:" in message
        assert said in message
        assert "s (seconds), m (minutes), h (hours), d (days), w (weeks)" in message


def test_the_retention_keys_are_read_globally_and_per_provider(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.toml",
        EMULATED_PROVIDER
        + '\n[providers.demo.policy]\nmode = "observe"\ngrace = "7d"\n'
        + '\n[policy]\nmin_age = "24h"\nkeep_within = "30d"\nkeep_before_in_use = 2\n'
        + "max_delete_percent = 10\n",
    )
    policy = load_manifest(path).policy_for("demo")
    assert (policy.min_age, policy.keep_within, policy.grace) == ("24h", "30d", "7d")
    assert (policy.keep_before_in_use, policy.max_delete_percent, policy.mode) == (
        2,
        10,
        "observe",
    )


def test_an_unknown_mode_is_refused_with_the_modes(tmp_path: Path) -> None:
    path = write(tmp_path / "m.toml", EMULATED_PROVIDER + '\n[policy]\nmode = "dry-run"\n')
    message = str(load_error(path))
    assert "m.toml:7: policy.mode:" in message and "'observe'" in message


@pytest.mark.parametrize(
    ("value", "said"),
    [("0", "must be more than 0, got 0"), ("101", "must be 100 or less, got 101")],
)
def test_max_delete_percent_is_a_percentage_above_zero(
    tmp_path: Path, value: str, said: str
) -> None:
    path = write(
        tmp_path / "m.toml", EMULATED_PROVIDER + f"\n[policy]\nmax_delete_percent = {value}\n"
    )
    error = load_error(path)
    assert f"m.toml:7: policy.max_delete_percent: {said}" in str(error)
    assert "more than 0, at most 100" in (error.hint or "") + str(error)
