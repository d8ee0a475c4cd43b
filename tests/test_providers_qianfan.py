"""The Qianfan provider: pure parsing of recorded responses (V1 errors with HTTP 200, V2 error
bodies), error mapping, complete listings and deletes against the emulator in-process, and a
plan/apply round trip over a loopback socket that counts every call the emulator received."""

from __future__ import annotations

import asyncio
import copy
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconcile.cli import main
from reconcile.emulator import create_app
from reconcile.errors import (
    AuthError,
    InUseError,
    ListingIncompleteError,
    NotFoundError,
    ProviderError,
    ReconcileError,
)
from reconcile.manifest import load_manifest
from reconcile.model import LiveModel, LiveVersion, ServiceUse
from reconcile.providers.adaptive import FixedLimit
from reconcile.providers.failures import platform_error
from reconcile.providers.http import Http, RetryPolicy
from reconcile.providers.qianfan import (
    BATCH_SIZE,
    PAGE_SIZE,
    QianfanProvider,
    attach_services,
    bce_signer,
    map_error,
    parse_model_detail,
    parse_model_sets_page,
    parse_services_page,
    v1_result,
    v2_result,
)
from reconcile.wiring import Options, open_providers
from tests.conftest import serve_over_loopback

AK = "qianfan-test-ak"
SK = "qianfan-test-sk"
BASE = "https://qianfan.example.test"
REPO = "/wenxinworkshop/modelrepo"

# -- recorded answers (shapes of API.md section 2 and seeds 001/002) ---------------------------

RECORDED_SETS_PAGE = {
    "requestId": "1bef3f87-c5b2-4419-936b-50f9884f10d4",
    "result": {
        "customModelSetList": [
            {
                "modelSetId": "am-g73j3faikzpz",
                "modelSetName": "support-bot",
                "modelType": "Text2Text",
                "labels": ["cs"],
                "createTime": "2024-06-04T18:38:59+08:00",
                "modifyTime": "2024-06-05T10:00:00+08:00",
                "modelCount": 2,
                "modelIds": ["amv-k1a2b3c4d5e6", "amv-k7a8b9c0d1e2"],
                "modelNames": ["V1", "V2"],
            },
            {
                "modelSetId": "am-empty0000001",
                "modelSetName": "scratch",
                "modelType": "Text2Text",
                "labels": [],
                "createTime": "2024-06-01T08:00:00+08:00",
                "modifyTime": "2024-06-01T08:00:00+08:00",
                "modelCount": 0,
                "modelIds": [],
                "modelNames": [],
            },
        ],
        "pageInfo": {
            "marker": "",
            "maxKeys": 2,
            "isTruncated": True,
            "nextMarker": "am-next00000001",
        },
    },
}

RECORDED_DETAIL = {
    "log_id": "2443985832",
    "result": {
        "modelId": 585,
        "modelIdStr": "am-g73j3faikzpz",
        "modelName": "support-bot",
        "source": "UserCreate",
        "modelType": "Text2Text",
        "createUser": "alice",
        "createTime": "2024-06-04T18:38:59+08:00",
        "modifyTime": "2024-06-05T10:00:00+08:00",
        "description": "customer support",
        "modelVersionList": [
            {
                "modelVersionId": 7001,
                "modelVersionIdStr": "amv-k1a2b3c4d5e6",
                "version": "V1",
                "sourceType": "Train",
                "state": "Ready",
                "description": "first",
                "createTime": "2024-06-04T18:38:59+08:00",
                "modifyTime": "2024-06-04T18:38:59+08:00",
            },
            {
                "modelVersionId": 7002,
                "modelVersionIdStr": "amv-k7a8b9c0d1e2",
                "version": "V2",
                "sourceType": "PlatformPreset",
                "state": "Ready",
                "createTime": "2024-06-05T10:00:00+08:00",
                "modifyTime": "2024-06-05T10:00:00+08:00",
            },
        ],
    },
}

RECORDED_SERVICES = {
    "requestId": "2bef3f87-c5b2-4419-936b-50f9884f10d4",
    "result": {
        "serviceList": [
            {
                "serviceId": "svco-live",
                "name": "support-live",
                "modelSetId": "am-g73j3faikzpz",
                "modelId": "amv-k7a8b9c0d1e2",
                "runStatus": "Serving",
            },
            {
                "serviceId": "svco-stopped",
                "name": "support-old",
                "modelSetId": "",
                "modelId": "amv-k1a2b3c4d5e6",
                "runStatus": "Stopped",
            },
            {
                "serviceId": "svco-preset",
                "name": "ernie",
                "modelSetId": "am-system",
                "modelId": "amv-system",
                "runStatus": "Serving",
            },
        ],
        "pageInfo": {"marker": "", "maxKeys": 100, "isTruncated": False, "nextMarker": ""},
    },
}


def _listed_support_bot() -> LiveModel:
    models, _ = parse_model_sets_page(RECORDED_SETS_PAGE)
    return models[0]


def test_parse_model_sets_page_reads_version_ids_names_and_the_next_marker() -> None:
    models, marker = parse_model_sets_page(RECORDED_SETS_PAGE)
    assert marker == "am-next00000001"
    assert [(m.id, m.name, [(v.id, v.name) for v in m.versions]) for m in models] == [
        (
            "am-g73j3faikzpz",
            "support-bot",
            [("amv-k1a2b3c4d5e6", "V1"), ("amv-k7a8b9c0d1e2", "V2")],
        ),
        ("am-empty0000001", "scratch", []),
    ]
    assert models[0].created is not None and models[0].created.utcoffset() is not None
    assert models[0].raw.value() == RECORDED_SETS_PAGE["result"]["customModelSetList"][0]  # type: ignore[index]


