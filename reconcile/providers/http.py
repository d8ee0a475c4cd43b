"""The one place that builds HTTP clients and sends requests to platforms.

Bounded concurrency, retries of transient failures, secret redaction and the mapping of failures
to `ProviderError` live here, so every provider behaves the same way.
"""

from __future__ import annotations

import asyncio
import functools
import json as jsonlib
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from reconcile.endpoints import check_endpoint as _check_endpoint
from reconcile.errors import ProviderError
from reconcile.model import Unkeepable, strict_json
from reconcile.providers.adaptive import Headroom, Limit
from reconcile.providers.base import Signer
from reconcile.providers.failures import Call, Redactor, Refusal, platform_error
from reconcile.providers.trace import log_request
from reconcile.providers.transport import (
    MAX_BODY_BYTES,
    AiohttpTransport,
    RefusedResponse,
)
from reconcile.providers.transport import (
    Answer as Answer,  # what `Http.request` answers with
)

#: Statuses worth another try: the request may well succeed a moment later.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: A URL that goes on the wire as it is: RFC 3986 characters only, every `%` an escape, and no
#: dot segment (httpx would encode or remove those). Ids are quoted into paths before.
_SENDABLE_URL = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+")

#: Reads a failed response (and its parsed body, or None): what the platform refused, and how.
ErrorMapper = Callable[[Answer, Any], Refusal]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    #: First backoff ceiling in seconds; doubles each attempt (full jitter), capped by `max_delay`.
    base_delay: float = 0.2
    max_delay: float = 5.0
    timeout: float = 30.0


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


#: How many parsed URLs `Http` keeps (all are dropped when it is full).
_PARSED_URLS = 256

