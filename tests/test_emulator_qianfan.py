"""The emulator's Qianfan side: bce-auth-v1, V2 actions, V1 model repository, errors and faults.

Requests are signed by a few lines of test code written from Baidu's signing doc and pinned to
its published vector, so the emulator's verifier is checked against code it does not share. Most
tests drive the app in-process through ``httpx.ASGITransport``; one uses a real loopback socket.
pytest-asyncio is not used: each request runs its own ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import httpx
import pytest
from starlette.applications import Starlette

from reconcile.emulator import Emulator, create_app, signatures
from tests.conftest import serve_over_loopback

AK = "test-qianfan-access-key"
SK = "test-qianfan-secret-key"
QIANFAN = "https://qianfan.baidubce.com"
NOW = datetime(2024, 7, 1, 12, 0, 0, tzinfo=UTC).timestamp()
# The headers the official SDK signs, listed unsorted as it lists them (a Python set).
SDK_SIGNED = ["x-bce-date", "host", "request-source", "content-type"]
REPO = "/wenxinworkshop/modelrepo"

SUPPORT = "am-support"
SUMMARIZER = "am-summarizer"
PRESET = "am-preset"
EMPTY = "am-empty"
MIXED = "am-mixed"  # a custom set that holds a platform-preset version
V7 = "amv-support-v7"
V8 = "amv-support-v8"
S1 = "amv-summarizer-1"
P1 = "amv-preset-1"
X1 = "amv-mixed-preset"
X2 = "amv-mixed-own"


def small_state() -> dict[str, Any]:
    """support-bot V8 is served; summarizer V1 by a Stopped service (in use all the same); one
    System set."""
    return {
        "qianfan": {
            "access_keys": {AK: SK},
            "model_sets": [
                {
                    "modelSetId": SUPPORT,
                    "v1ModelId": 585,
                    "modelSetName": "support-bot",
                    "labels": ["cs"],
                    "description": "customer support",
                    "createTime": "2024-05-01T10:00:00+08:00",
                    "versions": [
                        {
                            "modelId": V7,
                            "v1VersionId": 7007,
                            "modelName": "V7",
                            "model": "ERNIE-Speed-8K",
                            "sourceInfo": {"sourceType": "Train", "sourceId": "task-7"},
                            "createTime": "2024-05-01T10:00:00+08:00",
                        },
                        {
                            "modelId": V8,
                            "v1VersionId": 7008,
                            "modelName": "V8",
                            "createTime": "2024-06-01T10:00:00+08:00",
                        },
                    ],
                },
                {
                    "modelSetId": SUMMARIZER,
                    "v1ModelId": 586,
                    "modelSetName": "summarizer",
                    "createTime": "2024-05-02T10:00:00+08:00",
                    "versions": [{"modelId": S1, "v1VersionId": 7101, "modelName": "V1"}],
                },
                {
                    "modelSetId": PRESET,
                    "v1ModelId": 1,
                    "modelSetName": "ERNIE-Speed",
                    "source": "System",
                    "versions": [{"modelId": P1, "v1VersionId": 1, "modelName": "ERNIE-Speed-8K"}],
                },
                {
                    "modelSetId": EMPTY,
                    "v1ModelId": 587,
                    "modelSetName": "scratch-empty",
                    "createTime": "2024-05-03T10:00:00+08:00",
                },
                {
                    "modelSetId": MIXED,
                    "v1ModelId": 588,
                    "modelSetName": "mixed",
                    "createTime": "2024-04-01T10:00:00+08:00",
                    "versions": [
                        {
                            "modelId": X1,
                            "v1VersionId": 7201,
                            "modelName": "V1",
                            "sourceInfo": {"sourceType": "PlatformPreset"},
                        },
                        {"modelId": X2, "v1VersionId": 7202, "modelName": "V2"},
                    ],
                },
            ],
            "services": [
                {"serviceId": "svco-live", "name": "support-live", "modelId": V8},
                {
                    "serviceId": "svco-old",
                    "name": "summary-old",
                    "modelId": S1,
                    "runStatus": "Stopped",
                    "createTime": "2024-06-02T10:00:00+08:00",
                },
            ],
        }
    }


# -- signing -----------------------------------------------------------------------------------


def bce_authorization(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    signed: list[str],
    access_key: str,
    secret_key: str,
    timestamp: str,
    expiration: int = 1800,
) -> str:
    """The Authorization header, as Baidu's signing doc computes it (``headers``: lower-case)."""

    def enc(text: str) -> str:
        return quote(text, safe="-_.~")

    prefix = f"bce-auth-v1/{access_key}/{timestamp}/{expiration}"
    signing_key = hmac.new(secret_key.encode(), prefix.encode(), hashlib.sha256).hexdigest()
    names = signed or [
        name
        for name in headers
        if name in ("host", "content-length", "content-type", "content-md5")
        or name.startswith("x-bce-")
    ]
    canonical_headers = "\n".join(
        sorted(f"{enc(n)}:{enc(headers[n].strip())}" for n in names if n in headers)
    )
    canonical_query = "&".join(
        sorted(f"{enc(k)}={enc(v)}" for k, v in query if k.lower() != "authorization")
    )
    canonical = "\n".join([method, quote(path, safe="/-_.~"), canonical_query, canonical_headers])
    signature = hmac.new(signing_key.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    return f"{prefix}/{';'.join(signed)}/{signature}"


VECTOR_HEADERS = {
    "host": "bj.bcebos.com",
    "content-type": "text/plain",
    "content-length": "8",
    "content-md5": "NFzcPqhviddjRNnSOGo4rw==",
    "x-bce-date": "2015-04-27T08:23:49Z",
}
VECTOR_PATH = "/v1/test/myfolder/readme.txt"
VECTOR_QUERY = [("partNumber", "9"), ("uploadId", "a44cc9bab11cbd156984767aad637851")]
VECTOR_PREFIX = "bce-auth-v1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/2015-04-27T08:23:49Z/1800"
VECTOR_SIGNING_KEY = "1d5ce5f464064cbee060330d973218821825ac6952368a482a592e6615aef479"
VECTOR_DEFAULT_SIGNATURE = "d74a04362e6a848f5b39b15421cb449427f419c95a480fd6b8cf9fc783e2999e"
VECTOR_HOST_DATE_SIGNATURE = "1b8de5a23a56eef657c69f94c621e7acd227d049a4ba577f537d5e5cebf0cf32"


def test_baidu_published_vector_is_reproduced_by_test_signer() -> None:
    def sign(signed: list[str]) -> str:
        return bce_authorization(
            "PUT",
            VECTOR_PATH,
            VECTOR_QUERY,
            VECTOR_HEADERS,
            signed,
            "a" * 32,
            "b" * 32,
            "2015-04-27T08:23:49Z",
        )

    assert sign([]) == f"{VECTOR_PREFIX}//{VECTOR_DEFAULT_SIGNATURE}"
    assert sign(["host", "x-bce-date"]) == (
        f"{VECTOR_PREFIX}/host;x-bce-date/{VECTOR_HOST_DATE_SIGNATURE}"
    )


def test_baidu_published_vector_is_reproduced_by_the_emulator() -> None:
    prefix = signatures.bce_auth_prefix("a" * 32, "2015-04-27T08:23:49Z", 1800)
    assert prefix == VECTOR_PREFIX
    key = signatures.bce_signing_key("b" * 32, prefix)
    assert key == VECTOR_SIGNING_KEY
    for signed, expected in [
        ([], VECTOR_DEFAULT_SIGNATURE),
        (["x-bce-date", "host"], VECTOR_HOST_DATE_SIGNATURE),  # unsorted, as the SDK lists them
        (["Host ", "X-Bce-Date"], VECTOR_HOST_DATE_SIGNATURE),
    ]:
        canonical = signatures.bce_canonical_request(
            "PUT", VECTOR_PATH, VECTOR_QUERY, VECTOR_HEADERS, signed
        )
        assert signatures.bce_signature(key, canonical) == expected


# -- helpers -----------------------------------------------------------------------------------


def bce_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def call(
    app: Starlette,
    path: str,
    body: Any = None,
    *,
    action: str | None = None,
    content: bytes | None = None,
    base_url: str = QIANFAN,
    ak: str = AK,
    sk: str = SK,
    signed_at: float = NOW,
    expiration: int = 1800,
    signed: list[str] | None = None,
    headers: dict[str, str] | None = None,
    sign_as: dict[str, Any] | None = None,
    authorization: str | None = None,
    method: str = "POST",
    raise_app_exceptions: bool = True,
) -> httpx.Response:
    """One request as the SDK sends it: JSON body, Action in the query, bce-auth-v1 signed.

    ``sign_as`` replaces what is signed (``query`` or a header) without changing what is sent;
    ``authorization`` replaces the header outright ("" sends none).
    """

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            request = client.build_request(
                method,
                path,
                params={"Action": action} if action is not None else None,
                content=content if content is not None else json.dumps(body or {}).encode(),
                headers={
                    "Content-Type": "application/json",
                    "x-bce-date": bce_time(signed_at),
                    "request-source": "qianfan_py_sdk_v0.4.12",
                    **(headers or {}),
                },
            )
            lower = {name.lower(): value for name, value in request.headers.items()}
            fake = sign_as or {}
            raw_path, _, raw_query = request.url.raw_path.decode().partition("?")
            value = authorization
            if value is None:
                value = bce_authorization(
                    method,
                    unquote(raw_path),
                    fake.get("query", parse_qsl(raw_query, keep_blank_values=True)),
                    {**lower, **{k: v for k, v in fake.items() if isinstance(v, str)}},
                    SDK_SIGNED if signed is None else signed,
                    ak,
                    sk,
                    bce_time(signed_at),
                    expiration,
                )
            if value:
                request.headers["Authorization"] = value
            return await client.send(request)

    return asyncio.run(go())


def v2(app: Starlette, action: str, body: Any = None, **options: Any) -> httpx.Response:
    return call(app, "/v2/model", body, action=action, **options)


def result_of(response: httpx.Response) -> Any:
    """The ``result`` of a V2 success, after checking the envelope."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"requestId", "result"}
    assert body["requestId"] == str(uuid.UUID(hex=response.headers["x-request-id"]))
    return body["result"]


def v1_result(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"log_id", "result"}, body
    assert body["log_id"].isdigit()
    return body["result"]


def assert_bce_error(response: httpx.Response, status: int, code: str, message: str) -> None:
    """A gateway/V2 refusal: status, exact body, and the X-Bce-Error-* headers."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    request_id = str(uuid.UUID(hex=response.headers["x-request-id"]))
    assert response.json() == {"requestId": request_id, "code": code, "message": message}
    assert response.headers["x-bce-error-code"] == code
    assert response.headers["x-bce-error-message"] == message


def assert_v1_error(response: httpx.Response, error_code: int, error_msg: str) -> None:
    assert response.status_code == 200
    body = response.json()
    assert body == {"log_id": body["log_id"], "error_code": error_code, "error_msg": error_msg}
    assert body["log_id"].isdigit()


def emulator_of(app: Starlette) -> Emulator:
    emulator = app.state.emulator
    assert isinstance(emulator, Emulator)
    return emulator


def set_ids(app: Starlette) -> list[str]:
    return [s["modelSetId"] for s in emulator_of(app).state["qianfan"]["model_sets"]]


def version_ids(app: Starlette) -> list[str]:
    sets = emulator_of(app).state["qianfan"]["model_sets"]
    return [v["modelId"] for s in sets for v in s["versions"]]


def app_at_now(state: dict[str, Any] | None = None, **options: Any) -> Starlette:
    return create_app(small_state() if state is None else state, clock=lambda: NOW, **options)


ACCESS_DENIED = ("AccessDenied", "Access denied.")
INAPPROPRIATE = (
    "InappropriateJSON",
    "The JSON you provided was well-formed and valid, but not appropriate for this operation.",
)
INVALID_URI = ("InvalidURI", "Could not parse the specified URI.")
# The gateway's authentication refusals: "<code>, cause: <cause>" in the body and in
# X-Bce-Error-Message. The first two are the exact strings the official SDK compares that header
# with (qianfan/resources/requestor/base.py); the others follow their form.
CREDENTIAL_NOT_FOUND = ("NotFound", "NotFound, cause: Could not find credential.")
SIGNATURE_MISMATCH = (
    "SignatureDoesNotMatch",
    "SignatureDoesNotMatch, cause: Fail to authn user: Signature does not match",
)
BAD_AUTH_HEADER = (
    "InvalidHTTPAuthHeader",
    "InvalidHTTPAuthHeader, cause: Fail to authn user: The HTTP authorization header is invalid.",
)
NO_AUTHORIZATION = (
    "AccessDenied",
    "AccessDenied, cause: Fail to authn user: The request has no Authorization header.",
)


def expired(signed_at: float) -> tuple[str, str]:
    return (
        "RequestExpired",
        "RequestExpired, cause: Fail to authn user: Request has expired. "
        f"Timestamp date is {bce_time(signed_at)}.",
    )


# -- auth --------------------------------------------------------------------------------------


def test_sdk_signed_requests_are_served_and_logged_without_secrets() -> None:
    app = app_at_now()
    assert result_of(v2(app, "DescribeModel", {"modelId": V7}))["modelId"] == V7
    # The Host signed is the request's, port included.
    port = v2(app, "DescribeModel", {"modelId": V7}, base_url="http://127.0.0.1:8390")
    assert result_of(port)["modelId"] == V7
    # With no list, the defaults (host, content-*, x-bce-*) are what is signed.
    assert result_of(v2(app, "DescribeModel", {"modelId": V7}, signed=[]))["modelId"] == V7
    assert v1_result(call(app, f"{REPO}/modelDetail", {"modelId": 585}))["modelIdStr"] == SUPPORT
    log = emulator_of(app).requests
    assert [r["auth"] for r in log] == ["bce-auth-v1"] * 4
    assert log[0]["query"] == {"Action": "DescribeModel"}
    assert SK not in json.dumps(log)


@pytest.mark.parametrize(
    ("options", "status", "error"),
    [
        ({"authorization": ""}, 403, NO_AUTHORIZATION),
        ({"authorization": "Bearer abc"}, 400, BAD_AUTH_HEADER),
        (
            {"authorization": f"bce-auth-v1/{AK}/2024-07-01T12:00:00Z/1800/host"},
            400,
            BAD_AUTH_HEADER,
        ),
        (
            {"authorization": f"bce-auth-v2/{AK}/2024-07-01T12:00:00Z/1800//00"},
            400,
            BAD_AUTH_HEADER,
        ),
        ({"authorization": f"bce-auth-v1/{AK}/20240701T120000Z/1800//00"}, 400, BAD_AUTH_HEADER),
        ({"authorization": f"bce-auth-v1/{AK}/2024-07-01T12:00:00Z/-5//00"}, 400, BAD_AUTH_HEADER),
        ({"authorization": f"bce-auth-v1/{AK}/2024-07-01T12:00:00Z/0//00"}, 400, BAD_AUTH_HEADER),
        ({"ak": "no-such-key"}, 401, CREDENTIAL_NOT_FOUND),
        ({"sk": "wrong-secret"}, 400, SIGNATURE_MISMATCH),
        ({"sign_as": {"query": [("Action", "DescribeModel")]}}, 400, SIGNATURE_MISMATCH),
        ({"sign_as": {"host": "qianfan.baidubce.com:443"}}, 400, SIGNATURE_MISMATCH),
        ({"sign_as": {"content-type": "text/plain"}}, 400, SIGNATURE_MISMATCH),
        ({"signed_at": NOW - 1801}, 400, expired(NOW - 1801)),
        ({"signed_at": NOW - 61, "expiration": 60}, 400, expired(NOW - 61)),
        ({"signed_at": NOW + 15 * 60 + 1}, 400, expired(NOW + 15 * 60 + 1)),
    ],
)
def test_auth_refusals_have_the_gateway_bodies_and_delete_nothing(
    options: dict[str, Any], status: int, error: tuple[str, str]
) -> None:
    app = app_at_now()
    before = copy.deepcopy(emulator_of(app).state)
    response = v2(app, "DeleteModel", {"modelId": V7}, **options)
    assert_bce_error(response, status, *error)
    # V1 paths are behind the same gateway: its refusals are not V1's HTTP 200 bodies.
    response = call(app, f"{REPO}/model/batchDelete", {"modelIDs": [EMPTY]}, **options)
    assert_bce_error(response, status, *error)
    assert emulator_of(app).state == before


def test_a_revoked_access_key_is_the_credential_not_found_and_never_a_gone_object() -> None:
    """A key that worked and was then revoked: the gateway's 401 credential NotFound, for an
    object that exists; the ResourceNotFound of an object that is gone is another answer."""
    app = app_at_now()
    assert v2(app, "DescribeModel", {"modelId": V7}).status_code == 200
    del emulator_of(app).state["qianfan"]["access_keys"][AK]
    before = copy.deepcopy(emulator_of(app).state)
    assert_bce_error(v2(app, "DeleteModel", {"modelId": V7}), 401, *CREDENTIAL_NOT_FOUND)
    response = call(app, f"{REPO}/model/batchDelete", {"modelIDs": [SUPPORT]})
    assert_bce_error(response, 401, *CREDENTIAL_NOT_FOUND)
    assert emulator_of(app).state == before


@pytest.mark.parametrize("offset", [-1800, -1, 0, 60, 15 * 60])
def test_signatures_are_good_until_they_expire_and_a_little_ahead(offset: int) -> None:
    app = app_at_now()
    assert v2(app, "DescribeModel", {"modelId": V7}, signed_at=NOW + offset).status_code == 200


# -- V2 model sets -----------------------------------------------------------------------------


def test_describe_custom_model_sets_lists_custom_sets_newest_first() -> None:
    result = result_of(v2(app_at_now(), "DescribeCustomModelSets"))
    assert [s["modelSetId"] for s in result["customModelSetList"]] == [
        EMPTY,
        SUMMARIZER,
        SUPPORT,
        MIXED,
    ]
    assert result["customModelSetList"][2] == {
        "modelSetId": SUPPORT,
        "modelSetName": "support-bot",
        "modelType": "Text2Text",
        "labels": ["cs"],
        "createTime": "2024-05-01T10:00:00+08:00",
        "modifyTime": "2024-05-01T10:00:00+08:00",
        "modelCount": 2,
        "modelIds": [V7, V8],
        "modelNames": ["V7", "V8"],
    }
    assert result["pageInfo"] == {
        "marker": "",
        "maxKeys": 10,
        "isTruncated": False,
        "nextMarker": "",
    }


def many_sets(count: int) -> dict[str, Any]:
    """``count`` custom sets, ten per creation time, so ties must be broken for stable pages."""
    return {
        "qianfan": {
            "access_keys": {AK: SK},
            "model_sets": [
                {
                    "modelSetId": f"am-{i:04d}",
                    "modelSetName": f"set-{i:04d}",
                    "createTime": f"2024-05-{1 + i // 10 % 28:02d}T00:00:00+08:00",
                }
                for i in range(count)
            ],
        }
    }


def test_marker_paging_returns_each_of_300_sets_exactly_once() -> None:
    app = app_at_now(many_sets(300))
    pages: list[dict[str, Any]] = []
    body: dict[str, Any] = {"maxKeys": 100}
    while True:
        result = result_of(v2(app, "DescribeCustomModelSets", body))
        pages.append(result)
        if not result["pageInfo"]["isTruncated"]:
            break
        body = {"maxKeys": 100, "marker": result["pageInfo"]["nextMarker"]}
    assert [len(p["customModelSetList"]) for p in pages] == [100, 100, 100]
    ids = [s["modelSetId"] for p in pages for s in p["customModelSetList"]]
    assert sorted(ids) == [f"am-{i:04d}" for i in range(300)]
    assert [p["pageInfo"] for p in pages] == [
        {"marker": "", "maxKeys": 100, "isTruncated": True, "nextMarker": ids[100]},
        {"marker": ids[100], "maxKeys": 100, "isTruncated": True, "nextMarker": ids[200]},
        {"marker": ids[200], "maxKeys": 100, "isTruncated": False, "nextMarker": ""},
    ]
    keys = [(s["createTime"], s["modelSetId"]) for p in pages for s in p["customModelSetList"]]
    assert keys == sorted(keys, reverse=True)
    reverse = result_of(v2(app, "DescribeCustomModelSets", {"maxKeys": 100, "pageReverse": True}))
    assert [s["modelSetId"] for s in reverse["customModelSetList"]] == ids[::-1][:100]
    default = result_of(v2(app, "DescribeCustomModelSets"))
    assert len(default["customModelSetList"]) == 10
    assert default["pageInfo"]["nextMarker"] == ids[10]


def _marker_listing(app: Starlette) -> list[str]:
    ids: list[str] = []
    body: dict[str, Any] = {"maxKeys": 100}
    while True:
        result = result_of(v2(app, "DescribeCustomModelSets", body))
        ids += [s["modelSetId"] for s in result["customModelSetList"]]
        if not result["pageInfo"]["isTruncated"]:
            return ids
        body = {"maxKeys": 100, "marker": result["pageInfo"]["nextMarker"]}


def _v1_listing(app: Starlette, body: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    for page in (1, 2, 3, 4):
        result = v1_result(call(app, f"{REPO}/model/user/list", {**body, "pageNo": page}))
        ids += [item["modelIdStr"] for item in result["items"]]
    return ids


def test_a_served_emulator_pages_what_a_fresh_one_does_between_deletes() -> None:
    """With `state_private` the sorts of the sets (V2 marker pages, V1 user list with or without
    filters) are reused unread until a handler changes the state; a listing after deletes is
    still what a fresh emulator of that state lists."""
    app = app_at_now(many_sets(300), state_private=True)
    v1_asked = [{"pageSize": 100}, {"pageSize": 100, "nameFilter": "set-02"}, {"order": "asc"}]
    for doomed in ([], ["am-0299", "am-0150"], ["am-0000", "am-0201"]):
        for set_id in doomed:
            assert result_of(v2(app, "DeleteModelSet", {"modelSetId": set_id})) == {}
        fresh = app_at_now(copy.deepcopy(emulator_of(app).state))
        listed = _marker_listing(app)
        assert listed == _marker_listing(fresh)
        assert not set(doomed) & set(listed)
        for body in v1_asked:
            assert _v1_listing(app, body) == _v1_listing(fresh, body)
    assert len(_marker_listing(app)) == len(_v1_listing(app, v1_asked[0])) == 296


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"marker": "am-nope"}, ("InvalidMarker", "The marker am-nope is not valid.")),
        ({"marker": P1}, ("InvalidMarker", f"The marker {P1} is not valid.")),
        ({"maxKeys": 0}, INAPPROPRIATE),
        ({"maxKeys": 101}, INAPPROPRIATE),
        ({"maxKeys": "10"}, INAPPROPRIATE),
        ({"maxKeys": True}, INAPPROPRIATE),
        ({"pageReverse": "yes"}, INAPPROPRIATE),
        ({"marker": 5}, INAPPROPRIATE),
    ],
)
def test_bad_paging_is_refused(body: dict[str, Any], error: tuple[str, str]) -> None:
    assert_bce_error(v2(app_at_now(), "DescribeCustomModelSets", body), 400, *error)


