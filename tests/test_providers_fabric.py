"""The Fabric provider: pure parsing of recorded responses, error mapping, complete listings,
retries and deletes, against recorded JSON and the emulator in-process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from reconcile.emulator import create_app
from reconcile.errors import (
    AuthError,
    InUseError,
    ListingIncompleteError,
    NotFoundError,
    ProviderError,
)
from reconcile.providers.adaptive import FixedLimit
from reconcile.providers.fabric import (
    FabricProvider,
    map_error,
    parse_models_page,
    parse_services_page,
    parse_versions_page,
)
from reconcile.providers.failures import platform_error
from reconcile.providers.http import Http, RetryPolicy

TOKEN = "fabric-test-token"
WS = "ws-test"
BASE = "https://fabric.example.test"

RECORDED_MODELS = {
    "total": 2,
    "models": [
        {
            "id": "a1b2c3",
            "name": "support-bot",
            "description": "assistant",
            "type": "LLM_MODEL",
            "visibility": "PRIVATE",
            "create_time": "2023-05-30T12:24:30.401Z",
            "update_time": "2023-05-30T12:24:30.401Z",
            "current_version": None,
            "create_user": {"domain_name": "acme", "user_name": "alice"},
        },
        {
            "id": "preset-1",
            "name": "qwen-72b",
            "visibility": "PUBLIC",
            "create_time": "2023-01-01T00:00:00.000Z",
        },
    ],
}
VERSION_ID = "0123456789abcdef0123456789abcdef"
RECORDED_VERSIONS = {
    "total": 1,
    "versions": [
        {
            "id": VERSION_ID,
            "name": "v 1.0",
            "cap_white_list": ["a"],
            "description": "first",
            "config": {
                "llm_model_config": {"base_model_type": "QWEN_2_72B", "model_path": "obs://b/d/"}
            },
            "create_time": "2024-06-04T18:38:59+08:00",
            "create_user": {"user_name": "alice"},
        }
    ],
}


def test_parse_models_marks_public_models_as_presets_and_keeps_the_raw_record() -> None:
    total, models = parse_models_page(RECORDED_MODELS)
    assert total == 2
    assert [(m.id, m.name, m.preset) for m in models] == [
        ("a1b2c3", "support-bot", False),
        ("preset-1", "qwen-72b", True),
    ]
    assert models[0].attributes == {"description": "assistant"}
    assert models[0].created == datetime(2023, 5, 30, 12, 24, 30, 401000, tzinfo=UTC)
    assert models[0].raw.value() == RECORDED_MODELS["models"][0]


def test_parse_versions_reads_the_llm_config() -> None:
    total, versions = parse_versions_page(RECORDED_VERSIONS, "a1b2c3")
    assert total == 1
    (version,) = versions
    assert version.name == "v 1.0" and version.model_id == "a1b2c3"
    assert version.attributes == {
        "description": "first",
        "base_model_type": "QWEN_2_72B",
        "model_path": "obs://b/d/",
    }
    assert version.created is not None and version.created.utcoffset() is not None


def test_parse_services_drops_deleted_instances() -> None:
    payload = {
        "total": 2,
        "service_instances": [
            {
                "id": "s1",
                "name": "a",
                "status": "RUNNING",
                "source": {"id": "m", "version_id": "v"},
            },
            {
                "id": "s2",
                "name": "b",
                "status": "DELETED",
                "source": {"id": "m", "version_id": "v"},
            },
        ],
    }
    total, services = parse_services_page(payload)
    assert total == 2
    assert [(s.id, s.model_id, s.version_id) for s in services] == [("s1", "m", "v")]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"models": []}, "field 'total' should be an integer, got nothing"),
        ({"total": "3", "models": []}, "field 'total' should be an integer, got a string"),
        ({"total": 1, "models": {}}, "field 'models' should be an array, got an object"),
        ({"total": 1, "models": [{"name": "x"}]}, "models[0]: field 'id' should be a string"),
        ({"total": 1, "models": ["x"]}, "models[0]: expected an object, got a string"),
        ({"total": 1, "models": [{"id": "a/b", "name": "x"}]}, "refusing to use model id 'a/b'"),
        (
            {"total": 1, "models": [{"id": "a", "name": "x", "create_time": "yesterday"}]},
            "'create_time' is not an ISO 8601 time",
        ),
        ([], "expected an object, got an array"),
    ],
)
def test_a_response_of_the_wrong_shape_is_an_error_naming_the_call(
    payload: Any, message: str
) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_models_page(payload)
    assert "list models" in str(caught.value)
    assert message in str(caught.value)


def test_a_malformed_version_id_in_a_listing_is_refused() -> None:
    payload = {"total": 1, "versions": [{"id": "short", "name": "v1"}]}
    with pytest.raises(ProviderError, match="refusing to use version id 'short'"):
        parse_versions_page(payload, "m1")


def _response(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body, headers={"X-Request-Id": "req-1"})


@pytest.mark.parametrize(
    ("status", "body", "kind", "text"),
    [
        (
            400,
            {
                "error_code": "common.01000001",
                "error_msg": "failed to read http request, please check your input, code: 400, "
                "reason: Type mismatch., cause: TypeMismatchException",
            },
            ProviderError,
            "HTTP 400 common.01000001: failed to read http request",
        ),
        (
            401,
            {"error_code": "APIG.1002", "error_msg": "Incorrect token or token resolution failed"},
            AuthError,
            "HTTP 401 APIG.1002: Incorrect token or token resolution failed",
        ),
        (
            403,
            {
                "error": {"code": "403", "message": "X-Auth-Token is invalid in the request"},
                "error_code": 403,
                "error_msg": "X-Auth-Token is invalid in the request",
                "title": "Forbidden",
            },
            AuthError,
            "HTTP 403 403: X-Auth-Token is invalid in the request",
        ),
        (
            404,
            {"error_code": "common.01000001", "error_msg": "response status exception, code: 404"},
            NotFoundError,
            "HTTP 404 common.01000001",
        ),
        (
            408,
            {"error_code": "common.00000408", "error_msg": "timeout exception occurred"},
            ProviderError,
            "HTTP 408 common.00000408: timeout exception occurred",
        ),
        (
            500,
            {"error_code": "common.00000500", "error_msg": "internal error"},
            ProviderError,
            "HTTP 500 common.00000500: internal error",
        ),
        (
            400,
            {
                "error_code": "dataartsfabric.11000012",
                "error_msg": "model version v is used by service instance(s): s1",
                "solution_msg": "Delete the service instance(s) s1 first.",
            },
            InUseError,
            "dataartsfabric.11000012",
        ),
    ],
)
def test_platform_error_bodies_become_provider_errors(
    status: int, body: dict[str, Any], kind: type[ProviderError], text: str
) -> None:
    error = platform_error(map_error(_response(status, body), body))
    assert type(error) is kind
    assert text in str(error)
    assert "req-1" in str(error)
    if "solution_msg" in body:
        assert error.solution == body["solution_msg"]
        assert body["solution_msg"] in str(error)  # the platform's fix reaches the user


# -- against the emulator -----------------------------------------------------------------------


def _state(models: int, versions_of_first: int = 1) -> dict[str, Any]:
    items = []
    for index in range(models):
        count = versions_of_first if index == 0 else 1
        items.append(
            {
                "id": f"m-{index:04d}",
                "name": f"model-{index:04d}",
                "create_time": f"2024-01-01T00:{index // 60 % 60:02d}:{index % 60:02d}.000Z",
                "versions": [
                    {
                        "id": f"{index:08d}-0000-4000-8000-{v:012d}",
                        "name": f"v{v}",
                        "create_time": f"2024-02-01T00:00:{v % 60:02d}.000Z",
                    }
                    for v in range(count)
                ],
            }
        )
    return {"fabric": {"tokens": [TOKEN], "workspaces": {WS: {"models": items}}}}


def _provider(
    transport: httpx.AsyncBaseTransport, *, retry: RetryPolicy | None = None
) -> FabricProvider:
    client = httpx.AsyncClient(transport=transport, headers={"X-Auth-Token": TOKEN})
    http = Http(
        client,
        provider="fab",
        map_error=map_error,
        limit=FixedLimit(16),
        retry=retry or RetryPolicy(base_delay=0.0),
        sleep=_no_sleep,
    )
    return FabricProvider(
        "fab", workspace_id=WS, http=http, services_http=http, endpoint=BASE, services_endpoint=BASE
    )


async def _no_sleep(_: float) -> None:
    return None


def test_fabric_listing_of_250_models_and_a_150_version_model_sees_each_object_once() -> None:
    app = create_app(_state(250, versions_of_first=150))

    async def scenario() -> Any:
        provider = _provider(httpx.ASGITransport(app=app))
        try:
            return await provider.snapshot()
        finally:
            await provider.aclose()

    snapshot = asyncio.run(scenario())
    ids = [model.id for model in snapshot.models]
    assert len(ids) == len(set(ids)) == 250
    first = next(model for model in snapshot.models if model.id == "m-0000")
    assert len({version.id for version in first.versions}) == 150
    requests = app.state.emulator.requests
    model_pages = [r for r in requests if r["path"].endswith("/models")]
    assert sorted(int(r["query"]["offset"]) for r in model_pages) == [0, 100, 200]
    assert all(r["query"]["limit"] == "100" for r in model_pages)
    version_pages = [r for r in requests if r["path"].endswith("/m-0000/versions")]
    assert len(version_pages) == 2


def _recorded(pages: dict[int, dict[str, Any]]) -> httpx.MockTransport:
    """Serve models pages by offset from recorded payloads; versions and services empty."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json=pages[int(request.url.params["offset"])])
        if request.url.path.endswith("/versions"):
            return httpx.Response(200, json={"total": 0, "versions": []})
        return httpx.Response(200, json={"total": 0, "service_instances": []})

    return httpx.MockTransport(handler)


