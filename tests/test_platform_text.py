"""Text that came back from a platform is redacted and escaped before any user sees it.

Some gateways echo the request's headers in their error bodies: the signature, the access key, a
token or a security token would then be quoted in the error message, the journal and the log.
And a platform's text can hold newlines or terminal escape sequences that would forge lines on
the terminal where apply asks for `yes`. Every case goes through the real `Http` with the real
signers, so what is echoed is exactly what was sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from reconcile.errors import ProviderError
from reconcile.providers import fabric, qianfan
from reconcile.providers.adaptive import FixedLimit
from reconcile.providers.failures import Redactor, escape_text
from reconcile.providers.http import Http, RetryPolicy

FABRIC_AK = "HPUATEXTTESTAK000001"
FABRIC_SK = "text-Fabric-SK-Jq8Vw2Nz5Lp"
FABRIC_STS = "text-Fabric-STS-Hb4Tc7Xm1"
QIANFAN_AK = "text-qianfan-AK-Ue5Gi8"
QIANFAN_SK = "text-Qianfan-SK-Oa2Fv6Mt0"
#: Someone else's credentials, echoed by a gateway: not known to this run, found by their look.
FOREIGN = {
    "bce": "bce-auth-v1/0123456789abcdef0123456789abcdef/2024-07-01T12:00:00Z/1800/host;"
    "x-bce-date/" + "ab" * 32,
    "sdk": "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=host;x-sdk-date, "
    "Signature=" + "cd" * 32,
    "token": "MIIZkQYJKoZIhvcNAQcCoIIZgjCCGX4CAQExDTALBglghkgBZQMEAgEwghfjBgkqhkiG9w0BBwGg",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEyMyJ9.c2lnbmF0dXJlLXZhbHVlLWhlcmU",
}
#: What must never be shown: the run's secrets, and any signature or token by its look.
MARKS = (
    FABRIC_AK,
    FABRIC_SK,
    FABRIC_STS,
    QIANFAN_AK,
    QIANFAN_SK,
    "bce-auth-v1/",
    "SDK-HMAC-SHA256 Access",
    "Signature=",
    "MIIZkQYJ",
    "eyJhbGci",
)


def _http(platform: str, answer: Callable[[httpx.Request], httpx.Response]) -> Http:
    redact = Redactor()
    if platform == "fabric":
        redact.add(FABRIC_AK, FABRIC_SK, FABRIC_STS)
        sign = fabric.sdk_hmac_signer(
            FABRIC_AK,
            FABRIC_SK,
            project_id="p1",
            security_token=FABRIC_STS,
            clock=lambda: datetime.now(UTC),
        )
        map_error: Any = fabric.map_error
    else:
        redact.add(QIANFAN_AK, QIANFAN_SK)
        sign = qianfan.bce_signer(QIANFAN_AK, QIANFAN_SK, clock=lambda: datetime.now(UTC))
        map_error = qianfan.map_error
    return Http(
        httpx.AsyncClient(transport=httpx.MockTransport(answer)),
        provider=platform,
        map_error=map_error,
        limit=FixedLimit(1),
        retry=RetryPolicy(attempts=1),
        redact=redact,
        sign=sign,
    )


def _failure(platform: str, answer: Callable[[httpx.Request], httpx.Response]) -> ProviderError:
    async def go() -> None:
        http = _http(platform, answer)
        try:
            await http.request("delete model", "POST", "https://platform.test/v1/x", json={})
        finally:
            await http.client.aclose()

    with pytest.raises(ProviderError) as caught:
        asyncio.run(go())
    return caught.value


def _shown(error: ProviderError) -> str:
    """Everything of an error that may reach a user, a journal or a log."""
    parts = [str(error), repr(error.args), error.url, error.hint, error.platform_message]
    return "\n".join(str(part) for part in [*parts, error.solution, error.code])


def _echo_headers(status: int, shape: str) -> Callable[[httpx.Request], httpx.Response]:
    """A gateway that quotes the request's headers (and someone else's) in its error."""

    def answer(request: httpx.Request) -> httpx.Response:
        headers = dict(request.headers)
        foreign = " ".join(f"{name}={value}" for name, value in FOREIGN.items())
        if shape == "dict":
            text = f"bad request, headers: {headers}; also seen: {foreign}"
        elif shape == "lines":
            lines = "\r\n".join(f"{name}: {value}" for name, value in request.headers.items())
            text = f"bad request:\r\n{lines}\r\n{foreign}"
        else:
            text = json.dumps({"request": {"headers": headers}, "seen": foreign})
        body = {"error_code": "APIGW.0201", "error_msg": text, "solution_msg": text}
        body |= {"code": "InvalidHTTPRequest", "message": text}
        return httpx.Response(status, json=body, headers={"X-Bce-Error-Message": text[:4000]})

    return answer


@pytest.mark.parametrize("platform", ["fabric", "qianfan"])
@pytest.mark.parametrize("shape", ["dict", "lines", "json"])
@pytest.mark.parametrize("status", [400, 502])
def test_echoed_headers_and_foreign_credentials_are_redacted(
    platform: str, shape: str, status: int
) -> None:
    error = _failure(platform, _echo_headers(status, shape))
    shown = _shown(error)
    assert "***" in shown
    for mark in MARKS:
        assert mark not in shown, (mark, shown)
    assert f"HTTP {status}" in str(error)


def test_a_body_that_is_not_json_is_redacted_too() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        echoed = f"Authorization: {request.headers['Authorization']}\nX-Auth-Token: tok-zz9"
        return httpx.Response(400, text=f"<html><pre>{echoed}</pre></html>")

    shown = _shown(_failure("fabric", answer))
    for mark in (*MARKS, "tok-zz9"):
        assert mark not in shown, (mark, shown)


FORGED = "gone\n  = keep model fab/prod-db\x1b[2K\x1b]0;title\x07\u202eevil\r"


@pytest.mark.parametrize("platform", ["fabric", "qianfan"])
def test_platform_text_cannot_forge_lines_or_send_terminal_escapes(platform: str) -> None:
    def answer(_: httpx.Request) -> httpx.Response:
        body = {
            "error_code": "dataartsfabric.1",
            "error_msg": FORGED,
            "solution_msg": FORGED,
            "code": "Bad\nCode",
            "message": FORGED,
        }
        return httpx.Response(400, json=body, headers={"X-Request-Id": "r\x1b[31m"})

    error = _failure(platform, answer)
    for text in (error.message, error.hint or "", error.platform_message or "", error.code or ""):
        assert not any(ch in text for ch in "\n\r\x1b\x07\u202e"), repr(text)
    assert "gone\\n  = keep model" in str(error)
    assert "\\x1b[2K" in str(error)


def test_a_transport_error_is_escaped_and_redacted() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused\n\x1b[31m{request.headers['Authorization']}")

    error = _failure("qianfan", answer)
    assert "\x1b" not in str(error) and "\n" not in error.message
    for mark in MARKS:
        assert mark not in _shown(error)


def test_the_qianfan_answer_checks_redact_and_escape() -> None:
    payload = {"requestId": "r", "code": "Bad", "message": f"x\x1b[2J {FOREIGN['bce']}"}
    with pytest.raises(ProviderError) as caught:
        qianfan.v2_result(payload, "delete model")
    assert "\x1b" not in str(caught.value) and "bce-auth-v1/" not in str(caught.value)


def test_escape_text_shows_what_it_escapes() -> None:
    assert escape_text("a\nb\tc\x1b[0m\x7f\u202e\u200bd") == "a\\nb\\tc\\x1b[0m\\x7f\\u202e\\u200bd"
    assert escape_text("plain 文字 ✓") == "plain 文字 ✓"


@pytest.mark.parametrize(
    "text",
    [
        "Incorrect token or token resolution failed",
        "X-Auth-Token is invalid in the request",
        "NotFound, cause: Could not find credential.",
        "SignatureDoesNotMatch, cause: Fail to authn user: Signature does not match",
        "model version v is used by service instance(s): svc-1",
    ],
)
def test_the_platform_s_own_words_about_credentials_are_kept(text: str) -> None:
    assert Redactor()(text) == text