def test_describe_model_set_by_id_or_name() -> None:
    app = app_at_now()
    expected = {
        "modelSetId": SUPPORT,
        "modelSetName": "support-bot",
        "modelType": "Text2Text",
        "source": "UserCreate",
        "labels": ["cs"],
        "createTime": "2024-05-01T10:00:00+08:00",
        "modifyTime": "2024-05-01T10:00:00+08:00",
        "description": "customer support",
        "modelIds": [V7, V8],
        "modelNames": ["V7", "V8"],
    }
    assert result_of(v2(app, "DescribeModelSet", {"modelSetId": SUPPORT})) == expected
    assert result_of(v2(app, "DescribeModelSet", {"modelSetName": "support-bot"})) == expected
    preset = result_of(v2(app, "DescribeModelSet", {"modelSetId": PRESET}))
    assert preset["source"] == "System"


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({}, 400, INAPPROPRIATE),
        ({"modelSetId": SUPPORT, "modelSetName": "support-bot"}, 400, INAPPROPRIATE),
        ({"modelSetId": 585}, 400, INAPPROPRIATE),
        (
            {"modelSetId": "am-nope"},
            404,
            ("ResourceNotFound", "The resource am-nope does not exist."),
        ),
        ({"modelSetName": "nope"}, 404, ("ResourceNotFound", "The resource nope does not exist.")),
    ],
)
def test_describe_model_set_refusals(
    body: dict[str, Any], status: int, error: tuple[str, str]
) -> None:
    assert_bce_error(v2(app_at_now(), "DescribeModelSet", body), status, *error)