#: Failures where nothing (or not all) came back: worth another try.
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class Outgoing:
    """A request as signers read it and our pool sends it: method, URL, headers and body, by
    httpx.Request's names, with the headers httpx would add (Host; a JSON body's type and
    length). An httpx.Request encodes its body through a stream and reads it back, and merges
    its headers one at a time: built, signed (bce-auth-v1) and taken apart for the pool, a
    Qianfan call took 96-126 us, against 77-81 for these parts (timeit, alternating)."""

    __slots__ = ("content", "headers", "method", "url")

    def __init__(
        self, method: str, url: httpx.URL, defaults: Sequence[tuple[str, str]], json: Any
    ) -> None:
        self.method = method
        self.url = url
        auto = [("Host", url.netloc.decode("ascii"))]
        if json is not None:
            # As httpx encodes a JSON body.
            self.content = jsonlib.dumps(
                json, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode("utf-8")
            auto += [
                ("Content-Length", str(len(self.content))),
                ("Content-Type", "application/json"),
            ]
        else:
            self.content = b""
            if method in ("POST", "PUT", "PATCH"):
                auto.append(("Content-Length", "0"))
        self.headers = httpx.Headers([*auto, *defaults])


@dataclass(frozen=True)
class _Prepared:
    """One attempt's request, ready to send: plain values for the fast path (no request built),
    an `Outgoing` for our pool, or an httpx.Request for other transports."""

    method: str
    url: str
    request: Outgoing | httpx.Request | None


class Http:
    """Sends one platform's requests: at most `parallelism` at once, retried when transient.

    In layers: `request` is the retry loop; `_prepare` builds (and signs) one attempt's request;
    `_attempt` sends it and reads the answer; `_failure` words what went wrong, once, with
    `platform_error`.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        provider: str,
        map_error: ErrorMapper,
        limit: Limit,
        retry: RetryPolicy | None = None,
        redact: Redactor | None = None,
        sign: Signer | None = None,
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
        #: Requests in flight at most (fixed, or adapted to the platform's answers).
        self.limit = limit
        self.retry = retry or RetryPolicy()
        self.redact = redact or Redactor()
        self.sign = sign
        self.sleep = sleep
        self.limiter = limiter
        #: Requests sent (each attempt counts), for benchmarks and progress.
        self.sent = 0
        #: The client's headers as the direct transport sends them, made on first use.
        self._plain_headers: list[tuple[str, str]] | None = None
        #: URLs parsed for built requests (and as they are sent), by their text: Qianfan's
        #: 10,000 detail calls and its deletes go to one URL each, and parsing it was half of
        #: building a request.
        self._parsed: dict[str, tuple[httpx.URL, str]] = {}

    async def request(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        ok: Iterable[int] = (200,),
        within: Headroom | None = None,
    ) -> Answer:
        """Send, retrying transient failures; return the response or raise `ProviderError`.
        With `within`, each attempt also holds a place of that headroom, and is prepared inside
        it: not while it waits to retry (held through a 429's one-second Retry-After, the places
        of a throttled Qianfan listing's details went idle for that second), and not before its
        turn (a marker page's hundred details all signed at once stalled the pacing: 67-72% of
        a 1,000/s platform's rate achieved, against 77-87% signed in turn)."""
        accepted = frozenset(ok)
        # One URL parse (the client's build_request would parse twice and merge defaults
        # nobody sets); the client's headers are the only defaults platform calls use.
        full_url = f"{url}?{_query(tuple(params.items()))}" if params else url
        call = Call(self.provider, operation, method, full_url)
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            # Prepared again each time: a signature carries its time.
            if within is None:
                outcome = await self._attempt(self._prepare(method, full_url, json), call)
            else:
                async with within.hold():
                    outcome = await self._attempt(self._prepare(method, full_url, json), call)
            answered = isinstance(outcome, Answer)
            status = outcome.status_code if isinstance(outcome, Answer) else None
            if isinstance(outcome, Answer) and outcome.status_code in accepted:
                log_request(method, full_url, status, time.monotonic() - started, attempt)
                return outcome
            delay = self._retry_delay(outcome, attempt)
            why = (f"HTTP {status}" if answered else type(outcome).__name__) + (
                f", in {delay:.2f} s" if delay is not None else ""
            )
            log_request(
                method,
                full_url,
                status,
                time.monotonic() - started,
                attempt,
                why if delay is not None else None,
            )
            if delay is None:
                raise self._failure(outcome, call, attempt)
            await self.sleep(delay)

    def _prepare(self, method: str, url: str, json: Any) -> _Prepared:
        # Unsigned and bodiless (a token's listings and deletes) over the direct transport,
        # with a URL that needs no encoding, no httpx.Request is built: its URL parsing
        # alone cost more than a tenth of a listing's CPU. Everything else is built, signed
        # and sent as httpx objects.
        plain = (
            isinstance(self.transport, AiohttpTransport)
            and self.sign is None
            and json is None
            and _SENDABLE_URL.fullmatch(url) is not None
            and "/." not in url
        )
        if plain:
            return _Prepared(method, url, None)
        parsed = self._parsed.get(url)
        if parsed is None:
            if len(self._parsed) >= _PARSED_URLS:
                self._parsed.clear()
            built = httpx.URL(url)
            parsed = self._parsed[url] = (built, str(built))
        request: Outgoing | httpx.Request
        if isinstance(self.transport, AiohttpTransport):
            request = Outgoing(method, parsed[0], self._headers_for_plain(), json)
        else:
            request = httpx.Request(method, parsed[0], headers=self.client.headers, json=json)
        if self.sign is not None:
            self.sign(request)
        return _Prepared(method, parsed[1], request)

    async def _attempt(self, prepared: _Prepared, call: Call) -> Answer | httpx.HTTPError:
        """One try: wait for a slot, send, read the answer (bounded). A failure to get an
        answer is returned, for the retry loop to judge."""
        if self.limiter is not None:
            await self.limiter.wait()
        async with self.limit.slot() as slot:
            self.sent += 1
            try:
                response = await self._read_bounded(await self._send(prepared), call)
            except httpx.TimeoutException as exc:
                slot.timed_out()
                return exc
            except httpx.HTTPError as exc:
                return exc
            slot.answered(response.status_code)
            return response

    async def _send(self, prepared: _Prepared) -> Answer | httpx.Response:
        if prepared.request is None:
            assert isinstance(self.transport, AiohttpTransport)  # as `_prepare` chose
            return await self.transport.fetch(
                prepared.method, prepared.url, self._headers_for_plain()
            )
        if isinstance(prepared.request, Outgoing):
            assert isinstance(self.transport, AiohttpTransport)  # as `_prepare` chose
            request = prepared.request
            headers = list(request.headers.multi_items())
            return await self.transport.fetch(
                request.method, prepared.url, headers, request.content or None
            )
        if self.transport is not None:
            return await self.transport.handle_async_request(prepared.request)
        return await self.client.send(prepared.request, stream=True)

    def _retry_delay(self, outcome: Answer | httpx.HTTPError, attempt: int) -> float | None:
        """Seconds to wait before another try, or None when there is none to make: attempts
        used up, or a failure that another try would only repeat."""
        if attempt >= self.retry.attempts:
            return None
        if isinstance(outcome, _TRANSIENT):
            return self._backoff(attempt, None)
        if isinstance(outcome, Answer) and outcome.status_code in RETRY_STATUSES:
            return self._backoff(attempt, outcome.headers.get("Retry-After"))
        return None

    def _failure(
        self, outcome: Answer | httpx.HTTPError, call: Call, attempt: int
    ) -> ProviderError:
        if isinstance(outcome, httpx.HTTPError):
            return platform_error(
                _transport_refusal(outcome),
                call,
                outcome=f"failed after {attempt} attempt(s)",
                redact=self.redact,
            )
        refusal = _redirect(outcome, call) or self.map_error(outcome, _json_or_none(outcome))
        return platform_error(refusal, call, outcome="failed", redact=self.redact)

    def _headers_for_plain(self) -> list[tuple[str, str]]:
        if self._plain_headers is None:
            self._plain_headers = list(self.client.headers.multi_items())
        return self._plain_headers

    async def _read_bounded(self, response: Answer | httpx.Response, call: Call) -> Answer:
        """Read the body, but never more than MAX_BODY_BYTES: a huge or endless answer is an
        error naming the call, not an out-of-memory crash."""
        if isinstance(response, Answer):  # read whole by our transport, at most its max_body
            if response.length is not None and response.length > MAX_BODY_BYTES:
                raise self._too_large(call, f"announced {response.length} bytes")
            if len(response.content) > MAX_BODY_BYTES:
                raise self._too_large(call, f"sent more than {MAX_BODY_BYTES} bytes")
            return response
        try:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
                raise self._too_large(call, f"announced {length} bytes")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise self._too_large(call, f"sent more than {MAX_BODY_BYTES} bytes")
                chunks.append(chunk)
        finally:
            await response.aclose()
        # What httpx decoded and de-chunked is no longer as those headers say.
        headers = [
            (name, value)
            for name, value in response.headers.raw
            if name.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")
        ]
        return Answer(response.status_code, headers, b"".join(chunks))

    def _too_large(self, call: Call, what: str) -> ProviderError:
        refusal = Refusal(
            f"the platform {what}, more than a listing page can be",
            hint="a proxy or gateway may be in the way; check the endpoint",
        )
        return platform_error(refusal, call, redact=self.redact)

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), self.retry.max_delay * 4)
            except ValueError:
                pass
        ceiling = min(self.retry.max_delay, self.retry.base_delay * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


@functools.lru_cache(maxsize=256)
def _query(params: tuple[tuple[str, str | int], ...]) -> str:
    """A query string, encoded once: a listing's 10,000 version pages all ask for the same."""
    return str(httpx.QueryParams(params))


def _redirect(response: Answer, call: Call) -> Refusal | None:
    """A redirect, said as one: never followed (the credentials go only where the manifest
    says), and where it points, without userinfo, query or fragment (they may carry secrets)."""
    if not 300 <= response.status_code < 400:
        return None
    location = response.headers.get("Location")
    where = "without saying where (no Location header)"
    if location:
        try:
            parts = urlsplit(urljoin(call.url or "", location.strip()))
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            where = "to a Location that is not a URL"
        else:
            hidden = " (its query not shown)" if parts.query else ""
            where = f"to {parts.scheme}://{host}{port}{parts.path}{hidden}"
    return Refusal(
        f"HTTP {response.status_code}: the platform redirected {where}; redirects are not followed",
        status=response.status_code,
        hint="point the endpoint in the manifest at the platform's API itself (a proxy, a login "
        "page or a moved endpoint answered); reconcile never follows a redirect, so that the "
        "credentials go only where the manifest says",
    )


def _transport_refusal(exc: httpx.HTTPError) -> Refusal:
    """No answer, or none we could take: a timeout, a network error, a request we could not
    send as built (an invalid header value), an undecodable or refused answer."""
    # Protocol errors quote the offending bytes (header values, so possibly a secret): only
    # their kind is shown. Timeouts and network errors name hosts and ports, never headers.
    shown = isinstance(exc, httpx.TimeoutException | httpx.NetworkError | RefusedResponse)
    detail = f"{type(exc).__name__}: {exc or 'no response'}" if shown else type(exc).__name__
    return Refusal(
        detail, hint="check the endpoint, the network and the credentials' values, then run again"
    )


def platform_client(
    max_connections: int, timeout: float, transport: AiohttpTransport | None = None
) -> tuple[httpx.AsyncClient, AiohttpTransport]:
    """The client for a real endpoint, and its transport: httpx's interface over aiohttp's
    connection pool, which stays O(1) per request at any parallelism (see `AiohttpTransport`).
    Given a `transport`, the client shares its pool (providers of one endpoint)."""
    if transport is None:
        transport = AiohttpTransport(max_connections=max_connections, timeout=timeout)
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(timeout)), transport


def in_process_client(app: Any, timeout: float) -> httpx.AsyncClient:
    """A client whose requests an ASGI app in this process answers (the built-in emulator)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=httpx.Timeout(timeout))


def _json_or_none(response: Answer) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def parse_json(response: Answer, what: str) -> Any:
    """The JSON body of a successful response, or a `ProviderError` that names the call."""
    try:
        return strict_json(response.content)
    except ValueError as error:
        status = response.status_code
        if isinstance(error, Unkeepable):
            said = f"JSON that cannot be kept as it was sent ({error})"
            hint = "nothing was planned from it; report the record to the platform"
        else:
            kind = response.headers.get("Content-Type", "no content type")
            said = f"a body that is not JSON ({kind}, {len(response.content)} bytes)"
            hint = "a proxy or gateway may be in the way; check the endpoint"
        refusal = Refusal(
            f"the platform answered HTTP {status} with {said}", status=status, hint=hint
        )
        raise platform_error(refusal, Call(operation=what)) from None
