"""Conformance with Baidu's official Python SDKs, as independent real clients.

The `qianfan` SDK is pointed at the emulator over a loopback socket: what it sends is what the
platform gets from it, so every call it completes shows the emulator speaks the real protocol
(bce-auth-v1 as the SDK signs it, the V1 and V2 bodies as the SDK reads them). Its signer,
`baidubce.auth.bce_v1_signer.sign`, is the reference our own `bce_authorization` is held to.
The socket guard of conftest fails any test in which the SDK tries to reach anything else.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconcile.emulator import Emulator, create_app
from reconcile.providers.signing import bce_authorization
from tests.conftest import serve_over_loopback

AK = "conformance-qianfan-ak"
SK = "conformance-qianfan-sk"
SUPPORT = "am-support0001"
SUMMARIZER = "am-summarizer01"
SCRATCH = "am-scratch00001"
PRESET = "am-ernie000001"
V7 = "amv-support0007"
V8 = "amv-support0008"
S1 = "amv-summary0001"


def account() -> dict[str, Any]:
    return {
        "qianfan": {
            "access_keys": {AK: SK},
            "model_sets": [
                {
                    "modelSetId": SUPPORT,
                    "v1ModelId": 585,
                    "modelSetName": "support-bot",
                    "description": "customer support",
                    "createTime": "2024-06-03T10:00:00+08:00",
                    "versions": [
                        {"modelId": V7, "modelName": "V7", "model": "ERNIE-Speed-8K"},
                        {"modelId": V8, "modelName": "V8"},
                    ],
                },
                {
                    "modelSetId": SUMMARIZER,
                    "v1ModelId": 586,
                    "modelSetName": "summarizer",
                    "createTime": "2024-06-02T10:00:00+08:00",
                    "versions": [{"modelId": S1, "modelName": "V1"}],
                },
                {
                    "modelSetId": SCRATCH,
                    "v1ModelId": 587,
                    "modelSetName": "scratch",
                    "createTime": "2024-06-01T10:00:00+08:00",
                },
                {
                    "modelSetId": PRESET,
                    "modelSetName": "ERNIE-Speed",
                    "source": "System",
                    "versions": [{"modelId": "amv-ernie000001", "modelName": "ERNIE-Speed-8K"}],
                },
            ],
            "services": [{"serviceId": "svco-live", "name": "support-live", "modelId": V8}],
        }
    }


@dataclass
class Sdk:
    """The SDK's `Model` resource, configured for the emulator, and the emulator behind it."""

    model: Any
    errors: Any
    emulator: Emulator
    reconfigure: Any  # (env var, value) -> None: change the SDK's environment, re-read config


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Sdk]:
    """The official SDK against a fresh emulator on a loopback port.

    The SDK reads its configuration from the environment once, at the first `get_config()`, and
    keeps it in `qianfan.config._GLOBAL_CONFIG`: the fixture sets the environment and then clears
    that cache, so this test's settings are the ones used (and the next test starts clean).
    """
    qianfan_config = importlib.import_module("qianfan.config")
    model = importlib.import_module("qianfan.resources").Model
    errors = importlib.import_module("qianfan.errors")
    app = create_app(account())
    # Nothing from the machine may redirect the SDK: its own settings, a .env file, or a proxy.
    for name in [name for name in os.environ if name.startswith("QIANFAN_")]:
        monkeypatch.delenv(name)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("QIANFAN_DOT_ENV_CONFIG_FILE", str(tmp_path / "absent.env"))

    def reconfigure(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        monkeypatch.setattr(qianfan_config, "_GLOBAL_CONFIG", None)

    with serve_over_loopback(app) as url:
        monkeypatch.setenv("QIANFAN_ACCESS_KEY", AK)
        monkeypatch.setenv("QIANFAN_SECRET_KEY", SK)
        reconfigure("QIANFAN_CONSOLE_API_BASE_URL", url)
        assert url == qianfan_config.get_config().CONSOLE_API_BASE_URL
        yield Sdk(model, errors, app.state.emulator, reconfigure)


def set_ids(emulator: Emulator) -> list[str]:
    return [s["modelSetId"] for s in emulator.state["qianfan"]["model_sets"]]


def version_ids(emulator: Emulator) -> list[str]:
    return [v["modelId"] for s in emulator.state["qianfan"]["model_sets"] for v in s["versions"]]


def test_qianfan_sdk_describe_custom_model_sets_pages_through_the_emulator(sdk: Sdk) -> None:
    first = sdk.model.V2.describe_custom_model_sets(max_keys=2)
    assert first.code == 200
    page = first.body["result"]
    assert [s["modelSetId"] for s in page["customModelSetList"]] == [SUPPORT, SUMMARIZER]
    assert page["pageInfo"]["isTruncated"] is True
    rest = sdk.model.V2.describe_custom_model_sets(
        marker=page["pageInfo"]["nextMarker"], max_keys=2
    ).body["result"]
    assert [s["modelSetId"] for s in rest["customModelSetList"]] == [SCRATCH]  # no System set
    assert rest["pageInfo"]["isTruncated"] is False
    support = page["customModelSetList"][0]
    assert (support["modelIds"], support["modelNames"]) == ([V7, V8], ["V7", "V8"])


def test_qianfan_sdk_describe_model_set_and_describe_model(sdk: Sdk) -> None:
    by_id = sdk.model.V2.describe_model_set(model_set_id=SUPPORT).body["result"]
    assert (by_id["modelSetName"], by_id["source"], by_id["modelIds"]) == (
        "support-bot",
        "UserCreate",
        [V7, V8],
    )
    by_name = sdk.model.V2.describe_model_set(model_set_name="ERNIE-Speed").body["result"]
    assert (by_name["modelSetId"], by_name["source"]) == (PRESET, "System")
    version = sdk.model.V2.describe_model(model_id=V7).body["result"]
    assert (version["modelSetId"], version["modelName"], version["model"]) == (
        SUPPORT,
        "V7",
        "ERNIE-Speed-8K",
    )
    assert version["sourceInfo"]["sourceType"] == "Train"


def test_qianfan_sdk_v1_model_detail_lists_every_version_in_one_call(sdk: Sdk) -> None:
    """`Model.list` is V1 /modelDetail, the call our listing makes once per set."""
    detail = sdk.model.list(model_id=SUPPORT).body["result"]
    assert (detail["modelId"], detail["modelIdStr"]) == (585, SUPPORT)
    assert [v["modelVersionIdStr"] for v in detail["modelVersionList"]] == [V7, V8]


def test_qianfan_sdk_v2_delete_model_deletes_one_version(sdk: Sdk) -> None:
    response = sdk.model.V2.delete_model(model_id=V7)
    assert response.body["result"] == {}  # seed 002
    assert V7 not in version_ids(sdk.emulator) and V8 in version_ids(sdk.emulator)


def test_qianfan_sdk_v2_delete_model_of_a_served_version_is_refused(sdk: Sdk) -> None:
    with pytest.raises(sdk.errors.RequestError) as caught:
        sdk.model.V2.delete_model(model_id=V8)
    assert caught.value.status_code == 400
    assert "error code from baidu: ModelInUse" in str(caught.value)
    assert V8 in version_ids(sdk.emulator)


def test_qianfan_sdk_batch_delete_model_by_string_or_int_ids(sdk: Sdk) -> None:
    """Seed 001: `Model.batch_delete_model(model_ids=['am-xxx'])` answers `{log_id, result: {}}`."""
    response = sdk.model.batch_delete_model(model_ids=[SCRATCH])
    assert set(response.body) == {"log_id", "result"} and response.body["result"] == {}
    assert sdk.model.batch_delete_model(model_ids=[586]).body["result"] == {}
    assert set_ids(sdk.emulator) == [SUPPORT, PRESET]


def test_qianfan_sdk_reads_a_v1_http_200_error_as_an_api_error(sdk: Sdk) -> None:
    """Mixed id types (seed 001: never) come back as HTTP 200 with error_code; nothing goes."""
    before = copy.deepcopy(sdk.emulator.state)
    with pytest.raises(sdk.errors.APIError) as caught:
        sdk.model.batch_delete_model(model_ids=[SCRATCH, 586])
    assert (caught.value.error_code, caught.value.error_msg) == (500001, "param invalid")
    assert sdk.emulator.state == before


def test_qianfan_sdk_with_a_wrong_secret_key_gets_its_own_error(sdk: Sdk) -> None:
    before = copy.deepcopy(sdk.emulator.state)
    sdk.reconfigure("QIANFAN_SECRET_KEY", "not-the-secret-key")
    with pytest.raises(sdk.errors.RequestError) as caught:
        sdk.model.V2.delete_model(model_id=V7)
    assert caught.value.status_code == 400
    assert "error code from baidu: SignatureDoesNotMatch" in str(caught.value)
    # The SDK recognises the gateway's exact message, as on the real platform.
    assert "可能的原因：Secret Key(" in str(caught.value)
    assert sdk.emulator.state == before
    assert [r["status"] for r in sdk.emulator.requests] == [400]


@pytest.mark.parametrize("when", ["unknown", "revoked"])
def test_qianfan_sdk_with_an_unknown_or_revoked_access_key_gets_its_own_error(
    sdk: Sdk, when: str
) -> None:
    """The gateway's credential NotFound, which the SDK names as a wrong access key: the same
    for a key never issued and for one that worked and was revoked."""
    if when == "unknown":
        sdk.reconfigure("QIANFAN_ACCESS_KEY", "not-an-access-key")
    else:
        sdk.model.V2.describe_model(model_id=V7)
        del sdk.emulator.state["qianfan"]["access_keys"][AK]
        sdk.emulator.requests.clear()
    before = copy.deepcopy(sdk.emulator.state)
    with pytest.raises(sdk.errors.RequestError) as caught:
        sdk.model.V2.delete_model(model_id=V7)
    assert caught.value.status_code == 401
    assert "error code from baidu: NotFound" in str(caught.value)
    assert "error message from baidu: NotFound, cause: Could not find credential." in str(
        caught.value
    )
    assert "可能的原因：Access Key(" in str(caught.value)
    with pytest.raises(sdk.errors.RequestError) as caught:
        sdk.model.batch_delete_model(model_ids=[SCRATCH])
    assert "可能的原因：Access Key(" in str(caught.value)
    assert sdk.emulator.state == before
    assert [r["status"] for r in sdk.emulator.requests] == [401, 401]


def test_qianfan_sdk_requests_are_all_signed_and_logged_without_secrets(sdk: Sdk) -> None:
    sdk.model.V2.describe_model(model_id=V7)
    sdk.model.batch_delete_model(model_ids=[SCRATCH])
    (describe, delete) = sdk.emulator.requests
    assert (describe["path"], describe["query"], describe["auth"]) == (
        "/v2/model",
        {"Action": "DescribeModel"},
        "bce-auth-v1",
    )
    assert (delete["path"], delete["auth"]) == (
        "/wenxinworkshop/modelrepo/model/batchDelete",
        "bce-auth-v1",
    )
    assert SK not in repr(sdk.emulator.requests)


# -- our signer against baidubce's ---------------------------------------------------------------

# (method, path as sent, query, headers, signed headers: None = the default set). Every kind of
# input the canonical request encodes: reserved and non-ASCII path characters, query values with
# spaces, '/', '=', '&', '+', '~' and empty values, header values to trim and encode, upper-case
# header names, the SDK's unsorted list, listed headers that are absent or empty.
SIGNER_TABLE: list[tuple[str, str, dict[str, str], dict[str, str], list[str] | None]] = [
    (
        "POST",
        "/v2/model",
        {"Action": "DescribeCustomModelSets"},
        {
            "Host": "127.0.0.1:8123",
            "Content-Type": "application/json",
            "x-bce-date": "2024-07-01T12:00:00Z",
            "request-source": "qianfan_py_sdk_v0.4.12.3",
        },
        ["x-bce-date", "host", "request-source", "content-type"],
    ),
    (
        "POST",
        "/wenxinworkshop/modelrepo/model/batchDelete",
        {},
        {
            "Host": "qianfan.baidubce.com",
            "Content-Type": "application/json",
            "x-bce-date": "2024-07-01T12:00:00Z",
        },
        ["host", "content-type", "x-bce-date"],
    ),
    (
        "GET",
        "/v1/a b/模型/x+y=z~._-/",
        {"name": "a b/c=d&e", "empty": "", "plus": "1+1", "tilde": "~x", "中文": "值"},
        {"Host": "bj.bcebos.com", "x-bce-date": "2024-07-01T12:00:00Z"},
        ["host", "x-bce-date"],
    ),
    (
        "PUT",
        "/v1/test/myfolder/readme.txt",
        {"partNumber": "9", "uploadId": "a44cc9bab11cbd156984767aad637851"},
        {
            "Host": "bj.bcebos.com",
            "Content-Type": "text/plain",
            "Content-Length": "8",
            "Content-Md5": "NFzcPqhviddjRNnSOGo4rw==",
            "x-bce-date": "2015-04-27T08:23:49Z",
            "x-bce-meta-owner": " Zhang San / 张三 ",
            "User-Agent": "not signed by default",
        },
        None,
    ),
    (
        "DELETE",
        "/v2/model",
        {"Action": "DeleteModel"},
        {
            "HOST": "qianfan.baidubce.com:8443",
            "Content-Type": " application/json; charset=utf-8 ",
            "x-bce-date": "2024-07-01T12:00:00Z",
            "x-empty": "  ",
        },
        ["x-bce-date", "content-type", "host", "x-empty", "x-absent"],
    ),
]
SIGNED_AT = datetime(2024, 7, 1, 12, 0, 0, tzinfo=UTC)


def _sdk_sign(
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    signed: list[str] | None,
    *,
    access_key: str = AK,
    secret_key: str = SK,
    when: datetime = SIGNED_AT,
    expiration: int = 1800,
) -> str:
    """baidubce's sign, called as its own HTTP client calls it (the path already encoded)."""
    from baidubce import utils
    from baidubce.auth.bce_credentials import BceCredentials
    from baidubce.auth.bce_v1_signer import sign

    result: bytes = sign(
        BceCredentials(access_key, secret_key),
        method.encode(),
        utils.normalize_string(path, False),
        {name.encode(): value for name, value in headers.items()},
        {name.encode(): value for name, value in query.items()},
        timestamp=int(when.timestamp()),
        expiration_in_seconds=expiration,
        headers_to_sign=None if signed is None else [name.encode() for name in signed],
    )
    return result.decode()


def _ours(
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    signed: list[str] | None,
    *,
    access_key: str = AK,
    secret_key: str = SK,
    when: datetime = SIGNED_AT,
    expiration: int = 1800,
) -> str:
    return bce_authorization(
        access_key=access_key,
        secret_key=secret_key,
        timestamp=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        expiration=expiration,
        method=method,
        path=path,
        params=list(query.items()),
        headers=headers,
        signed_headers=signed or (),
    )


def _parts(authorization: str) -> tuple[str, frozenset[str], str]:
    """(prefix, the set of signed header names, signature): the SDK lists names in any order."""
    prefix, listed, signature = authorization.rsplit("/", 2)
    return prefix, frozenset(name for name in listed.split(";") if name), signature


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "signed"),
    SIGNER_TABLE,
    ids=["sdk-v2-call", "sdk-v1-call", "encoding", "default-headers", "trim-absent-empty"],
)
def test_qianfan_signer_agrees_with_baidubce(
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    signed: list[str] | None,
) -> None:
    ours = _ours(method, path, query, headers, signed)
    theirs = _sdk_sign(method, path, query, headers, signed)
    assert _parts(ours) == _parts(theirs)


