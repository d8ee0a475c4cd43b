"""Conformance with Huawei's own Python SDK (`huaweicloudsdk*`, in the `test` extra).

The SDK is an independent, real client of DataArts Fabric: pointed at the emulator over a loopback
socket, it proves that the emulator speaks the protocol the platform speaks (AK/SK signatures,
paths, query parameters, bodies, error bodies); and its `Signer`, driven directly, proves that our
`SDK-HMAC-SHA256` signer and the emulator's independent verifier compute what Huawei computes.

What the SDK cannot show: `solution_msg` (its exceptions carry only the status, `error_code`,
`error_msg` and request id), and token (`X-Auth-Token`) auth (its `BasicCredentials` always sign).
It names the model delete `cleanup_model` ("delete an unused model definition", seed 000).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkdataartsfabric.v1 import (
    CleanupModelRequest,
    DataArtsFabricClient,
    DeleteModelVersionRequest,
    ListModelsRequest,
    ListModelVersionsRequest,
)
from huaweicloudsdkdataartsfabricep.v1 import (
    DataArtsFabricEpClient,
    ListServicesInstancesRequest,
)

from reconcile.emulator import create_app
from reconcile.emulator.fabric import AKSK_CODE, IN_USE_CODE
from reconcile.providers.fabric import sdk_hmac_signer
from reconcile.providers.signing import sdk_authorization
from tests.conftest import Swappable, serve_over_loopback

AK = "HPUAQWERTYUIOPASDFGH"
SK = "sk-Conformance-9f8e7d6c5b4a39281706"
PROJECT = "0b5b6c7d8e9f40a1b2c3d4e5f6a7b8c9"
WS = "ws-sdk"
SERVICE = "svc-sdk-1"
MODELS = 250
VERSIONS = 150
PAGE = 100


def _version_id(model: int, version: int) -> str:
    return f"{model:08d}-0000-4000-8000-{version:012d}"


def _state() -> dict[str, Any]:
    """250 models (3 pages at limit=100); the first has 150 versions (2 pages), one of which
    (version 0) is served by a running inference service."""
    models = [
        {
            "id": f"m-{index:04d}",
            "name": f"model-{index:04d}",
            "create_time": f"2024-01-01T00:{index // 60 % 60:02d}:{index % 60:02d}.000Z",
            "versions": [
                {
                    "id": _version_id(index, v),
                    "name": f"v{v}",
                    "create_time": f"2024-02-01T00:{v // 60:02d}:{v % 60:02d}.000Z",
                }
                for v in range(VERSIONS if index == 0 else 1)
            ],
        }
        for index in range(MODELS)
    ]
    service = {
        "id": SERVICE,
        "name": "prod-chat",
        "status": "RUNNING",
        "source": {"id": "m-0000", "version_id": _version_id(0, 0)},
    }
    return {
        "fabric": {
            "access_keys": {AK: SK},
            "workspaces": {WS: {"models": models, "service_instances": [service]}},
        }
    }


@pytest.fixture(scope="module")
def loopback() -> Iterator[tuple[Swappable, str]]:
    """One loopback server for the module; each test puts a fresh emulator behind it."""
    swappable = Swappable()
    with serve_over_loopback(swappable) as url:
        yield swappable, url


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK sends with `requests`, which honours proxy variables: keep loopback direct."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")


@dataclass
class Emulated:
    app: Any
    url: str
    clients: list[Any] = field(default_factory=list)

    def fabric(self, sk: str = SK) -> DataArtsFabricClient:
        return self._build(DataArtsFabricClient, sk)

    def fabric_ep(self) -> DataArtsFabricEpClient:
        return self._build(DataArtsFabricEpClient, SK)

    def _build(self, kind: Any, sk: str) -> Any:
        config = HttpConfig.get_default_config()
        config.timeout = (5, 10)  # a hang fails the test instead of the default 60 + 120 s
        client = (
            kind.new_builder()
            # With a project id the SDK never asks IAM for one.
            .with_credentials(BasicCredentials(AK, sk, PROJECT))
            .with_endpoints([self.url])
            .with_http_config(config)
            .build()
        )
        self.clients.append(client)
        return client

    @property
    def requests(self) -> list[Any]:
        return list(self.app.state.emulator.requests)

    @property
    def workspace(self) -> dict[str, Any]:
        workspace: dict[str, Any] = self.app.state.emulator.state["fabric"]["workspaces"][WS]
        return workspace


@pytest.fixture
def emulated(loopback: tuple[Swappable, str], no_proxy: None) -> Iterator[Emulated]:
    swappable, url = loopback
    swappable.app = create_app(_state())
    emulated = Emulated(swappable.app, url)
    try:
        yield emulated
    finally:
        for client in emulated.clients:
            client.close()
            client.get_http_client().executor.shutdown(wait=True)


# -- the SDK's DataArtsFabricClient against the emulator, AK/SK signed ----------------------------


def test_fabric_sdk_clients_build_without_any_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a project id and no region, building a client asks nothing of IAM (nor anyone)."""

    def refuse(_: socket.socket, address: Any) -> None:
        raise AssertionError(f"the SDK connected to {address!r} while building a client")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    for kind in (DataArtsFabricClient, DataArtsFabricEpClient):
        client = (
            kind.new_builder()
            .with_credentials(BasicCredentials(AK, SK, PROJECT))
            .with_endpoints(["https://fabric.cn-north-4.myhuaweicloud.com"])
            .build()
        )
        client.close()
        client.get_http_client().executor.shutdown(wait=True)