def _models(start: int, count: int) -> list[dict[str, Any]]:
    return [{"id": f"m{i}", "name": f"n{i}"} for i in range(start, start + count)]


@pytest.mark.parametrize(
    ("pages", "message"),
    [
        (
            {0: {"total": 150, "models": _models(0, 100)}, 100: {"total": 150, "models": []}},
            "announced 150 items but the pages held 100",
        ),
        (
            {
                0: {"total": 150, "models": _models(0, 100)},
                100: {"total": 151, "models": _models(100, 51)},
            },
            "the total changed from 150 to 151",
        ),
        (
            {
                0: {"total": 200, "models": _models(0, 100)},
                100: {"total": 200, "models": _models(99, 100)},
            },
            "an item appeared on two pages",
        ),
    ],
)
def test_an_inconsistent_listing_fails_closed(pages: dict[int, Any], message: str) -> None:
    async def scenario() -> None:
        provider = _provider(_recorded(pages))
        try:
            await provider.snapshot()
        finally:
            await provider.aclose()

    with pytest.raises(ListingIncompleteError, match=message):
        asyncio.run(scenario())


def _gated(
    pages: dict[int, dict[str, Any]], gate: Callable[[httpx.Request], Any]
) -> tuple[httpx.MockTransport, list[str]]:
    """Models pages by offset (page 100 answered once `gate` says so), versions empty or as
    `gate` says; the paths asked for, in order."""
    asked: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        answer = await gate(request)
        if answer is not None:
            return answer
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json=pages[int(request.url.params["offset"])])
        if request.url.path.endswith("/versions"):
            return httpx.Response(200, json={"total": 0, "versions": []})
        return httpx.Response(200, json={"total": 0, "service_instances": []})

    return httpx.MockTransport(handler), asked


