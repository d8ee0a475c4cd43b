"""The transport of real endpoints: httpx's interface over our own connection pool (`wire`), and
aiohttp's for endpoints reached through a proxy.

Bodies are read whole and bounded; redirects are never followed; proxies come from the
environment per host, never for loopback. Failures are httpx's exceptions, as from any transport.
"""

from __future__ import annotations

import functools
import re
import ssl
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconcile.providers.wire import Answer, RefusedResponse, Wire, split

__all__ = ["LOOPBACK_HOSTS", "MAX_BODY_BYTES", "AiohttpTransport", "Answer", "RefusedResponse"]

#: Largest response body accepted; a listing page is far smaller.
MAX_BODY_BYTES = 16 * 1024 * 1024
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _without_userinfo(text: str) -> str:
    """Masks `user:password@` in any URL quoted by a library's message (proxy URLs carry them)."""
    return re.sub(r"//[^/@\s]+@", "//***@", text)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends over one connection pool: `Wire`'s, or aiohttp's for an
    endpoint the environment names a proxy for.

    httpx's own pool (httpcore) checks every pooled connection on every request, so its cost per
    request grows with the pool: at 64 connections a request costs several times what it does at
    16, and more parallelism makes a listing slower. Both pools hand out an idle connection in
    O(1) and parse responses in C; `Wire` at half aiohttp's CPU per request. `Http` sends its
    requests as plain parts (`fetch`) and reads `Answer`s; an httpx client over this transport
    gets httpx objects. Bodies are read whole (a page is small), at most `max_body` bytes.
    """

    def __init__(
        self, *, max_connections: int, timeout: float, max_body: int = MAX_BODY_BYTES
    ) -> None:
        self.max_connections = max_connections
        self.timeout = timeout
        self.max_body = max_body
        self._session: Any = None
        self._wire = Wire(
            max_connections=max_connections, timeout=timeout, max_body=max_body, tls=_tls_context
        )
        #: Per origin (scheme://host:port): the proxy its requests go through, if any.
        self._proxies: dict[str, str | None] = {}

    def _open(self) -> Any:
        import aiohttp

        connector = aiohttp.TCPConnector(
            limit=self.max_connections, ssl=_tls_context(), keepalive_timeout=5.0
        )
        # httpx decodes bodies (Content-Encoding) and sets every header itself.
        return aiohttp.ClientSession(
            connector=connector,
            # No cookies: platform calls authenticate by header or signature, and providers of
            # one endpoint share this pool, so a cookie one account's answer set would otherwise
            # go out with another account's requests.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            # Not trust_env: aiohttp would then read ~/.netrc in a thread on every request.
            # Proxies from the environment are honoured per host (`_env_proxy`), as in httpx.
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """For an httpx client over this pool (`Http` calls `fetch` itself)."""
        headers = list(request.headers.multi_items())
        answer = await self.fetch(
            request.method, str(request.url), headers, request.content or None, request=request
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    async def fetch(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None = None,
        *,
        request: httpx.Request | None = None,
    ) -> Answer:
        """Send one request given as plain values (`url` already encoded); answer with its
        response read whole. Failures are httpx's exceptions, as from any transport."""
        origin, target = split(url)
        if origin not in self._proxies:
            parts = urlsplit(origin)
            self._proxies[origin] = _env_proxy(parts.scheme, parts.hostname or "")
        proxy = self._proxies[origin]
        if proxy is None:
            return await self._wire.fetch(method, origin, target, headers, body)
        return await self._through_aiohttp(method, url, headers, body, proxy, request)

    async def _through_aiohttp(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        proxy: str,
        request: httpx.Request | None,
    ) -> Answer:
        import aiohttp
        import yarl

        if self._session is None:
            self._session = self._open()
        target = yarl.URL(url, encoded=True)
        # Uncompressed only: a compressed body could expand far past `max_body` once decoded.
        sent = [(name, value) for name, value in headers if name.lower() != "accept-encoding"]
        sent.append(("Accept-Encoding", "identity"))
        try:
            async with self._session.request(
                method,
                target,
                headers=sent,
                data=body,
                allow_redirects=False,
                compress=None,
                proxy=proxy,
            ) as answer:
                encoding = answer.headers.get("Content-Encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise RefusedResponse(
                        f"the platform sent a {encoding}-encoded body, which was not asked for",
                        request=request,
                    )
                text = answer.headers.get("Content-Length")
                length = int(text) if text is not None and text.isdigit() else None
                if length is not None:
                    # Over the bound: refused by Http on the announced length, never read.
                    content = await answer.read() if length <= self.max_body else b""
                else:
                    content = await self._read_bounded(answer, request)
                return Answer(answer.status, list(answer.raw_headers), content, length)
        except TimeoutError as error:
            raise httpx.ReadTimeout("timed out", request=request) from error
        except (aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch) as error:
            # Not transient: retrying a refused certificate only repeats the refusal.
            raise RefusedResponse(
                f"TLS verification failed: {_without_userinfo(str(error))}", request=request
            ) from error
        except aiohttp.ClientResponseError as error:
            # Its text quotes the URL, which for a proxy may carry a password: status only.
            raise httpx.ReadError(
                f"HTTP {error.status} from the connection (proxy?)", request=request
            ) from error
        except aiohttp.ClientConnectionError as error:
            raise httpx.ConnectError(_without_userinfo(str(error)), request=request) from error
        except aiohttp.ClientError as error:
            raise httpx.ReadError(type(error).__name__, request=request) from error

    async def _read_bounded(self, answer: Any, request: httpx.Request | None) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in answer.content.iter_any():
            size += len(chunk)
            if size > self.max_body:
                raise RefusedResponse(
                    f"response body larger than {self.max_body} bytes", request=request
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        await self._wire.aclose()
        if self._session is not None:
            await self._session.close()
            self._session = None


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every connection pool of the process: loading the CA
    bundle takes 40 ms of CPU, which 200 workspaces' pools paid 200 times."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _env_proxy(scheme: str, host: str) -> str | None:
    """The proxy the environment names for this scheme and host (HTTPS_PROXY, NO_PROXY...)."""
    import urllib.request

    if host in LOOPBACK_HOSTS or urllib.request.proxy_bypass(host):
        return None  # never send a loopback request (and its credentials) through a proxy
    proxies = urllib.request.getproxies()
    return proxies.get(scheme) or proxies.get("all")