def test_a_model_sets_page_makes_the_records_validation_would() -> None:
    """The page's records are built without validation (`trusted`): each equals, and dumps as,
    the record pydantic validates from the same values."""
    for model in parse_model_sets_page(RECORDED_SETS_PAGE)[0]:
        validated = LiveModel.model_validate(model.model_dump())
        assert model == validated
        assert model.model_dump(mode="json") == validated.model_dump(mode="json")


def test_the_last_page_has_no_next_marker() -> None:
    payload = json.loads(json.dumps(RECORDED_SETS_PAGE))
    payload["result"]["pageInfo"] = {"isTruncated": False, "nextMarker": ""}
    assert parse_model_sets_page(payload)[1] is None


def test_parse_model_detail_gives_each_version_its_time_description_and_preset_flag() -> None:
    model = parse_model_detail(RECORDED_DETAIL, _listed_support_bot())
    assert model.attributes == {"description": "customer support"}
    assert not model.preset
    first, second = model.versions
    assert (first.name, first.attributes, first.preset) == ("V1", {"description": "first"}, False)
    assert first.created == datetime(2024, 6, 4, 10, 38, 59, tzinfo=UTC)
    assert second.preset  # sourceType PlatformPreset: never in scope
    assert model.raw.value()["modelId"] == 585
    assert model.raw.value()["modelSetName"] == "support-bot"
    assert second.raw.value() == RECORDED_DETAIL["result"]["modelVersionList"][1]  # type: ignore[index]


def test_a_detail_that_disagrees_with_the_listing_fails_closed() -> None:
    payload = json.loads(json.dumps(RECORDED_DETAIL))
    payload["result"]["modelVersionList"].pop()
    with pytest.raises(ListingIncompleteError, match="changed during the listing"):
        parse_model_detail(payload, _listed_support_bot())


def test_a_detail_of_another_set_is_refused() -> None:
    payload = json.loads(json.dumps(RECORDED_DETAIL))
    payload["result"]["modelIdStr"] = "am-other"
    with pytest.raises(ProviderError, match="model detail of am-g73j3faikzpz: the answer is about"):
        parse_model_detail(payload, _listed_support_bot())


def test_every_service_counts_whatever_its_status_and_is_tied_to_the_listed_set() -> None:
    services, marker = parse_services_page(RECORDED_SERVICES)
    assert marker is None
    assert [(s.id, s.status) for s in services] == [
        ("svco-live", "Serving"),
        ("svco-stopped", "Stopped"),
        ("svco-preset", "Serving"),
    ]
    listed = parse_model_detail(RECORDED_DETAIL, _listed_support_bot())
    attached = attach_services(services, [listed])
    # The stopped service named no set: the listing knows which set holds its version. The
    # preset's service uses nothing of ours.
    assert [(s.id, s.model_id, s.version_id) for s in attached] == [
        ("svco-live", "am-g73j3faikzpz", "amv-k7a8b9c0d1e2"),
        ("svco-stopped", "am-g73j3faikzpz", "amv-k1a2b3c4d5e6"),
    ]


def test_a_service_naming_only_a_listed_set_holds_that_set() -> None:
    service = ServiceUse(id="svco-x", name="x", status="New", model_id="am-a")
    model = LiveModel(
        id="am-a", name="a", versions=(LiveVersion(id="amv-1", name="V1", model_id="am-a"),)
    )
    assert attach_services([service], [model]) == [service]


# -- errors in bodies ----------------------------------------------------------------------------


def test_a_v1_error_comes_with_http_200_and_is_an_error() -> None:
    """Seed 001: `{"error_code": 500001, "error_msg": "param invalid"}` with HTTP 200."""
    body = {"log_id": "2443985832", "error_code": 500001, "error_msg": "param invalid"}
    with pytest.raises(ProviderError) as caught:
        v1_result(body, "batch delete model sets am-x")
    assert type(caught.value) is ProviderError
    assert str(caught.value).startswith("batch delete model sets am-x: 500001: param invalid")
    assert "2443985832" in str(caught.value)
    assert caught.value.code == "500001" and caught.value.platform_message == "param invalid"


def test_a_v1_success_is_its_result() -> None:
    assert v1_result({"log_id": "2443985832", "result": {}}, "batch delete") == {}


@pytest.mark.parametrize(
    ("body", "kind", "text"),
    [
        (
            {"requestId": "r-1", "code": "ModelInUse", "message": "Model amv-a is in use"},
            InUseError,
            "delete model amv-a: ModelInUse: Model amv-a is in use [request id r-1]",
        ),
        (
            {"requestId": "r-2", "code": "ResourceNotFound", "message": "gone"},
            NotFoundError,
            "delete model amv-a: ResourceNotFound: gone",
        ),
        ({"code": "AccessDenied", "message": "Access denied."}, AuthError, "AccessDenied"),
        ({"requestId": "r-3", "message": "no code"}, ProviderError, "?: no code"),
    ],
)
def test_a_v2_200_with_code_or_message_and_no_result_is_an_error(
    body: dict[str, Any], kind: type[ProviderError], text: str
) -> None:
    with pytest.raises(ProviderError) as caught:
        v2_result(body, "delete model amv-a")
    assert type(caught.value) is kind
    assert text in str(caught.value)


def test_a_v2_success_is_its_result() -> None:
    """Seed 002: `{"requestId": ..., "result": {}}` is a delete done."""
    assert v2_result({"requestId": "1bef3f87", "result": {}}, "delete model") == {}


