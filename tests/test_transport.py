"""The transport under real endpoints (aiohttp's pool behind httpx's interface), over loopback:
same answers as the in-process emulator, bounded bodies, transport failures that Http retries."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from reconcile.emulator import create_app
from reconcile.errors import ProviderError
from reconcile.manifest import load_manifest
from reconcile.model import Snapshot
from reconcile.providers.adaptive import FixedLimit
from reconcile.providers.fabric import map_error
from reconcile.providers.http import MAX_BODY_BYTES, AiohttpTransport, Http, RetryPolicy
from reconcile.wiring import Options, open_providers
from tests.conftest import demo_state, serve_over_loopback

pytestmark = pytest.mark.loopback
TOKEN = "transport-test-token"


def _manifest(tmp_path: Path, endpoint: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(
        f"""
[providers.fab]
type = "fabric"
endpoint = "{endpoint}"
workspace_id = "ws-demo"
credentials = {{ token_env = "TRANSPORT_TEST_TOKEN" }}
scope = "workspace"
"""
    )
    return path


def _snapshot(manifest: Path, state_dir: Path, parallelism: int) -> Snapshot:
    options = Options(state_dir=state_dir, parallelism=parallelism)
    (provider,) = open_providers(load_manifest(manifest), None, options).values()

    async def listing() -> Snapshot:
        try:
            return await provider.snapshot()
        finally:
            await provider.aclose()

    return asyncio.run(listing())


@pytest.mark.parametrize("parallelism", [1, 64])
def test_a_listing_over_loopback_equals_the_in_process_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallelism: int
) -> None:
    state = demo_state()
    state["fabric"]["tokens"] = [TOKEN]
    monkeypatch.setenv("TRANSPORT_TEST_TOKEN", TOKEN)
    app = create_app(state)
    with serve_over_loopback(app) as url:
        over_socket = _snapshot(_manifest(tmp_path, url), tmp_path, parallelism)
    requests = app.state.emulator.requests
    assert requests and all(r["auth"] == "X-Auth-Token" for r in requests)
    # The same workspace through the in-process emulator (httpx's ASGI transport).
    (tmp_path / "seed.json").write_text(__import__("json").dumps(demo_state()))
    in_process = _snapshot(_manifest(tmp_path, "emulator:seed.json"), tmp_path / "s", 4)
    assert over_socket.models == in_process.models
    assert over_socket.services == in_process.services


def _http(transport: AiohttpTransport, attempts: int = 1) -> Http:
    client = httpx.AsyncClient(transport=transport)
    return Http(
        client,
        provider="fab",
        map_error=map_error,
        limit=FixedLimit(4),
        retry=RetryPolicy(attempts=attempts, timeout=5),
        transport=transport,
        sleep=_no_sleep,
    )


async def _no_sleep(_: float) -> None:
    return None


def _get(
    url: str, *, attempts: int = 1, timeout: float = 5, method: str = "GET", json: Any = None
) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = AiohttpTransport(max_connections=4, timeout=timeout)
        http = _http(transport, attempts)
        http.client.headers["X-Token"] = "t0ken"
        try:
            return await http.request("get it", method, url, params={"a": 1, "b": "x y"}, json=json)
        finally:
            await http.client.aclose()

    return asyncio.run(go())


async def _echo(request: Request) -> Response:
    body = (await request.body()).decode()
    text = f"{request.method} {request.url.path}?{request.url.query} {body}"
    seen = {
        "X-Seen-Host": request.headers["host"],
        "X-Seen-Token": request.headers.get("x-token", ""),
        "X-Seen-Type": request.headers.get("content-type", ""),
    }
    return Response(text, headers=seen)


async def _huge(request: Request) -> Response:
    return Response(b"{}", headers={"Content-Length": str(MAX_BODY_BYTES + 1)})


async def _endless(request: Request) -> Response:
    chunk = b" " * (1024 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
            yield chunk

    return StreamingResponse(chunks())


async def _gzipped(request: Request) -> Response:
    # A small body that would expand a thousandfold: never decoded, since it was not asked for.
    bomb = gzip.compress(b"0" * 1_000_000)
    seen = request.headers.get("accept-encoding", "")
    return Response(bomb, headers={"Content-Encoding": "gzip", "X-Seen-Accept": seen})


async def _slow(request: Request) -> Response:
    await asyncio.sleep(2)
    return Response(b"late")


_APP = Starlette(
    routes=[
        Route("/echo", _echo, methods=["GET", "POST"]),
        Route("/caf\u00e9 au lait", _echo),
        Route("/huge", _huge),
        Route("/endless", _endless),
        Route("/slow", _slow),
        Route("/gzipped", _gzipped),
    ]
)


def test_requests_go_out_as_built_plain_or_as_httpx_requests() -> None:
    """A bodiless unsigned request is sent from plain values (no httpx.Request); one with a
    body is built by httpx. Both reach the server with the same method, path, query, host and
    client headers."""
    with serve_over_loopback(_APP) as url:
        plain = _get(f"{url}/echo")
        built = _get(f"{url}/echo", method="POST", json={"k": "v"})
    assert plain.status_code == built.status_code == 200
    assert plain.text == "GET /echo?a=1&b=x+y "
    assert built.text == 'POST /echo?a=1&b=x+y {"k":"v"}'
    for response in (plain, built):
        assert response.headers["X-Seen-Host"] == url.removeprefix("http://")
        assert response.headers["X-Seen-Token"] == "t0ken"
    assert built.headers["X-Seen-Type"] == "application/json"


def test_a_url_that_needs_encoding_is_encoded_before_it_is_sent() -> None:
    with serve_over_loopback(_APP) as url:
        encoded = _get(f"{url}/caf\u00e9 au lait")
        normalized = _get(f"{url}/x/../echo")
    assert encoded.status_code == normalized.status_code == 200
    assert encoded.text == "GET /caf\u00e9 au lait?a=1&b=x+y "
    assert normalized.text == "GET /echo?a=1&b=x+y "


def test_an_announced_huge_body_is_refused_unread() -> None:
    with serve_over_loopback(_APP) as url, pytest.raises(ProviderError, match="announced"):
        _get(f"{url}/huge")


def test_an_endless_body_is_cut_off_and_not_retried() -> None:
    with serve_over_loopback(_APP) as url, pytest.raises(ProviderError) as caught:
        _get(f"{url}/endless", attempts=3)
    assert "after 1 attempt(s): RefusedResponse: response body larger than" in str(caught.value)


def test_only_uncompressed_bodies_are_asked_for_and_accepted() -> None:
    with serve_over_loopback(_APP) as url:
        seen = _get(f"{url}/echo")
        with pytest.raises(ProviderError) as caught:
            _get(f"{url}/gzipped", attempts=3)
    assert "after 1 attempt(s): RefusedResponse: the platform sent a gzip-encoded body" in str(
        caught.value
    )
    assert seen.status_code == 200


def test_a_proxy_password_never_reaches_a_message() -> None:
    from reconcile.providers.transport import _without_userinfo

    text = "407, message='Proxy Authentication Required', url='http://puser:PASSW0RD@proxy:3128'"
    assert "PASSW0RD" not in _without_userinfo(text)
    assert "http://***@proxy:3128" in _without_userinfo(text)


def test_loopback_requests_never_go_through_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    from reconcile.providers.transport import _env_proxy

    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("ALL_PROXY", "http://all.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert _env_proxy("http", "127.0.0.1") is None
    assert _env_proxy("http", "localhost") is None
    assert _env_proxy("http", "fabric.example") == "http://proxy.example:3128"
    monkeypatch.delenv("HTTP_PROXY")
    assert _env_proxy("https", "fabric.example") == "http://all.example:3128"


def test_a_slow_answer_is_a_timeout_and_retried() -> None:
    with serve_over_loopback(_APP) as url, pytest.raises(ProviderError) as caught:
        _get(f"{url}/slow", attempts=2, timeout=0.3)
    assert "after 2 attempt(s): ReadTimeout" in str(caught.value)


def test_a_refused_connection_is_a_connect_error_and_retried() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now.
    with pytest.raises(ProviderError) as caught:
        _get(f"http://127.0.0.1:{port}/x", attempts=3)
    assert "after 3 attempt(s): ConnectError" in str(caught.value)


def test_the_transport_closes_its_pool() -> None:
    async def go(url: str) -> tuple[list[Any], list[Any]]:
        transport = AiohttpTransport(max_connections=2, timeout=5)
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get("http://127.0.0.1:9/")  # discard port: nothing there
            assert (await client.get(f"{url}/echo")).status_code == 200
            pooled = [c for idle in transport._wire._idle.values() for c in idle]
        return pooled, [c for idle in transport._wire._idle.values() for c in idle]

    with serve_over_loopback(_APP) as url:
        pooled, after = asyncio.run(go(url))
    assert len(pooled) == 1
    assert pooled[0].closed and pooled[0].transport.is_closing()
    assert after == []


def test_the_shared_pool_keeps_no_cookie_between_requests() -> None:
    """Providers of one endpoint share a pool: a cookie set by one answer (a session of one
    account, say) must never go out with the next request, whoever sends it."""

    async def set_cookie(request: Request) -> Response:
        response = Response("set")
        response.set_cookie("session", "account-a")
        return response

    async def echo_cookie(request: Request) -> Response:
        return Response(request.headers.get("cookie", "none"))

    app = Starlette(routes=[Route("/set", set_cookie), Route("/echo", echo_cookie)])

    async def go(url: str) -> str:
        transport = AiohttpTransport(max_connections=4, timeout=5)
        first, second = _http(transport), _http(transport)
        try:
            await first.request("set", "GET", f"{url}/set")
            answer = await second.request("echo", "GET", f"{url}/echo")
            return answer.text
        finally:
            await transport.aclose()

    with serve_over_loopback(app) as url:
        # By name, not by IP address: a cookie jar refuses cookies from IP addresses.
        assert asyncio.run(go(url.replace("127.0.0.1", "localhost"))) == "none"