_THREE_PAGES = {
    offset: {"total": 250, "models": _models(offset, min(100, 250 - offset))}
    for offset in (0, 100, 200)
}


def test_versions_are_listed_as_each_models_page_arrives_and_kept_in_listing_order() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        versions_asked = asyncio.Event()

        async def gate(request: httpx.Request) -> httpx.Response | None:
            if request.url.path.endswith("/m0/versions"):
                versions_asked.set()
            if request.url.params.get("offset") == "100" and request.url.path.endswith("/models"):
                # Answered only once versions of the first page's models were asked for: a
                # listing that waits for every page first would never get here.
                await asyncio.wait_for(versions_asked.wait(), timeout=5)
            return None

        transport, asked = _gated(_THREE_PAGES, gate)
        provider = _provider(transport)
        try:
            snapshot = await provider.snapshot()
        finally:
            await provider.aclose()
        return [model.id for model in snapshot.models], asked

    ids, asked = asyncio.run(scenario())
    assert ids == [f"m{i}" for i in range(250)]
    assert sum(path.endswith("/versions") for path in asked) == 250


def test_a_failed_version_listing_stops_the_models_pages_and_every_other_listing() -> None:
    async def scenario() -> list[str]:
        async def gate(request: httpx.Request) -> httpx.Response | None:
            if request.url.path.endswith("/m7/versions"):
                return httpx.Response(400, json={"error_code": "common.00000400", "error_msg": "x"})
            if request.url.params.get("offset") in ("100", "200"):
                await asyncio.Event().wait()  # never answered: only a cancel ends it
            return None

        transport, asked = _gated(_THREE_PAGES, gate)
        provider = _provider(transport)
        try:
            with pytest.raises(ProviderError, match="list versions of model m7"):
                await asyncio.wait_for(provider.snapshot(), timeout=5)
        finally:
            await provider.aclose()
        return asked

    asked = asyncio.run(scenario())
    # Of the later pages' models, no version listing was sent (their pages never came).
    assert not any(path.endswith(("/m100/versions", "/m200/versions")) for path in asked)