@pytest.mark.parametrize(
    ("parse", "payload", "message"),
    [
        (parse_model_sets_page, [], "describe custom model sets: expected an object, got an array"),
        (
            parse_model_sets_page,
            {"requestId": "r"},
            "describe custom model sets: the answer has no",
        ),
        (
            parse_model_sets_page,
            {"result": {"customModelSetList": {}, "pageInfo": {"isTruncated": False}}},
            "describe custom model sets: field 'customModelSetList' should be an array, "
            "got an object",
        ),
        (
            parse_model_sets_page,
            {"result": {"customModelSetList": []}},
            "describe custom model sets: field 'pageInfo' should be an object, got nothing",
        ),
        (
            parse_model_sets_page,
            {"result": {"customModelSetList": [], "pageInfo": {"isTruncated": "no"}}},
            "field 'isTruncated' should be a boolean, got a string",
        ),
        (
            parse_model_sets_page,
            {"result": {"customModelSetList": [], "pageInfo": {"isTruncated": True}}},
            "isTruncated is true but there is no nextMarker",
        ),
        (
            parse_model_sets_page,
            {
                "result": {
                    "customModelSetList": [{"modelSetId": "../x", "modelSetName": "x"}],
                    "pageInfo": {"isTruncated": False},
                }
            },
            "customModelSetList[0]: refusing to use model set id '../x'",
        ),
        (
            parse_model_sets_page,
            {
                "result": {
                    "customModelSetList": [
                        {"modelSetId": "am-a", "modelSetName": "a", "modelIds": ["amv-1"]}
                    ],
                    "pageInfo": {"isTruncated": False},
                }
            },
            "modelIds and modelNames differ in length",
        ),
        (
            parse_model_sets_page,
            {
                "result": {
                    "customModelSetList": [
                        {
                            "modelSetId": "am-a",
                            "modelSetName": "a",
                            "modelIds": [7],
                            "modelNames": ["V1"],
                        }
                    ],
                    "pageInfo": {"isTruncated": False},
                }
            },
            "modelIds[0] should be a string, got an integer",
        ),
        (
            parse_model_sets_page,
            {
                "result": {
                    "customModelSetList": [
                        {"modelSetId": "am-a", "modelSetName": "a", "createTime": "yesterday"}
                    ],
                    "pageInfo": {"isTruncated": False},
                }
            },
            "'createTime' is not an ISO 8601 time",
        ),
        (
            parse_services_page,
            {"result": {"serviceList": [{"name": "x"}], "pageInfo": {"isTruncated": False}}},
            "describe services: serviceList[0]: field 'serviceId' should be a string, got nothing",
        ),
        (
            parse_services_page,
            {"result": []},
            "describe services: expected an object, got an array",
        ),
    ],
)
def test_a_response_of_the_wrong_shape_is_an_error_naming_the_call(
    parse: Any, payload: Any, message: str
) -> None:
    with pytest.raises(ProviderError) as caught:
        parse(payload)
    call = {
        parse_model_sets_page: "describe custom model sets",
        parse_services_page: "describe services",
    }
    assert str(caught.value).startswith(call[parse])
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({}, "model detail of am-g73j3faikzpz: field 'modelVersionList' should be an array"),
        (
            {"modelVersionList": [{"modelVersionIdStr": "amv-k1a2b3c4d5e6"}]},
            "modelVersionList[0]: field 'version' should be a string, got nothing",
        ),
        (
            {"modelVersionList": [{"modelVersionIdStr": 7001, "version": "V1"}]},
            "modelVersionList[0]: field 'modelVersionIdStr' should be a string, got an integer",
        ),
    ],
)
def test_a_detail_of_the_wrong_shape_is_an_error_naming_the_call(
    result: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProviderError, match=r"model detail of am-g73j3faikzpz") as caught:
        parse_model_detail({"log_id": 1, "result": result}, _listed_support_bot())
    assert message in str(caught.value)


