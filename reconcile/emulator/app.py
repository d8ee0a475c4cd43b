"""The emulator's Starlette app and the plumbing every platform shares.

Two platforms share one app, each owning its path prefixes: Fabric (``fabric.py``, ``/v1/``) and
Qianfan (``qianfan.py``, ``/v2/`` and ``/wenxinworkshop/``); ``signatures.py`` holds both AK/SK
schemes.

Per request, in this order: a fresh ``X-Request-Id`` (also in ``request.state.request_id``); a
record in the request log; for platform API paths only, a draw of the faults (with probability
``fail_rate`` a 500, 408 or 429 in the owning platform's own words; else the first of the
configured ``faults`` that fires, see ``faults.py``), the configured latency, and then the fault
or the real handler. Admin routes under ``/_emulator/`` are never delayed, faulted or logged.

This package is an independent copy of the platforms' contract: it must not import anything of
``reconcile`` outside ``reconcile.emulator`` (shared code would hide shared bugs).

Over 450 lines on purpose: the one request path every platform goes through (auth scheme,
record, faults, latency, handler) and the admin routes that inspect it, read top to bottom; the
platforms' own contracts are in their modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import random
import time
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders, QueryParams
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconcile.emulator.common import json_bytes
from reconcile.emulator.fabric import FabricApi
from reconcile.emulator.faults import (
    ConnectionDropped,
    Drawn,
    Fault,
    FaultInjector,
    FaultSpec,
    client_of,
)
from reconcile.emulator.host import QUERY_STATE_KEY, REQUEST_ID_STATE_KEY, Clock, Platform
from reconcile.emulator.qianfan import QianfanApi
from reconcile.emulator.responses import JSONResponse
from reconcile.emulator.settings import EmulatorSettings
from reconcile.emulator.store import load_state, save_state

ADMIN_PREFIX = "/_emulator/"
# The faults `fail_rate` answers an API request with instead of handling it, drawn uniformly.
FAULT_STATUSES = (500, 408, 429)
# Where the server's own `send` is kept in the ASGI scope: over a real socket, a "reset" fault
# reaches the connection through it (see `_drop_connection`).
SERVER_SEND_KEY = "emulator.server_send"
# How long a dropped connection may take to be noticed by the server before the app returns.
DROP_WAIT_SECONDS = 5.0

StateSource = Mapping[str, Any] | str | os.PathLike[str]


class RequestRecord(TypedDict):
    """One API request as the emulator received it. Credentials are never recorded."""

    time: float  # arrival, seconds since the epoch
    method: str
    path: str
    query: dict[str, str]  # a repeated parameter keeps its last value
    host: str
    auth: str | None  # the scheme only ("X-Auth-Token", "SDK-HMAC-SHA256", ...), never a value
    request_id: str  # the X-Request-Id the response carried
    status: int | None  # the response status; None until the response has started (or never)
    fault: str | None  # the kind of the injected fault that answered it, if one did


class Emulator:
    """The emulator's live state, request log and fault settings (``app.state.emulator``).

    ``state`` is the live dict, shaped like the state file: tests may change it between requests.
    The fault and latency settings may be changed between requests too (``faults`` takes
    `Fault` objects, spec strings or mappings). ``clock`` is what signed requests' timestamps are
    checked against (the request log keeps real time).
    """

    def __init__(
        self, state: StateSource, settings: EmulatorSettings | None = None, **options: Any
    ) -> None:
        settings = EmulatorSettings.of(settings, options)
        self.settings = settings
        self.state: dict[str, Any] = load_state(state)
        self.requests: list[RequestRecord] = []
        self._revision = 0
        # Copied out of the (frozen) settings: tests may change them between requests.
        self.persist_path = settings.persist_path
        self.latency_ms = settings.latency_ms
        self.latency_jitter_ms = settings.latency_jitter_ms
        self.fail_rate = settings.fail_rate
        self.clock: Clock = settings.clock
        seed = settings.seed
        # Two generators, so that turning jitter on does not change which requests fault.
        self._fault_rng = random.Random(seed)
        self._jitter_rng = random.Random(None if seed is None else f"jitter-{seed}")
        self.injector = FaultInjector(settings.faults, seed=seed)
        self.platforms: list[Platform] = [FabricApi(self), QianfanApi(self)]
        for platform in self.platforms:
            platform.normalize(self.state)

    @property
    def faults(self) -> tuple[Fault, ...]:
        return self.injector.faults

    @faults.setter
    def faults(self, specs: Iterable[FaultSpec]) -> None:
        self.injector.faults = specs

    def faults_injected(self) -> dict[str, int]:
        """How many requests of the log each kind of fault answered (``fail_rate``'s count as
        ``status``)."""
        counts: dict[str, int] = {}
        for record in self.requests:
            kind = record.get("fault")
            if kind:
                counts[kind] = counts.get(kind, 0) + 1
        return counts

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the live state to ``path`` (atomically)."""
        save_state(self.state, path)

    @property
    def revision(self) -> int | None:
        """How many changes the handlers made, when only they change the state (the
        settings' ``state_private``); None when tests may edit it in place."""
        return self._revision if self.settings.state_private else None

    def persist(self) -> None:
        """Called after every successful mutation: write the state to ``persist_path`` if set."""
        self._revision += 1
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
        path: str = scope["path"]
        if path.startswith(ADMIN_PREFIX):
            request_id = _request_id()

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    MutableHeaders(scope=message)["X-Request-Id"] = request_id
                await send(message)

            await self.app(scope, receive, send_with_id)
            return
        await _Exchange(self.app, self.emulator, scope, receive, send).run()