def test_describe_model_shows_one_version() -> None:
    app = app_at_now()
    assert result_of(v2(app, "DescribeModel", {"modelId": V7})) == {
        "modelSetId": SUPPORT,
        "modelId": V7,
        "modelName": "V7",
        "status": "Ready",
        "model": "ERNIE-Speed-8K",
        "sourceInfo": {"sourceType": "Train", "sourceId": "task-7"},
        "description": "",
        "createTime": "2024-05-01T10:00:00+08:00",
        "modifyTime": "2024-05-01T10:00:00+08:00",
        "modelApplicationType": "chat",
    }
    preset = result_of(v2(app, "DescribeModel", {"modelId": P1}))
    assert preset["sourceInfo"] == {"sourceType": "PlatformPreset"}
    assert_bce_error(
        v2(app, "DescribeModel", {"modelId": "amv-nope"}),
        404,
        "ResourceNotFound",
        "The resource amv-nope does not exist.",
    )


def test_ids_echoed_in_error_headers_are_kept_printable() -> None:
    response = v2(app_at_now(), "DescribeModel", {"modelId": "amv-ü\nx"})
    assert response.status_code == 404
    assert response.json()["message"] == "The resource amv-ü\nx does not exist."
    assert response.headers["x-bce-error-message"] == (
        "The resource amv-\\u00fc\\u000ax does not exist."
    )


