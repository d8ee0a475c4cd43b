"""Credential, signature and permission refusals are `AuthError`, never "already gone".

Baidu's gateway answers an unknown or revoked access key with `X-Bce-Error-Message: NotFound,
cause: Could not find credential.` (API.md, "Qianfan errors"; the official SDK's
`qianfan/resources/requestor/base.py` compares that exact string), whatever status it comes with.
Read as a 404 of the object, a delete that never happened would be journaled `already_gone`. Each
case below is the platform's exact answer, in listing and in delete, on both platforms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from reconcile.errors import AuthError, NotFoundError, ProviderError
from reconcile.providers import fabric, qianfan
from reconcile.providers.adaptive import FixedLimit
from reconcile.providers.failures import platform_error
from reconcile.providers.http import Http, RetryPolicy

QIANFAN_UNKNOWN_KEY = "NotFound, cause: Could not find credential."
QIANFAN_WRONG_SECRET = "SignatureDoesNotMatch, cause: Fail to authn user: Signature does not match"
VERSION_ID = "00000001-0000-4000-8000-000000000001"


def _qianfan_gateway(status: int, header: str, *, body: bool = True) -> httpx.Response:
    code = header.split(",", 1)[0]
    headers = {"X-Bce-Error-Code": code, "X-Bce-Error-Message": header, "X-Request-Id": "r-1"}
    if not body:
        return httpx.Response(status, headers=headers)
    payload = {"requestId": "r-1", "code": code, "message": header}
    return httpx.Response(status, json=payload, headers=headers)


#: (status, the gateway's answer) for a Qianfan credential the gateway does not accept.
QIANFAN_CREDENTIAL_ANSWERS = {
    "unknown-key-401": _qianfan_gateway(401, QIANFAN_UNKNOWN_KEY),
    "unknown-key-404": _qianfan_gateway(404, QIANFAN_UNKNOWN_KEY),
    "unknown-key-404-headers-only": _qianfan_gateway(404, QIANFAN_UNKNOWN_KEY, body=False),
    "unknown-key-400": _qianfan_gateway(400, QIANFAN_UNKNOWN_KEY),
    "wrong-secret-400": _qianfan_gateway(400, QIANFAN_WRONG_SECRET),
    "wrong-secret-401": _qianfan_gateway(401, QIANFAN_WRONG_SECRET, body=False),
    "access-denied-403": httpx.Response(
        403, json={"requestId": "r", "code": "AccessDenied", "message": "Access denied."}
    ),
    "invalid-key-403": httpx.Response(
        403,
        json={
            "requestId": "r",
            "code": "InvalidAccessKeyId",
            "message": "The Access Key ID you provided does not exist in our records.",
        },
    ),
    "expired-400": httpx.Response(
        400, json={"requestId": "r", "code": "RequestExpired", "message": "Request has expired."}
    ),
}

FABRIC_CREDENTIAL_ANSWERS = {
    "bad-signature-401": httpx.Response(
        401,
        json={
            "error_code": "APIGW.0301",
            "error_msg": "Incorrect IAM authentication information: verify aksk signature fail",
        },
    ),
    "bad-token-401": httpx.Response(
        401,
        json={"error_code": "APIG.1002", "error_msg": "Incorrect token or token resolution failed"},
    ),
    "invalid-token-403": httpx.Response(
        403,
        json={
            "error": {"code": "403", "message": "X-Auth-Token is invalid in the request"},
            "error_code": 403,
            "error_msg": "X-Auth-Token is invalid in the request",
            "title": "Forbidden",
        },
    ),
    "unauthorized-iam-user-404": httpx.Response(
        404,
        json={
            "error_code": "APIGW.0302",
            "error_msg": "The IAM user is not authorized to access the API.",
        },
    ),
    "no-body-401": httpx.Response(401),
}

#: Answers that are not the service saying the object is gone: no NotFoundError either.
FABRIC_NOT_THE_SERVICE = {
    "no-such-api": httpx.Response(
        404,
        json={
            "error_code": "APIGW.0101",
            "error_msg": "The API does not exist or has not been published in the environment",
        },
    ),
    "proxy-404": httpx.Response(404, text="<html>Not Found</html>"),
}


def _run(
    answer: Callable[[httpx.Request], httpx.Response],
    scenario: Callable[[Any], Any],
    platform: str,
) -> Any:
    async def go() -> Any:
        client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        module: Any = fabric if platform == "fabric" else qianfan
        http = Http(
            client,
            provider=platform,
            map_error=module.map_error,
            limit=FixedLimit(4),
            retry=RetryPolicy(attempts=1),
            sign=None
            if platform == "fabric"
            else qianfan.bce_signer("ak-test", "sk-test", clock=lambda: datetime.now(UTC)),
        )
        provider: Any = (
            fabric.FabricProvider(
                platform,
                workspace_id="ws-1",
                http=http,
                services_http=http,
                endpoint="https://fabric.test",
                services_endpoint="https://fabric.test",
            )
            if platform == "fabric"
            else qianfan.QianfanProvider(platform, http=http, endpoint="https://qianfan.test")
        )
        try:
            return await scenario(provider)
        finally:
            await client.aclose()

    return asyncio.run(go())


def _always(response: httpx.Response, sent: list[httpx.Request] | None = None) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        if sent is not None:
            sent.append(request)
        return httpx.Response(
            response.status_code, headers=response.headers, content=response.content
        )

    return answer


@pytest.mark.parametrize("case", sorted(QIANFAN_CREDENTIAL_ANSWERS))
def test_a_qianfan_credential_refusal_is_an_auth_error_in_every_call(case: str) -> None:
    response = QIANFAN_CREDENTIAL_ANSWERS[case]
    with pytest.raises(AuthError):
        _run(_always(response), lambda qf: qf.snapshot(), "qianfan")
    with pytest.raises(AuthError):
        _run(_always(response), lambda qf: qf.delete_version("am-a", "amv-a"), "qianfan")
    sent: list[httpx.Request] = []
    outcomes = _run(
        _always(response, sent), lambda qf: qf.delete_models(["am-a", "am-b", "am-c"]), "qianfan"
    )
    assert all(type(outcome) is AuthError for outcome in outcomes), outcomes
    assert len(sent) == 1  # the batch was refused for its credentials: no call id by id
    outcomes = _run(_always(response), lambda qf: qf.delete_models(["am-a"]), "qianfan")
    assert type(outcomes[0]) is AuthError


def test_the_unknown_key_answer_names_the_credentials_not_the_object() -> None:
    error = platform_error(qianfan.map_error(QIANFAN_CREDENTIAL_ANSWERS["unknown-key-404"], None))
    assert type(error) is AuthError
    assert error.hint is not None and "ak_env" in error.hint


@pytest.mark.parametrize(
    "payload",
    [
        {"log_id": "1", "error_code": 14, "error_msg": "IAM Certification failed"},
        {"log_id": "1", "error_code": 110, "error_msg": "Access token invalid or no longer valid"},
        {"log_id": "1", "error_code": 500001, "error_msg": QIANFAN_UNKNOWN_KEY},
    ],
)
def test_a_v1_credential_error_with_http_200_is_an_auth_error(payload: dict[str, Any]) -> None:
    with pytest.raises(AuthError):
        qianfan.v1_result(payload, "batch delete")
    outcomes = _run(
        _always(httpx.Response(200, json=payload)),
        lambda qf: qf.delete_models(["am-a", "am-b"]),
        "qianfan",
    )
    assert all(type(outcome) is AuthError for outcome in outcomes), outcomes


def test_a_v2_credential_error_with_http_200_is_an_auth_error() -> None:
    payload = {"requestId": "r", "code": "NotFound", "message": QIANFAN_UNKNOWN_KEY}
    with pytest.raises(AuthError):
        qianfan.v2_result(payload, "delete model")


@pytest.mark.parametrize("case", sorted(FABRIC_CREDENTIAL_ANSWERS))
def test_a_fabric_credential_refusal_is_an_auth_error_in_every_call(case: str) -> None:
    response = FABRIC_CREDENTIAL_ANSWERS[case]
    with pytest.raises(AuthError):
        _run(_always(response), lambda fab: fab.snapshot(), "fabric")
    with pytest.raises(AuthError):
        _run(_always(response), lambda fab: fab.delete_version("m-1", VERSION_ID), "fabric")
    outcomes = _run(_always(response), lambda fab: fab.delete_models(["m-1", "m-2"]), "fabric")
    assert all(type(outcome) is AuthError for outcome in outcomes), outcomes


@pytest.mark.parametrize("case", sorted(FABRIC_NOT_THE_SERVICE))
def test_a_404_that_is_not_the_service_s_own_is_never_already_gone(case: str) -> None:
    response = FABRIC_NOT_THE_SERVICE[case]
    with pytest.raises(ProviderError) as caught:
        _run(_always(response), lambda fab: fab.delete_version("m-1", VERSION_ID), "fabric")
    assert not isinstance(caught.value, NotFoundError)
    assert "endpoint" in str(caught.value)


def test_the_service_s_own_404_is_still_already_gone() -> None:
    fabric_gone = httpx.Response(
        404,
        json={"error_code": "common.01000001", "error_msg": "response status exception, code: 404"},
    )
    with pytest.raises(NotFoundError):
        _run(_always(fabric_gone), lambda fab: fab.delete_version("m-1", VERSION_ID), "fabric")
    qianfan_gone = httpx.Response(
        404, json={"requestId": "r", "code": "ResourceNotFound", "message": "no am-a"}
    )
    with pytest.raises(NotFoundError):
        _run(_always(qianfan_gone), lambda qf: qf.delete_version("am-a", "amv-a"), "qianfan")
