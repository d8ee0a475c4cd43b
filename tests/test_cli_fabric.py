"""The command line against a Fabric emulator over a real loopback socket, signed with AK/SK: plan
and apply, each error status of API.md as the user sees it, and no secret in any output."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from reconcile.cli import main
from reconcile.emulator import create_app
from reconcile.providers import EMULATOR_FABRIC_TOKEN
from reconcile.providers.http import RetryPolicy
from tests.conftest import Swappable, serve_over_loopback

AK = "HPUACLITESTACCESSK3Y"
SK = "cli-Secret-Key-6Qm2Zx9Lw4Rt8Yp1"
STS = "cli-Security-Token-Vb7Nc3Jh5Kd0"  # temporary credentials' X-Security-Token
TOKEN = "cli-Auth-Token-Ue2Wq6Pn9Fg4"
SECRETS = (AK, SK, STS, TOKEN)
PROJECT = "0b5b6c7d8e9f40a1b2c3d4e5f6a7b8c9"
WS = "ws-cli"
PROVIDER = "fabric-lb"
ENV = {
    "RECONCILE_TEST_AK": AK,
    "RECONCILE_TEST_SK": SK,
    "RECONCILE_TEST_STS": STS,
    "RECONCILE_TEST_TOKEN": TOKEN,
}
AKSK = (
    '{ ak_env = "RECONCILE_TEST_AK", sk_env = "RECONCILE_TEST_SK", '
    'security_token_env = "RECONCILE_TEST_STS" }'
)


def _version_id(model: int, version: int) -> str:
    return f"{model:08d}-0000-4000-8000-{version:012d}"


def _model(index: int, name: str, versions: int) -> dict[str, Any]:
    return {
        "id": f"m-{index:04d}",
        "name": name,
        "create_time": f"2024-01-01T00:{index // 60 % 60:02d}:{index % 60:02d}.000Z",
        "versions": [
            {
                "id": _version_id(index, v),
                "name": f"v{v}",
                "create_time": f"2024-02-01T00:{v // 60:02d}:{v % 60:02d}.000Z",
            }
            for v in range(versions)
        ],
    }


def _state(
    models: list[dict[str, Any]], services: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "fabric": {
            "tokens": [TOKEN],
            "access_keys": {AK: SK},
            "security_tokens": {AK: STS},
            "workspaces": {WS: {"models": models, "service_instances": services or []}},
        }
    }


def _small_state() -> dict[str, Any]:
    """`chat` (v0, v1, v2: v0 served by `chat-canary`), and `old` (served by `old-prod`)."""
    return _state(
        [_model(0, "chat", 3), _model(1, "old", 1)],
        [
            {
                "id": "svc-chat-canary",
                "name": "chat-canary",
                "status": "RUNNING",
                "source": {"id": "m-0000", "version_id": _version_id(0, 0)},
            },
            {
                "id": "svc-old-prod",
                "name": "old-prod",
                "status": "RUNNING",
                "source": {"id": "m-0001", "version_id": _version_id(1, 0)},
            },
        ],
    )


def _manifest(tmp_path: Path, url: str, *, credentials: str = AKSK, keep: str = "v2") -> Path:
    manifest = tmp_path / "fabric.toml"
    manifest.write_text(
        f"""
[providers.{PROVIDER}]
type = "fabric"
endpoint = "{url}"
workspace_id = "{WS}"
project_id = "{PROJECT}"
scope = "workspace"
credentials = {credentials}

[policy]
keep_latest = 0
max_deletes = 1000