# -- V2 deletes --------------------------------------------------------------------------------


def test_delete_model_removes_one_version_and_persists(tmp_path: Path) -> None:
    persisted = tmp_path / "state.json"
    app = app_at_now(persist_path=persisted)
    assert result_of(v2(app, "DeleteModel", {"modelId": V7})) == {}
    assert V7 not in version_ids(app)
    assert result_of(v2(app, "DescribeModelSet", {"modelSetId": SUPPORT}))["modelIds"] == [V8]
    saved = json.loads(persisted.read_text(encoding="utf-8"))
    assert saved == emulator_of(app).state
    assert_bce_error(
        v2(app, "DeleteModel", {"modelId": V7}),
        404,
        "ResourceNotFound",
        f"The resource {V7} does not exist.",
    )


def test_a_stopped_service_still_holds_its_version() -> None:
    """API.md: a version is in use when a service names it, whatever the service's runStatus."""
    app = app_at_now()
    before = copy.deepcopy(emulator_of(app).state)
    assert_bce_error(
        v2(app, "DeleteModel", {"modelId": S1}),
        400,
        "ModelInUse",
        f"Model {S1} is in use by service(s): svco-old.",
    )
    assert_bce_error(
        v2(app, "DeleteModelSet", {"modelSetId": SUMMARIZER}),
        400,
        "ModelInUse",
        f"Model {SUMMARIZER} is in use by service(s): svco-old.",
    )
    assert_v1_error(
        call(app, f"{REPO}/model/batchDelete", {"modelIDs": [SUMMARIZER]}),
        500002,
        "model in use by service(s): svco-old",
    )
    assert emulator_of(app).state == before


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (
            {"modelId": V8},
            400,
            ("ModelInUse", f"Model {V8} is in use by service(s): svco-live."),
        ),
        ({"modelId": P1}, 403, ACCESS_DENIED),  # a System set's version
        ({"modelId": X1}, 403, ACCESS_DENIED),  # a PlatformPreset version in a custom set
        (
            {"modelId": "amv-nope"},
            404,
            ("ResourceNotFound", "The resource amv-nope does not exist."),
        ),
        ({"modelId": 7007}, 400, INAPPROPRIATE),
        ({"modelId": ""}, 400, INAPPROPRIATE),
        ({}, 400, INAPPROPRIATE),
    ],
)
def test_delete_model_refusals_leave_the_state_unchanged(
    body: dict[str, Any], status: int, error: tuple[str, str]
) -> None:
    app = app_at_now()
    before = copy.deepcopy(emulator_of(app).state)
    assert_bce_error(v2(app, "DeleteModel", body), status, *error)
    assert emulator_of(app).state == before


