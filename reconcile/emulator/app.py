"""The emulator's Starlette app and the plumbing every platform shares.

Two platforms share one app, each owning its path prefixes: Fabric (``fabric.py``, ``/v1/``) and
Qianfan (``qianfan.py``, ``/v2/`` and ``/wenxinworkshop/``); ``signatures.py`` holds both AK/SK
schemes.

Per request, in this order: a fresh ``X-Request-Id`` (also in ``request.state.request_id``); a
record in the request log; for platform API paths only, the configured latency and then, with
probability ``fail_rate``, a fault (500, 408 or 429 in the owning platform's own words) instead
of the real handler. Admin routes under ``/_emulator/`` are never delayed, faulted or logged.

This package is an independent copy of the platforms' contract: it must not import anything of
``reconcile`` outside ``reconcile.emulator`` (shared code would hide shared bugs).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypedDict

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders, QueryParams
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconcile.emulator.fabric import FabricApi
from reconcile.emulator.qianfan import QianfanApi
from reconcile.emulator.store import load_state, save_state

ADMIN_PREFIX = "/_emulator/"
# Where a request's X-Request-Id is kept in the ASGI scope's state: platforms whose bodies echo
# it (Qianfan's requestId) read ``request.state.request_id``.
REQUEST_ID_STATE_KEY = "request_id"
# The faults an API request can be answered with instead of being handled, drawn uniformly.
FAULT_STATUSES = (500, 408, 429)

StateSource = Mapping[str, Any] | str | os.PathLike[str]
# Seconds since the epoch, like time.time: what signed requests' timestamps are checked against.
Clock = Callable[[], float]


class RequestRecord(TypedDict):
    """One API request as the emulator received it. Credentials are never recorded."""

    time: float  # arrival, seconds since the epoch
    method: str
    path: str
    query: dict[str, str]  # a repeated parameter keeps its last value
    host: str
    auth: str | None  # the scheme only ("X-Auth-Token", "SDK-HMAC-SHA256", ...), never a value
    request_id: str  # the X-Request-Id the response carried
    status: int | None  # the response status; None until the response has started


class Platform(Protocol):
    """What the shared plumbing needs from one platform's module."""

    def owns(self, path: str) -> bool:
        """Whether a request path belongs to this platform's API."""
        ...

    def normalize(self, state: dict[str, Any]) -> None:
        """Check this platform's section of a freshly loaded state and fill in defaults."""
        ...

    def routes(self) -> list[BaseRoute]: ...

    def fault_response(self, status: int, request_id: str) -> Response:
        """The platform's own answer for an injected fault with this status."""
        ...

    def internal_error_response(self, request_id: str) -> Response: ...


class Emulator:
    """The emulator's live state, request log and fault settings (``app.state.emulator``).

    ``state`` is the live dict, shaped like the state file: tests may change it between requests.
    The fault and latency settings may be changed between requests too. ``clock`` is what signed
    requests' timestamps are checked against (the request log keeps real time).
    """

    def __init__(
        self,
        state: StateSource,
        *,
        persist_path: str | os.PathLike[str] | None = None,
        latency_ms: float = 0,
        latency_jitter_ms: float = 0,
        fail_rate: float = 0,
        seed: int | None = None,
        clock: Clock = time.time,
    ) -> None:
        if latency_ms < 0 or latency_jitter_ms < 0:
            raise ValueError("latency_ms and latency_jitter_ms must not be negative")
        if not 0 <= fail_rate <= 1:
            raise ValueError(f"fail_rate must be between 0 and 1, got {fail_rate}")
        self.state: dict[str, Any] = load_state(state)
        self.requests: list[RequestRecord] = []
        self.persist_path = persist_path
        self.latency_ms = latency_ms
        self.latency_jitter_ms = latency_jitter_ms
        self.fail_rate = fail_rate
        self.clock = clock
        # Two generators, so that turning jitter on does not change which requests fault.
        self._fault_rng = random.Random(seed)
        self._jitter_rng = random.Random(None if seed is None else f"jitter-{seed}")
        self.platforms: list[Platform] = [FabricApi(self), QianfanApi(self)]
        for platform in self.platforms:
            platform.normalize(self.state)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the live state to ``path`` (atomically)."""
        save_state(self.state, path)

    def persist(self) -> None:
        """Called after every successful mutation: write the state to ``persist_path`` if set."""
        if self.persist_path is not None:
            self.save(self.persist_path)

    def platform_for(self, path: str) -> Platform | None:
        return next((p for p in self.platforms if p.owns(path)), None)

    async def delay(self) -> None:
        seconds = self.latency_ms / 1000
        if self.latency_jitter_ms:
            seconds += self._jitter_rng.uniform(0, self.latency_jitter_ms) / 1000
        if seconds > 0:
            await asyncio.sleep(seconds)

    def draw_fault(self) -> int | None:
        """The status of a fault to inject instead of handling this request, or None."""
        if self.fail_rate <= 0 or self._fault_rng.random() >= self.fail_rate:
            return None
        return self._fault_rng.choice(FAULT_STATUSES)


def _auth_scheme(headers: Headers) -> str | None:
    if "x-auth-token" in headers:
        return "X-Auth-Token"
    authorization = headers.get("authorization")
    if not authorization:
        return None
    # "SDK-HMAC-SHA256 Access=..." or "bce-auth-v1/AK/...": keep the scheme, drop the rest.
    return authorization.split(" ", 1)[0].split("/", 1)[0]


class _Plumbing:
    """ASGI middleware: request ids, the request log, latency and fault injection."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        emulator = self.emulator
        request_id = uuid.uuid4().hex
        path: str = scope["path"]
        admin = path.startswith(ADMIN_PREFIX)
        record: RequestRecord | None = None
        if not admin:
            scope.setdefault("state", {})[REQUEST_ID_STATE_KEY] = request_id
            headers = Headers(scope=scope)
            record = RequestRecord(
                time=time.time(),
                method=scope["method"],
                path=path,
                query=dict(QueryParams(scope["query_string"])),
                host=headers.get("host", ""),
                auth=_auth_scheme(headers),
                request_id=request_id,
                status=None,
            )
            emulator.requests.append(record)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)["X-Request-Id"] = request_id
                if record is not None:
                    record["status"] = message["status"]
            await send(message)

        platform = None if admin else emulator.platform_for(path)
        if platform is not None:
            # Drawn on arrival, before the (jittered) sleep: which requests fault follows the
            # order of the request log, however the delays interleave concurrent requests.
            fault = emulator.draw_fault()
            await emulator.delay()
            if fault is not None:
                await platform.fault_response(fault, request_id)(scope, receive, send_with_id)
                return
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answer in the platform's words (with a request id), then let the error surface:
            # an emulator bug must fail loudly in tests, not hide behind a 500.
            if platform is not None and not started:
                await platform.internal_error_response(request_id)(scope, receive, send_with_id)
            raise


