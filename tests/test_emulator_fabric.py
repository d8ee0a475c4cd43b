"""The emulator's Fabric side: paths, paging, filters, exact error bodies, deletes and faults.

Most tests drive the app in-process through ``httpx.ASGITransport``; one talks to it over a real
loopback socket. pytest-asyncio is not used: each test runs its own ``asyncio.run``.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import httpx
import pytest
from starlette.applications import Starlette

from reconcile.emulator import Emulator, create_app, signatures
from tests.conftest import serve_over_loopback

TOKEN = "test-fabric-token"
AUTH = {"X-Auth-Token": TOKEN}
FABRIC = "https://fabric.cn-north-4.myhuaweicloud.com"
WS = "ws-test"
MODELS = f"/v1/workspaces/{WS}/models"
SERVICES = f"/v1/workspaces/{WS}/services/instances"

SUPPORT = "m-support"
SUMMARIZER = "m-summarizer"
PRESET = "m-preset"
EMPTY = "m-empty"
V7 = "00000007-0000-4000-8000-000000000000"
V8 = "00000008-0000-4000-8000-000000000000"
S1 = "00000101-0000-4000-8000-000000000000"
S2 = "00000102-0000-4000-8000-000000000000"
P1 = "00000201-0000-4000-8000-000000000000"
UNKNOWN_VERSION = "ffffffff-0000-4000-8000-000000000000"

TYPE_MISMATCH = {
    "error_code": "common.01000001",
    "error_msg": "failed to read http request, please check your input, code: 400, "
    "reason: Type mismatch., cause: TypeMismatchException",
}
NOT_FOUND = {"error_code": "common.01000001", "error_msg": "response status exception, code: 404"}
UNAUTHORIZED = {
    "error_code": "APIG.1002",
    "error_msg": "Incorrect token or token resolution failed",
}


def bad_request(reason: str) -> dict[str, str]:
    return {
        "error_code": "common.01000001",
        "error_msg": f"failed to read http request, please check your input, code: 400, "
        f"reason: {reason}",
    }


def user() -> dict[str, str]:
    return {"domain_name": "acme", "domain_id": "d1", "user_name": "alice", "user_id": "u1"}


def version(vid: str, name: str, created: str) -> dict[str, Any]:
    return {
        "id": vid,
        "name": name,
        "description": "",
        "cap_white_list": [],
        "config": {
            "llm_model_config": {"base_model_type": "QWEN_2_72B", "model_path": f"obs://b/{name}/"}
        },
        "create_time": created,
        "create_user": user(),
    }


def model(
    mid: str, name: str, created: str, versions: list[dict[str, Any]], visibility: str = "PRIVATE"
) -> dict[str, Any]:
    return {
        "id": mid,
        "name": name,
        "description": "",
        "type": "LLM_MODEL",
        "visibility": visibility,
        "create_time": created,
        "update_time": created,
        "create_user": user(),
        "update_user": user(),
        "versions": versions,
    }


def service(sid: str, name: str, model_id: str, version_id: str, status: str) -> dict[str, Any]:
    return {
        "id": sid,
        "name": name,
        "description": "",
        "endpoint_id": f"ep-{name}",
        "type": "LLM_MODEL",
        "visibility": "PRIVATE",
        "status": status,
        "source": {"id": model_id, "version_id": version_id},
        "create_time": "2024-07-01T00:00:00.000Z",
        "update_time": "2024-07-01T00:00:00.000Z",
        "duration": 0,
        "create_user": {"domain_name": "acme", "user_name": "alice"},
    }


def small_state() -> dict[str, Any]:
    """support-bot v8 is served; summarizer is only named by a DELETED service; one PUBLIC model."""
    return {
        "fabric": {
            "tokens": [TOKEN],
            "base_models": [{"base_model_type": "QWEN_2_72B", "max_tokens": 32768, "num_of_mu": 8}],
            "workspaces": {
                WS: {
                    "models": [
                        model(
                            SUPPORT,
                            "support-bot",
                            "2024-05-01T08:00:00.000Z",
                            [
                                version(V7, "v7", "2024-05-01T08:00:00.000Z"),
                                version(V8, "v8", "2024-06-01T08:00:00.000Z"),
                            ],
                        ),
                        model(
                            SUMMARIZER,
                            "Summarizer",
                            "2024-05-02T08:00:00.000Z",
                            [version(S1, "2024-06", "2024-06-02T00:00:00.000Z")],
                        ),
                        model(
                            PRESET,
                            "preset-qwen",
                            "2024-01-01T00:00:00.000Z",
                            [version(P1, "1.0", "2024-01-01T00:00:00.000Z")],
                            visibility="PUBLIC",
                        ),
                        model(EMPTY, "scratch-empty", "2024-05-03T08:00:00.000Z", []),
                    ],
                    "service_instances": [
                        service("svc-live", "support-live", SUPPORT, V8, "RUNNING"),
                        service("svc-old", "summary-old", SUMMARIZER, S1, "DELETED"),
                    ],
                }
            },
        },
        "elsewhere": {"kept": ["as", "is"]},
    }


def big_state(count: int) -> dict[str, Any]:
    """``count`` models, ten per creation time, so ties must be broken for stable pages."""
    models = [
        model(f"m-{i:04d}", f"model-{i:04d}", f"2024-05-{1 + i // 10 % 28:02d}T00:00:00.000Z", [])
        for i in range(count)
    ]
    return {"fabric": {"tokens": [TOKEN], "workspaces": {WS: {"models": models}}}}


def send(
    app: Starlette,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=FABRIC) as client:
            return await client.request(
                method, path, params=params, headers=AUTH if headers is None else headers
            )

    return asyncio.run(go())


def emulator_of(app: Starlette) -> Emulator:
    emulator = app.state.emulator
    assert isinstance(emulator, Emulator)
    return emulator


def fabric_models(app: Starlette) -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = emulator_of(app).state["fabric"]["workspaces"][WS]["models"]
    return models


# -- listing -------------------------------------------------------------------------------


def test_paging_at_limit_100_returns_every_model_exactly_once() -> None:
    app = create_app(big_state(250))

    async def go() -> list[dict[str, Any]]:
        transport = httpx.ASGITransport(app=app)
        pages = []
        async with httpx.AsyncClient(transport=transport, base_url=FABRIC, headers=AUTH) as client:
            for offset in (0, 100, 200, 300):
                response = await client.get(MODELS, params={"offset": offset, "limit": 100})
                assert response.status_code == 200
                pages.append(response.json())
        return pages

    pages = asyncio.run(go())
    assert [page["total"] for page in pages] == [250] * 4
    assert [len(page["models"]) for page in pages] == [100, 100, 50, 0]
    ids = [m["id"] for page in pages for m in page["models"]]
    assert sorted(ids) == [f"m-{i:04d}" for i in range(250)]
    # Newest first by default; ties (ten models per time) in a fixed order by id.
    keys = [(m["create_time"], m["id"]) for page in pages for m in page["models"]]
    assert keys == sorted(keys, reverse=True)


def test_pages_keep_what_orjson_cannot_write() -> None:
    """Answers are rendered by orjson; a value it refuses (an integer beyond 64 bits, which a
    hand-written state may hold) is still served exactly, by the standard encoder."""
    state = small_state()
    state["fabric"]["workspaces"][WS]["models"][0]["versions"][0]["size"] = 2**70
    path = f"{MODELS}/{SUPPORT}/versions"
    response = send(create_app(state), "GET", path, params={"limit": 100})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    by_id = {v["id"]: v for v in response.json()["versions"]}
    assert by_id[V7]["size"] == 2**70
    assert b"1180591620717411303424" in response.content


def test_default_page_is_ten_models() -> None:
    body = send(create_app(big_state(25)), "GET", MODELS).json()
    assert body["total"] == 25
    assert len(body["models"]) == 10


def test_model_info_carries_newest_version_and_no_version_list() -> None:
    body = send(create_app(small_state()), "GET", MODELS, params={"limit": 100}).json()
    by_id = {m["id"]: m for m in body["models"]}
    support = by_id[SUPPORT]
    assert "versions" not in support
    assert support["current_version"]["id"] == V8
    assert support["current_version"]["config"]["llm_model_config"]["model_path"] == "obs://b/v8/"
    assert by_id[EMPTY]["current_version"] is None
    assert set(support) == {
        "id",
        "name",
        "description",
        "type",
        "visibility",
        "create_time",
        "update_time",
        "current_version",
        "create_user",
        "update_user",
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"name": "SUMM"}, [SUMMARIZER]),  # fuzzy, case-insensitive
        ({"name": "bot"}, [SUPPORT]),
        ({"id": SUPPORT}, [SUPPORT]),
        ({"id": "m-supp"}, []),  # id is exact
        ({"visibility": "PUBLIC"}, [PRESET]),
        ({"visibility": "PRIVATE"}, [EMPTY, SUMMARIZER, SUPPORT]),
        ({"visibility": "ALL"}, [EMPTY, SUMMARIZER, SUPPORT, PRESET]),
        ({"visibility": ""}, [EMPTY, SUMMARIZER, SUPPORT, PRESET]),
        ({"type": "LLM_MODEL", "name": "e"}, [EMPTY, SUMMARIZER, PRESET]),
    ],
)
def test_model_filters(params: dict[str, str], expected: list[str]) -> None:
    body = send(create_app(small_state()), "GET", MODELS, params=params).json()
    assert [m["id"] for m in body["models"]] == expected
    assert body["total"] == len(expected)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, [EMPTY, SUMMARIZER, SUPPORT, PRESET]),
        ({"order_by": "ASC"}, [PRESET, SUPPORT, SUMMARIZER, EMPTY]),
        ({"sort_by": "NAME", "order_by": "ASC"}, [SUMMARIZER, PRESET, EMPTY, SUPPORT]),
        ({"sort_by": "NAME"}, [SUPPORT, EMPTY, PRESET, SUMMARIZER]),
    ],
)
def test_model_sorting(params: dict[str, str], expected: list[str]) -> None:
    body = send(create_app(small_state()), "GET", MODELS, params=params).json()
    assert [m["id"] for m in body["models"]] == expected


def test_model_sorting_by_update_time() -> None:
    state = small_state()
    state["fabric"]["workspaces"][WS]["models"][2]["update_time"] = "2025-01-01T00:00:00.000Z"
    body = send(create_app(state), "GET", MODELS, params={"sort_by": "UPDATE_TIME"}).json()
    assert body["models"][0]["id"] == PRESET


def test_versions_are_listed_newest_first_with_filters_and_paging() -> None:
    app = create_app(small_state())
    path = f"{MODELS}/{SUPPORT}/versions"
    body = send(app, "GET", path).json()
    assert body["total"] == 2
    assert [v["id"] for v in body["versions"]] == [V8, V7]
    assert body["versions"][1] == version(V7, "v7", "2024-05-01T08:00:00.000Z")
    page = send(app, "GET", path, params={"offset": 1, "limit": 1}).json()
    assert (page["total"], [v["id"] for v in page["versions"]]) == (2, [V7])
    assert [v["id"] for v in send(app, "GET", path, params={"name": "V7"}).json()["versions"]] == [
        V7
    ]
    only = send(app, "GET", path, params={"version_id": V8}).json()
    assert (only["total"], [v["id"] for v in only["versions"]]) == (1, [V8])


def test_base_models_are_listed() -> None:
    body = send(create_app(small_state()), "GET", "/v1/base-models").json()
    assert body == {
        "total": 1,
        "models": [{"base_model_type": "QWEN_2_72B", "max_tokens": 32768, "num_of_mu": 8}],
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["svc-old", "svc-live"]),
        ({"source_id": SUPPORT}, ["svc-live"]),
        ({"version_id": S1}, ["svc-old"]),
        ({"id": "svc-old"}, ["svc-old"]),
        ({"endpoint_id": "ep-support-live"}, ["svc-live"]),
        ({"name": "LIVE"}, ["svc-live"]),
        ({"sort_by": "NAME", "order_by": "ASC"}, ["svc-old", "svc-live"]),
        ({"limit": 1, "offset": 1, "sort_by": "NAME"}, ["svc-old"]),
    ],
)
def test_service_instance_filters(params: dict[str, Any], expected: list[str]) -> None:
    # The services share a creation time: the default order falls back to id, descending.
    body = send(create_app(small_state()), "GET", SERVICES, params=params).json()
    assert [s["id"] for s in body["service_instances"]] == expected
    if "limit" not in params:
        assert body["total"] == len(expected)


def test_direct_changes_to_the_state_show_in_the_next_listing() -> None:
    app = create_app(small_state())
    assert send(app, "GET", MODELS).json()["total"] == 4
    fabric_models(app).append(model("m-new", "new", "2030-01-01T00:00:00.000Z", []))
    body = send(app, "GET", MODELS).json()
    assert (body["total"], body["models"][0]["id"]) == (5, "m-new")


def _listing(app: Starlette, params: dict[str, str]) -> list[str]:
    """Every page of a models listing, as ids."""
    ids: list[str] = []
    for offset in range(0, 300, 100):
        page = send(app, "GET", MODELS, params={**params, "offset": offset, "limit": 100}).json()
        ids += [m["id"] for m in page["models"]]
    return ids


def test_a_served_emulator_lists_what_a_fresh_one_does_between_deletes() -> None:
    """A served emulator (`state_private`: only its handlers change the state) reuses its
    sorts unread until a handler changes the state: each listing, with or without filters, is
    still what an emulator loaded from the state of that moment lists."""
    app = create_app(big_state(250), state_private=True)
    asked = [{}, {"name": "model-01"}, {"sort_by": "NAME", "order_by": "ASC"}, {}]
    for doomed in ([], ["m-0249", "m-0013"], ["m-0010", "m-0100", "m-0000"]):
        for model_id in doomed:
            assert send(app, "DELETE", f"{MODELS}/{model_id}").status_code == 200
        fresh = create_app(copy.deepcopy(emulator_of(app).state))
        for params in asked:
            assert _listing(app, params) == _listing(fresh, params)
        assert not set(doomed) & set(_listing(app, {}))
    assert len(_listing(app, {})) == 245


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "status", "body"),
    [
        (MODELS, {"offset": "x"}, 400, TYPE_MISMATCH),
        (MODELS, {"limit": "1.5"}, 400, TYPE_MISMATCH),
        (MODELS, {"limit": "99999999999"}, 400, TYPE_MISMATCH),
        (MODELS, {"limit": "0"}, 400, bad_request("limit must be between 1 and 100")),
        (MODELS, {"limit": "101"}, 400, bad_request("limit must be between 1 and 100")),
        (MODELS, {"offset": "-1"}, 400, bad_request("offset must be greater than or equal to 0")),
        (
            MODELS,
            {"visibility": "private"},
            400,
            bad_request("visibility must be one of PRIVATE, PUBLIC, ALL"),
        ),
        (
            MODELS,
            {"sort_by": "SIZE"},
            400,
            bad_request("sort_by must be one of CREATE_TIME, UPDATE_TIME, NAME"),
        ),
        (MODELS, {"order_by": "UP"}, 400, bad_request("order_by must be one of ASC, DESC")),
        (f"{MODELS}/{SUPPORT}/versions", {"limit": "a"}, 400, TYPE_MISMATCH),
        ("/v1/base-models", {"offset": "a"}, 400, TYPE_MISMATCH),
        (SERVICES, {"limit": "500"}, 400, bad_request("limit must be between 1 and 100")),
        (
            f"/v1/workspaces/{'w' * 37}/models",
            {},
            400,
            bad_request("workspace_id must be 1 to 36 letters, digits or hyphens"),
        ),
        (
            f"/v1/workspaces/{WS}/models/bad_id/versions",
            {},
            400,
            bad_request("model_id must be 1 to 36 letters, digits or hyphens"),
        ),
        ("/v1/workspaces/ws-nope/models", {}, 404, NOT_FOUND),
        ("/v1/workspaces/ws-nope/services/instances", {}, 404, NOT_FOUND),
        (f"{MODELS}/m-nope/versions", {}, 404, NOT_FOUND),
    ],
)
def test_get_errors_have_the_platform_bodies(
    path: str, params: dict[str, str], status: int, body: dict[str, Any]
) -> None:
    response = send(create_app(small_state()), "GET", path, params=params)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == body


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        (f"{MODELS}/m-nope", 404, NOT_FOUND),
        (f"/v1/workspaces/ws-nope/models/{EMPTY}", 404, NOT_FOUND),
        (f"{MODELS}/{SUPPORT}/versions/{UNKNOWN_VERSION}", 404, NOT_FOUND),
        (f"{MODELS}/m-nope/versions/{V7}", 404, NOT_FOUND),
        (
            f"{MODELS}/{SUPPORT}/versions/short-id",
            400,
            bad_request("version_id must be 32 to 36 letters, digits or hyphens"),
        ),
        (
            f"{MODELS}/{'m' * 37}",
            400,
            bad_request("model_id must be 1 to 36 letters, digits or hyphens"),
        ),
    ],
)
def test_delete_errors_have_the_platform_bodies_and_delete_nothing(
    path: str, status: int, body: dict[str, Any]
) -> None:
    app = create_app(small_state())
    before = copy.deepcopy(emulator_of(app).state)
    response = send(app, "DELETE", path)
    assert (response.status_code, response.json()) == (status, body)
    assert emulator_of(app).state == before


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Auth-Token": "wrong"}, {"X-Auth-Token": ""}, {"Authorization": f"Bearer {TOKEN}"}],
)
def test_missing_or_unknown_token_is_401(headers: dict[str, str]) -> None:
    app = create_app(small_state())
    for method, path in [("GET", MODELS), ("DELETE", f"{MODELS}/{EMPTY}"), ("GET", SERVICES)]:
        response = send(app, method, path, headers=headers)
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED)
    assert len(fabric_models(app)) == 4


def test_oversized_token_is_403_with_numeric_error_code() -> None:
    response = send(create_app(small_state()), "GET", MODELS, headers={"X-Auth-Token": "t" * 65535})
    assert response.status_code == 403
    assert response.json() == {
        "error": {
            "code": "403",
            "message": "X-Auth-Token is invalid in the request",
            "title": "Forbidden",
        },
        "error_code": 403,
        "error_msg": "X-Auth-Token is invalid in the request",
        "title": "Forbidden",
    }


def test_auth_is_checked_before_parameters() -> None:
    response = send(create_app(small_state()), "GET", MODELS, params={"limit": "x"}, headers={})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/nothing/here"), ("POST", MODELS), ("PUT", f"{MODELS}/{EMPTY}")],
)
def test_unknown_api_is_the_gateway_404(method: str, path: str) -> None:
    response = send(create_app(small_state()), method, path)
    assert response.status_code == 404
    assert response.json()["error_code"] == "APIGW.0101"


# -- deletes -------------------------------------------------------------------------------


def test_delete_model_is_200_with_empty_body_and_persists(tmp_path: Path) -> None:
    persisted = tmp_path / "state.json"
    source = small_state()
    app = create_app(source, persist_path=persisted)
    assert not persisted.exists()  # nothing is written until something changes
    response = send(app, "DELETE", f"{MODELS}/{SUMMARIZER}")
    assert (response.status_code, response.content) == (200, b"")
    assert SUMMARIZER not in [m["id"] for m in send(app, "GET", MODELS).json()["models"]]
    saved = json.loads(persisted.read_text(encoding="utf-8"))
    assert saved == emulator_of(app).state
    assert SUMMARIZER not in [m["id"] for m in saved["fabric"]["workspaces"][WS]["models"]]
    assert saved["elsewhere"] == {"kept": ["as", "is"]}
    assert not list(tmp_path.glob(".*.tmp"))
    # The caller's dict is a seed, not the live state.
    assert len(source["fabric"]["workspaces"][WS]["models"]) == 4


def test_delete_version_is_202_with_empty_body_and_removes_it_from_the_model() -> None:
    app = create_app(small_state())
    response = send(app, "DELETE", f"{MODELS}/{SUPPORT}/versions/{V7}")
    assert (response.status_code, response.content) == (202, b"")
    body = send(app, "GET", f"{MODELS}/{SUPPORT}/versions").json()
    assert (body["total"], [v["id"] for v in body["versions"]]) == (1, [V8])
    again = send(app, "DELETE", f"{MODELS}/{SUPPORT}/versions/{V7}")
    assert (again.status_code, again.json()) == (404, NOT_FOUND)


def test_deleting_the_last_version_leaves_a_model_without_current_version() -> None:
    app = create_app(small_state())
    assert send(app, "DELETE", f"{MODELS}/{SUMMARIZER}/versions/{S1}").status_code == 202
    body = send(app, "GET", MODELS, params={"id": SUMMARIZER}).json()
    assert body["models"][0]["current_version"] is None


def test_model_with_a_served_version_is_refused_and_kept() -> None:
    state = small_state()
    services = state["fabric"]["workspaces"][WS]["service_instances"]
    services.append(service("svc-two", "support-two", SUPPORT, V7, "STOPPED"))
    app = create_app(state)
    before = copy.deepcopy(emulator_of(app).state)
    response = send(app, "DELETE", f"{MODELS}/{SUPPORT}")
    assert response.status_code == 400
    assert response.json() == {
        "error_code": "dataartsfabric.11000012",
        "error_msg": f"model {SUPPORT} has versions in use by service instance(s): "
        "svc-live, svc-two",
        "solution_msg": "Delete the service instance(s) svc-live, svc-two that use this model "
        "first, then delete the model again.",
    }
    assert emulator_of(app).state == before


def test_service_naming_only_the_model_blocks_its_delete() -> None:
    state = small_state()
    services = state["fabric"]["workspaces"][WS]["service_instances"]
    services.append(service("svc-any", "any", EMPTY, "", "CREATING"))
    response = send(create_app(state), "DELETE", f"{MODELS}/{EMPTY}")
    assert response.status_code == 400
    assert response.json()["error_msg"].endswith("service instance(s): svc-any")


def test_served_version_is_refused_and_kept() -> None:
    app = create_app(small_state())
    response = send(app, "DELETE", f"{MODELS}/{SUPPORT}/versions/{V8}")
    assert response.status_code == 400
    assert response.json() == {
        "error_code": "dataartsfabric.11000012",
        "error_msg": f"version {V8} of model {SUPPORT} is in use by service instance(s): svc-live",
        "solution_msg": "Delete the service instance(s) svc-live that use this version first, "
        "then delete the version again.",
    }
    assert [v["id"] for v in fabric_models(app)[0]["versions"]] == [V7, V8]


def test_a_deleted_service_does_not_hold_its_version() -> None:
    app = create_app(small_state())
    assert send(app, "DELETE", f"{MODELS}/{SUMMARIZER}").status_code == 200


def test_public_model_and_its_versions_cannot_be_deleted() -> None:
    app = create_app(small_state())
    response = send(app, "DELETE", f"{MODELS}/{PRESET}")
    assert (response.status_code, response.json()) == (
        403,
        {
            "error_code": "dataartsfabric.11000003",
            "error_msg": f"public model {PRESET} cannot be deleted",
        },
    )
    response = send(app, "DELETE", f"{MODELS}/{PRESET}/versions/{P1}")
    assert response.status_code == 403
    assert response.json()["error_code"] == "dataartsfabric.11000003"
    assert PRESET in [m["id"] for m in fabric_models(app)]
    assert len(fabric_models(app)[2]["versions"]) == 1


# -- AK/SK (SDK-HMAC-SHA256) -------------------------------------------------------------------
#
# The test side signs with its own few lines, written from Huawei's signing guide and pinned to
# the guide's published vector, so the emulator's verifier is checked against code it does not
# share.

AK = "TESTFABRICACCESSKEY1"
SK = "test-fabric-secret-key-0123456789"
TEMP_AK = "TESTFABRICTEMPORARY1"
TEMP_SK = "test-fabric-temporary-secret"
SECURITY_TOKEN = "test-security-token"
NOW = datetime(2024, 7, 1, 12, 0, 0, tzinfo=UTC).timestamp()
FABRIC_PORT = "https://fabric.cn-north-4.myhuaweicloud.com:8443"


def huawei_signature(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    signed: list[str],
    body: bytes,
    secret_key: str,
    sdk_date: str,
) -> tuple[str, str]:
    """(hex sha256 of the canonical request, signature), as Huawei's guide computes them.

    ``path`` is percent-encoded as sent; ``headers`` keys are lower-case (a signed header that
    is not there is signed as empty, so that the emulator can be shown refusing it).
    """
    uri = "/".join(quote(segment, safe="~") for segment in unquote(path).split("/"))
    uri = uri if uri.endswith("/") else uri + "/"
    canonical_query = "&".join(
        f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(query)
    )
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed)
    # As the SDK: this header's value, when there is one, is signed instead of the body's hash.
    body_hash = headers.get("x-sdk-content-sha256", hashlib.sha256(body).hexdigest())
    canonical = "\n".join(
        [method, uri, canonical_query, canonical_headers, ";".join(signed), body_hash]
    )
    canonical_hash = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = f"SDK-HMAC-SHA256\n{sdk_date}\n{canonical_hash}"
    signature = hmac.new(secret_key.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return canonical_hash, signature


def test_huawei_published_vector_is_reproduced_by_test_signer_and_emulator() -> None:
    path = "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs"
    query = [("limit", "2"), ("marker", "13551d6b-755d-4757-b956-536f674975c0")]
    headers = {
        "content-type": "application/json",
        "x-sdk-date": "20191115T033655Z",
        "host": "service.region.example.com",
    }
    signed = ["content-type", "host", "x-sdk-date"]
    canonical_hash = "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
    signature = "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
    secret_key = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"  # AK QTWAOYTTINDUT2QVKYUC
    assert huawei_signature(
        "GET", path, query, headers, signed, b"", secret_key, "20191115T033655Z"
    ) == (canonical_hash, signature)
    canonical = signatures.sdk_canonical_request(
        "GET", path, query, headers, signed, signatures.sha256_hex(b"")
    )
    assert signatures.sha256_hex(canonical.encode()) == canonical_hash
    to_sign = signatures.sdk_string_to_sign("20191115T033655Z", canonical)
    assert signatures.sdk_signature(secret_key, to_sign) == signature


def aksk_state() -> dict[str, Any]:
    state = small_state()
    state["fabric"]["access_keys"] = {AK: SK, TEMP_AK: TEMP_SK}
    state["fabric"]["security_tokens"] = {TEMP_AK: SECURITY_TOKEN}
    return state


def sdk_date(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%dT%H%M%SZ")


def send_signed(
    app: Starlette,
    method: str,
    path: str,
    *,
    params: dict[str, str] | None = None,
    content: bytes = b"",
    base_url: str = FABRIC,
    ak: str = AK,
    sk: str = SK,
    headers: dict[str, str] | None = None,
    signed: list[str] | None = None,
    sign_as: dict[str, Any] | None = None,
    authorization: str | None = None,
) -> httpx.Response:
    """Send a request signed as the SDK does: every header it carries is signed.

    ``headers`` are added (X-Sdk-Date defaults to the emulator's NOW); ``signed`` replaces the
    signed-header list; ``sign_as`` replaces what is signed (``path``, ``query``, ``body`` or a
    header) without changing what is sent; ``authorization`` replaces the header outright.
    """

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            request = client.build_request(
                method,
                path,
                params=params,
                content=content or None,
                headers={"X-Sdk-Date": sdk_date(NOW), **(headers or {})},
            )
            lower = {name.lower(): value for name, value in request.headers.items()}
            names = sorted(lower) if signed is None else signed
            fake = sign_as or {}
            raw_path, _, raw_query = request.url.raw_path.decode().partition("?")
            _, signature = huawei_signature(
                method,
                fake.get("path", raw_path),
                fake.get("query", parse_qsl(raw_query, keep_blank_values=True)),
                {**lower, **{k: v for k, v in fake.items() if isinstance(v, str)}},
                names,
                fake.get("body", request.content),
                sk,
                lower.get("x-sdk-date", ""),
            )
            request.headers["Authorization"] = authorization or (
                f"SDK-HMAC-SHA256 Access={ak}, SignedHeaders={';'.join(names)}, "
                f"Signature={signature}"
            )
            return await client.send(request)

    return asyncio.run(go())


def aksk_failure(reason: str) -> dict[str, str]:
    return {
        "error_code": "APIGW.0301",
        "error_msg": f"Incorrect IAM authentication information: verify aksk signature fail, "
        f"{reason}",
    }


def test_aksk_signed_requests_are_served() -> None:
    app = create_app(aksk_state(), clock=lambda: NOW)
    listing = send_signed(app, "GET", MODELS, params={"limit": "100", "name": "bot ~ä/é"})
    assert (listing.status_code, listing.json()["total"]) == (200, 0)
    listing = send_signed(app, "GET", MODELS, params={"limit": "100", "sort_by": "NAME"})
    assert (listing.status_code, listing.json()["total"]) == (200, 4)
    # The Host signed carries the port when it is not the default one.
    served = send_signed(app, "GET", SERVICES, base_url=FABRIC_PORT)
    assert served.status_code == 200
    deleted = send_signed(app, "DELETE", f"{MODELS}/{EMPTY}")
    assert (deleted.status_code, deleted.content) == (200, b"")
    assert EMPTY not in [m["id"] for m in fabric_models(app)]
    assert emulator_of(app).requests[-1]["auth"] == "SDK-HMAC-SHA256"
    assert SK not in json.dumps(emulator_of(app).requests)


def test_aksk_date_may_be_up_to_15_minutes_off() -> None:
    for offset in (-15 * 60, 15 * 60, -14 * 60, 60):
        app = create_app(aksk_state(), clock=lambda offset=offset: NOW + offset)
        assert send_signed(app, "GET", MODELS).status_code == 200, offset


def test_aksk_body_is_signed_unless_declared_unsigned() -> None:
    app = create_app(aksk_state(), clock=lambda: NOW)
    assert send_signed(app, "DELETE", f"{MODELS}/{EMPTY}", content=b'{"a": 1}').status_code == 200
    unsigned = send_signed(
        app,
        "DELETE",
        f"{MODELS}/{SUMMARIZER}",
        content=b'{"a": 1}',
        headers={"X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"},
    )
    assert unsigned.status_code == 200


def test_aksk_temporary_keys_need_their_signed_security_token() -> None:
    app = create_app(aksk_state(), clock=lambda: NOW)
    with_token = {"X-Security-Token": SECURITY_TOKEN}
    ok = send_signed(app, "GET", MODELS, ak=TEMP_AK, sk=TEMP_SK, headers=with_token)
    assert ok.status_code == 200
    reason = "X-Security-Token is missing, not signed or not valid for this AK"
    for headers, signed in [
        ({}, None),
        ({"X-Security-Token": "stolen"}, None),
        (with_token, ["host", "x-sdk-date"]),
    ]:
        refused = send_signed(
            app, "GET", MODELS, ak=TEMP_AK, sk=TEMP_SK, headers=headers, signed=signed
        )
        assert (refused.status_code, refused.json()) == (401, aksk_failure(reason))


@pytest.mark.parametrize(
    ("options", "body"),
    [
        (
            {"ak": "NOSUCHACCESSKEY00000"},
            {
                "error_code": "APIGW.0301",
                "error_msg": "Incorrect IAM authentication information: Get secretKey failed,"
                "ak:NOSUCHACCESSKEY00000,err:ak not exist",
            },
        ),
        ({"sk": "wrong-secret"}, aksk_failure("signature mismatch")),
        ({"sign_as": {"query": [("limit", "1")]}}, aksk_failure("signature mismatch")),
        ({"sign_as": {"path": f"{MODELS}/{SUPPORT}"}}, aksk_failure("signature mismatch")),
        ({"sign_as": {"body": b'{"a": 2}'}}, aksk_failure("signature mismatch")),
        (
            {"sign_as": {"host": "fabric.cn-north-4.myhuaweicloud.com"}, "base_url": FABRIC_PORT},
            aksk_failure("signature mismatch"),
        ),
        (
            {"signed": ["content-length", "x-sdk-date"]},
            aksk_failure("signed headers must include host and x-sdk-date"),
        ),
        (
            {"signed": ["content-length", "host"]},
            aksk_failure("signed headers must include host and x-sdk-date"),
        ),
        (
            {"headers": {"X-Sdk-Date": ""}, "signed": ["host", "x-sdk-date"]},
            aksk_failure("X-Sdk-Date is missing or not in the form YYYYMMDDTHHMMSSZ"),
        ),
        (
            {"headers": {"X-Sdk-Date": "2024-07-01T12:00:00Z"}},
            aksk_failure("X-Sdk-Date is missing or not in the form YYYYMMDDTHHMMSSZ"),
        ),
        (
            {"headers": {"X-Sdk-Date": sdk_date(NOW - 15 * 60 - 1)}},
            aksk_failure("X-Sdk-Date is more than 15 minutes away from the server time"),
        ),
        (
            {"headers": {"X-Sdk-Date": sdk_date(NOW + 16 * 60)}},
            aksk_failure("X-Sdk-Date is more than 15 minutes away from the server time"),
        ),
        (
            {"signed": ["host", "x-sdk-date", "x-project-id"]},
            aksk_failure("signed header x-project-id is not in the request"),
        ),
        (
            {"authorization": f"SDK-HMAC-SHA256 Access={AK}, Signature=00"},
            aksk_failure("malformed Authorization header"),
        ),
        (
            {"headers": {"X-Sdk-Content-Sha256": "0" * 64}},
            aksk_failure("the body does not match X-Sdk-Content-Sha256"),
        ),
    ],
)
def test_aksk_refusals_are_the_gateway_401_and_change_nothing(
    options: dict[str, Any], body: dict[str, str]
) -> None:
    app = create_app(aksk_state(), clock=lambda: NOW)
    before = copy.deepcopy(emulator_of(app).state)
    response = send_signed(app, "DELETE", f"{MODELS}/{EMPTY}", content=b'{"a": 1}', **options)
    assert (response.status_code, response.json()) == (401, body)
    assert emulator_of(app).state == before


def test_credential_refusals_are_the_gateways_never_the_404_of_a_gone_object() -> None:
    """API.md's gateway answers for every credential failure, a revoked AK too: 401 (403 for an
    oversized token), an APIG/APIGW code, an X-Request-Id; never the 404 that means "gone"."""
    app = create_app(aksk_state(), clock=lambda: NOW)
    assert send_signed(app, "GET", MODELS).status_code == 200
    refusals = [
        send(app, "DELETE", f"{MODELS}/{EMPTY}", headers={}),
        send(app, "DELETE", f"{MODELS}/{EMPTY}", headers={"X-Auth-Token": "revoked"}),
        send(app, "DELETE", f"{MODELS}/{EMPTY}", headers={"X-Auth-Token": "t" * 65535}),
        send_signed(app, "DELETE", f"{MODELS}/{EMPTY}", sk="wrong-secret"),
    ]
    del emulator_of(app).state["fabric"]["access_keys"][AK]
    refusals.append(send_signed(app, "DELETE", f"{MODELS}/{EMPTY}"))
    assert [r.status_code for r in refusals] == [401, 401, 403, 401, 401]
    assert [r.json()["error_code"] for r in refusals] == [
        "APIG.1002",
        "APIG.1002",
        403,
        "APIGW.0301",
        "APIGW.0301",
    ]
    assert refusals[-1].json()["error_msg"] == (
        f"Incorrect IAM authentication information: Get secretKey failed,ak:{AK},err:ak not exist"
    )
    assert all(len(r.headers["x-request-id"]) == 32 for r in refusals)
    assert EMPTY in [m["id"] for m in fabric_models(app)]


def test_aksk_missing_x_sdk_date_header_is_refused() -> None:
    app = create_app(aksk_state(), clock=lambda: NOW)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=FABRIC) as client:
            authorization = (
                f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host;x-sdk-date, Signature={'0' * 64}"
            )
            return await client.get(MODELS, headers={"Authorization": authorization})

    response = asyncio.run(go())
    assert (response.status_code, response.json()) == (
        401,
        aksk_failure("signed header x-sdk-date is not in the request"),
    )


def test_token_auth_still_works_beside_access_keys() -> None:
    app = create_app(aksk_state(), clock=lambda: NOW)
    assert send(app, "GET", MODELS).status_code == 200
    refused = send(app, "GET", MODELS, headers={"X-Auth-Token": "wrong"})
    assert (refused.status_code, refused.json()) == (401, UNAUTHORIZED)


@pytest.mark.parametrize(
    "fabric",
    [
        {"access_keys": {"AK": 1}},
        {"access_keys": ["AK"]},
        {"access_keys": {"AK": "SK"}, "security_tokens": {"OTHER": "token"}},
    ],
)
def test_malformed_credentials_are_refused_on_load(fabric: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="emulator state: fabric"):
        create_app({"fabric": fabric})


# -- plumbing: request ids, the log, admin routes ---------------------------------------------


def test_every_response_has_a_fresh_request_id() -> None:
    app = create_app(small_state())
    responses = [
        send(app, "GET", MODELS),
        send(app, "GET", MODELS, headers={}),
        send(app, "DELETE", f"{MODELS}/{EMPTY}"),
        send(app, "GET", "/_emulator/state"),
        send(app, "GET", "/not/an/api"),
    ]
    ids = [r.headers["x-request-id"] for r in responses]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == len(ids)


def test_request_log_records_requests_in_order_without_credentials() -> None:
    app = create_app(small_state())
    send(app, "GET", MODELS, params={"limit": 5, "name": "bot"})
    send(app, "DELETE", f"{MODELS}/{EMPTY}")
    send(app, "GET", "/_emulator/state")  # admin routes are not logged
    log = emulator_of(app).requests
    assert [(r["method"], r["path"], r["query"], r["status"]) for r in log] == [
        ("GET", MODELS, {"limit": "5", "name": "bot"}, 200),
        ("DELETE", f"{MODELS}/{EMPTY}", {}, 200),
    ]
    assert log[0]["time"] <= log[1]["time"] <= time.time()
    assert log[0]["auth"] == "X-Auth-Token"
    assert TOKEN not in json.dumps(log)
    served = send(app, "GET", "/_emulator/requests").json()
    assert [r["request_id"] for r in served] == [r["request_id"] for r in log]
    assert send(app, "POST", "/_emulator/reset-requests").json() == {"cleared": 2}
    assert emulator_of(app).requests == []


def test_admin_state_route_serves_the_live_state() -> None:
    app = create_app(small_state())
    send(app, "DELETE", f"{MODELS}/{EMPTY}")
    response = send(app, "GET", "/_emulator/state", headers={})
    assert response.headers["content-type"] == "application/json"
    assert response.json() == emulator_of(app).state
    assert len(response.json()["fabric"]["workspaces"][WS]["models"]) == 3


def test_an_emulator_bug_answers_the_platform_500_and_still_raises() -> None:
    app = create_app(small_state())
    emulator_of(app).state["fabric"]["workspaces"][WS]["models"] = None  # breaks the handler

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=FABRIC, headers=AUTH) as client:
            return await client.get(MODELS)

    response = asyncio.run(go())
    assert response.status_code == 500
    assert response.json() == {"error_code": "common.00000500", "error_msg": "internal error"}
    assert "x-request-id" in response.headers
    with pytest.raises(TypeError):
        send(app, "GET", MODELS)


# -- faults and latency --------------------------------------------------------------------


def fault_run(seed: int) -> tuple[list[int], Starlette]:
    """Try to delete each of 40 unused versions once, at fail_rate 0.5."""
    versions = [
        version(f"{i:08d}-0000-4000-8000-000000000000", f"v{i}", "2024-01-01T00:00:00Z")
        for i in range(40)
    ]
    state = {
        "fabric": {
            "tokens": [TOKEN],
            "workspaces": {
                WS: {"models": [model("m-many", "many", "2024-01-01T00:00:00Z", versions)]}
            },
        }
    }
    app = create_app(state, fail_rate=0.5, seed=seed)

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=FABRIC, headers=AUTH) as client:
            statuses = []
            for v in versions:
                response = await client.delete(f"{MODELS}/m-many/versions/{v['id']}")
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert response.headers["retry-after"] == "1"
                    assert response.json() == {
                        "error_code": "APIGW.0308",
                        "error_msg": "The throttling threshold has been reached: policy user "
                        "over ratelimit,limit:100,time:1 second",
                    }
                elif response.status_code == 408:
                    assert response.json() == {
                        "error_code": "common.00000408",
                        "error_msg": "timeout exception occurred",
                    }
                elif response.status_code == 500:
                    assert response.json() == {
                        "error_code": "common.00000500",
                        "error_msg": "internal error",
                    }
                assert "x-request-id" in response.headers
            admin = await client.get("/_emulator/state")
            assert admin.status_code == 200
            return statuses

    return asyncio.run(go()), app


def test_faults_are_reproducible_with_a_seed_and_never_mutate() -> None:
    first, app = fault_run(seed=7)
    second, _ = fault_run(seed=7)
    assert first == second
    assert set(first) == {202, 500, 408, 429}
    left = {v["name"] for v in fabric_models(app)[0]["versions"]}
    faulted = {f"v{i}" for i, status in enumerate(first) if status != 202}
    assert left == faulted
    assert [r["status"] for r in emulator_of(app).requests] == first


def test_admin_routes_are_never_faulted_or_delayed() -> None:
    app = create_app(small_state(), fail_rate=1, latency_ms=1000, seed=1)
    started = time.monotonic()
    assert send(app, "GET", "/_emulator/requests").status_code == 200
    assert send(app, "POST", "/_emulator/reset-requests").status_code == 200
    assert time.monotonic() - started < 0.5
    emulator_of(app).latency_ms = 0
    assert send(app, "GET", MODELS).status_code in {500, 408, 429}


def test_latency_delays_api_requests() -> None:
    app = create_app(small_state(), latency_ms=40, latency_jitter_ms=10, seed=3)
    started = time.monotonic()
    assert send(app, "GET", MODELS).status_code == 200
    assert time.monotonic() - started >= 0.04


@pytest.mark.parametrize(
    ("fail_rate", "latency_ms", "jitter_ms"), [(1.5, 0, 0), (-0.1, 0, 0), (0, -1, 0), (0, 0, -1)]
)
def test_bad_options_are_refused(fail_rate: float, latency_ms: float, jitter_ms: float) -> None:
    with pytest.raises(ValueError):
        create_app(
            small_state(),
            fail_rate=fail_rate,
            latency_ms=latency_ms,
            latency_jitter_ms=jitter_ms,
        )


# -- the state file ------------------------------------------------------------------------


def test_state_file_defaults_are_filled_and_other_sections_kept(tmp_path: Path) -> None:
    path = tmp_path / "seed.json"
    path.write_text(
        json.dumps(
            {
                "fabric": {
                    "tokens": [TOKEN],
                    "workspaces": {
                        WS: {
                            "models": [{"name": "bare", "versions": [{"name": "v1"}]}],
                            "service_instances": [{"source": {"id": "m-x"}}],
                        }
                    },
                },
                "elsewhere": {"anything": 1},
            }
        ),
        encoding="utf-8",
    )
    app = create_app(path)
    state = emulator_of(app).state
    assert state["elsewhere"] == {"anything": 1}
    stored = state["fabric"]["workspaces"][WS]["models"][0]
    assert stored["visibility"] == "PRIVATE"
    assert stored["update_user"] == stored["create_user"]
    assert len(stored["versions"][0]["id"]) == 36
    assert create_app(path).state.emulator.state == state  # derived ids are stable
    body = send(app, "GET", MODELS).json()
    assert body["models"][0]["current_version"]["name"] == "v1"
    services = send(app, "GET", SERVICES).json()["service_instances"]
    assert services[0]["status"] == "RUNNING"
    assert send(app, "GET", "/v1/base-models").json() == {"total": 0, "models": []}


@pytest.mark.parametrize(
    "fabric",
    [
        {"workspaces": {WS: {"models": [{"id": "m1"}]}}},  # no name
        {"workspaces": {WS: {"models": [{"name": "a", "id": "bad id"}]}}},
        {
            "workspaces": {
                WS: {"models": [{"name": "a", "versions": [{"name": "v", "id": "short"}]}]}
            }
        },
        {"workspaces": {WS: {"models": [{"name": "a", "id": "x"}, {"name": "b", "id": "x"}]}}},
        {"workspaces": {WS: {"models": [{"name": "a", "create_time": "yesterday"}]}}},
        {"tokens": "one"},
    ],
)
def test_malformed_state_is_refused_on_load(fabric: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="emulator state"):
        create_app({"fabric": fabric})


def test_save_writes_the_live_state(tmp_path: Path) -> None:
    app = create_app(small_state())
    send(app, "DELETE", f"{MODELS}/{SUPPORT}/versions/{V7}")
    emulator_of(app).save(tmp_path / "out.json")
    reloaded = create_app(tmp_path / "out.json")
    assert emulator_of(reloaded).state == emulator_of(app).state


# -- over a real socket --------------------------------------------------------------------


@pytest.mark.loopback
def test_emulator_over_a_loopback_socket() -> None:
    app = create_app(small_state())
    with (
        serve_over_loopback(app) as base_url,
        httpx.Client(base_url=base_url, trust_env=False) as client,
    ):
        listing = client.get(MODELS, headers=AUTH, params={"limit": 100})
        assert listing.status_code == 200
        assert listing.json()["total"] == 4
        assert len(listing.headers["x-request-id"]) == 32
        deleted = client.delete(f"{MODELS}/{EMPTY}", headers=AUTH)
        assert (deleted.status_code, deleted.content) == (200, b"")
        refused = client.delete(f"{MODELS}/{SUPPORT}", headers=AUTH)
        assert refused.json()["error_code"] == "dataartsfabric.11000012"
        assert client.get(MODELS).json() == UNAUTHORIZED
        assert len(client.get("/_emulator/requests").json()) == 4


# -- layering ------------------------------------------------------------------------------


def test_emulator_imports_nothing_of_reconcile_outside_itself() -> None:
    package = Path(__file__).resolve().parent.parent / "reconcile" / "emulator"
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0 or node.level == 1, f"{source.name}: {node.module}"
                names = [node.module or ""] if node.level == 0 else []
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name == "reconcile" or name.startswith("reconcile."):
                    assert name.startswith("reconcile.emulator"), f"{source.name} imports {name}"
