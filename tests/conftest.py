"""Shared fixtures, and a safety net: no test may open a connection off this machine.

Every socket connect is checked; anything but a loopback address fails the test at once, so a
misconfigured endpoint can never reach a real cloud.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconcile.emulator import ConnectionDropped
from tests.s3_fixtures import ignoring_proxy, make_store, moto_endpoint  # noqa: F401 - state tests

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo"

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_address(address: Any) -> None:
    if isinstance(address, tuple) and address:
        host = address[0]
        try:
            if ipaddress.ip_address(host).is_loopback:
                return
        except ValueError:
            if host == "localhost":
                return
        raise RuntimeError(f"test tried to reach {host!r}: tests talk only to loopback emulators")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check_address(address)
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check_address(address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A private copy of the demo (manifest + emulator seed), so tests never share state."""
    target = tmp_path / "demo"
    shutil.copytree(DEMO, target, ignore=shutil.ignore_patterns(".reconcile"))
    return target


def demo_state() -> dict[str, Any]:
    return json.loads((DEMO / "emulator-state.json").read_text(encoding="utf-8"))


@contextmanager
def serve_over_loopback(app: Any) -> Iterator[str]:
    """Run an ASGI app with uvicorn on a free loopback port in a thread; yield its base URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run_on_terminal(args: list[str], answers: list[str], *, timeout: float = 60) -> tuple[int, str]:
    """Run `python -m reconcile ARGS` on a pseudo-terminal; each time it asks "Enter a value:",
    type the next answer. Returns (exit code, everything it printed)."""
    import os
    import pty
    import select
    import subprocess
    import sys

    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "reconcile", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "NO_COLOR": "1"},
        close_fds=True,
    )
    os.close(follower)
    screen = b""
    pending = list(answers)
    prompts_seen = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        if screen.count(b"Enter a value:") > prompts_seen and pending:
            prompts_seen += 1
            os.write(leader, pending.pop(0).encode() + b"\n")
        if process.poll() is not None and not ready:
            break
    code = process.wait(timeout=30)
    os.close(leader)
    return code, screen.decode(errors="replace")


class Swappable:
    """An ASGI app that hands each request to `app`, which a test may replace: one loopback
    server for a whole module (starting and stopping uvicorn costs ~0.2 s), a fresh app per test."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None, "set Swappable.app before sending requests"
        await self.app(scope, receive, send)


class EmulatorTransport(httpx.ASGITransport):
    """httpx's in-process transport to the emulator, turning a dropped connection (the "reset"
    and "lost" faults raise `ConnectionDropped` in-process) into the error a real socket gives."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except ConnectionDropped as error:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from error