def test_qianfan_signers_disagree_when_only_the_secret_key_differs() -> None:
    """The table's agreement is not vacuous: the signature depends on what is signed."""
    method, path, query, headers, signed = SIGNER_TABLE[0]
    ours = _ours(method, path, query, headers, signed)
    assert _parts(ours) != _parts(_sdk_sign(method, path, query, headers, signed, secret_key="x"))
    changed = {**headers, "x-bce-date": "2024-07-01T12:00:01Z"}
    assert _parts(ours) != _parts(_sdk_sign(method, path, query, changed, signed))


VECTOR = (
    "PUT",
    "/v1/test/myfolder/readme.txt",
    {"partNumber": "9", "uploadId": "a44cc9bab11cbd156984767aad637851"},
    {
        "Host": "bj.bcebos.com",
        "Content-Type": "text/plain",
        "Content-Length": "8",
        "Content-Md5": "NFzcPqhviddjRNnSOGo4rw==",
        "x-bce-date": "2015-04-27T08:23:49Z",
    },
)
VECTOR_KEYS = {
    "access_key": "a" * 32,
    "secret_key": "b" * 32,
    "when": datetime(2015, 4, 27, 8, 23, 49, tzinfo=UTC),
}


@pytest.mark.parametrize(
    ("signed", "expected"),
    [
        (
            None,
            "bce-auth-v1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/2015-04-27T08:23:49Z/1800//"
            "d74a04362e6a848f5b39b15421cb449427f419c95a480fd6b8cf9fc783e2999e",
        ),
        (
            ["host", "x-bce-date"],
            "bce-auth-v1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/2015-04-27T08:23:49Z/1800/host;x-bce-date/"
            "1b8de5a23a56eef657c69f94c621e7acd227d049a4ba577f537d5e5cebf0cf32",
        ),
    ],
)
def test_qianfan_published_vector_is_reproduced_by_baidubce_and_by_us(
    signed: list[str] | None, expected: str
) -> None:
    """API.md's vector from Baidu's signing doc, through both signers."""
    assert _sdk_sign(*VECTOR, signed, **VECTOR_KEYS) == expected
    assert _ours(*VECTOR, signed, **VECTOR_KEYS) == expected


