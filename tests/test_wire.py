"""The wire transport against a hand-written HTTP server on loopback: the server's bytes are
exactly what each test says, so framing, reuse, refusals and TLS are tested as they arrive."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

import httpx
import pytest
import trustme

from reconcile.providers.transport import _tls_context
from reconcile.providers.wire import Answer as WireAnswer
from reconcile.providers.wire import RefusedResponse, Wire, split

pytestmark = pytest.mark.loopback

#: (request number on its connection, the request's head) -> the bytes to answer (None: close
#: without answering).
Answer = Callable[[int, bytes], bytes | None]

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _serve(
    answer: Answer, scenario: Callable[[str, list[bytes]], Awaitable[None]], **tls: object
) -> int:
    """Run `scenario(base_url, heads)` against a server answering with `answer`; the number of
    connections the server accepted."""
    heads: list[bytes] = []
    connections = 0
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writers.append(writer)
        number = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                heads.append(head)
                number += 1
                reply = answer(number, head)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                framed = b"Content-Length" in reply or b"chunked" in reply
                if b"Connection: close" in reply or not framed:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls.get("ssl"))
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if tls.get("ssl") else "http"
    host = tls.get("host", "127.0.0.1")
    try:
        await scenario(f"{scheme}://{host}:{port}", heads)
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)
        await server.wait_closed()
        await asyncio.sleep(0)  # the handlers see their streams closed and end
    return connections


def _wire(tls: Callable[[], ssl.SSLContext] = _tls_context, timeout: float = 5) -> Wire:
    return Wire(max_connections=4, timeout=timeout, max_body=1000, tls=tls)


async def _get(wire: Wire, url: str, headers: list[tuple[str, str]] | None = None) -> WireAnswer:
    origin, target = split(url)
    return await wire.fetch("GET", origin, target, headers or [], None)


def test_answers_come_back_whole_over_one_reused_connection() -> None:
    bodies: list[bytes] = []

    async def scenario(url: str, heads: list[bytes]) -> None:
        wire = _wire()
        for path in ("/a?x=1", "/b"):
            bodies.append((await _get(wire, f"{url}{path}#frag", [("X-Token", "t")])).content)
        await wire.aclose()

    connections = asyncio.run(_serve(lambda number, head: OK, scenario))
    assert bodies == [b"ok", b"ok"]
    assert connections == 1


def test_the_request_goes_out_as_given_with_host_and_identity_encoding() -> None:
    seen: list[bytes] = []

    async def scenario(url: str, heads: list[bytes]) -> None:
        wire = _wire()
        await _get(wire, f"{url}/p%20q?a=b", [("Accept-Encoding", "gzip"), ("X-Token", "t")])
        await wire.aclose()
        seen.extend(heads)

    asyncio.run(_serve(lambda number, head: OK, scenario))
    lines = seen[0].decode().split("\r\n")
    assert lines[0] == "GET /p%20q?a=b HTTP/1.1"
    assert lines[1].startswith("Host: 127.0.0.1:")
    assert "X-Token: t" in lines and "Accept-Encoding: identity" in lines
    assert not any(line.lower() == "accept-encoding: gzip" for line in lines)


@pytest.mark.parametrize(
    ("reply", "body"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n",
            b"abcde",
        ),
        (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", b"until the end"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
    ],
    ids=["chunked", "until-close", "no-content"],
)
def test_every_framing_of_a_body_is_read(reply: bytes, body: bytes) -> None:
    got: list[httpx.Response] = []

    async def scenario(url: str, heads: list[bytes]) -> None:
        wire = _wire()
        got.append(await _get(wire, f"{url}/"))
        got.append(await _get(wire, f"{url}/"))  # after a close: a new connection
        await wire.aclose()

    asyncio.run(_serve(lambda number, head: reply, scenario))
    assert [answer.content for answer in got] == [body, body]


def test_an_idle_connection_the_server_closed_is_replaced_not_failed() -> None:
    async def scenario(url: str, heads: list[bytes]) -> None:
        wire = _wire()
        assert (await _get(wire, f"{url}/")).content == b"ok"
        assert (await _get(wire, f"{url}/")).content == b"ok"
        await wire.aclose()

    # The second request on a connection is met with a close, as a server that just timed the
    # idle connection out would.
    connections = asyncio.run(_serve(lambda number, head: OK if number == 1 else None, scenario))
    assert connections == 2


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 10\r\n\r\nabc",
            httpx.ReadError,
            "mid-answer",
        ),
        (b"NOT HTTP AT ALL\r\n\r\n", httpx.RemoteProtocolError, "malformed"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\nxx",
            RefusedResponse,
            "gzip-encoded body",
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 2000, RefusedResponse, "larger than 1000 bytes"),
    ],
    ids=["cut", "malformed", "compressed", "endless"],
)
def test_a_broken_or_refused_answer_is_an_httpx_error(
    reply: bytes, error: type[Exception], message: str
) -> None:
    async def scenario(url: str, heads: list[bytes]) -> None:
        wire = _wire()
        with pytest.raises(error, match=message):
            await _get(wire, f"{url}/")
        await wire.aclose()

    asyncio.run(_serve(lambda number, head: reply, scenario))


def test_an_announced_huge_body_is_not_read() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000

    async def scenario(url: str, heads: list[bytes]) -> None:
        wire = _wire()
        answer = await _get(wire, f"{url}/")
        assert answer.content == b"" and answer.headers["Content-Length"] == "5000"
        await wire.aclose()

    asyncio.run(_serve(lambda number, head: reply, scenario))


@pytest.mark.parametrize(
    "header", [("X-Token", "a\r\nX-Injected: 1"), ("X-Token", "a\nb"), ("Bad Name", "v")]
)
def test_a_header_that_could_split_the_request_is_never_sent(header: tuple[str, str]) -> None:
    async def scenario(url: str, heads: list[bytes]) -> None:
        wire = _wire()
        with pytest.raises(httpx.LocalProtocolError):
            await _get(wire, f"{url}/", [header])
        await wire.aclose()

    connections = asyncio.run(_serve(lambda number, head: OK, scenario))
    assert connections == 0


def test_a_slow_answer_times_out() -> None:
    async def scenario(url: str, heads: list[bytes]) -> None:
        wire = _wire(timeout=0.2)
        with pytest.raises(httpx.ReadTimeout):
            await _get(wire, f"{url}/")
        await wire.aclose()

    asyncio.run(
        _serve(lambda number, head: b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nla", scenario)
    )


def test_tls_is_verified_against_the_trusted_authorities() -> None:
    authority = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server)

    def trusting() -> ssl.SSLContext:
        context = ssl.create_default_context()
        authority.configure_trust(context)
        return context

    async def scenario(url: str, heads: list[bytes]) -> None:
        trusted = _wire(tls=trusting)
        assert (await _get(trusted, f"{url}/")).content == b"ok"
        await trusted.aclose()
        # The same server, with the public authorities only: its certificate is refused.
        public = _wire()
        with pytest.raises(RefusedResponse, match="TLS verification failed"):
            await _get(public, f"{url}/")
        await public.aclose()

    asyncio.run(_serve(lambda number, head: OK, scenario, ssl=server, host="localhost"))


def test_a_pool_closed_in_one_event_loop_serves_the_next() -> None:
    """Commands run their phases in separate event loops; a pool is closed after each."""
    wire = _wire()

    async def scenario(url: str, heads: list[bytes]) -> None:
        def phase() -> bytes:
            async def one() -> bytes:
                try:
                    return (await _get(wire, f"{url}/")).content
                finally:
                    await wire.aclose()

            return asyncio.run(one())

        loop = asyncio.get_running_loop()
        first = await loop.run_in_executor(None, phase)
        second = await loop.run_in_executor(None, phase)
        assert first == second == b"ok"

    assert asyncio.run(_serve(lambda number, head: OK, scenario)) == 2


def test_the_pool_works_on_uvloops_event_loop() -> None:
    """uvloop (a dependency, the emulator's loop) has transports of its own classes."""
    uvloop = pytest.importorskip("uvloop")
    got: list[bytes] = []

    async def scenario(url: str, heads: list[bytes]) -> None:
        wire = _wire()
        got.extend([(await _get(wire, f"{url}/")).content, (await _get(wire, f"{url}/")).content])
        await wire.aclose()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(_serve(lambda number, head: OK, scenario)) == 1
    assert got == [b"ok", b"ok"]


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        (b"text/plain; charset=latin-1", b"caf\xe9", "caf\u00e9"),
        (b'application/json; charset="utf-8"', b'"caf\xc3\xa9"', '"caf\u00e9"'),
        (b"text/plain", b"caf\xe9", "caf\ufffd"),
        (b"text/plain; charset=no-such-charset", b"caf\xc3\xa9", "caf\u00e9"),
    ],
    ids=["named-charset", "quoted-charset", "undecodable-utf-8", "unknown-charset"],
)
def test_an_answers_text_is_decoded_as_httpx_decodes_it(
    content_type: bytes, body: bytes, text: str
) -> None:
    """Error messages quote an answer's text: in the charset it names, UTF-8 otherwise, every
    undecodable byte replaced, the same as an httpx.Response of those bytes reads."""
    reply = b"HTTP/1.1 400 Bad Request\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        content_type,
        len(body),
        body,
    )

    async def scenario(url: str, heads: list[bytes]) -> None:
        wire = _wire()
        answer = await _get(wire, f"{url}/")
        await wire.aclose()
        reference = httpx.Response(
            400, headers={"Content-Type": content_type.decode()}, content=body
        )
        assert answer.status_code == 400 and answer.text == reference.text == text
        assert answer.headers["Content-Type"] == content_type.decode()

    asyncio.run(_serve(lambda number, head: reply, scenario))