[[models]]
provider = "{PROVIDER}"
name = "chat"
versions = ["{keep}"]
""",
        encoding="utf-8",
    )
    return manifest


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


@dataclass
class Gateway:
    """The emulator behind a gateway that answers some requests itself (`answer` returns a status
    and a JSON body, or None to pass the request on), as a faulty or stale platform would. Its
    answers say `Retry-After: 0`, so that retries (their backoff follows it) take no time."""

    app: ASGIApp
    answer: Callable[[str, str], tuple[int, dict[str, Any]] | None]
    answered: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = self.answer(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if fault is None:
            await self.app(scope, receive, send)
            return
        self.answered.append(f"{scope['method']} {scope['path']}")
        status, body = fault
        headers = {"X-Request-Id": f"req-gw-{len(self.answered)}", "Retry-After": "0"}
        await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)


@pytest.fixture(scope="module")
def loopback() -> Iterator[tuple[Swappable, str]]:
    """One loopback server for the module; each test puts its own app behind it."""
    swappable = Swappable()
    with serve_over_loopback(swappable) as url:
        yield swappable, url


def serve(loopback: tuple[Swappable, str], app: Any) -> str:
    loopback[0].app = app
    return loopback[1]


def _outputs(tmp_path: Path) -> list[str]:
    """Every file reconcile wrote that a user or a pipeline keeps: plan files and the journal."""
    state_dir = tmp_path / ".reconcile"
    files = [*tmp_path.glob("*.json"), *state_dir.glob("*.jsonl")]
    return [file.read_text(encoding="utf-8") for file in files]


# -- plan and apply, AK/SK signed -----------------------------------------------------------------


@pytest.mark.loopback
@pytest.mark.parametrize("credentials_kind", ["aksk", "token"])
def test_fabric_plan_and_apply_over_loopback_never_show_a_secret(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    loopback: tuple[Swappable, str],
    credentials_kind: str,
) -> None:
    """AK/SK with temporary credentials (the emulator requires this AK's X-Security-Token, signed),
    or a token: plan to a file, apply it, read the journal; no output and no file holds the AK,
    the SK, the security token or the token."""
    app = create_app(_small_state())
    credentials = AKSK if credentials_kind == "aksk" else '{ token_env = "RECONCILE_TEST_TOKEN" }'
    manifest = _manifest(tmp_path, serve(loopback, app), credentials=credentials)
    plan_file = tmp_path / "plan.json"
    code, plan_out, plan_err = run(capsys, "plan", str(manifest), "-o", str(plan_file))
    assert code == 0, plan_err
    assert f"- delete version {PROVIDER}/chat/v1" in plan_out
    assert f"! blocked version {PROVIDER}/chat/v0" in plan_out
    assert f"! blocked model {PROVIDER}/old" in plan_out
    code, apply_out, apply_err = run(capsys, "apply", str(plan_file))
    assert code == 0, apply_err
    assert "Apply complete: 1 deleted, 0 already gone." in apply_out
    code, journal_out, journal_err = run(capsys, "journal", str(manifest))
    assert code == 0, journal_err

    sent = app.state.emulator.requests
    scheme = "SDK-HMAC-SHA256" if credentials_kind == "aksk" else "X-Auth-Token"
    assert sent and all(r["auth"] == scheme and r["status"] in (200, 202) for r in sent)
    versions = app.state.emulator.state["fabric"]["workspaces"][WS]["models"][0]["versions"]
    assert [v["name"] for v in versions] == ["v0", "v2"]
    outputs = [plan_out, plan_err, apply_out, apply_err, journal_out, journal_err]
    _no_secret(*outputs, *_outputs(tmp_path))


@pytest.mark.loopback
def test_fabric_a_wrong_sk_is_one_error_line_naming_the_call_and_the_refusal(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    loopback: tuple[Swappable, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECONCILE_TEST_SK", "a-wrong-secret-key-0000")
    url = serve(loopback, create_app(_small_state()))
    code, out, err = run(capsys, "plan", str(_manifest(tmp_path, url)))
    assert code == 1 and out == ""
    (error,) = err.splitlines()
    assert error.startswith(f"Error: {PROVIDER}: list ")
    assert (
        "failed: HTTP 401 APIGW.0301: Incorrect IAM authentication information: "
        "verify aksk signature fail, signature mismatch [request id " in error
    )
    assert error.endswith(
        " (fix: check the credentials named in the manifest (token expired? wrong AK/SK?))"
    )
    _no_secret(out, err)
    assert "a-wrong-secret-key-0000" not in out + err


@pytest.mark.loopback
def test_fabric_an_unknown_ak_echoed_by_the_gateway_is_redacted(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    loopback: tuple[Swappable, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unknown = "HPUAUNKNOWNACCESSKEY"
    monkeypatch.setenv("RECONCILE_TEST_AK", unknown)
    url = serve(loopback, create_app(_small_state()))
    code, _, err = run(capsys, "plan", str(_manifest(tmp_path, url)))
    assert code == 1
    # The gateway's message names the AK; reconcile shows it masked.
    assert "Get secretKey failed,ak:***,err:ak not exist" in err
    assert unknown not in err


# -- each error status of API.md, as the user sees it ----------------------------------------------

MODELS_PATH = f"/v1/workspaces/{WS}/models"
SOLUTION = "Solution from the platform: see the API's error code reference."

#: API.md's bodies, each with a `solution_msg` added (0-4096 characters, optional on every error).
ERRORS = {
    400: {
        "error_code": "common.01000001",
        "error_msg": "failed to read http request, please check your input, code: 400, "
        "reason: Type mismatch., cause: TypeMismatchException",
    },
    401: {"error_code": "APIG.1002", "error_msg": "Incorrect token or token resolution failed"},
    403: {
        "error": {
            "code": "403",
            "message": "X-Auth-Token is invalid in the request",
            "title": "Forbidden",
        },
        "error_code": 403,
        "error_msg": "X-Auth-Token is invalid in the request",
        "title": "Forbidden",
    },
    404: {"error_code": "common.01000001", "error_msg": "response status exception, code: 404"},
    408: {"error_code": "common.00000408", "error_msg": "timeout exception occurred"},
    500: {"error_code": "common.00000500", "error_msg": "internal error"},
}


@pytest.mark.loopback
@pytest.mark.parametrize("status", list(ERRORS))
def test_fabric_each_error_status_reaches_the_user_as_one_error_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, loopback: tuple[Swappable, str], status: int
) -> None:
    """Listing models answers `status` with API.md's body (408 and 500 after every retry): the
    user sees one line with the call, the status, the code, the message, the request id and the
    platform's solution; nothing else (no traceback), and no secret."""
    body = {**ERRORS[status], "solution_msg": SOLUTION}

    def answer(method: str, path: str) -> tuple[int, dict[str, Any]] | None:
        return (status, body) if (method, path) == ("GET", MODELS_PATH) else None

    gateway = Gateway(create_app(_small_state()), answer)
    url = serve(loopback, gateway)
    code, out, err = run(capsys, "plan", str(_manifest(tmp_path, url)))
    assert code == 1 and out == ""
    attempts = RetryPolicy().attempts if status in (408, 500) else 1
    assert gateway.answered == [f"GET {MODELS_PATH}"] * attempts
    assert err.splitlines() == [
        f"Error: {PROVIDER}: list models (GET {url}{MODELS_PATH}?offset=0&limit=100"
        "&sort_by=CREATE_TIME&order_by=ASC) failed: "
        f"HTTP {status} {body['error_code']}: {body['error_msg']} [request id req-gw-{attempts}]"
        f" (fix: {SOLUTION})"
    ]
    _no_secret(out, err)


@pytest.mark.loopback
def test_fabric_an_error_without_a_solution_gets_reconciles_hint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, loopback: tuple[Swappable, str]
) -> None:
    def answer(method: str, path: str) -> tuple[int, dict[str, Any]] | None:
        return (403, ERRORS[403]) if path == MODELS_PATH else None

    url = serve(loopback, Gateway(create_app(_small_state()), answer))
    code, _, err = run(capsys, "plan", str(_manifest(tmp_path, url)))
    assert code == 1
    (error,) = err.splitlines()
    assert error.endswith(" (fix: the credentials lack permission on this workspace)")