def test_fabric_sdk_lists_every_page_of_models_and_versions(emulated: Emulated) -> None:
    client = emulated.fabric()
    models: list[Any] = []
    for offset in range(0, MODELS, PAGE):
        page = client.list_models(ListModelsRequest(workspace_id=WS, offset=offset, limit=PAGE))
        assert page.total == MODELS
        models += page.models
    assert sorted(model.id for model in models) == [f"m-{i:04d}" for i in range(MODELS)]
    # The SDK's own deserialisation understood every field, the timestamps included.
    first = next(model for model in models if model.id == "m-0000")
    assert first.visibility == "PRIVATE" and first.type == "LLM_MODEL"
    assert isinstance(first.create_time, datetime)
    assert first.current_version.name == f"v{VERSIONS - 1}"  # the newest

    versions: list[Any] = []
    for offset in range(0, VERSIONS, PAGE):
        page = client.list_model_versions(
            ListModelVersionsRequest(workspace_id=WS, model_id="m-0000", offset=offset, limit=PAGE)
        )
        assert page.total == VERSIONS
        versions += page.versions
    assert sorted(v.id for v in versions) == sorted(_version_id(0, v) for v in range(VERSIONS))

    # Filters travel as the SDK encodes them, and are signed over that encoding.
    named = client.list_models(ListModelsRequest(workspace_id=WS, name="model-024", limit=PAGE))
    assert sorted(model.id for model in named.models) == [f"m-{i:04d}" for i in range(240, 250)]
    one = client.list_model_versions(
        ListModelVersionsRequest(workspace_id=WS, model_id="m-0000", version_id=_version_id(0, 7))
    )
    assert [v.name for v in one.versions] == ["v7"]

    sent = emulated.requests
    assert all(r["auth"] == "SDK-HMAC-SHA256" and r["status"] == 200 for r in sent)
    model_pages = [r["query"] for r in sent if r["path"] == f"/v1/workspaces/{WS}/models"]
    assert [page.get("offset") for page in model_pages] == ["0", "100", "200", None]