def test_delete_model_set_removes_the_set_with_its_versions() -> None:
    app = app_at_now()
    assert result_of(v2(app, "DeleteModelSet", {"modelSetId": EMPTY})) == {}
    state = copy.deepcopy(small_state())
    state["qianfan"]["services"] = []
    app = app_at_now(state)
    assert result_of(v2(app, "DeleteModelSet", {"modelSetId": SUPPORT})) == {}
    assert SUPPORT not in set_ids(app)
    assert not {V7, V8} & set(version_ids(app))


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (
            {"modelSetId": SUPPORT},
            400,
            ("ModelInUse", f"Model {SUPPORT} is in use by service(s): svco-live."),
        ),
        ({"modelSetId": PRESET}, 403, ACCESS_DENIED),
        ({"modelSetId": MIXED}, 403, ACCESS_DENIED),
        (
            {"modelSetId": "am-nope"},
            404,
            ("ResourceNotFound", "The resource am-nope does not exist."),
        ),
        ({"modelSetId": ["am-empty"]}, 400, INAPPROPRIATE),
    ],
)
def test_delete_model_set_refusals_leave_the_state_unchanged(
    body: dict[str, Any], status: int, error: tuple[str, str]
) -> None:
    app = app_at_now()
    before = copy.deepcopy(emulator_of(app).state)
    assert_bce_error(v2(app, "DeleteModelSet", body), status, *error)
    assert emulator_of(app).state == before