def _request_id() -> str:
    """32 random hex digits, as a platform's request id (without uuid4's UUID object)."""
    return os.urandom(16).hex()


class _Exchange:
    """One API request: logged, given its request id, delayed, faulted or handled."""

    def __init__(
        self, app: ASGIApp, emulator: Emulator, scope: Scope, receive: Receive, send: Send
    ) -> None:
        self.app = app
        self.emulator = emulator
        self.scope = scope
        self.receive = receive
        self.server_send = send
        self.request_id = _request_id()
        state = scope.setdefault("state", {})
        state[REQUEST_ID_STATE_KEY] = self.request_id
        self.headers = Headers(scope=scope)
        self.query = state[QUERY_STATE_KEY] = QueryParams(scope["query_string"])
        self.record = RequestRecord(
            time=time.time(),
            method=scope["method"],
            path=scope["path"],
            query=dict(self.query),
            host=self.headers.get("host", ""),
            auth=_auth_scheme(self.headers),
            request_id=self.request_id,
            status=None,
            fault=None,
        )
        emulator.requests.append(self.record)
        self.started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            MutableHeaders(scope=message)["X-Request-Id"] = self.request_id
            self.record["status"] = message["status"]
        await self.server_send(message)

    async def run(self) -> None:
        emulator, scope = self.emulator, self.scope
        platform = emulator.platform_for(scope["path"])
        if platform is None:
            await self.handle(None, self.send)
            return
        # Drawn on arrival, before the (jittered) sleep: which requests fault follows the
        # order of the request log, however the delays interleave concurrent requests.
        status = emulator.draw_fault()
        drawn = None
        if status is None:
            method, path = scope["method"], scope["path"]
            client = scope.get("client")
            drawn = emulator.injector.draw(
                method,
                path,
                self.query.get("Action"),
                platform.changes_state(method, path, self.query),
                client_of(self.headers, client[0] if client else None),
            )
        await emulator.delay()
        if status is not None:
            self.record["fault"] = "status"
            await platform.fault_response(status, self.request_id)(scope, self.receive, self.send)
        elif drawn is None:
            await self.handle(platform, self.send)
        else:
            await self.inject(platform, drawn)

    async def handle(self, platform: Platform | None, send: Send) -> None:
        try:
            await self.app(self.scope, self.receive, send)
        except Exception:
            # Answer in the platform's words (with a request id), then let the error surface:
            # an emulator bug must fail loudly in tests, not hide behind a 500.
            if platform is not None and not self.started:
                response = platform.internal_error_response(self.request_id)
                await response(self.scope, self.receive, self.send)
            raise

    async def inject(self, platform: Platform, drawn: Drawn) -> None:
        fault = drawn.fault
        self.record["fault"] = fault.kind
        if fault.kind in ("status", "throttle"):
            await self.fault_response(
                platform, 429 if fault.kind == "throttle" else fault.status, drawn.retry_after
            )
        elif fault.kind == "reset":
            await self.drop_connection()
        elif fault.kind == "slow":
            await asyncio.sleep(fault.delay_ms / 1000)
            await self.handle(platform, self.send)
        else:  # truncate, inconsistent, lost: the real answer first
            answer = _Captured()
            await self.handle(platform, answer.send)
            if fault.kind == "lost":
                if fault.reply == "reset":
                    await self.drop_connection()
                else:
                    await self.fault_response(platform, fault.status, drawn.retry_after)
                return
            body = self.distorted(platform, fault, answer)
            if body is None:
                self.record["fault"] = None  # nothing to distort: the answer goes out as it was
                body = bytes(answer.body)
            await answer.replay(self.send, body)

    def distorted(self, platform: Platform, fault: Fault, answer: _Captured) -> bytes | None:
        if answer.status is None or not 200 <= answer.status < 300 or not answer.body:
            return None  # only a successful answer with a body is worth distorting
        if fault.kind == "truncate":
            return bytes(answer.body[: len(answer.body) // 2])
        try:
            payload = json.loads(answer.body)
        except ValueError:
            return None
        changed = platform.inconsistent(self.scope["path"], self.query, payload, fault.delta)
        if changed is None:
            return None
        return json_bytes(changed, separators=(",", ":"))

    async def fault_response(
        self, platform: Platform, status: int, retry_after: str | None
    ) -> None:
        response = platform.fault_response(status, self.request_id)
        if retry_after is not None and status == 429:
            response.headers["Retry-After"] = retry_after
        await response(self.scope, self.receive, self.send)

    async def drop_connection(self) -> None:
        """Close the connection without a response.

        Over a real socket (uvicorn, which `serve` and the tests use) the server's `send` is a
        method of the request's cycle, which holds the connection's transport: it is aborted, and
        the app waits for the server to see the disconnect (else it would answer 500 for us). With
        no such transport (in-process), `ConnectionDropped` is raised: a transport that maps it
        turns it into its own connection error.
        """
        owner = getattr(self.scope.get(SERVER_SEND_KEY), "__self__", None)
        abort = getattr(getattr(owner, "transport", None), "abort", None)
        if abort is None:
            raise ConnectionDropped("the emulator dropped the connection without a response")
        abort()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DROP_WAIT_SECONDS):
                while (await self.receive())["type"] != "http.disconnect":
                    pass


class _Captured:
    """A response sent to it instead of the client: kept, to be distorted and replayed."""

    def __init__(self) -> None:
        self.start: Message | None = None
        self.body = bytearray()

    @property
    def status(self) -> int | None:
        return None if self.start is None else int(self.start["status"])

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    async def replay(self, send: Send, body: bytes) -> None:
        assert self.start is not None, "the handler always answers (or raises)"
        headers = [
            (name, value)
            for name, value in self.start.get("headers", [])
            if name.lower() != b"content-length"
        ]
        headers.append((b"content-length", str(len(body)).encode("ascii")))
        await send({**self.start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _EmulatorApp(Starlette):
    """The app, keeping the server's own `send` in the scope for `_Exchange.drop_connection`
    (the middleware below it only sees Starlette's wrapper of it)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[SERVER_SEND_KEY] = send
        await super().__call__(scope, receive, send)


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


async def _admin_faults(request: Request) -> Response:
    """GET: the faults in force and how many requests each kind answered. PUT: a JSON list of
    faults (spec strings or objects) replaces them."""
    emulator = _emulator(request)
    if request.method == "PUT":
        try:
            specs = await request.json()
            if not isinstance(specs, list):
                raise ValueError("expected a JSON list of faults")
            emulator.faults = specs
        except ValueError as error:
            return JSONResponse({"detail": str(error)}, status_code=400)
        except TypeError as error:
            return JSONResponse({"detail": f"not a fault: {error}"}, status_code=400)
    return JSONResponse(
        {
            "faults": [fault.to_dict() for fault in emulator.faults],
            "injected": emulator.faults_injected(),
        }
    )


async def _http_exception(request: Request, exc: Exception) -> Response:
    # Paths no platform owns (platform paths answer unknown routes in their own words).
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def _emulator(request: Request) -> Emulator:
    emulator = request.app.state.emulator
    assert isinstance(emulator, Emulator)
    return emulator


def create_app(
    state: StateSource, settings: EmulatorSettings | None = None, **options: Any
) -> Starlette:
    """The emulator as an ASGI app, seeded from ``state`` (a mapping or a JSON file path).

    ``settings`` (an `EmulatorSettings`; its fields may also be given, or overridden, as
    keywords: ``create_app(state, persist_path=path)``) say where the state is persisted after
    every successful mutation, the latency, the faults to inject (change them later on
    ``app.state.emulator.faults`` or with ``PUT /_emulator/faults``) and the clock signed
    requests' timestamps are checked against.
    Works in-process (``httpx.ASGITransport``: no lifespan needed) and over a real socket.
    """
    emulator = Emulator(state, settings, **options)
    routes: list[BaseRoute] = [
        Route(ADMIN_PREFIX + "state", _admin_state, methods=["GET"]),
        Route(ADMIN_PREFIX + "requests", _admin_requests, methods=["GET"]),
        Route(ADMIN_PREFIX + "request-count", _admin_request_count, methods=["GET"]),
        Route(ADMIN_PREFIX + "reset-requests", _admin_reset_requests, methods=["POST"]),
        Route(ADMIN_PREFIX + "faults", _admin_faults, methods=["GET", "PUT"]),
    ]
    for platform in emulator.platforms:
        routes.extend(platform.routes())
    app = _EmulatorApp(
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
    settings: EmulatorSettings | None = None,
    *,
    access_log: bool = True,
    **options: Any,
) -> None:
    """Serve the emulator over HTTP with uvicorn until interrupted (blocking). ``settings`` and
    ``options`` as `create_app` takes them."""
    import uvicorn  # only a server needs it; the in-process app does not

    # Nothing outside the server reaches its state: listings may trust what they derived from it.
    app = create_app(state_path, settings, **{"state_private": True, **options})
    # The state loaded above lives as long as the server: frozen, the collector's full passes
    # (which grow with the heap, 100k versions here) never walk it again.
    gc.freeze()
    # No proxy headers: the emulator is reached directly, and an X-Forwarded-For from a
    # loopback client would otherwise change the address a throttle keys its bucket on.
    uvicorn.run(app, host=host, port=port, access_log=access_log, proxy_headers=False)
