"""HTTP/1.1 over pooled asyncio connections, responses parsed by httptools (llhttp, in C).

The transport's path to every endpoint reached without a proxy. A listing is 10,000 small GETs
and an apply 40,000 requests; per request, aiohttp's client (its request and response objects,
its header multidicts, its tracing and timer machinery) cost as much CPU as reading the answer
did, and the CPU of one Python process is what bounds a large plan. This sends a request as one
write of prebuilt bytes and reads the answer with one C parser.

What it does, and no more: keep-alive connections reused newest first and dropped after
`IDLE_SECONDS` unused; at most `max_connections` open; TLS verified against the given context;
bodies by Content-Length, chunked or until close, at most `max_body` bytes (a larger announced
body is not read: the answer comes back with an empty body and its announced length, which the
caller refuses). Never: redirects, cookies, compression, proxies (the transport sends proxied
requests through aiohttp). Failures are httpx's exceptions, as from any httpx transport.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import Callable, Sequence
from email.message import Message
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import httpx

#: A pooled connection unused this long is closed rather than reused: servers close idle
#: keep-alive connections (uvicorn after 5 s), and a request sent on one that is being closed
#: fails.
IDLE_SECONDS = 4.0
#: Request headers this module writes itself (a body always goes whole, with its length).
_OWN_HEADERS = frozenset(
    {"host", "accept-encoding", "content-length", "connection", "transfer-encoding"}
)
#: A header name as RFC 9110 has it (a token); values must hold no CR, LF or NUL.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSAFE_VALUE = re.compile(r"[\r\n\x00]")


class Answer:
    """A response read whole: its status, headers and body, as `Http` and the providers read it.

    An httpx.Response would do, but it is made for streams: one built from bytes runs its
    decoders and chunkers over them (30 µs, a tenth of a listing request's CPU). The headers
    become `httpx.Headers` only when read (an error, a Retry-After): a page's never are.
    """

    __slots__ = ("_headers", "_raw", "content", "length", "status_code")

    def __init__(
        self,
        status_code: int,
        headers: Sequence[tuple[bytes, bytes]] | httpx.Headers,
        content: bytes,
        length: int | None = None,
    ) -> None:
        self.status_code = status_code
        self.content = content
        #: The body's length as the answer announced it (Content-Length), read or not: a body
        #: announced too large is not read, and the caller refuses it on this.
        self.length = length
        self._raw = headers
        self._headers = headers if isinstance(headers, httpx.Headers) else None

    @property
    def headers(self) -> httpx.Headers:
        if self._headers is None:
            self._headers = httpx.Headers(self._raw)
        return self._headers

    @property
    def text(self) -> str:
        """The body as text, in the charset its Content-Type names (UTF-8 otherwise), every
        undecodable byte replaced, as httpx reads it."""
        charset = "utf-8"
        kind = self.headers.get("Content-Type")
        if kind:
            message = Message()
            message["Content-Type"] = kind
            charset = message.get_content_charset() or charset
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def __repr__(self) -> str:
        return f"<Answer [{self.status_code}]>"


class RefusedResponse(httpx.RequestError):
    """An answer refused for what it is (too large, compressed unasked, a refused certificate):
    never retried, and its message is safe to show."""


class _Origin:
    """Where a URL's requests go: scheme, host, port, and the Host header."""

    __slots__ = ("host", "host_header", "port", "tls")

    def __init__(self, origin: str) -> None:
        parts = urlsplit(origin)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
            raise httpx.UnsupportedProtocol(f"cannot send to {origin!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = port or (443 if self.tls else 80)
        self.host_header = parts.netloc.rpartition("@")[2]


class _Connection(asyncio.Protocol):
    """One connection: one request at a time, its answer read by the C parser's callbacks."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._answer: asyncio.Future[Answer] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._length: int | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        #: Whether any byte of the current answer came, and whether its length is framed
        #: (Content-Length or chunked) rather than "until the connection closes".
        self._received = False
        self._framed = True
        self._headers_done = False

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not a check: other event loops' transports (uvloop's) are not subclasses.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._answer is None:
            self.close()  # bytes nobody asked for: the connection cannot be trusted again
            return
        self._received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the server switched protocols"))
        except httptools.HttpParserError:
            if self._answer is not None:  # not a failure a callback already reported
                self._fail(httpx.RemoteProtocolError("malformed HTTP response"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is None or self._answer.done():
            return
        if self._headers_done and not self._framed:
            self.on_message_complete()  # a body that ends with the connection
        elif self._received:
            self._fail(httpx.ReadError("the server closed the connection mid-answer"))
        else:
            self._fail(_Unanswered("the server closed the connection without answering"))

    # -- the parser's callbacks --

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        length: bytes | None = None
        encoding = b""
        chunked = False
        for name, value in self._headers:
            lower = name.lower()
            if lower == b"content-length":
                length = value.strip()
            elif lower == b"content-encoding":
                encoding = value.strip().lower()
            elif lower == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        status = self.parser.get_status_code()
        self._framed = length is not None or chunked or status in (204, 304) or status < 200
        self._length = int(length) if length is not None and length.isdigit() else None
        if encoding not in (b"", b"identity"):
            # Uncompressed only: a compressed body could expand far past `max_body` decoded.
            self._fail(
                RefusedResponse(
                    f"the platform sent a {encoding.decode('latin-1')}-encoded body, which was "
                    "not asked for"
                )
            )
        elif self._length is not None and self._length > self.max_body:
            # Not read: the caller refuses the answer on its announced length.
            self._finish(b"")
            self.close()

    def on_body(self, body: bytes) -> None:
        if self._answer is None:
            return
        self._size += len(body)
        if self._size > self.max_body:
            self._fail(RefusedResponse(f"response body larger than {self.max_body} bytes"))
            return
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._answer is None:
            return
        keep = not self.closed and self.parser.should_keep_alive()
        self._finish(b"".join(self._chunks))
        if not keep:
            self.close()

    # -- one exchange --

    async def exchange(self, head: bytes, body: bytes | None) -> Answer:
        assert self.transport is not None and self._answer is None
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Answer] = loop.create_future()
        self._answer = answer
        self._headers, self._chunks, self._size, self._length = [], [], 0, None
        self._received, self._framed, self._headers_done = False, True, False
        self.transport.write(head + body if body else head)
        try:
            return await answer
        except BaseException:
            self._answer = None
            self.close()  # cancelled or failed mid-exchange: whatever comes next is not ours
            raise

    def _finish(self, content: bytes) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            status = self.parser.get_status_code()
            answer.set_result(Answer(status, self._headers, content, self._length))

    def _fail(self, error: Exception) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_exception(error)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Unanswered(httpx.ReadError):
    """Closed before any byte of the answer: on a reused connection, the server had closed it."""


class Wire:
    """A pool of HTTP/1.1 connections per origin; `fetch` sends one request, reads its answer."""

    def __init__(
        self,
        *,
        max_connections: int,
        timeout: float,
        max_body: int,
        tls: Callable[[], ssl.SSLContext],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_connections = max_connections
        self.timeout = timeout
        self.max_body = max_body
        self.tls = tls
        self.clock = clock
        self._origins: dict[str, _Origin] = {}
        self._idle: dict[str, list[_Connection]] = {}
        #: The event loop the pool is used in, and its bound on open connections: a pool used
        #: again after `aclose` (or in another loop) starts afresh.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(max_connections)

    async def fetch(
        self,
        method: str,
        origin_text: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
    ) -> Answer:
        """One request to `origin_text` (see `split`) for `target` (encoded); its answer, whole."""
        origin = self._origins.get(origin_text)
        if origin is None:
            origin = self._origins[origin_text] = _Origin(origin_text)
        head = _head(method, target, origin.host_header, headers, body)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._close_idle()
            self._loop, self._slots = loop, asyncio.Semaphore(self.max_connections)
        try:
            async with asyncio.timeout(self.timeout), self._slots:
                return await self._exchange(origin_text, origin, head, body)
        except TimeoutError:
            raise httpx.ReadTimeout("timed out") from None

    async def _exchange(self, key: str, origin: _Origin, head: bytes, body: bytes | None) -> Answer:
        connection = self._take(key)
        if connection is not None:
            try:
                answer = await connection.exchange(head, body)
            except _Unanswered:
                # The server had closed the idle connection: once more, on a new one.
                connection = None
            else:
                self._release(key, connection)
                return answer
        connection = await self._connect(origin)
        answer = await connection.exchange(head, body)
        self._release(key, connection)
        return answer

    def _take(self, key: str) -> _Connection | None:
        idle = self._idle.get(key)
        now = self.clock()
        while idle:
            connection = idle.pop()  # the newest: the likeliest to be alive still
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection.close()
        return None

    def _release(self, key: str, connection: _Connection) -> None:
        if connection.closed or self._loop is None:
            connection.close()
            return
        connection.idle_since = self.clock()
        self._idle.setdefault(key, []).append(connection)

    async def _connect(self, origin: _Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(self.max_body),
                origin.host,
                origin.port,
                ssl=self.tls() if origin.tls else None,
                server_hostname=origin.host if origin.tls else None,
            )
        except (ssl.SSLError, ssl.CertificateError) as error:
            raise RefusedResponse(f"TLS verification failed: {error}") from error
        except OSError as error:
            raise httpx.ConnectError(
                f"cannot connect to {origin.host}:{origin.port}: {error.strerror or error}"
            ) from error
        return connection

    async def aclose(self) -> None:
        self._loop = None
        self._close_idle()

    def _close_idle(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


def split(url: str) -> tuple[str, str]:
    """`scheme://host[:port]` and the request target (path and query, no fragment)."""
    start = url.find("://")
    if start < 0:
        raise httpx.UnsupportedProtocol(f"not an absolute URL: {url!r}")
    slash = url.find("/", start + 3)
    query = url.find("?", start + 3)
    cut = min(at for at in (slash, query, len(url)) if at >= 0)
    target = url[cut:].partition("#")[0]
    if not target.startswith("/"):
        target = "/" + target
    return url[:cut], target


def _head(
    method: str, target: str, host: str, headers: list[tuple[str, str]], body: bytes | None
) -> bytes:
    """The request line and headers, as sent. A header that could split the request (CR, LF or
    NUL in it, or a name that is not a token) is refused, never sent."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers:
        if name.lower() in _OWN_HEADERS:
            continue
        if _TOKEN.fullmatch(name) is None or _UNSAFE_VALUE.search(value) is not None:
            raise httpx.LocalProtocolError("a request header has an invalid name or value")
        lines.append(f"{name}: {value}")
    lines.append("Accept-Encoding: identity")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise httpx.LocalProtocolError("a request header is not Latin-1 text") from None