def test_a_service_naming_only_the_set_blocks_its_delete() -> None:
    state = small_state()
    state["qianfan"]["services"].append(
        {"serviceId": "svco-set", "modelId": "amv-gone", "modelSetId": EMPTY, "runStatus": "New"}
    )
    response = v2(app_at_now(state), "DeleteModelSet", {"modelSetId": EMPTY})
    assert_bce_error(
        response, 400, "ModelInUse", f"Model {EMPTY} is in use by service(s): svco-set."
    )


# -- V2 services -------------------------------------------------------------------------------


def test_describe_services_and_service() -> None:
    app = app_at_now()
    result = result_of(call(app, "/v2/service", {}, action="DescribeServices"))
    assert [s["serviceId"] for s in result["serviceList"]] == ["svco-old", "svco-live"]
    assert result["serviceList"][1] == {
        "serviceId": "svco-live",
        "name": "support-live",
        "description": "",
        "modelSetId": SUPPORT,
        "modelId": V8,
        "runStatus": "Serving",
        "createTime": "2024-01-01T08:00:00+08:00",
        "modifyTime": "2024-01-01T08:00:00+08:00",
    }
    for body, expected in [
        ({"name": "LIVE"}, ["svco-live"]),
        ({"runStatus": ["Stopped", "Failed"]}, ["svco-old"]),
        ({"maxKeys": 1}, ["svco-old"]),
        ({"maxKeys": 1, "marker": "svco-live"}, ["svco-live"]),
    ]:
        listed = result_of(call(app, "/v2/service", body, action="DescribeServices"))
        assert [s["serviceId"] for s in listed["serviceList"]] == expected, body
    one = result_of(call(app, "/v2/service", {"serviceId": "svco-live"}, action="DescribeService"))
    assert one == result["serviceList"][1]
    assert_bce_error(
        call(app, "/v2/service", {"serviceId": "svco-nope"}, action="DescribeService"),
        404,
        "ResourceNotFound",
        "The resource svco-nope does not exist.",
    )
    assert_bce_error(
        call(app, "/v2/service", {"runStatus": "Serving"}, action="DescribeServices"),
        400,
        *INAPPROPRIATE,
    )


# -- V2 request errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "action", "method", "error"),
    [
        ("/v2/model", None, "POST", INVALID_URI),
        ("/v2/model", "", "POST", INVALID_URI),
        ("/v2/model", "DescribeServices", "POST", INVALID_URI),
        ("/v2/model", "describemodel", "POST", INVALID_URI),
        ("/v2/service", "DeleteModel", "POST", INVALID_URI),
        ("/v2/model", "DescribeModel", "GET", INVALID_URI),
        ("/v2/nothing", "DescribeModel", "POST", INVALID_URI),
        (f"{REPO}/model/nothing", None, "POST", INVALID_URI),
        (f"{REPO}/modelDetail", None, "GET", INVALID_URI),
    ],
)
def test_unknown_actions_and_paths_are_invalid_uri(
    path: str, action: str | None, method: str, error: tuple[str, str]
) -> None:
    response = call(app_at_now(), path, {"modelId": V7}, action=action, method=method)
    assert_bce_error(response, 400, *error)


def test_unparsable_or_non_object_bodies_are_refused() -> None:
    app = app_at_now()
    assert_bce_error(
        v2(app, "DescribeModel", content=b'{"modelId": '),
        400,
        "MalformedJSON",
        "The JSON you provided was not well-formed.",
    )
    assert_bce_error(v2(app, "DescribeModel", content=b"[1, 2]"), 400, *INAPPROPRIATE)
    assert result_of(v2(app, "DescribeCustomModelSets", content=b""))["pageInfo"]["maxKeys"] == 10


# -- V1 model repository -----------------------------------------------------------------------


def test_v1_batch_delete_by_int_or_string_ids(tmp_path: Path) -> None:
    persisted = tmp_path / "state.json"
    app = app_at_now(persist_path=persisted)
    assert v1_result(call(app, f"{REPO}/model/batchDelete", {"modelIDs": [587]})) == {}
    assert EMPTY not in set_ids(app)
    state = small_state()
    state["qianfan"]["services"] = []
    app = app_at_now(state, persist_path=persisted)
    body = {"modelIDs": [SUPPORT, SUMMARIZER, SUPPORT]}
    assert v1_result(call(app, f"{REPO}/model/batchDelete", body)) == {}
    assert set_ids(app) == [PRESET, EMPTY, MIXED]
    assert json.loads(persisted.read_text(encoding="utf-8")) == emulator_of(app).state


@pytest.mark.parametrize(
    ("body", "error_code", "error_msg"),
    [
        ({"modelIDs": [587, EMPTY]}, 500001, "param invalid"),  # seed 001: never mixed
        ({"modelIDs": [EMPTY, 587]}, 500001, "param invalid"),
        ({"modelIDs": []}, 500001, "param invalid"),
        ({"modelIDs": [True]}, 500001, "param invalid"),
        ({"modelIDs": [587.0]}, 500001, "param invalid"),
        ({"modelIDs": EMPTY}, 500001, "param invalid"),
        ({"modelIds": [EMPTY]}, 500001, "param invalid"),
        ({"modelIDs": [EMPTY, "am-nope"]}, 500001, "param invalid"),  # all or nothing
        ({"modelIDs": [587, 999999]}, 500001, "param invalid"),
        ({"modelIDs": [587, 7007]}, 500001, "param invalid"),  # a version's id is no model's
        (
            {"modelIDs": [EMPTY, SUPPORT]},
            500002,
            "model in use by service(s): svco-live",
        ),
        (
            {"modelIDs": [EMPTY, PRESET, MIXED]},
            500003,
            f"permission denied: preset model(s) cannot be deleted: {PRESET}, {MIXED}",
        ),
    ],
)
def test_v1_batch_delete_refusals_are_http_200_and_delete_nothing(
    body: dict[str, Any], error_code: int, error_msg: str
) -> None:
    app = app_at_now()
    before = copy.deepcopy(emulator_of(app).state)
    response = call(app, f"{REPO}/model/batchDelete", body)
    assert_v1_error(response, error_code, error_msg)
    assert emulator_of(app).state == before


