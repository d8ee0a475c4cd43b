"""No credential in anything a CLI run leaves behind.

One emulator, over a real loopback socket, serves a Fabric workspace signed with AK/SK (with a
temporary credential's security token), a Fabric workspace reached with a token, and a Qianfan
account signed with its AK/SK. Every command that talks to them runs, in every output format, on
success and on failure (refused credentials, faults, failed deletes). Then everything is searched
for every credential: stdout, stderr, log records, and every file under the test's folder (plan
files, drift reports, imported manifests, the journal, the lock).

(tests/test_cli_fabric.py and tests/test_cli.py check plan, apply and journal for Fabric; this
adds Qianfan over a socket, drift, show and import in every format, and the failure paths.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconcile.cli import main
from reconcile.emulator import create_app
from tests.conftest import serve_over_loopback

FABRIC_AK = "HPUASECRETSTESTAK0001"
FABRIC_SK = "secrets-Fabric-SK-Jq8Vw2Nz5Lp"
FABRIC_STS = "secrets-Fabric-STS-Hb4Tc7Xm1"
FABRIC_TOKEN = "secrets-Fabric-Token-Rk6Ys3Wd9"
QIANFAN_AK = "secrets-qianfan-AK-Ue5Gi8"
QIANFAN_SK = "secrets-Qianfan-SK-Oa2Fv6Mt0"
SECRETS = (FABRIC_AK, FABRIC_SK, FABRIC_STS, FABRIC_TOKEN, QIANFAN_AK, QIANFAN_SK)
ENV = {
    "SECRETS_FABRIC_AK": FABRIC_AK,
    "SECRETS_FABRIC_SK": FABRIC_SK,
    "SECRETS_FABRIC_STS": FABRIC_STS,
    "SECRETS_FABRIC_TOKEN": FABRIC_TOKEN,
    "SECRETS_QIANFAN_AK": QIANFAN_AK,
    "SECRETS_QIANFAN_SK": QIANFAN_SK,
}
#: Signatures are secrets too (a replayable request): no Authorization value may show.
SIGNATURE_MARKS = ("bce-auth-v1/", "SDK-HMAC-SHA256 Access", "Signature=")


def _vid(model: int, version: int) -> str:
    return f"{model:08d}-0000-4000-8000-{version:012d}"


def _workspace(offset: int) -> dict[str, Any]:
    return {
        "models": [
            {
                "id": f"m-{offset + i}",
                "name": name,
                "description": "live description",
                "versions": [{"id": _vid(offset + i, v), "name": f"v{v}"} for v in range(2)],
            }
            for i, name in enumerate(["chat", "legacy", "scratch"])
        ]
    }


def state() -> dict[str, Any]:
    return {
        "fabric": {
            "tokens": [FABRIC_TOKEN],
            "access_keys": {FABRIC_AK: FABRIC_SK},
            "security_tokens": {FABRIC_AK: FABRIC_STS},
            "workspaces": {"ws-aksk": _workspace(0), "ws-token": _workspace(10)},
        },
        "qianfan": {
            "access_keys": {QIANFAN_AK: QIANFAN_SK},
            "model_sets": [
                {
                    "modelSetId": f"am-secret{i}",
                    "modelSetName": name,
                    "description": "live description",
                    "versions": [
                        {"modelId": f"amv-secret{i}v{v}", "modelName": f"V{v}"} for v in (1, 2)
                    ],
                }
                for i, name in enumerate(["chat", "legacy", "scratch"])
            ],
        },
    }


def manifest(folder: Path, url: str) -> Path:
    text = f"""
[providers.fab-aksk]
type = "fabric"
endpoint = "{url}"
workspace_id = "ws-aksk"
project_id = "0b5b6c7d8e9f40a1b2c3d4e5f6a7b8c9"
scope = "workspace"
credentials = {{ ak_env = "SECRETS_FABRIC_AK", sk_env = "SECRETS_FABRIC_SK", \
security_token_env = "SECRETS_FABRIC_STS" }}

[providers.fab-token]
type = "fabric"
endpoint = "{url}"
workspace_id = "ws-token"
scope = "workspace"
credentials = {{ token_env = "SECRETS_FABRIC_TOKEN" }}

[providers.qf]
type = "qianfan"
endpoint = "{url}"
scope = "workspace"
credentials = {{ ak_env = "SECRETS_QIANFAN_AK", sk_env = "SECRETS_QIANFAN_SK" }}