async def _admin_state(request: Request) -> Response:
    return JSONResponse(_emulator(request).state)


async def _admin_requests(request: Request) -> Response:
    return JSONResponse(_emulator(request).requests)


async def _admin_request_count(request: Request) -> Response:
    # The log itself can be large (a benchmark sends 100k requests): this is its cheap summary.
    return JSONResponse({"count": len(_emulator(request).requests)})


async def _admin_reset_requests(request: Request) -> Response:
    requests = _emulator(request).requests
    cleared = len(requests)
    requests.clear()
    return JSONResponse({"cleared": cleared})


async def _http_exception(request: Request, exc: Exception) -> Response:
    # Paths no platform owns (platform paths answer unknown routes in their own words).
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def _emulator(request: Request) -> Emulator:
    emulator = request.app.state.emulator
    assert isinstance(emulator, Emulator)
    return emulator


def create_app(
    state: StateSource,
    *,
    persist_path: str | os.PathLike[str] | None = None,
    latency_ms: float = 0,
    latency_jitter_ms: float = 0,
    fail_rate: float = 0,
    seed: int | None = None,
    clock: Clock = time.time,
) -> Starlette:
    """The emulator as an ASGI app, seeded from ``state`` (a mapping or a JSON file path).

    With ``persist_path``, the state is written there after every successful mutation.
    ``clock`` (seconds since the epoch) is what signed requests' timestamps are checked against.
    Works in-process (``httpx.ASGITransport``: no lifespan needed) and over a real socket.
    """
    emulator = Emulator(
        state,
        persist_path=persist_path,
        latency_ms=latency_ms,
        latency_jitter_ms=latency_jitter_ms,
        fail_rate=fail_rate,
        seed=seed,
        clock=clock,
    )
    routes: list[BaseRoute] = [
        Route(ADMIN_PREFIX + "state", _admin_state, methods=["GET"]),
        Route(ADMIN_PREFIX + "requests", _admin_requests, methods=["GET"]),
        Route(ADMIN_PREFIX + "request-count", _admin_request_count, methods=["GET"]),
        Route(ADMIN_PREFIX + "reset-requests", _admin_reset_requests, methods=["POST"]),
    ]
    for platform in emulator.platforms:
        routes.extend(platform.routes())
    app = Starlette(
        routes=routes,
        middleware=[Middleware(_Plumbing, emulator=emulator)],
        exception_handlers={HTTPException: _http_exception},
    )
    app.state.emulator = emulator
    return app


def serve(
    state_path: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    persist_path: str | os.PathLike[str] | None = None,
    latency_ms: float = 0,
    latency_jitter_ms: float = 0,
    fail_rate: float = 0,
    seed: int | None = None,
) -> None:
    """Serve the emulator over HTTP with uvicorn until interrupted (blocking)."""
    import uvicorn  # only a server needs it; the in-process app does not

    app = create_app(
        state_path,
        persist_path=persist_path,
        latency_ms=latency_ms,
        latency_jitter_ms=latency_jitter_ms,
        fail_rate=fail_rate,
        seed=seed,
    )
    uvicorn.run(app, host=host, port=port)