def _response(status: int, body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_http_errors_carry_the_platform_code_message_and_a_hint() -> None:
    body = {
        "requestId": "7e2c",
        "code": "SignatureDoesNotMatch",
        "message": "The request signature we calculated does not match the signature you provided.",
    }
    error = platform_error(
        map_error(_response(400, body, **{"X-Bce-Error-Code": "SignatureDoesNotMatch"}), body)
    )
    assert type(error) is AuthError  # a ProviderError, of the class no delete counts as gone
    assert str(error).startswith("HTTP 400 SignatureDoesNotMatch: The request signature")
    assert "7e2c" in str(error)
    assert error.status == 400 and error.code == "SignatureDoesNotMatch"
    assert error.hint is not None and "secret key" in error.hint


def test_http_errors_map_to_not_found_and_in_use() -> None:
    gone = {
        "requestId": "r",
        "code": "ResourceNotFound",
        "message": "The resource am-x does not exist.",
    }
    assert type(platform_error(map_error(_response(404, gone), gone))) is NotFoundError
    used = {
        "requestId": "r",
        "code": "ModelInUse",
        "message": "Model amv-x is in use by service(s)",
    }
    assert type(platform_error(map_error(_response(400, used), used))) is InUseError


def test_an_error_without_a_json_body_is_read_from_the_headers() -> None:
    response = httpx.Response(
        403,
        text="<html>denied</html>",
        headers={"X-Bce-Error-Code": "AccessDenied", "X-Bce-Error-Message": "Access denied."},
    )
    error = platform_error(map_error(response, None))
    assert "HTTP 403 AccessDenied: Access denied." in str(error)
    assert error.hint is not None and "QianfanFullControlAccessPolicy" in error.hint


def test_the_signer_sends_x_bce_date_and_signs_host_content_type_and_date() -> None:
    sign = bce_signer(AK, SK, clock=lambda: datetime(2024, 7, 1, 12, 0, 0, tzinfo=UTC))
    request = httpx.Request(
        "POST", "http://127.0.0.1:8080/v2/model", params={"Action": "DeleteModel"}, json={}
    )
    sign(request)
    assert request.headers["x-bce-date"] == "2024-07-01T12:00:00Z"
    prefix, listed, signature = request.headers["Authorization"].rsplit("/", 2)
    assert prefix == f"bce-auth-v1/{AK}/2024-07-01T12:00:00Z/1800"
    assert listed == "content-type;host;x-bce-date"
    assert len(signature) == 64


# -- against the emulator, in-process -----------------------------------------------------------


def account(
    sets: int, *, versions: int = 1, services: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """`sets` custom model sets of `versions` versions each (newest first: set-0000), plus one
    System preset set with a served version, and one custom set holding a preset version."""
    model_sets: list[dict[str, Any]] = [
        {
            "modelSetId": f"am-set{index:04d}",
            "v1ModelId": 2000 + index,
            "modelSetName": f"set-{index:04d}",
            "description": f"set {index}",
            "createTime": f"2024-0{1 + index // 1000}-01T{23 - index // 60 % 24:02d}:"
            f"{59 - index % 60:02d}:00+08:00",
            "versions": [
                {
                    "modelId": f"amv-set{index:04d}v{number}",
                    "modelName": f"V{number}",
                    "createTime": f"2024-06-{1 + number:02d}T10:00:00+08:00",
                }
                for number in range(1, versions + 1)
            ],
        }
        for index in range(sets)
    ]
    model_sets.append(
        {
            "modelSetId": "am-system",
            "modelSetName": "ERNIE-Speed",
            "source": "System",
            "versions": [{"modelId": "amv-system", "modelName": "ERNIE-Speed-8K"}],
        }
    )
    model_sets.append(
        {
            "modelSetId": "am-mixed",
            "modelSetName": "mixed",
            "createTime": "2023-01-01T08:00:00+08:00",
            "versions": [
                {
                    "modelId": "amv-mixed1",
                    "modelName": "V1",
                    "sourceInfo": {"sourceType": "PlatformPreset"},
                },
                {"modelId": "amv-mixed2", "modelName": "V2"},
            ],
        }
    )
    return {
        "qianfan": {
            "access_keys": {AK: SK},
            "model_sets": model_sets,
            "services": [{"serviceId": "svco-ernie", "modelId": "amv-system"}, *(services or [])],
        }
    }


class Recording(httpx.AsyncBaseTransport):
    """Passes requests to the emulator in-process and keeps (path, Action, JSON body) of each."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.calls: list[tuple[str, str | None, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.url.path, request.url.params.get("Action"), body))
        return await self.inner.handle_async_request(request)

    def named(self, name: str) -> list[Any]:
        """Bodies of the calls to one V2 action or V1 path."""
        return [body for path, action, body in self.calls if name in (action, path)]


async def _no_sleep(_: float) -> None:
    return None


def provider(
    transport: httpx.AsyncBaseTransport, *, model_delete: str = "v1_batch", sk: str = SK
) -> QianfanProvider:
    http = Http(
        httpx.AsyncClient(transport=transport),
        provider="qf",
        map_error=map_error,
        limit=FixedLimit(8),
        retry=RetryPolicy(base_delay=0.0),
        sign=bce_signer(AK, sk, clock=lambda: datetime.now(UTC)),
        sleep=_no_sleep,
    )
    return QianfanProvider("qf", http=http, endpoint=BASE, model_delete=model_delete)


def run(transport: httpx.AsyncBaseTransport, scenario: Any, **options: Any) -> Any:
    async def go() -> Any:
        qf = provider(transport, **options)
        try:
            return await scenario(qf)
        finally:
            await qf.aclose()

    return asyncio.run(go())


def set_ids(app: Any) -> list[str]:
    return [s["modelSetId"] for s in app.state.emulator.state["qianfan"]["model_sets"]]


def version_ids(app: Any) -> set[str]:
    return {
        v["modelId"]
        for s in app.state.emulator.state["qianfan"]["model_sets"]
        for v in s["versions"]
    }


def test_snapshot_holds_every_custom_set_with_details_and_never_a_system_preset() -> None:
    app = create_app(account(3, versions=2))
    recording = Recording(app)
    snapshot = run(recording, lambda qf: qf.snapshot())
    assert snapshot.provider == "qf" and snapshot.provider_type == "qianfan"
    ids = [model.id for model in snapshot.models]
    assert sorted(ids) == ["am-mixed", "am-set0000", "am-set0001", "am-set0002"]
    assert "am-system" not in ids  # a System set is never listed, so never in scope
    first = next(model for model in snapshot.models if model.id == "am-set0000")
    assert first.attributes == {"description": "set 0"}
    assert [(v.name, v.created) for v in first.versions] == [
        ("V1", datetime(2024, 6, 2, 2, 0, tzinfo=UTC)),
        ("V2", datetime(2024, 6, 3, 2, 0, tzinfo=UTC)),
    ]
    mixed = next(model for model in snapshot.models if model.id == "am-mixed")
    assert [(v.id, v.preset) for v in mixed.versions] == [
        ("amv-mixed1", True),
        ("amv-mixed2", False),
    ]
    assert snapshot.services == ()  # the only service serves the System preset
    # One page, one services page, one V1 detail per set; no per-version DescribeModel.
    assert len(recording.calls) == 1 + 1 + 4
    assert recording.named("DescribeCustomModelSets") == [{"maxKeys": PAGE_SIZE}]
    assert sorted(body["modelId"] for body in recording.named(f"{REPO}/modelDetail")) == sorted(ids)
    assert recording.named("DescribeModel") == []


def test_a_listing_of_250_sets_pages_by_marker_and_sees_each_set_once() -> None:
    app = create_app(account(250))
    recording = Recording(app)
    snapshot = run(recording, lambda qf: qf.snapshot())
    ids = [model.id for model in snapshot.models]
    assert len(ids) == len(set(ids)) == 251
    pages = recording.named("DescribeCustomModelSets")
    assert pages == [
        {"maxKeys": 100},
        {"maxKeys": 100, "marker": "am-set0100"},
        {"maxKeys": 100, "marker": "am-set0200"},
    ]
    assert len(recording.named(f"{REPO}/modelDetail")) == 251


def test_details_are_asked_for_while_the_marker_pages_still_come() -> None:
    """The marker pages come one after another; each page's sets are detailed as soon as it
    arrives, not after the last page (that would add the pages' whole chain to a listing)."""
    app = create_app(account(250), latency_ms=2)
    recording = Recording(app)
    snapshot = run(recording, lambda qf: qf.snapshot())
    assert sorted(model.id for model in snapshot.models) == sorted(
        set_id for set_id in set_ids(app) if set_id != "am-system"
    )
    order = [action or path for path, action, _ in recording.calls]
    last_page = max(i for i, name in enumerate(order) if name == "DescribeCustomModelSets")
    assert order.index(f"{REPO}/modelDetail") < last_page


def test_a_bad_later_page_fails_the_listing_and_stops_its_details() -> None:
    sent: list[str] = []
    answers = _answers(
        {
            "": _page([_set(1), _set(2)], "am-s2"),
            "am-s2": {"requestId": "r", "result": {"customModelSetList": "not a list"}},
        }
    )

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        response: httpx.Response = answers(request)
        return response

    with pytest.raises(ProviderError, match="customModelSetList"):
        run(_recorded(handler), lambda qf: qf.snapshot())
    details = [path for path in sent if path.endswith("/modelDetail")]
    assert len(details) <= 2  # the first page's, at most; nothing after the failure


def test_a_failed_detail_stops_the_marker_pages_too() -> None:
    """The first failure stops the whole listing: no more pages are asked for."""
    pages = {
        ("" if n == 0 else f"am-s{n}"): _page([_set(n + 1)], f"am-s{n + 1}" if n < 49 else "")
        for n in range(50)
    }
    answers = _answers(pages)
    sent: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.002)  # a network: the listing's tasks interleave
        sent.append(request.url.params.get("Action") or request.url.path)
        if request.url.path.endswith("/modelDetail"):
            return httpx.Response(
                200, json={"log_id": "9", "error_code": 500001, "error_msg": "param invalid"}
            )
        response: httpx.Response = answers(request)
        return response

    with pytest.raises(ProviderError, match="qf: model detail of am-s1: 500001: param invalid"):
        run(httpx.MockTransport(handler), lambda qf: qf.snapshot())
    assert sent.count("DescribeCustomModelSets") < 10  # of 50 pages


def test_a_stopped_service_marks_its_version_in_use() -> None:
    state = account(
        2,
        versions=2,
        services=[{"serviceId": "svco-a", "modelId": "amv-set0001v2", "runStatus": "Stopped"}],
    )
    snapshot = run(httpx.ASGITransport(app=create_app(state)), lambda qf: qf.snapshot())
    assert [(s.id, s.model_id, s.version_id, s.status) for s in snapshot.services] == [
        ("svco-a", "am-set0001", "amv-set0001v2", "Stopped")
    ]
    assert snapshot.uses().by_version["amv-set0001v2"][0].id == "svco-a"


def _recorded(handler: Any) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


def _page(items: list[dict[str, Any]], next_marker: str = "") -> dict[str, Any]:
    return {
        "requestId": "r",
        "result": {
            "customModelSetList": items,
            "pageInfo": {"isTruncated": bool(next_marker), "nextMarker": next_marker},
        },
    }


def _set(index: int) -> dict[str, Any]:
    return {
        "modelSetId": f"am-s{index}",
        "modelSetName": f"s{index}",
        "modelIds": [],
        "modelNames": [],
    }


def _serve(pages: dict[str, dict[str, Any]], detail: Any = None) -> httpx.MockTransport:
    """Model set pages by marker ("" first), empty services, and the given (or empty) details."""
    return _recorded(_answers(pages, detail))


def _answers(pages: dict[str, dict[str, Any]], detail: Any = None) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        action = request.url.params.get("Action")
        if action == "DescribeCustomModelSets":
            return httpx.Response(200, json=pages[body.get("marker", "")])
        if action == "DescribeServices":
            return httpx.Response(
                200, json={"result": {"serviceList": [], "pageInfo": {"isTruncated": False}}}
            )
        result = detail or {"modelIdStr": body["modelId"], "modelVersionList": []}
        return httpx.Response(200, json={"log_id": 1, "result": result})

    return handler


@pytest.mark.parametrize(
    ("pages", "detail", "kind", "message"),
    [
        (
            {"": _page([_set(1), _set(2)], "am-s2"), "am-s2": _page([_set(2), _set(3)])},
            None,
            ListingIncompleteError,
            "model set am-s2 appeared on two pages",
        ),
        (
            {"": _page([_set(1)], "am-s2"), "am-s2": _page([_set(2)], "am-s2")},
            None,
            ListingIncompleteError,
            "the platform sent the marker 'am-s2' twice",
        ),
        (
            {"": _page([_set(1)])},
            {
                "modelIdStr": "am-s1",
                "modelVersionList": [{"modelVersionIdStr": "amv-new", "version": "V9"}],
            },
            ListingIncompleteError,
            "qf: model detail of am-s1: the set's versions (1) are not the ones",
        ),
        (
            {"": _page([_set(1)])},
            {"modelIdStr": "am-s1"},
            ProviderError,
            "qf: model detail of am-s1: field 'modelVersionList' should be an array, got nothing",
        ),
    ],
)
def test_an_inconsistent_or_malformed_listing_fails_closed(
    pages: dict[str, Any], detail: Any, kind: type[ProviderError], message: str
) -> None:
    with pytest.raises(kind) as caught:
        run(_serve(pages, detail), lambda qf: qf.snapshot())
    assert message in str(caught.value)


def test_a_v1_error_in_a_detail_stops_the_listing() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/modelDetail"):
            return httpx.Response(
                200, json={"log_id": "9", "error_code": 500001, "error_msg": "param invalid"}
            )
        response: httpx.Response = listing(request)
        return response

    listing = _answers({"": _page([_set(1)])})

    with pytest.raises(ProviderError, match="qf: model detail of am-s1: 500001: param invalid"):
        run(_recorded(handler), lambda qf: qf.snapshot())


def test_a_wrong_secret_key_is_one_clear_error() -> None:
    with pytest.raises(ProviderError) as caught:
        run(
            httpx.ASGITransport(app=create_app(account(1))),
            lambda qf: qf.snapshot(),
            sk="wrong-secret",
        )
    text = str(caught.value)
    assert "HTTP 400 SignatureDoesNotMatch" in text and "secret key" in text
    assert "wrong-secret" not in text


# -- deletes -------------------------------------------------------------------------------------


def test_delete_version_sends_v2_delete_model_and_maps_refusals() -> None:
    state = account(2, versions=3, services=[{"serviceId": "svco-a", "modelId": "amv-set0000v1"}])
    app = create_app(state)
    recording = Recording(app)

    async def scenario(qf: QianfanProvider) -> None:
        await qf.delete_version("am-set0000", "amv-set0000v2")
        with pytest.raises(
            InUseError, match="ModelInUse: Model amv-set0000v1 is in use by service"
        ):
            await qf.delete_version("am-set0000", "amv-set0000v1")
        with pytest.raises(NotFoundError):
            await qf.delete_version("am-set0000", "amv-set0000v2")
        with pytest.raises(ProviderError, match="refusing to use model id"):
            await qf.delete_version("am-set0000", "../amv-x")

    run(recording, scenario)
    assert recording.named("DeleteModel") == [
        {"modelId": "amv-set0000v2"},
        {"modelId": "amv-set0000v1"},
        {"modelId": "amv-set0000v2"},
    ]
    assert version_ids(app) >= {"amv-set0000v1", "amv-set0000v3"}
    assert "amv-set0000v2" not in version_ids(app)


def test_whole_sets_go_in_one_v1_batch_call() -> None:
    app = create_app(account(5))
    recording = Recording(app)
    outcomes = run(
        recording, lambda qf: qf.delete_models(["am-set0001", "am-set0002", "am-set0003"])
    )
    assert outcomes == [None, None, None]
    assert recording.calls == [
        (
            f"{REPO}/model/batchDelete",
            None,
            {"modelIDs": ["am-set0001", "am-set0002", "am-set0003"]},
        )
    ]
    assert set_ids(app) == ["am-set0000", "am-set0004", "am-system", "am-mixed"]


def test_string_and_integer_ids_are_never_sent_in_one_call() -> None:
    """Seed 001: a call's ids are all ints or all strings. V1 int ids are 2000 + index here."""
    app = create_app(account(5))
    recording = Recording(app)
    outcomes = run(
        recording, lambda qf: qf.delete_models(["am-set0001", "2002", "am-set0003", "2004"])
    )
    assert outcomes == [None, None, None, None]
    assert recording.named(f"{REPO}/model/batchDelete") == [
        {"modelIDs": ["am-set0001", "am-set0003"]},
        {"modelIDs": [2002, 2004]},
    ]
    assert set_ids(app) == ["am-set0000", "am-system", "am-mixed"]


def test_more_ids_than_a_batch_holds_are_sent_in_chunks() -> None:
    app = create_app(account(BATCH_SIZE + 5))
    recording = Recording(app)
    doomed = [f"am-set{index:04d}" for index in range(BATCH_SIZE + 3)]
    outcomes = run(recording, lambda qf: qf.delete_models(doomed))
    assert outcomes == [None] * len(doomed)
    bodies = recording.named(f"{REPO}/model/batchDelete")
    assert [len(body["modelIDs"]) for body in bodies] == [BATCH_SIZE, 3]
    assert len(set_ids(app)) == 2 + 2


def test_a_refused_batch_is_retried_id_by_id_so_each_outcome_is_right() -> None:
    """The emulator refuses a whole batch when one set is in use (all or nothing): the free set
    still goes, the used one fails, and one deleted meanwhile is reported as already gone."""
    state = account(4, services=[{"serviceId": "svco-a", "modelId": "amv-set0002v1"}])
    app = create_app(state)
    recording = Recording(app)
    outcomes = run(
        recording,
        lambda qf: qf.delete_models(["am-set0001", "am-set0002", "am-gone", "am-set0003"]),
    )
    assert outcomes[0] is None and outcomes[3] is None
    assert isinstance(outcomes[1], ProviderError) and not isinstance(outcomes[1], NotFoundError)
    assert "500002: model in use by service(s): svco-a" in str(outcomes[1])
    assert isinstance(outcomes[2], NotFoundError)
    assert "model set am-gone no longer exists" in str(outcomes[2])
    assert recording.named(f"{REPO}/model/batchDelete") == [
        {"modelIDs": ["am-set0001", "am-set0002", "am-gone", "am-set0003"]},
        {"modelIDs": ["am-set0001"]},
        {"modelIDs": ["am-set0002"]},
        {"modelIDs": ["am-gone"]},
        {"modelIDs": ["am-set0003"]},
    ]
    # Only the refusals are looked up: the in-use set exists, the other does not.
    assert recording.named("DescribeModelSet") == [
        {"modelSetId": "am-set0002"},
        {"modelSetId": "am-gone"},
    ]
    assert set_ids(app) == ["am-set0000", "am-set0002", "am-system", "am-mixed"]


def test_a_batch_refused_for_its_credentials_is_not_retried_id_by_id() -> None:
    app = create_app(account(3))
    recording = Recording(app)
    outcomes = run(recording, lambda qf: qf.delete_models(["am-set0000", "am-set0001"]), sk="bad")
    assert len(recording.calls) == 1
    assert outcomes[0] is outcomes[1]
    assert isinstance(outcomes[0], ProviderError) and outcomes[0].code == "SignatureDoesNotMatch"
    assert set_ids(app)[:3] == ["am-set0000", "am-set0001", "am-set0002"]


def test_a_malformed_id_is_refused_alone_before_any_call() -> None:
    app = create_app(account(2))
    recording = Recording(app)
    outcomes = run(recording, lambda qf: qf.delete_models(["am-set0001", "amv-x/../y"]))
    assert outcomes[0] is None
    assert isinstance(outcomes[1], ProviderError) and "refusing to use model set id" in str(
        outcomes[1]
    )
    assert recording.named(f"{REPO}/model/batchDelete") == [{"modelIDs": ["am-set0001"]}]


def test_model_delete_v2_uses_delete_model_set_one_set_a_call() -> None:
    state = account(3, services=[{"serviceId": "svco-a", "modelId": "amv-set0002v1"}])
    app = create_app(state)
    recording = Recording(app)

    async def scenario(qf: QianfanProvider) -> list[Any]:
        assert qf.model_delete_batch == 1
        outcomes = [
            await qf.delete_models([model_id])
            for model_id in ("am-set0001", "am-set0002", "am-gone")
        ]
        return [outcome for (outcome,) in outcomes]

    deleted, used, gone = run(recording, scenario, model_delete="v2")
    assert deleted is None
    assert isinstance(used, InUseError)
    assert isinstance(gone, NotFoundError)
    assert recording.named("DeleteModelSet") == [
        {"modelSetId": "am-set0001"},
        {"modelSetId": "am-set0002"},
        {"modelSetId": "am-gone"},
    ]
    assert recording.named(f"{REPO}/model/batchDelete") == []
    assert set_ids(app) == ["am-set0000", "am-set0002", "am-system", "am-mixed"]


def test_the_v1_batch_takes_as_many_sets_as_a_page_lists() -> None:
    app = create_app(account(1))
    qf = provider(httpx.ASGITransport(app=app))
    assert qf.model_delete_batch == BATCH_SIZE == PAGE_SIZE
    asyncio.run(qf.aclose())


# -- the must-show: a plan/apply round trip of 300 sets, over a loopback socket -----------------

ROUND_TRIP_SETS = 300
DECLARED = 100  # set-0000 .. set-0099 are declared; the other 200 are not
TRIMMED = 10  # set-0000 .. set-0009 declare only V3 of their three versions
SERVED = "set-0150"  # undeclared, but its V1 is served: blocked, its V2 and V3 go


def round_trip_state() -> dict[str, Any]:
    state = account(ROUND_TRIP_SETS, versions=3)
    state["qianfan"]["model_sets"] = state["qianfan"]["model_sets"][:ROUND_TRIP_SETS]
    state["qianfan"]["services"] = [
        {"serviceId": "svco-served", "name": "served", "modelId": "amv-set0150v1"}
    ]
    return state


def round_trip_manifest(tmp_path: Path, url: str) -> Path:
    lines = [
        "[providers.qf]",
        'type = "qianfan"',
        f'endpoint = "{url}"',
        'scope = "workspace"',
        'credentials = { ak_env = "RT_QIANFAN_AK", sk_env = "RT_QIANFAN_SK" }',
        "",
        "[policy]",
        "max_deletes = 1000",
        "",
    ]
    for index in range(DECLARED):
        versions = '["V3"]' if index < TRIMMED else '["V1", "V2", "V3"]'
        lines += [
            "[[models]]",
            'provider = "qf"',
            f'name = "set-{index:04d}"',
            f"versions = {versions}",
            "",
        ]
    manifest = tmp_path / "round-trip.toml"
    manifest.write_text("\n".join(lines), encoding="utf-8")
    return manifest


@pytest.mark.loopback
def test_a_300_set_round_trip_deletes_exactly_the_plan_in_the_fewest_calls(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(round_trip_state())
    emulator = app.state.emulator
    monkeypatch.setenv("RT_QIANFAN_AK", AK)
    monkeypatch.setenv("RT_QIANFAN_SK", SK)
    with serve_over_loopback(app) as url:
        manifest = round_trip_manifest(tmp_path, url)
        plan_file = tmp_path / "plan.json"
        # --parallelism 4: fewer loopback connections keep this quick; the calls do not change.
        assert main(["plan", str(manifest), "-o", str(plan_file), "-q", "--parallelism", "4"]) == 0
        plan_calls = len(emulator.requests)
        plan = json.loads(plan_file.read_text(encoding="utf-8"))
        before = {
            s["modelSetId"]: {v["modelId"] for v in s["versions"]}
            for s in emulator.state["qianfan"]["model_sets"]
        }
        assert main(["apply", str(plan_file), "-q", "--parallelism", "4"]) == 0
    out, err = capsys.readouterr()
    assert SK not in out + err

    # The plan: 199 undeclared sets whole, 2 versions of each trimmed set, the served set's free
    # versions; the served set and its V1 blocked.
    deletes = [c for c in plan["resource_changes"] if c["actions"] == ["delete"]]
    models = {c["name"] for c in deletes if c["kind"] == "model"}
    versions = {f"{c['model_name']}/{c['name']}" for c in deletes if c["kind"] == "version"}
    assert models == {f"set-{i:04d}" for i in range(DECLARED, ROUND_TRIP_SETS)} - {SERVED}
    assert versions == {f"set-{i:04d}/V{n}" for i in range(TRIMMED) for n in (1, 2)} | {
        f"{SERVED}/V2",
        f"{SERVED}/V3",
    }
    assert plan["summary"]["delete"] == 199 + 2 * TRIMMED + 2
    assert {c["address"] for c in plan["resource_changes"] if c["action_reason"] == "in_use"} == {
        f"qf/{SERVED}",
        f"qf/{SERVED}/V1",
    }

    # Exactly the planned objects are gone, and nothing else.
    expected_gone = set()
    for change in deletes:
        expected_gone.add(change["id"])
        expected_gone.update(change["version_ids"])
    after = {
        s["modelSetId"]: {v["modelId"] for v in s["versions"]}
        for s in emulator.state["qianfan"]["model_sets"]
    }
    ids_before = set(before) | set().union(*before.values())
    ids_after = set(after) | set().union(*after.values())
    assert ids_before - ids_after == expected_gone
    assert ids_after <= ids_before

    # The fewest calls: per listing, 3 pages of 100 sets, 1 services page and 1 V1 detail per
    # set (never one DescribeModel per version); the apply lists once more to refuse a stale
    # plan, then sends one V2 DeleteModel per version and the 199 sets in 2 V1 batch calls.
    listing = math.ceil(ROUND_TRIP_SETS / PAGE_SIZE) + 1 + ROUND_TRIP_SETS
    assert plan_calls == listing
    calls: dict[str, int] = {}
    for record in emulator.requests:
        key = record["query"].get("Action") or record["path"].removeprefix(REPO + "/")
        calls[key] = calls.get(key, 0) + 1
        assert record["status"] == 200
    assert calls == {
        "DescribeCustomModelSets": 2 * 3,
        "DescribeServices": 2 * 1,
        "modelDetail": 2 * ROUND_TRIP_SETS,
        "DeleteModel": 2 * TRIMMED + 2,
        "model/batchDelete": math.ceil(199 / BATCH_SIZE),
    }
    assert len(emulator.requests) == 2 * listing + 2 * TRIMMED + 2 + 2


# -- opening a provider from a manifest -----------------------------------------------------------


def _open(tmp_path: Path, credentials: str, env: dict[str, str]) -> QianfanProvider:
    manifest = tmp_path / "qf.toml"
    manifest.write_text(
        f'[providers.qf]\ntype = "qianfan"\n{credentials}\n\n'
        '[[models]]\nprovider = "qf"\nname = "support-bot"\n',
        encoding="utf-8",
    )
    (opened,) = open_providers(
        load_manifest(manifest), None, Options(state_dir=tmp_path), env
    ).values()
    assert isinstance(opened, QianfanProvider)
    return opened


def test_credentials_default_to_the_sdk_variables_and_a_token_is_refused(tmp_path: Path) -> None:
    env = {"QIANFAN_ACCESS_KEY": AK, "QIANFAN_SECRET_KEY": SK}
    opened = _open(tmp_path, "", env)
    assert opened.endpoint == "https://qianfan.baidubce.com"
    assert opened.model_delete_batch == BATCH_SIZE
    asyncio.run(opened.aclose())
    with pytest.raises(ReconcileError, match="environment variable QIANFAN_SECRET_KEY"):
        _open(tmp_path, "", {"QIANFAN_ACCESS_KEY": AK})
    with pytest.raises(ReconcileError, match="Qianfan signs requests with AK/SK"):
        _open(tmp_path, 'credentials = { token_env = "QF_TOKEN" }', {"QF_TOKEN": "t"})
    opened = _open(tmp_path, 'model_delete = "v2"', env)
    assert opened.model_delete_batch == 1
    asyncio.run(opened.aclose())


@pytest.mark.parametrize("source_type", [None, "", "Marketplace", "PlatformPreset"])
def test_a_version_whose_source_is_not_documented_as_the_callers_is_a_preset(
    source_type: str | None,
) -> None:
    """Fail closed: only Train, Acceleration and Import versions (and UserCreate sets) are ours."""
    payload = copy.deepcopy(RECORDED_DETAIL)
    version = payload["result"]["modelVersionList"][0]
    if source_type is None:
        version.pop("sourceType", None)
    else:
        version["sourceType"] = source_type
    model = parse_model_detail(payload, _listed_support_bot())
    assert model.versions[0].preset
