"""The emulator's fault injection: each kind, how requests are chosen, seeds, budgets, and that no
fault but "lost" ever changes the state. In-process (``httpx.ASGITransport``) and over a real
loopback socket; reconcile's own clients are used where the point is how a client sees a fault."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconcile.applier import Applier
from reconcile.cli import main
from reconcile.emulator import ConnectionDropped, EmulatorSettings, Fault, create_app
from reconcile.emulator.faults import STATUSES
from reconcile.errors import ListingIncompleteError, NotFoundError, ProviderError
from reconcile.manifest import load_manifest
from reconcile.planner import build_plan
from reconcile.providers import fabric, qianfan
from reconcile.providers.adaptive import FixedLimit
from reconcile.providers.http import Http, RetryPolicy
from tests.conftest import EmulatorTransport, serve_over_loopback
from tests.journal_files import Journal

TOKEN = "faults-test-token"
AUTH = {"X-Auth-Token": TOKEN}
FABRIC = "http://fabric.test"
QIANFAN = "http://qianfan.test"
WS = "ws-faults"
MODELS = f"/v1/workspaces/{WS}/models"
AK = "faults-test-qianfan-ak"
SK = "faults-test-qianfan-sk"
V2_MODEL = "/v2/model"
REPO = "/wenxinworkshop/modelrepo"


def _vid(model: int, version: int) -> str:
    return f"{model:08d}-0000-4000-8000-{version:012d}"


def state(models: int = 3, versions: int = 2, sets: int = 3) -> dict[str, Any]:
    """A Fabric workspace of `models` models and a Qianfan account of `sets` model sets."""
    return {
        "fabric": {
            "tokens": [TOKEN],
            "workspaces": {
                WS: {
                    "models": [
                        {
                            "id": f"m-{m:03d}",
                            "name": f"model-{m:03d}",
                            "create_time": f"2024-01-01T00:00:{m % 60:02d}.000Z",
                            "versions": [
                                {
                                    "id": _vid(m, v),
                                    "name": f"v{v}",
                                    "create_time": f"2024-02-01T00:00:{v:02d}.000Z",
                                }
                                for v in range(versions)
                            ],
                        }
                        for m in range(models)
                    ]
                }
            },
        },
        "qianfan": {
            "access_keys": {AK: SK},
            "model_sets": [
                {
                    "modelSetId": f"am-set{s:03d}",
                    "modelSetName": f"set-{s:03d}",
                    "createTime": f"2024-05-01T10:00:{s % 60:02d}+08:00",
                    "versions": [
                        {"modelId": f"amv-set{s:03d}v{v}", "modelName": f"V{v}"}
                        for v in range(1, 3)
                    ],
                }
                for s in range(sets)
            ],
        },
    }


def fabric_models(app: Any) -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = app.state.emulator.state["fabric"]["workspaces"][WS]["models"]
    return models


def qianfan_set_ids(app: Any) -> list[str]:
    return [s["modelSetId"] for s in app.state.emulator.state["qianfan"]["model_sets"]]


def _sign(request: httpx.Request) -> None:
    if request.url.path.startswith(("/v2/", "/wenxinworkshop/")):
        qianfan.bce_signer(AK, SK, clock=lambda: datetime.now(UTC))(request)


async def _exchange(
    client: httpx.AsyncClient, method: str, path: str, body: Any = None, **params: str
) -> httpx.Response:
    request = client.build_request(method, path, json=body, params=params or None, headers=AUTH)
    _sign(request)
    return await client.send(request)


def send(
    app: Any, method: str, path: str, body: Any = None, *, base: str = FABRIC, **params: str
) -> httpx.Response:
    """One request to the app in-process (a dropped connection raises `ConnectionDropped`)."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            return await _exchange(client, method, path, body, **params)

    return asyncio.run(go())


def v2(app: Any, action: str, body: Any) -> httpx.Response:
    return send(app, "POST", V2_MODEL, body, base=QIANFAN, Action=action)


def v1(app: Any, path: str, body: Any) -> httpx.Response:
    return send(app, "POST", REPO + path, body, base=QIANFAN)


