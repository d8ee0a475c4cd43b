"""A redirect is reported as one: never followed, and where it pointed (without secrets).

It used to read `HTTP 302 (body: '')`. Every platform call goes through `Http`, on each of its
three ways of sending (the httpx client, a given transport, aiohttp's fast path); each is checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from reconcile.errors import NotFoundError, ProviderError
from reconcile.providers import fabric, qianfan
from reconcile.providers.adaptive import FixedLimit
from reconcile.providers.http import AiohttpTransport, Http, RetryPolicy
from tests.conftest import serve_over_loopback

LOCATION = "https://sso-user:Pa55word@login.example.com:8443/sso/start?ticket=T1CKET-secret#top"


def _http(
    answer: Callable[[httpx.Request], httpx.Response], map_error: Any = fabric.map_error
) -> Http:
    return Http(
        httpx.AsyncClient(transport=httpx.MockTransport(answer)),
        provider="p",
        map_error=map_error,
        limit=FixedLimit(1),
        retry=RetryPolicy(attempts=3, base_delay=0.0),
    )


def _failure(http: Http, url: str = "https://platform.test/v1/models/m1") -> ProviderError:
    async def go() -> None:
        try:
            await http.request("delete model m1", "DELETE", url)
        finally:
            await http.client.aclose()

    with pytest.raises(ProviderError) as caught:
        asyncio.run(go())
    return caught.value


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("map_error", [fabric.map_error, qianfan.map_error], ids=["fab", "qf"])
def test_a_redirect_says_it_is_not_followed_and_where_it_points(
    status: int, map_error: Any
) -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(status, headers={"Location": LOCATION})

    error = _failure(_http(answer, map_error))
    text = str(error)
    assert (
        f"HTTP {status}: the platform redirected to https://login.example.com:8443/sso/start"
        in (text)
    )
    assert "redirects are not followed" in text
    for secret in ("Pa55word", "sso-user", "T1CKET", "#top"):
        assert secret not in text
    assert "(body: '')" not in text
    assert not isinstance(error, NotFoundError)
    assert len(sent) == 1  # neither followed nor retried
    assert error.status == status and error.hint and "endpoint" in error.hint


def test_a_relative_location_is_shown_against_the_request() -> None:
    error = _failure(_http(lambda _: httpx.Response(302, headers={"Location": "/login?x=1"})))
    assert "redirected to https://platform.test/login (its query not shown)" in str(error)


def test_a_redirect_without_location_says_so() -> None:
    error = _failure(_http(lambda _: httpx.Response(302)))
    assert "redirected without saying where (no Location header)" in str(error)


def test_a_location_with_control_characters_is_escaped() -> None:
    location = "https://evil.example/\x1b[2Jpath\x07"
    transport = httpx.MockTransport(lambda _: httpx.Response(302, headers={"Location": location}))
    # Given as the transport, as for real endpoints: the client would refuse to parse it.
    http = _http(lambda _: httpx.Response(500))
    http.transport = transport
    error = _failure(http)
    assert "\x1b" not in str(error) and "\x07" not in str(error)
    assert "evil.example" in str(error)


@pytest.mark.loopback
@pytest.mark.parametrize("signed", [False, True], ids=["fast-path", "built-request"])
def test_a_redirect_over_aiohttp_is_reported_and_not_followed(signed: bool) -> None:
    calls: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        headers = [(b"location", b"http://127.0.0.1:9/elsewhere?token=x")]
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    with serve_over_loopback(app) as url:
        transport = AiohttpTransport(max_connections=2, timeout=5)
        http = Http(
            httpx.AsyncClient(transport=transport),
            provider="p",
            map_error=fabric.map_error,
            limit=FixedLimit(1),
            retry=RetryPolicy(attempts=1),
            transport=transport,
            sign=(lambda request: None) if signed else None,
        )

        async def go() -> None:
            try:
                await http.request("list models", "GET", f"{url}/v1/models")
            finally:
                await transport.aclose()
                await http.client.aclose()

        with pytest.raises(ProviderError) as caught:
            asyncio.run(go())
    assert "redirected to http://127.0.0.1:9/elsewhere (its query not shown)" in str(caught.value)
    assert calls == ["/v1/models"]