def test_v1_malformed_json_is_param_invalid() -> None:
    response = call(app_at_now(), f"{REPO}/model/batchDelete", content=b"{modelIDs: [1]}")
    assert_v1_error(response, 500001, "param invalid")
    response = call(app_at_now(), f"{REPO}/model/batchDelete", content=b"[585]")
    assert_v1_error(response, 500001, "param invalid")


def test_v1_version_batch_delete() -> None:
    app = app_at_now()
    path = f"{REPO}/model/version/batchDelete"
    assert v1_result(call(app, path, {"modelVersionIds": [7007]})) == {}
    assert v1_result(call(app, path, {"modelVersionIds": [X2]})) == {}
    assert version_ids(app) == [V8, S1, P1, X1]
    before = copy.deepcopy(emulator_of(app).state)
    for body, error_code, error_msg in [
        ({"modelVersionIds": [7008, S1]}, 500001, "param invalid"),
        ({"modelVersionIds": [7007]}, 500001, "param invalid"),
        ({"modelVersionIds": [V8]}, 500002, "model in use by service(s): svco-live"),
        ({"modelVersionIds": [S1]}, 500002, "model in use by service(s): svco-old"),
        (
            {"modelVersionIds": [X1, P1]},
            500003,
            f"permission denied: preset model(s) cannot be deleted: {X1}, {P1}",
        ),
    ]:
        assert_v1_error(call(app, path, body), error_code, error_msg)
    assert emulator_of(app).state == before


def test_v1_user_list_pages_custom_models() -> None:
    app = app_at_now()
    path = f"{REPO}/model/user/list"
    result = v1_result(call(app, path, {"pageNo": 1, "pageSize": 2}))
    assert result["total"] == 4
    assert [i["modelIdStr"] for i in result["items"]] == [EMPTY, SUMMARIZER]
    page2 = v1_result(call(app, path, {"pageNo": 2, "pageSize": 2}))
    assert [i["modelIdStr"] for i in page2["items"]] == [SUPPORT, MIXED]
    assert page2["items"][0] == {
        "modelName": "support-bot",
        "modelId": 585,
        "modelIdStr": SUPPORT,
        "modelType": "Text2Text",
        "tags": ["cs"],
        "createTime": "2024-05-01T10:00:00+08:00",
        "versionCount": 2,
        "latestVersionInfo": {
            "modelVersionId": 7008,
            "modelVersionIdStr": V8,
            "version": "V8",
            "sourceType": "Train",
            "state": "Ready",
            "description": "",
            "createTime": "2024-06-01T10:00:00+08:00",
            "modifyTime": "2024-06-01T10:00:00+08:00",
        },
    }
    assert v1_result(call(app, path, {"pageNo": 3, "pageSize": 2})) == {"total": 4, "items": []}
    assert v1_result(call(app, path, {}))["total"] == 4
    ascending = v1_result(call(app, path, {"order": "asc", "nameFilter": "S"}))
    assert [i["modelIdStr"] for i in ascending["items"]] == [SUPPORT, SUMMARIZER, EMPTY]
    empty = v1_result(call(app, path, {"nameFilter": "scratch"}))["items"][0]
    assert empty["latestVersionInfo"] is None
    for body in [{"pageNo": 0}, {"pageSize": 101}, {"order": "up"}, {"pageNo": "1"}]:
        assert_v1_error(call(app, path, body), 500001, "param invalid")


def test_v1_model_detail_by_int_or_string_id() -> None:
    app = app_at_now()
    detail = v1_result(call(app, f"{REPO}/modelDetail", {"modelId": 585}))
    assert detail == v1_result(call(app, f"{REPO}/modelDetail", {"modelId": SUPPORT}))
    assert {k: v for k, v in detail.items() if k != "modelVersionList"} == {
        "modelId": 585,
        "modelIdStr": SUPPORT,
        "modelName": "support-bot",
        "source": "UserCreate",
        "modelType": "Text2Text",
        "createUser": "emulator",
        "createTime": "2024-05-01T10:00:00+08:00",
        "modifyTime": "2024-05-01T10:00:00+08:00",
        "description": "customer support",
    }
    assert [(v["modelVersionId"], v["modelVersionIdStr"]) for v in detail["modelVersionList"]] == [
        (7007, V7),
        (7008, V8),
    ]
    for body in [{"modelId": 999}, {"modelId": "am-nope"}, {}, {"modelId": True}]:
        assert_v1_error(call(app, f"{REPO}/modelDetail", body), 500001, "param invalid")


# -- faults, internal errors -------------------------------------------------------------------

FAULT_BODIES = {
    500: ("InternalError", "We encountered an internal error. Please try again."),
    408: ("RequestTimeout", "The request timed out. Please try again."),
    429: (
        "RequestRateLimitExceeded",
        "The request rate limit was exceeded. Please try again later.",
    ),
}


def test_faults_apply_to_qianfan_routes_in_bce_words_and_never_mutate() -> None:
    versions = [{"modelId": f"amv-many-{i}", "modelName": f"V{i}"} for i in range(40)]
    state = {
        "qianfan": {
            "access_keys": {AK: SK},
            "model_sets": [{"modelSetId": "am-many", "modelSetName": "many", "versions": versions}],
        }
    }
    app = app_at_now(state, fail_rate=0.5, seed=11)
    statuses = []
    for version in versions:
        response = v2(app, "DeleteModel", {"modelId": version["modelId"]})
        statuses.append(response.status_code)
        if response.status_code != 200:
            assert_bce_error(response, response.status_code, *FAULT_BODIES[response.status_code])
        if response.status_code == 429:
            assert response.headers["retry-after"] == "1"
    assert set(statuses) == {200, 500, 408, 429}
    faulted = {f"amv-many-{i}" for i, status in enumerate(statuses) if status != 200}
    assert set(version_ids(app)) == faulted
    # V1 routes are faulted the same way (the gateway answers, not V1).
    app = app_at_now(fail_rate=1, seed=3)
    response = call(app, f"{REPO}/model/batchDelete", {"modelIDs": [EMPTY]})
    assert_bce_error(response, response.status_code, *FAULT_BODIES[response.status_code])
    assert EMPTY in set_ids(app)