def faults_of(app: Any) -> list[str | None]:
    return [record["fault"] for record in app.state.emulator.requests]


# -- the spec --------------------------------------------------------------------------------------


def test_a_spec_string_names_the_kind_and_its_keys() -> None:
    fault = Fault.parse("status, status=503, method=get, path=/v1/*/models, rate=0.25, times=2")
    assert fault == Fault(
        "status", method="GET", path="/v1/*/models", rate=0.25, times=2, status=503
    )
    assert Fault.parse("wrong_total,delta=-1") == Fault("inconsistent", delta=-1)
    assert Fault.of({"kind": "lost", "reply": "reset", "action": "DeleteModel"}) == Fault(
        "lost", reply="reset", action="DeleteModel"
    )
    assert Fault.of(fault.to_dict()) == fault


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("explode", "unknown fault kind 'explode'"),
        ("status,status=418", "fault status must be one of 400, 403, 404"),
        ("status,rate=1.5", "fault rate must be between 0 and 1"),
        ("status,rate=often", "fault rate must be a number"),
        ("slow,delay=5", "unknown fault field(s) delay"),
        ("slow,5", "expected key=value, got '5'"),
        ("lost,reply=maybe", "fault reply must be one of status, reset"),
        ("throttle,rps=0", "a throttle needs rps > 0"),
        # nan passes every bound (its comparisons are all false): refused as not finite.
        ("slow,delay_ms=nan", "fault delay_ms must be a finite number, got nan"),
        ("status,rate=nan", "fault rate must be a finite number, got nan"),
        ("throttle,rps=inf,burst=2", "fault rps must be a finite number, got inf"),
        ("status,retry_after=nan", "fault retry_after must be a finite number"),
    ],
)
def test_a_bad_spec_is_refused_with_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Fault.parse(spec)


def test_the_cli_passes_faults_to_the_server_and_refuses_a_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served: dict[str, Any] = {}

    def fake_serve(
        state_path: Any, host: str, port: int, settings: EmulatorSettings, **options: Any
    ) -> None:
        served.update(options, state_path=state_path, settings=settings)

    monkeypatch.setattr("reconcile.emulator.serve", fake_serve)
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(state()), encoding="utf-8")
    argv = ["emulator", "serve", "--state", str(state_file), "--port", "0", "--seed", "7"]
    faults = ["reset,method=DELETE,rate=0.1", "throttle,rps=5,burst=10"]
    assert main([*argv, *(arg for spec in faults for arg in ("--fault", spec))]) == 0
    assert served["settings"].faults == tuple(Fault.parse(spec) for spec in faults)
    assert served["settings"].seed == 7
    assert served["access_log"] is True
    assert main([*argv, "--no-access-log"]) == 0
    assert served["access_log"] is False
    assert main([*argv, "--fault", "status,status=999"]) == 1
    assert "Invalid value for --fault: fault status must be one of" in capsys.readouterr().err


# -- status: the platform's exact body, nothing handled --------------------------------------------