def test_fabric_sdk_deletes_a_version_with_202_and_a_model_with_200(emulated: Emulated) -> None:
    client = emulated.fabric()
    deleted = client.delete_model_version(
        DeleteModelVersionRequest(workspace_id=WS, model_id="m-0000", version_id=_version_id(0, 5))
    )
    assert deleted.status_code == 202
    cleaned = client.cleanup_model(CleanupModelRequest(workspace_id=WS, model_id="m-0001"))
    assert cleaned.status_code == 200

    models = {model["id"]: model for model in emulated.workspace["models"]}
    assert "m-0001" not in models and len(models) == MODELS - 1
    assert _version_id(0, 5) not in {v["id"] for v in models["m-0000"]["versions"]}
    deletes = [(r["method"], r["status"]) for r in emulated.requests]
    assert deletes == [("DELETE", 202), ("DELETE", 200)]


def test_fabric_sdk_gets_the_in_use_refusal_as_its_own_exception_with_our_code(
    emulated: Emulated,
) -> None:
    client = emulated.fabric()
    with pytest.raises(ClientRequestException) as version_refused:
        client.delete_model_version(
            DeleteModelVersionRequest(
                workspace_id=WS, model_id="m-0000", version_id=_version_id(0, 0)
            )
        )
    with pytest.raises(ClientRequestException) as model_refused:
        client.cleanup_model(CleanupModelRequest(workspace_id=WS, model_id="m-0000"))

    sent = emulated.requests
    for caught, request in zip((version_refused, model_refused), sent, strict=True):
        error = caught.value
        assert error.status_code == 400
        assert error.error_code == IN_USE_CODE == "dataartsfabric.11000012"
        assert SERVICE in error.error_msg
        assert error.request_id == request["request_id"]  # read from X-Request-Id
    assert len(emulated.workspace["models"]) == MODELS  # nothing was deleted


def test_fabric_sdk_with_a_wrong_sk_is_refused_by_the_gateway(emulated: Emulated) -> None:
    with pytest.raises(ClientRequestException) as caught:
        emulated.fabric(sk="not-the-secret-key").list_models(ListModelsRequest(workspace_id=WS))
    assert caught.value.status_code == 401
    assert caught.value.error_code == AKSK_CODE
    assert "signature mismatch" in caught.value.error_msg


def test_fabric_ep_sdk_lists_service_instances(emulated: Emulated) -> None:
    client = emulated.fabric_ep()
    listed = client.list_services_instances(ListServicesInstancesRequest(workspace_id=WS))
    assert listed.total == 1
    (service,) = listed.service_instances
    assert (service.id, service.status) == (SERVICE, "RUNNING")
    assert (service.source.id, service.source.version_id) == ("m-0000", _version_id(0, 0))
    by_version = client.list_services_instances(
        ListServicesInstancesRequest(workspace_id=WS, version_id=_version_id(0, 1))
    )
    assert by_version.total == 0 and by_version.service_instances == []


# -- our signer, the SDK's Signer and the emulator's verifier on a table of requests -------------

DATE = datetime(2024, 5, 17, 8, 30, 5, tzinfo=UTC)
SDK_DATE = "20240517T083005Z"
MODELS_PATH = "/v1/workspaces/ws-1/models"


@dataclass(frozen=True)
class Case:
    method: str
    #: Absolute URL; its path as a person writes it (spaces and unicode unencoded).
    url: str
    params: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    project_id: str | None = None
    security_token: str | None = None
    #: A request our client could send (JSON or no body). The others probe the SDK's own header
    #: rules, which our pure signer must follow but our client never needs.
    client: bool = True