def test_an_emulator_bug_answers_internal_error_and_still_raises() -> None:
    app = app_at_now()
    emulator_of(app).state["qianfan"]["services"] = None  # breaks DescribeServices
    response = call(app, "/v2/service", action="DescribeServices", raise_app_exceptions=False)
    assert_bce_error(response, 500, *FAULT_BODIES[500])
    with pytest.raises(TypeError):
        call(app, "/v2/service", action="DescribeServices")


# -- the state ---------------------------------------------------------------------------------


def test_state_defaults_are_filled_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "seed.json"
    path.write_text(
        json.dumps(
            {
                "qianfan": {
                    "model_sets": [
                        {"modelSetName": "bare", "versions": [{"modelName": "V1"}]},
                        {"modelSetName": "taken", "v1ModelId": 1001, "versions": []},
                        {
                            "modelSetName": "preset",
                            "source": "System",
                            "versions": [{"modelName": "X"}],
                        },
                    ],
                    "services": [{"modelId": "amv-dangling"}],
                    "extra": "kept",
                }
            }
        ),
        encoding="utf-8",
    )
    app = create_app(path)
    section = emulator_of(app).state["qianfan"]
    bare, taken, preset = section["model_sets"]
    assert section["access_keys"] == {} and section["extra"] == "kept"
    assert bare["modelSetId"].startswith("am-") and bare["v1ModelId"] == 1002
    assert taken["v1ModelId"] == 1001 and preset["v1ModelId"] == 1003
    version = bare["versions"][0]
    assert version["modelId"].startswith("amv-") and version["v1VersionId"] == 50001
    assert version["sourceInfo"] == {"sourceType": "Train"}
    assert version["createTime"] == bare["createTime"] == "2024-01-01T08:00:00+08:00"
    assert preset["versions"][0]["sourceInfo"] == {"sourceType": "PlatformPreset"}
    service = section["services"][0]
    assert service["serviceId"].startswith("svco-")
    assert (service["runStatus"], service["modelSetId"]) == ("Serving", "")
    assert emulator_of(create_app(path)).state == emulator_of(app).state  # derived ids are stable
    served = app_at_now({"qianfan": {"services": [{"modelId": V8}], **small_state()["qianfan"]}})
    assert emulator_of(served).state["qianfan"]["services"][0]["modelSetId"] == SUPPORT


@pytest.mark.parametrize(
    "qianfan",
    [
        {"access_keys": {"AK": 1}},
        {"model_sets": [{"modelSetId": "am-x"}]},  # no name
        {"model_sets": [{"modelSetName": "a", "modelSetId": "x-1"}]},
        {"model_sets": [{"modelSetName": "a", "modelSetId": "amv-1"}]},
        {"model_sets": [{"modelSetName": "a", "source": "Mine"}]},
        {"model_sets": [{"modelSetName": "a", "createTime": "yesterday"}]},
        {"model_sets": [{"modelSetName": "a", "v1ModelId": "585"}]},
        {
            "model_sets": [
                {"modelSetName": "a", "v1ModelId": 5},
                {"modelSetName": "b", "v1ModelId": 5},
            ]
        },
        {
            "model_sets": [
                {"modelSetName": "a", "modelSetId": "am-1"},
                {"modelSetName": "b", "modelSetId": "am-1"},
            ]
        },
        {"model_sets": [{"modelSetName": "a", "versions": [{"modelId": "amv-1"}]}]},
        {
            "model_sets": [
                {"modelSetName": "a", "versions": [{"modelName": "v", "modelId": "am-1"}]}
            ]
        },
        {"model_sets": [{"modelSetName": "a", "versions": [{"modelName": "v", "status": "Done"}]}]},
        {
            "model_sets": [
                {"modelSetName": "a", "versions": [{"modelName": "v", "modelId": "amv-1"}]},
                {"modelSetName": "b", "versions": [{"modelName": "v", "modelId": "amv-1"}]},
            ]
        },
        {
            "model_sets": [
                {
                    "modelSetName": "a",
                    "versions": [{"modelName": "v", "sourceInfo": {"sourceType": "Magic"}}],
                }
            ]
        },
        {"services": [{"name": "no model"}]},
        {"services": [{"modelId": "amv-1", "runStatus": "Running"}]},
        {"services": [{"modelId": "amv-1", "serviceId": "svc-1"}]},
    ],
)
def test_malformed_state_is_refused_on_load(qianfan: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="emulator state: qianfan"):
        create_app({"qianfan": qianfan})


# -- over a real socket ------------------------------------------------------------------------


@pytest.mark.loopback
def test_signed_requests_over_a_loopback_socket() -> None:
    """Host carries the real port here: the signature must cover exactly what was sent."""
    app = create_app(small_state())  # the real clock: sign with the current time
    with (
        serve_over_loopback(app) as base_url,
        httpx.Client(base_url=base_url, trust_env=False) as client,
    ):
        for path, action, body in [
            ("/v2/model", "DeleteModel", {"modelId": V7}),
            (f"{REPO}/model/batchDelete", None, {"modelIDs": [EMPTY]}),
        ]:
            request = client.build_request(
                "POST",
                path,
                params={"Action": action} if action else None,
                json=body,
                headers={"x-bce-date": bce_time(time.time())},
            )
            lower = {k.lower(): v for k, v in request.headers.items()}
            request.headers["Authorization"] = bce_authorization(
                "POST",
                path,
                [("Action", action)] if action else [],
                lower,
                ["host", "content-type", "x-bce-date"],
                AK,
                SK,
                lower["x-bce-date"],
            )
            response = client.send(request)
            assert response.status_code == 200
            assert response.json()["result"] == {}
    assert V7 not in version_ids(app)
    assert EMPTY not in set_ids(app)