FABRIC_BODIES = {
    400: {
        "error_code": "common.01000001",
        "error_msg": "failed to read http request, please check your input, code: 400, "
        "reason: Type mismatch., cause: TypeMismatchException",
    },
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
    429: {
        "error_code": "APIGW.0308",
        "error_msg": "The throttling threshold has been reached: "
        "policy user over ratelimit,limit:100,time:1 second",
    },
    500: {"error_code": "common.00000500", "error_msg": "internal error"},
    502: {"error_code": "APIG.0202", "error_msg": "Backend unavailable."},
    503: {"error_code": "APIG.0202", "error_msg": "Backend unavailable."},
    504: {"error_code": "APIG.0203", "error_msg": "Backend timeout."},
}
QIANFAN_CODES = {
    400: "InvalidHTTPRequest",
    403: "AccessDenied",
    404: "ResourceNotFound",
    408: "RequestTimeout",
    429: "RequestRateLimitExceeded",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def test_every_fault_status_has_a_body_on_both_platforms() -> None:
    assert set(FABRIC_BODIES) == set(QIANFAN_CODES) == set(STATUSES)


@pytest.mark.parametrize("status", STATUSES)
def test_a_status_fault_answers_in_fabrics_words_and_deletes_nothing(status: int) -> None:
    app = create_app(state(), faults=[Fault("status", status=status)])
    listing = send(app, "GET", MODELS)
    assert listing.status_code == status
    assert listing.json() == FABRIC_BODIES[status]
    assert "x-request-id" in listing.headers
    assert (listing.headers.get("retry-after") == "1") == (status == 429)
    deleted = send(app, "DELETE", f"{MODELS}/m-000/versions/{_vid(0, 1)}")
    assert deleted.status_code == status
    assert len(fabric_models(app)[0]["versions"]) == 2  # not applied
    assert faults_of(app) == ["status", "status"]
    assert [r["status"] for r in app.state.emulator.requests] == [status, status]


@pytest.mark.parametrize("status", STATUSES)
def test_a_status_fault_answers_in_qianfans_words_on_v2_and_v1(status: int) -> None:
    app = create_app(state(), faults=[f"status,status={status}"])
    for response in (
        v2(app, "DeleteModel", {"modelId": "amv-set000v1"}),
        v1(app, "/model/batchDelete", {"modelIDs": ["am-set001"]}),
    ):
        assert response.status_code == status
        body = response.json()
        assert set(body) == {"requestId", "code", "message"}
        assert body["code"] == response.headers["x-bce-error-code"] == QIANFAN_CODES[status]
        assert response.headers["x-bce-error-message"] == body["message"]
    assert qianfan_set_ids(app) == ["am-set000", "am-set001", "am-set002"]
    versions = app.state.emulator.state["qianfan"]["model_sets"][0]["versions"]
    assert [v["modelId"] for v in versions] == ["amv-set000v1", "amv-set000v2"]


def test_retry_after_of_a_429_can_be_set() -> None:
    app = create_app(state(), faults=["status,status=429,retry_after=0.05"])
    assert send(app, "GET", MODELS).headers["retry-after"] == "0.05"
    assert v2(app, "DescribeCustomModelSets", {}).headers["retry-after"] == "0.05"


# -- choosing requests: method, path, action, rate, times, seed ------------------------------------


def test_faults_choose_requests_by_method_path_and_action() -> None:
    app = create_app(
        state(),
        faults=[
            Fault("status", status=503, method="GET", path="/v1/workspaces/*/models/*/versions"),
            Fault("status", status=502, action="DescribeCustomModelSets"),
            Fault("status", status=504, path=REPO + "/modelDetail"),
        ],
    )
    assert send(app, "GET", MODELS).status_code == 200
    assert send(app, "GET", f"{MODELS}/m-000/versions").status_code == 503
    assert send(app, "DELETE", f"{MODELS}/m-000/versions/{_vid(0, 1)}").status_code == 202
    assert v2(app, "DescribeCustomModelSets", {}).status_code == 502
    assert v2(app, "DescribeModelSet", {"modelSetId": "am-set000"}).status_code == 200
    assert v1(app, "/modelDetail", {"modelId": "am-set000"}).status_code == 504
    assert faults_of(app) == [None, "status", None, "status", None, "status"]


def test_the_first_fault_that_fires_wins_and_times_bounds_each() -> None:
    app = create_app(state(), faults=["status,status=503,times=2", "status,status=502,times=1"])
    statuses = [send(app, "GET", MODELS).status_code for _ in range(5)]
    assert statuses == [503, 503, 502, 200, 200]


def _draws(seed: int, rate: float = 0.3, count: int = 60) -> list[bool]:
    app = create_app(state(), seed=seed, faults=[Fault("status", rate=rate)])
    return [send(app, "GET", MODELS).status_code == 500 for _ in range(count)]


def test_a_seed_makes_the_faulted_requests_reproduce() -> None:
    first = _draws(seed=11)
    assert first == _draws(seed=11)
    assert first != _draws(seed=12)
    assert 5 < sum(first) < 35  # about 30% of 60


def test_faults_can_be_changed_at_runtime_and_fail_rate_is_unaffected() -> None:
    app = create_app(state(), seed=3)
    emulator = app.state.emulator
    assert send(app, "GET", MODELS).status_code == 200
    emulator.faults = ["status,status=503"]
    assert send(app, "GET", MODELS).status_code == 503
    emulator.faults = []
    assert send(app, "GET", MODELS).status_code == 200
    assert emulator.faults_injected() == {"status": 1}


def test_the_admin_route_shows_and_replaces_the_faults() -> None:
    app = create_app(state(), faults=["reset,method=DELETE"])
    shown = send(app, "GET", "/_emulator/faults").json()
    assert shown["faults"] == [Fault("reset", method="DELETE").to_dict()]
    assert shown["injected"] == {}
    replaced = send(app, "PUT", "/_emulator/faults", ["status,status=504", {"kind": "slow"}])
    assert [f["kind"] for f in replaced.json()["faults"]] == ["status", "slow"]
    assert send(app, "GET", MODELS).status_code == 504
    assert send(app, "GET", "/_emulator/faults").json()["injected"] == {"status": 1}
    refused = send(app, "PUT", "/_emulator/faults", ["melt"])
    assert refused.status_code == 400
    assert "unknown fault kind 'melt'" in refused.json()["detail"]
    assert send(app, "PUT", "/_emulator/faults", {"kind": "slow"}).status_code == 400


# -- slow ------------------------------------------------------------------------------------------


def test_a_slow_request_is_late_but_handled() -> None:
    app = create_app(state(), faults=["slow,delay_ms=60,method=DELETE"])
    started = time.monotonic()
    assert send(app, "GET", MODELS).status_code == 200
    fast = time.monotonic() - started
    started = time.monotonic()
    assert send(app, "DELETE", f"{MODELS}/m-000/versions/{_vid(0, 1)}").status_code == 202
    assert time.monotonic() - started >= 0.06 > fast
    assert len(fabric_models(app)[0]["versions"]) == 1  # a slow delete is still a delete
    assert faults_of(app) == [None, "slow"]


@pytest.mark.loopback
def test_a_slow_page_past_the_clients_timeout_is_retried() -> None:
    app = create_app(state(), faults=["slow,delay_ms=400,path=*/models,times=1"])
    with serve_over_loopback(app) as url:
        provider = _fabric_provider(url, timeout=0.1)
        models = asyncio.run(_closing(provider, provider._list_models()))
    assert sorted(m.id for m in models) == ["m-000", "m-001", "m-002"]
    assert faults_of(app) == ["slow", None]


# -- reset -----------------------------------------------------------------------------------------


def test_a_reset_in_process_raises_connection_dropped_and_deletes_nothing() -> None:
    app = create_app(state(), faults=["reset"])
    with pytest.raises(ConnectionDropped):
        send(app, "DELETE", f"{MODELS}/m-000/versions/{_vid(0, 1)}")
    with pytest.raises(ConnectionDropped):
        v2(app, "DeleteModel", {"modelId": "amv-set000v1"})
    assert len(fabric_models(app)[0]["versions"]) == 2
    assert len(app.state.emulator.state["qianfan"]["model_sets"][0]["versions"]) == 2
    assert [(r["fault"], r["status"]) for r in app.state.emulator.requests] == [
        ("reset", None),
        ("reset", None),
    ]


def test_a_transport_that_maps_the_reset_lets_the_client_retry() -> None:
    app = create_app(state(), faults=["reset,times=2"])
    provider = _fabric_provider(FABRIC, transport=EmulatorTransport(app=app))
    models = asyncio.run(_closing(provider, provider._list_models()))
    assert len(models) == 3
    assert faults_of(app) == ["reset", "reset", None]


@pytest.mark.loopback
def test_a_reset_over_a_real_socket_closes_the_connection_without_a_response() -> None:
    app = create_app(state(), faults=["reset,method=DELETE", "reset,action=DeleteModel"])

    async def go(url: str) -> list[Any]:
        outcomes: list[Any] = []
        async with httpx.AsyncClient(base_url=url) as client:
            for method, path, body, params in [
                ("DELETE", f"{MODELS}/m-000/versions/{_vid(0, 1)}", None, {}),
                ("POST", V2_MODEL, {"modelId": "amv-set000v1"}, {"Action": "DeleteModel"}),
                ("GET", MODELS, None, {}),  # a fresh connection works
            ]:
                try:
                    response = await _exchange(client, method, path, body, **params)
                    outcomes.append(response.status_code)
                except httpx.TransportError as error:
                    outcomes.append(type(error).__name__)
        return outcomes

    with serve_over_loopback(app) as url:
        outcomes = asyncio.run(go(url))
    assert outcomes[2] == 200
    assert all(outcome in ("RemoteProtocolError", "ReadError") for outcome in outcomes[:2])
    assert len(fabric_models(app)[0]["versions"]) == 2
    assert len(app.state.emulator.state["qianfan"]["model_sets"][0]["versions"]) == 2
    assert [(r["fault"], r["status"]) for r in app.state.emulator.requests] == [
        ("reset", None),
        ("reset", None),
        (None, 200),
    ]


# -- truncate --------------------------------------------------------------------------------------


def test_a_truncated_body_is_the_first_half_of_the_real_one() -> None:
    app = create_app(state(), faults=["truncate,times=1"])
    cut = send(app, "GET", MODELS)
    whole = send(app, "GET", MODELS)
    assert cut.status_code == whole.status_code == 200
    assert cut.content == whole.content[: len(whole.content) // 2]
    assert cut.headers["content-length"] == str(len(cut.content))
    with pytest.raises(ValueError):
        cut.json()


def test_truncate_and_inconsistent_never_touch_a_delete() -> None:
    app = create_app(state(), faults=["truncate", "inconsistent"])
    assert send(app, "DELETE", f"{MODELS}/m-000/versions/{_vid(0, 1)}").status_code == 202
    assert v1(app, "/model/batchDelete", {"modelIDs": ["am-set001"]}).json()["result"] == {}
    assert faults_of(app) == [None, None]


@pytest.mark.loopback
def test_a_truncated_page_over_a_socket_fails_the_listing_naming_the_call() -> None:
    app = create_app(state(), faults=["truncate,path=*/versions,times=1"])
    with serve_over_loopback(app) as url:
        provider = _fabric_provider(url)
        with pytest.raises(ProviderError, match=r"list versions of model m-00\d: .* not JSON"):
            asyncio.run(_closing(provider, provider.snapshot()))
    assert "truncate" in faults_of(app)


# -- inconsistent ----------------------------------------------------------------------------------


def test_a_fabric_page_with_a_wrong_total_fails_the_listing_closed() -> None:
    app = create_app(state(), faults=["wrong_total,path=*/models,delta=2"])
    page = send(app, "GET", MODELS)
    assert page.json()["total"] == 5 and len(page.json()["models"]) == 3
    provider = _fabric_provider(FABRIC, transport=EmulatorTransport(app=app))
    with pytest.raises(ListingIncompleteError, match="announced 5 items but the pages held 3"):
        asyncio.run(_closing(provider, provider.snapshot()))


def test_a_qianfan_page_that_points_at_itself_fails_the_listing_closed() -> None:
    app = create_app(state(sets=3), faults=["inconsistent,action=DescribeCustomModelSets,times=1"])
    looped = v2(app, "DescribeCustomModelSets", {"maxKeys": 100}).json()["result"]
    assert looped["pageInfo"]["isTruncated"] is True
    assert looped["pageInfo"]["nextMarker"] == looped["customModelSetList"][0]["modelSetId"]
    app.state.emulator.faults = ["inconsistent,action=DescribeCustomModelSets,times=1"]
    provider = _qianfan_provider(EmulatorTransport(app=app))
    with pytest.raises(ListingIncompleteError, match="appeared on two pages"):
        asyncio.run(_closing(provider, provider.snapshot()))


def test_a_qianfan_services_page_that_points_at_itself_fails_the_listing_closed() -> None:
    """The service listing repeats its only page: each service appears twice. (Before this
    check, reconcile planned from the doubled listing: Fabric's pager refused it, Qianfan's not.)"""
    served = state(sets=2)
    served["qianfan"]["services"] = [{"serviceId": "svco-a", "modelId": "amv-set000v1"}]
    app = create_app(served, faults=["inconsistent,action=DescribeServices,times=1"])
    provider = _qianfan_provider(EmulatorTransport(app=app))
    with pytest.raises(ListingIncompleteError, match="service svco-a appeared on two pages"):
        asyncio.run(_closing(provider, provider.snapshot()))
    pages = [
        r for r in app.state.emulator.requests if r["query"].get("Action") == "DescribeServices"
    ]
    assert len(pages) == 2  # the looping page, then the one it pointed back at


def test_a_qianfan_detail_without_its_last_version_fails_the_listing_closed() -> None:
    app = create_app(state(sets=2), faults=["inconsistent,path=*/modelDetail,times=1"])
    provider = _qianfan_provider(EmulatorTransport(app=app))
    with pytest.raises(ListingIncompleteError, match="are not the ones the model set listing"):
        asyncio.run(_closing(provider, provider.snapshot()))


# -- throttle --------------------------------------------------------------------------------------


def test_a_throttle_is_a_token_bucket_per_client() -> None:
    app = create_app(state(), faults=["throttle,rps=0.5,burst=2"])
    emulator = app.state.emulator
    now = [100.0]
    emulator.injector.monotonic = lambda: now[0]
    statuses = [send(app, "GET", MODELS).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    throttled = send(app, "GET", MODELS)
    assert throttled.json() == FABRIC_BODIES[429]
    assert throttled.headers["retry-after"] == "2"  # one token comes in 1 / 0.5 s
    # Another client (Qianfan's AK) has its own bucket.
    assert v2(app, "DescribeCustomModelSets", {}).status_code == 200
    now[0] += 2.0
    assert send(app, "GET", MODELS).status_code == 200
    assert send(app, "GET", MODELS).status_code == 429


def test_a_throttles_retry_after_can_be_set_and_qianfan_throttles_in_its_words() -> None:
    app = create_app(state(), faults=["throttle,rps=0.001,burst=1,retry_after=0"])
    assert v2(app, "DescribeCustomModelSets", {}).status_code == 200
    throttled = v2(app, "DescribeCustomModelSets", {})
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "0"
    assert throttled.json()["code"] == "RequestRateLimitExceeded"


@pytest.mark.loopback
def test_reconciles_client_waits_out_a_throttle_over_a_socket() -> None:
    # A rate any client outruns even on a loaded machine (at 200/s a slow run never hit it),
    # and attempts enough for every request to get through it.
    app = create_app(state(models=12), faults=["throttle,rps=50,burst=2,retry_after=0.02"])
    with serve_over_loopback(app) as url:
        provider = _fabric_provider(url, attempts=40)
        snapshot = asyncio.run(_closing(provider, provider.snapshot()))
    assert len(snapshot.models) == 12
    assert app.state.emulator.faults_injected().get("throttle", 0) > 0


# -- lost: applied, but the client is told otherwise -----------------------------------------------


def test_a_lost_delete_is_applied_and_answered_500() -> None:
    app = create_app(state(), faults=["lost,method=DELETE"])
    lost = send(app, "DELETE", f"{MODELS}/m-000/versions/{_vid(0, 1)}")
    assert lost.status_code == 500 and lost.json() == FABRIC_BODIES[500]
    assert [v["name"] for v in fabric_models(app)[0]["versions"]] == ["v0"]
    app.state.emulator.faults = []
    again = send(app, "DELETE", f"{MODELS}/m-000/versions/{_vid(0, 1)}")
    assert again.status_code == 404


def test_a_lost_delete_that_resets_is_applied_too() -> None:
    app = create_app(state(), faults=["lost,reply=reset"])
    with pytest.raises(ConnectionDropped):
        v2(app, "DeleteModel", {"modelId": "amv-set000v1"})
    versions = app.state.emulator.state["qianfan"]["model_sets"][0]["versions"]
    assert [v["modelId"] for v in versions] == ["amv-set000v2"]


MANIFEST = f"""
[providers.fab]
type = "fabric"
endpoint = "https://fabric.test"
workspace_id = "{WS}"
scope = "workspace"
credentials = {{ token_env = "UNUSED_TOKEN" }}

[policy]
keep_latest = 0

[[models]]
provider = "fab"
name = "model-000"
versions = ["v0"]
"""


@pytest.mark.parametrize("reply", ["status", "reset"])
def test_a_retried_delete_after_a_lost_answer_counts_as_already_gone(
    tmp_path: Path, reply: str
) -> None:
    """The first DELETE is applied but answered 500 (or dropped); reconcile retries it, gets the
    platform's 404, and records the object as already gone: deleted, not failed."""
    app = create_app(state(), faults=[f"lost,method=DELETE,reply={reply},times=1"])
    manifest_file = tmp_path / "m.toml"
    manifest_file.write_text(MANIFEST, encoding="utf-8")
    provider = _fabric_provider(FABRIC, transport=EmulatorTransport(app=app))

    async def go() -> Any:
        try:
            snapshot = await provider.snapshot()
            manifest = load_manifest(manifest_file)
            plan = build_plan(manifest, {"fab": snapshot}, tool_version="t")
            with Journal(tmp_path / "journal.jsonl") as journal:
                applier = Applier(
                    {"fab": provider},
                    journal,
                    replan=lambda live: build_plan(manifest, live, tool_version="t"),
                    parallelism=1,
                )
                return plan, await applier.apply(plan)
        finally:
            await provider.aclose()

    plan, result = asyncio.run(go())
    first = next(r for r in app.state.emulator.requests if r["method"] == "DELETE")
    assert first["fault"] == "lost"
    gone = result.with_status("already_gone")
    assert len(gone) == 1 and first["path"].endswith(gone[0].change.id)
    assert len(result.with_status("deleted")) == len(plan.deletes()) - 1 == 2
    assert not result.failed
    assert [m["name"] for m in fabric_models(app)] == ["model-000"]
    assert [v["name"] for v in fabric_models(app)[0]["versions"]] == ["v0"]


def test_a_lost_qianfan_batch_delete_ends_already_gone_id_by_id() -> None:
    """V1 answers a retried batch of vanished ids with HTTP 200 "param invalid"; reconcile then
    goes id by id, looks each up, and reports it already gone."""
    app = create_app(state(sets=3), faults=["lost,path=*/model/batchDelete,times=1"])
    provider = _qianfan_provider(EmulatorTransport(app=app))
    outcomes = asyncio.run(_closing(provider, provider.delete_models(["am-set000", "am-set001"])))
    assert all(isinstance(outcome, NotFoundError) for outcome in outcomes)
    assert qianfan_set_ids(app) == ["am-set002"]


# -- helpers ---------------------------------------------------------------------------------------


async def _closing(provider: Any, call: Any) -> Any:
    try:
        return await call
    finally:
        await provider.aclose()


async def _no_sleep(_: float) -> None:
    return None


def _fabric_provider(
    base: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float = 5.0,
    attempts: int = 4,
) -> fabric.FabricProvider:
    client = httpx.AsyncClient(transport=transport, headers=AUTH, timeout=timeout)
    http = Http(
        client,
        provider="fab",
        map_error=fabric.map_error,
        limit=FixedLimit(4),
        retry=RetryPolicy(attempts=attempts, base_delay=0.0, timeout=timeout),
        sleep=_no_sleep if transport is not None else asyncio.sleep,
    )
    return fabric.FabricProvider(
        "fab",
        workspace_id=WS,
        http=http,
        services_http=http,
        endpoint=base,
        services_endpoint=base,
    )


def _qianfan_provider(transport: httpx.AsyncBaseTransport) -> qianfan.QianfanProvider:
    http = Http(
        httpx.AsyncClient(transport=transport),
        provider="qf",
        map_error=qianfan.map_error,
        limit=FixedLimit(4),
        retry=RetryPolicy(base_delay=0.0),
        sign=qianfan.bce_signer(AK, SK, clock=lambda: datetime.now(UTC)),
        sleep=_no_sleep,
    )
    return qianfan.QianfanProvider("qf", http=http, endpoint=QIANFAN)