@pytest.mark.loopback
def test_fabric_an_unknown_workspace_is_the_platforms_404(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, loopback: tuple[Swappable, str]
) -> None:
    manifest = _manifest(tmp_path, serve(loopback, create_app(_small_state())))
    manifest.write_text(manifest.read_text().replace(f'"{WS}"', '"ws-nowhere"', 1))
    code, _, err = run(capsys, "plan", str(manifest))
    assert code == 1
    (error,) = err.splitlines()
    assert "/v1/workspaces/ws-nowhere/" in error
    assert "failed: HTTP 404 common.01000001: response status exception, code: 404" in error


@pytest.mark.loopback
def test_fabric_the_in_use_refusal_of_a_delete_names_the_service_and_the_fix(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, loopback: tuple[Swappable, str]
) -> None:
    """A platform whose service listing lags (it shows no service) lets the plan delete what
    services use; the deletes are refused, and each refusal reaches the user with its fix."""

    def hide_services(method: str, path: str) -> tuple[int, dict[str, Any]] | None:
        if path.endswith("/services/instances"):
            return 200, {"total": 0, "service_instances": []}
        return None

    app = create_app(_small_state())
    url = serve(loopback, Gateway(app, hide_services))
    code, out, err = run(capsys, "apply", str(_manifest(tmp_path, url)), "--auto-approve")
    assert code == 3  # finished with some deletes failed
    refusals = [r for r in app.state.emulator.requests if r["status"] == 400]
    assert len(refusals) == 2
    assert "Apply finished with errors: 1 deleted, 0 already gone, 2 failed (of 3)." in out
    failed = {line.split(": ", 2)[1]: line for line in err.splitlines() if "failed:" in line}
    version, model = f"{PROVIDER}/chat/v0", f"{PROVIDER}/old"
    assert set(failed) == {version, model}
    assert (
        f"delete version {_version_id(0, 0)} of model m-0000 (DELETE {url}{MODELS_PATH}/m-0000/"
        f"versions/{_version_id(0, 0)}) failed: HTTP 400 dataartsfabric.11000012: version "
        f"{_version_id(0, 0)} of model m-0000 is in use by service instance(s): svc-chat-canary"
    ) in failed[version]
    assert "delete model m-0001" in failed[model]
    assert "HTTP 400 dataartsfabric.11000012: model m-0001 has versions in use" in failed[model]
    assert failed[version].endswith(
        "(fix: Delete the service instance(s) svc-chat-canary that use this version first, "
        "then delete the version again.)"
    )
    assert failed[model].endswith(
        "(fix: Delete the service instance(s) svc-old-prod that use this model first, "
        "then delete the model again.)"
    )
    _no_secret(out, err, *_outputs(tmp_path))