[policy]
keep_latest = 0
"""
    for provider, version in (("fab-aksk", "v0"), ("fab-token", "v0"), ("qf", "V1")):
        text += f"""
[[models]]
provider = "{provider}"
name = "chat"
description = "declared description"
versions = ["{version}"]

[[models]]
provider = "{provider}"
name = "never-created"
"""
    path = folder / "manifests.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def server() -> Iterator[tuple[Any, str]]:
    app = create_app(state())
    with serve_over_loopback(app) as url:
        yield app, url


def test_no_output_of_any_command_holds_a_credential_or_a_signature(
    tmp_path: Path,
    server: tuple[Any, str],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)
    app, url = server
    path = str(manifest(tmp_path, url))
    printed: list[str] = []

    def run(*argv: str, expect: int) -> str:
        code = main(list(argv))
        out, err = capsys.readouterr()
        printed.extend((out, err))
        assert code == expect, f"{argv}: {code}\n{out}\n{err}"
        return out + err

    plan = str(tmp_path / "plan.json")
    run("validate", path, expect=0)
    assert "- delete model qf/legacy" in run("plan", path, "-o", plan, expect=0)
    for fmt in ("json", "markdown"):
        run("plan", path, "--format", fmt, expect=0)
    for fmt in ("text", "json", "markdown"):
        run("show", plan, "--format", fmt, expect=0)
    for fmt, suffix in (("text", "txt"), ("json", "json"), ("markdown", "md"), ("html", "html")):
        run("drift", path, "--format", fmt, expect=2)
        run("drift", path, "--format", fmt, "-o", str(tmp_path / f"drift.{suffix}"), expect=2)
    for provider in ("fab-aksk", "fab-token", "qf"):
        output = str(tmp_path / f"imported-{provider}.toml")
        run("import", path, "--provider", provider, "-o", output, expect=0)

    # Apply the saved plan with one delete per platform refused by the gateway: exit 3, with
    # each failure (its URL, the platform's answer) on stderr; then apply again.
    app.state.emulator.faults = [
        "status,status=500,path=/v1/workspaces/ws-aksk/models/m-2",
        "status,status=503,path=/v1/workspaces/ws-token/models/m-12",
        "status,status=500,path=/wenxinworkshop/modelrepo/model/batchDelete",
    ]
    assert "failed" in run("apply", plan, "--attempts", "1", expect=3)
    app.state.emulator.faults = []
    run("apply", path, "--auto-approve", expect=0)
    journal = run("journal", path, expect=0)
    apply_id = journal.split()[0]
    run("journal", path, "--apply-id", apply_id, expect=0)
    assert "No changes" in run("plan", path, expect=0)

    # Failures: refused credentials, dropped connections, a gateway that echoes what it got.
    app.state.emulator.faults = ["reset"]
    run("plan", path, "--attempts", "1", expect=1)
    app.state.emulator.faults = []
    for variable in ("SECRETS_QIANFAN_SK", "SECRETS_FABRIC_SK", "SECRETS_FABRIC_TOKEN"):
        with monkeypatch.context() as wrong:
            wrong.setenv(variable, "wrong-" + ENV[variable])
            run("plan", path, expect=1)
            run("drift", path, expect=1)
    with monkeypatch.context() as unknown:
        unknown.setenv("SECRETS_FABRIC_AK", FABRIC_AK + "X")  # the gateway echoes an unknown AK
        assert "ak:***,err:ak not exist" in run("plan", path, expect=1)

    files = [file for file in tmp_path.rglob("*") if file.is_file()]
    kept = {file.relative_to(tmp_path).as_posix() for file in files}
    assert {"plan.json", "drift.html", "imported-qf.toml", ".reconcile/journal.jsonl"} <= kept
    texts = [
        *printed,
        caplog.text,
        *(f.read_text(encoding="utf-8", errors="replace") for f in files),
    ]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text
        for mark in SIGNATURE_MARKS:
            assert mark not in text
    # The runs did reach the platforms with those credentials.
    schemes = {record["auth"] for record in app.state.emulator.requests}
    assert {"SDK-HMAC-SHA256", "X-Auth-Token", "bce-auth-v1"} <= schemes
    assert json.loads((tmp_path / "drift.json").read_text(encoding="utf-8"))
