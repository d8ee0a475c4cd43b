"""The one place that builds HTTP clients and sends requests to platforms.

Bounded concurrency, retries of transient failures, secret redaction and the mapping of failures
to `ProviderError` live here, so every provider behaves the same way.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from reconcile.endpoints import check_endpoint as _check_endpoint
from reconcile.errors import ProviderError
from reconcile.model import strict_json

#: Statuses worth another try: the request may well succeed a moment later.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Largest response body accepted; a listing page is far smaller.
MAX_BODY_BYTES = 16 * 1024 * 1024
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: A URL that goes on the wire as it is: RFC 3986 characters only, every `%` an escape, and no
#: dot segment (httpx would encode or remove those). Ids are quoted into paths before.
_SENDABLE_URL = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+")

#: Turns a failed response (and its parsed body, or None) into the platform's `ProviderError`.
ErrorMapper = Callable[[httpx.Response, Any], ProviderError]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    #: First backoff ceiling in seconds; doubles each attempt (full jitter), capped by `max_delay`.
    base_delay: float = 0.2
    max_delay: float = 5.0
    timeout: float = 30.0


@dataclass
class Redactor:
    """Replaces every known secret value with `***` in text that may reach a user."""

    secrets: set[str] = field(default_factory=set)

    def add(self, *values: str | None) -> None:
        for value in values:
            if value and len(value) >= 4:
                # Also the escaped forms an exception message may show (str and bytes reprs).
                self.secrets.update(
                    {value, value.encode("unicode_escape").decode(), repr(value.encode())[2:-1]}
                )

    def __call__(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def check_endpoint(endpoint: str, *, insecure: bool = False) -> str:
    """An https URL, or http on a loopback host; anything else is refused before any request."""
    return _check_endpoint(endpoint, insecure=insecure)


class RateLimiter:
    """At most `rate` request starts per second, spread evenly (for platforms that throttle)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / rate
        self.clock = clock
        self.next_slot = 0.0

    @classmethod
    def per_second(cls, rate: float | None) -> RateLimiter | None:
        return None if rate is None else cls(rate)

    async def wait(self) -> None:
        now = self.clock()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class Http:
    """Sends one platform's requests: at most `parallelism` at once, retried when transient."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        provider: str,
        map_error: ErrorMapper,
        semaphore: asyncio.Semaphore,
        retry: RetryPolicy | None = None,
        redact: Redactor | None = None,
        sign: Callable[[httpx.Request], None] | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.client = client
        #: When given (the client's own transport), requests go straight to it: the client's
        #: machinery (auth flows, redirects, cookies, hooks) is not used by platform calls, and
        #: costs more per request than aiohttp's whole round trip.
        self.transport = transport
        self.provider = provider
        self.map_error = map_error
        self.semaphore = semaphore
        self.retry = retry or RetryPolicy()
        self.redact = redact or Redactor()
        self.sign = sign
        self.sleep = sleep
        self.limiter = limiter
        #: Requests sent (each attempt counts), for benchmarks and progress.
        self.sent = 0
        #: The client's headers as the direct transport sends them, made on first use.
        self._plain_headers: list[tuple[str, str]] | None = None

    async def request(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        ok: Iterable[int] = (200,),
    ) -> httpx.Response:
        """Send, retrying transient failures; return the response or raise `ProviderError`."""
        accepted = frozenset(ok)
        attempt = 0
        while True:
            attempt += 1
            # One URL parse (the client's build_request would parse twice and merge defaults
            # nobody sets); the client's headers are the only defaults platform calls use.
            full_url = f"{url}?{httpx.QueryParams(params)}" if params else url
            # Unsigned and bodiless (a token's listings and deletes) over the direct transport,
            # with a URL that needs no encoding, no httpx.Request is built: its URL parsing
            # alone cost more than a tenth of a listing's CPU. Everything else is built, signed
            # and sent as httpx objects.
            plain = (
                isinstance(self.transport, AiohttpTransport)
                and self.sign is None
                and json is None
                and _SENDABLE_URL.fullmatch(full_url) is not None
                and "/." not in full_url
            )
            request = None
            if not plain:
                request = httpx.Request(method, full_url, headers=self.client.headers, json=json)
                if self.sign is not None:
                    self.sign(request)
            described = f"{operation} ({method} {self.redact(full_url)})"
            try:
                if self.limiter is not None:
                    await self.limiter.wait()
                async with self.semaphore:
                    self.sent += 1
                    if request is None:
                        assert isinstance(self.transport, AiohttpTransport)  # as `plain` says
                        streamed = await self.transport.fetch(
                            method, full_url, self._headers_for_plain()
                        )
                    elif self.transport is not None:
                        streamed = await self.transport.handle_async_request(request)
                    else:
                        streamed = await self.client.send(request, stream=True)
                    response = await self._read_bounded(streamed, described)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                # Transient: nothing (or not all) came back. Worth another try.
                if attempt < self.retry.attempts:
                    await self.sleep(self._backoff(attempt, None))
                    continue
                raise self._transport_error(
                    exc, described, attempt, operation, method, full_url
                ) from None
            except httpx.HTTPError as exc:
                # Not transient: a request we could not send as built (an invalid header value),
                # an undecodable body, too many redirects.
                raise self._transport_error(
                    exc, described, attempt, operation, method, full_url
                ) from None
            if response.status_code in accepted:
                return response
            if response.status_code in RETRY_STATUSES and attempt < self.retry.attempts:
                await self.sleep(self._backoff(attempt, response.headers.get("Retry-After")))
                continue
            error = self.map_error(response, _json_or_none(response))
            error.provider = self.provider
            error.operation = operation
            error.method = method
            error.url = self.redact(full_url)
            error.message = self.redact(f"{self.provider}: {described} failed: {error.message}")
            if error.hint:
                error.hint = self.redact(error.hint)
            raise error

    def _headers_for_plain(self) -> list[tuple[str, str]]:
        if self._plain_headers is None:
            self._plain_headers = list(self.client.headers.multi_items())
        return self._plain_headers

    def _transport_error(
        self,
        exc: httpx.HTTPError,
        described: str,
        attempt: int,
        operation: str,
        method: str,
        url: str,
    ) -> ProviderError:
        # Protocol errors quote the offending bytes (header values, so possibly a secret): only
        # their kind is shown. Timeouts and network errors name hosts and ports, never headers.
        shown = isinstance(exc, httpx.TimeoutException | httpx.NetworkError | RefusedResponse)
        detail = f"{type(exc).__name__}: {exc or 'no response'}" if shown else type(exc).__name__
        return ProviderError(
            self.redact(
                f"{self.provider}: {described} failed after {attempt} attempt(s): {detail}"
            ),
            provider=self.provider,
            operation=operation,
            method=method,
            url=self.redact(url),
            hint="check the endpoint, the network and the credentials' values, then run again",
        )

    async def _read_bounded(self, response: httpx.Response, described: str) -> httpx.Response:
        """Read the body, but never more than MAX_BODY_BYTES: a huge or endless answer is an
        error naming the call, not an out-of-memory crash."""
        try:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
                raise self._too_large(described, f"announced {length} bytes")
            if response.is_stream_consumed:
                # Read whole by the transport (AiohttpTransport reads at most MAX_BODY_BYTES).
                if len(response.content) > MAX_BODY_BYTES:
                    raise self._too_large(described, f"sent more than {MAX_BODY_BYTES} bytes")
                return response
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise self._too_large(described, f"sent more than {MAX_BODY_BYTES} bytes")
                chunks.append(chunk)
        finally:
            await response.aclose()
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(response.status_code, headers=headers, content=b"".join(chunks))

    def _too_large(self, described: str, what: str) -> ProviderError:
        return ProviderError(
            f"{self.provider}: {described}: the platform {what}, more than a listing page can be",
            provider=self.provider,
            hint="a proxy or gateway may be in the way; check the endpoint",
        )

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), self.retry.max_delay * 4)
            except ValueError:
                pass
        ceiling = min(self.retry.max_delay, self.retry.base_delay * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


class RefusedResponse(httpx.RequestError):
    """An answer refused for what it is (too large, compressed unasked, a refused certificate):
    never retried, and its message is safe to show."""


def _without_userinfo(text: str) -> str:
    """Masks `user:password@` in any URL quoted by a library's message (proxy URLs carry them)."""
    return re.sub(r"//[^/@\s]+@", "//***@", text)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends over one aiohttp connection pool.

    httpx's own pool (httpcore) checks every pooled connection on every request, so its cost per
    request grows with the pool: at 64 connections a request costs several times what it does at
    16, and more parallelism makes a listing slower. aiohttp's pool hands out an idle connection
    in O(1) and parses responses in C. Requests are built, signed and answered as httpx objects,
    so nothing above this class changes; bodies are read whole (a page is small), at most
    `max_body` bytes.
    """

    def __init__(
        self, *, max_connections: int, timeout: float, max_body: int = MAX_BODY_BYTES
    ) -> None:
        self.max_connections = max_connections
        self.timeout = timeout
        self.max_body = max_body
        self._session: Any = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    def _open(self) -> Any:
        import ssl

        import aiohttp
        import certifi

        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            ssl=ssl.create_default_context(cafile=certifi.where()),
            keepalive_timeout=5.0,
        )
        # httpx decodes bodies (Content-Encoding) and sets every header itself.
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            # Not trust_env: aiohttp would then read ~/.netrc in a thread on every request.
            # Proxies from the environment are honoured per host (`_env_proxy`), as in httpx.
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers = list(request.headers.multi_items())
        content = request.content
        return await self.fetch(
            request.method, str(request.url), headers, content or None, request=request
        )

    async def fetch(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None = None,
        *,
        request: httpx.Request | None = None,
    ) -> httpx.Response:
        """Send one request given as plain values (`url` already encoded); answer with its
        response read whole. Failures are httpx's exceptions, as from any transport."""
        import aiohttp
        import yarl

        if self._session is None:
            self._session = self._open()
        target = yarl.URL(url, encoded=True)
        proxy_key = (target.scheme, target.host or "")
        if proxy_key not in self._proxies:
            self._proxies[proxy_key] = _env_proxy(*proxy_key)
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
                proxy=self._proxies[proxy_key],
            ) as answer:
                encoding = answer.headers.get("Content-Encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise RefusedResponse(
                        f"the platform sent a {encoding}-encoded body, which was not asked for",
                        request=request,
                    )
                length = answer.headers.get("Content-Length")
                if length is not None and length.isdigit():
                    # Over the bound: refused by Http on the announced length, never read.
                    content = await answer.read() if int(length) <= self.max_body else b""
                else:
                    content = await self._read_bounded(answer, request)
                return httpx.Response(
                    answer.status, headers=list(answer.raw_headers), content=content
                )
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
        if self._session is not None:
            await self._session.close()
            self._session = None


def _env_proxy(scheme: str, host: str) -> str | None:
    """The proxy the environment names for this scheme and host (HTTPS_PROXY, NO_PROXY...)."""
    import urllib.request

    if host in LOOPBACK_HOSTS or urllib.request.proxy_bypass(host):
        return None  # never send a loopback request (and its credentials) through a proxy
    proxies = urllib.request.getproxies()
    return proxies.get(scheme) or proxies.get("all")


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def parse_json(response: httpx.Response, what: str) -> Any:
    """The JSON body of a successful response, or a `ProviderError` that names the call."""
    try:
        return strict_json(response.content)
    except ValueError:
        kind = response.headers.get("Content-Type", "no content type")
        raise ProviderError(
            f"{what}: the platform answered HTTP {response.status_code} with a body that is not "
            f"JSON ({kind}, {len(response.content)} bytes)",
            status=response.status_code,
            hint="a proxy or gateway may be in the way; check the endpoint",
        ) from None