def _flaky(statuses: list[int]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = statuses[min(len(seen) - 1, len(statuses) - 1)]
        if status == 200:
            return httpx.Response(200, json={"total": 0, "models": []})
        return httpx.Response(status, json={"error_code": "common.00000500", "error_msg": "x"})

    return httpx.MockTransport(handler), seen


def _list_models(transport: httpx.MockTransport) -> Callable[[], None]:
    async def scenario() -> None:
        provider = _provider(transport)
        try:
            await provider._list_models()
        finally:
            await provider.aclose()

    return lambda: asyncio.run(scenario())


def test_transient_failures_are_retried() -> None:
    transport, seen = _flaky([500, 429, 200])
    _list_models(transport)()
    assert len(seen) == 3


def test_client_errors_are_not_retried() -> None:
    transport, seen = _flaky([400, 200])
    with pytest.raises(ProviderError, match="HTTP 400"):
        _list_models(transport)()
    assert len(seen) == 1


def test_retries_give_up_after_the_configured_attempts() -> None:
    transport, seen = _flaky([503])
    with pytest.raises(ProviderError, match="HTTP 503"):
        _list_models(transport)()
    assert len(seen) == RetryPolicy().attempts


def test_deletes_send_validated_encoded_ids_and_map_the_in_use_refusal() -> None:
    state = _state(2, versions_of_first=2)
    first = state["fabric"]["workspaces"][WS]["models"][0]
    used = first["versions"][0]["id"]
    state["fabric"]["workspaces"][WS]["service_instances"] = [
        {
            "id": "svc-1",
            "name": "prod",
            "status": "RUNNING",
            "source": {"id": "m-0000", "version_id": used},
        }
    ]
    app = create_app(state)

    async def scenario() -> None:
        provider = _provider(httpx.ASGITransport(app=app))
        try:
            with pytest.raises(InUseError) as caught:
                await provider.delete_version("m-0000", used)
            assert caught.value.solution and "svc-1" in caught.value.solution
            await provider.delete_version("m-0000", first["versions"][1]["id"])
            await provider.delete_model("m-0001")
            with pytest.raises(NotFoundError):
                await provider.delete_model("m-0001")
            with pytest.raises(ProviderError, match="refusing to use model id"):
                await provider.delete_model("../../other")
        finally:
            await provider.aclose()

    asyncio.run(scenario())
    models = app.state.emulator.state["fabric"]["workspaces"][WS]["models"]
    assert [m["id"] for m in models] == ["m-0000"]
    assert [v["id"] for v in models[0]["versions"]] == [used]
    sent = [r for r in app.state.emulator.requests if r["method"] == "DELETE"]
    assert [r["status"] for r in sent] == [400, 202, 200, 404]
    assert not any("other" in r["path"] for r in sent)


def test_recorded_payloads_round_trip_through_json() -> None:
    """Parsers take exactly what json.loads gives (no httpx objects needed)."""
    total, models = parse_models_page(json.loads(json.dumps(RECORDED_MODELS)))
    assert total == 2 and len(models) == 2