# -- listing at scale ------------------------------------------------------------------------------


def test_fabric_plan_of_250_models_and_a_150_version_model_lists_each_object_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Through the CLI, on the built-in (in-process) emulator: 3 pages of models at limit=100 and
    2 of versions. (Over loopback the same plan takes ~4x longer and shows nothing more: paging
    that emulator over a socket is what the SDK does in test_conformance_fabric.py.)"""
    models = [_model(0, "chat", 150)] + [_model(i, f"model-{i:04d}", 1) for i in range(1, 250)]
    state = _state(models)
    state["fabric"]["tokens"] = [EMULATOR_FABRIC_TOKEN]
    (tmp_path / "state.json").write_text(json.dumps(state), encoding="utf-8")
    manifest = _manifest(tmp_path, "emulator:state.json", keep="v2")
    code, out, err = run(capsys, "plan", str(manifest), "--json")
    assert code == 0, err
    changes = json.loads(out)["resource_changes"]
    addresses = [change["address"] for change in changes]
    assert len(addresses) == len(set(addresses))
    seen = [change["id"] for change in changes]
    seen += [v for change in changes if change["kind"] == "model" for v in change["version_ids"]]
    expected = [model["id"] for model in models]
    expected += [version["id"] for model in models for version in model["versions"]]
    assert sorted(seen) == sorted(expected)  # every object exactly once
    deletes = [change for change in changes if change["actions"] == ["delete"]]
    assert len(deletes) == 149 + 249  # chat's undeclared versions, and every other model