CASES = {
    "published-vector-shape": Case(
        "GET",
        "https://fabric.cn-north-4.myhuaweicloud.com" + MODELS_PATH,
        params=(("limit", "2"), ("marker", "13551d6b-755d-4757-b956-536f674975c0")),
        headers=(("Content-Type", "application/json"),),
    ),
    "path-with-spaces-and-unicode": Case(
        "GET", "https://fabric.example.com/v1/workspaces/ws 1/models/模型 ä~*'()/versions"
    ),
    "repeated-query-values": Case(
        "GET",
        "https://fabric.example.com" + MODELS_PATH,
        params=(("name", "b"), ("limit", "10"), ("name", "a"), ("name", "a")),
    ),
    "empty-query-values": Case(
        "GET",
        "https://fabric.example.com" + MODELS_PATH,
        params=(("name", ""), ("offset", "0"), ("id", "")),
    ),
    "query-values-needing-encoding": Case(
        "GET",
        "https://fabric.example.com" + MODELS_PATH,
        params=(
            ("name", "a b&c=d/é+~*'()%"),
            ("sort by", "模型"),
            # Sorted before encoding, as the SDK sorts: '~' < 'é', but '%C3%A9' < '~'.
            ("k", "~"),
            ("k", "é"),
        ),
    ),
    "non-default-port": Case(
        "DELETE", "http://127.0.0.1:18443" + MODELS_PATH + "/m-1", project_id=PROJECT
    ),
    "json-body": Case(
        "DELETE",
        "https://fabric.example.com:8443" + MODELS_PATH + "/m-1",
        params=(("dry_run", "true"),),
        headers=(("Content-Type", "application/json;charset=UTF-8"),),
        body='{"name": "模型", "type": "LLM_MODEL"}'.encode(),
        project_id=PROJECT,
    ),
    "temporary-credentials": Case(
        "GET",
        "https://fabric-ep.example.com/v1/workspaces/ws-1/services/instances",
        params=(("limit", "100"),),
        project_id=PROJECT,
        security_token="sts-token-abc/def+ghi==",
    ),
    "header-value-spaces-and-case": Case(
        "GET",
        "https://fabric.example.com" + MODELS_PATH,
        headers=(("Content-TYPE", "  application/json  "),),
    ),
    "declared-unsigned-payload": Case(
        "DELETE",
        "https://fabric.example.com" + MODELS_PATH + "/m-1",
        headers=(
            ("Content-Type", "application/json"),
            ("X-Sdk-Content-Sha256", "UNSIGNED-PAYLOAD"),
        ),
        body=b'{"a": 1}',
    ),
    "header-name-with-underscore": Case(
        "GET",
        "https://fabric.example.com" + MODELS_PATH,
        headers=(("X_Trace_Id", "t-1"), ("X-Trace", "t-2")),
        client=False,
    ),
    "empty-body-non-json-content-type": Case(
        "DELETE",
        "https://fabric.example.com" + MODELS_PATH + "/m-1",
        headers=(("Content-Type", "application/octet-stream"),),
        client=False,
    ),
    "non-json-body": Case(
        "DELETE",
        "https://fabric.example.com" + MODELS_PATH + "/m-1",
        headers=(("Content-Type", "text/plain"),),
        body=b"plain text",
        client=False,
    ),
}
CLIENT_CASES = {name: case for name, case in CASES.items() if case.client}


def _sdk_signed(case: Case, headers: dict[str, str], sk: str = SK) -> SdkRequest:
    """The request as Huawei's SDK signs it, from `headers` (its Signer adds `Host`, from the
    endpoint's host:port, when they have none; and `X-Sdk-Content-Sha256` for non-JSON types)."""
    url = httpx.URL(case.url)
    request = SdkRequest(
        method=case.method,
        schema=url.scheme,
        host=url.netloc.decode("ascii"),
        # As the SDK's client builds it: each path parameter quoted with safe="".
        resource_path=quote(url.path, safe="/"),
        query_params=list(case.params),
        header_params=dict(headers),
        body=case.body,
    )
    return Signer(BasicCredentials(AK, sk)).sign(request)


def _case_headers(case: Case) -> dict[str, str]:
    """What the SDK's client would put in the request before signing it."""
    headers = {"X-Sdk-Date": SDK_DATE, **dict(case.headers)}
    if case.project_id:
        headers["X-Project-Id"] = case.project_id
    if case.security_token:
        headers["X-Security-Token"] = case.security_token
    return headers


