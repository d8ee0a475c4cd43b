"""The one place that builds HTTP clients and sends requests to platforms.

Bounded concurrency, retries of transient failures, secret redaction and the mapping of failures
to `ProviderError` live here, so every provider behaves the same way.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconcile.errors import ProviderError, ReconcileError

#: Statuses worth another try: the request may well succeed a moment later.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Largest response body accepted; a listing page is far smaller.
MAX_BODY_BYTES = 16 * 1024 * 1024
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

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
        self.secrets.update(value for value in values if value and len(value) >= 4)

    def __call__(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def check_endpoint(endpoint: str, *, insecure: bool = False) -> str:
    """An https URL, or http on a loopback host; anything else is refused before any request."""
    parts = urlsplit(endpoint)
    if parts.scheme == "https" and parts.hostname:
        return endpoint.rstrip("/")
    if parts.scheme == "http" and parts.hostname and (parts.hostname in LOOPBACK_HOSTS or insecure):
        return endpoint.rstrip("/")
    raise ReconcileError(
        f"endpoint {endpoint!r} is not an https URL",
        hint="use https://..., http:// only for a loopback host (an emulator), "
        "or emulator:STATE.json for the built-in emulator",
    )


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
    ) -> None:
        self.client = client
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
            request = self.client.build_request(method, url, params=params, json=json)
            if self.sign is not None:
                self.sign(request)
            described = f"{operation} ({method} {self._safe_url(request.url)})"
            try:
                if self.limiter is not None:
                    await self.limiter.wait()
                async with self.semaphore:
                    self.sent += 1
                    streamed = await self.client.send(request, stream=True)
                    response = await self._read_bounded(streamed, described)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt < self.retry.attempts:
                    await self.sleep(self._backoff(attempt, None))
                    continue
                raise ProviderError(
                    self.redact(
                        f"{self.provider}: {described} failed after {attempt} attempt(s): "
                        f"{type(exc).__name__}: {exc or 'no response'}"
                    ),
                    provider=self.provider,
                    operation=operation,
                    method=method,
                    url=self._safe_url(request.url),
                    hint="check the endpoint and the network, then run again",
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
            error.url = self._safe_url(request.url)
            error.message = self.redact(f"{self.provider}: {described} failed: {error.message}")
            if error.hint:
                error.hint = self.redact(error.hint)
            raise error

    async def _read_bounded(self, response: httpx.Response, described: str) -> httpx.Response:
        """Read the body, but never more than MAX_BODY_BYTES: a huge or endless answer is an
        error naming the call, not an out-of-memory crash."""
        try:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
                raise self._too_large(described, f"announced {length} bytes")
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
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=b"".join(chunks),
            request=response.request,
        )

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

    def _safe_url(self, url: httpx.URL) -> str:
        return self.redact(str(url))


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def parse_json(response: httpx.Response, what: str) -> Any:
    """The JSON body of a successful response, or a `ProviderError` that names the call."""
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("Content-Type", "no content type")
        raise ProviderError(
            f"{what}: the platform answered HTTP {response.status_code} with a body that is not "
            f"JSON ({kind}, {len(response.content)} bytes)",
            status=response.status_code,
            hint="a proxy or gateway may be in the way; check the endpoint",
        ) from None