@pytest.mark.parametrize(
    "signed",
    [
        None,  # the default set: host, content-length, content-type, content-md5, every x-bce-*
        ["x-bce-date", "host", "content-type"],
        ["host", "x-bce-date", "content-type", "x-empty"],  # a listed header with no value
    ],
    ids=["default-headers", "unsorted-list", "empty-valued-header"],
)
def test_qianfan_emulator_accepts_what_baidubce_signs(signed: list[str] | None) -> None:
    """The emulator's verifier, written from Baidu's doc, agrees with Baidu's own signer."""
    app = create_app(account(), clock=SIGNED_AT.timestamp)
    request = httpx.Request(
        "POST",
        "https://qianfan.baidubce.com/v2/model",
        params={"Action": "DescribeCustomModelSets"},
        json={"maxKeys": 1},
        headers={"x-bce-date": "2024-07-01T12:00:00Z", "x-empty": ""},
    )
    headers = {name: request.headers[name] for name in request.headers if name != "accept"}
    request.headers["Authorization"] = _sdk_sign(
        "POST", "/v2/model", {"Action": "DescribeCustomModelSets"}, headers, signed
    )

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            return await client.send(request)

    response = asyncio.run(send())
    assert response.status_code == 200, response.text
    assert [s["modelSetId"] for s in response.json()["result"]["customModelSetList"]] == [SUPPORT]