def _ours_signed(case: Case) -> httpx.Request:
    request = httpx.Request(
        case.method, case.url, params=case.params, headers=case.headers, content=case.body
    )
    sdk_hmac_signer(
        AK, SK, project_id=case.project_id, security_token=case.security_token, clock=lambda: DATE
    )(request)
    return request


def _signed_names(authorization: str) -> list[str]:
    return authorization.split("SignedHeaders=", 1)[1].split(",", 1)[0].split(";")


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_fabric_pure_signer_and_the_sdk_signer_agree(case: Case) -> None:
    """`sdk_authorization`, given every header the SDK ended up signing, computes its header."""
    signed = _sdk_signed(case, _case_headers(case))
    headers = dict(signed.header_params)
    expected = headers.pop("Authorization")
    assert expected == sdk_authorization(
        access_key=AK,
        secret_key=SK,
        method=case.method,
        path=httpx.URL(case.url).path,
        params=case.params,
        headers=headers,
        body=case.body,
    )


@pytest.mark.parametrize("case", CLIENT_CASES.values(), ids=list(CLIENT_CASES))
def test_fabric_client_signer_and_the_sdk_signer_agree(case: Case) -> None:
    """Our httpx signer, on the request as httpx builds it, matches the SDK given the same headers
    (less `Host`, which the SDK must derive from the URL itself, port included where it is not the
    scheme's default)."""
    ours = _ours_signed(case)
    names = _signed_names(ours.headers["Authorization"])
    assert {"host", "x-sdk-date"} <= set(names)
    given = {name: ours.headers[name] for name in names if name != "host"}
    sdk = _sdk_signed(case, given)
    assert sdk.header_params["Host"] == ours.headers["Host"]
    assert ours.headers["Authorization"] == sdk.header_params["Authorization"]


def _send_to_emulator(requests: list[httpx.Request]) -> list[httpx.Response]:
    app = create_app({"fabric": {"access_keys": {AK: SK}}}, clock=DATE.timestamp)

    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            return [await client.send(request) for request in requests]

    return asyncio.run(send())


def _replay(case: Case, signed: SdkRequest) -> httpx.Request:
    """The SDK's signed request as it goes on the wire (its URL carries the canonical query)."""
    return httpx.Request(
        case.method,
        f"{signed.schema}://{signed.host}{signed.uri}",
        headers=signed.header_params,
        content=case.body,
    )


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_fabric_emulator_verifier_accepts_what_the_sdk_and_our_client_sign(case: Case) -> None:
    """The emulator's independent verifier accepts the SDK's signature (and ours, for what our
    client sends), and refuses the same request signed with another key: the route checks."""
    sdk_ok = _replay(case, _sdk_signed(case, _case_headers(case)))
    sdk_bad = _replay(case, _sdk_signed(case, _case_headers(case), sk="another-secret-key"))
    ours = [_ours_signed(case)] if case.client else []
    *accepted, refused = _send_to_emulator([sdk_ok, *ours, sdk_bad])
    for response in accepted:
        # Past the gateway: the workspace does not exist (or an id is malformed).
        assert response.status_code in (400, 404), response.text
        assert response.json()["error_code"] != AKSK_CODE
    assert refused.status_code == 401
    assert refused.json()["error_code"] == AKSK_CODE


def test_fabric_sdk_signer_reproduces_the_published_vector() -> None:
    """Huawei's own SDK gives API.md's published vector: the tables above compare against the
    reference the published vector comes from."""
    request = SdkRequest(
        method="GET",
        schema="https",
        host="service.region.example.com",
        resource_path="/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
        query_params=[("limit", "2"), ("marker", "13551d6b-755d-4757-b956-536f674975c0")],
        header_params={"Content-Type": "application/json", "X-Sdk-Date": "20191115T033655Z"},
        body=b"",
    )
    Signer(
        BasicCredentials("QTWAOYTTINDUT2QVKYUC", "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc")
    ).sign(request)
    assert request.header_params["Authorization"].endswith(
        "Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
    )
