"""A real S3-compatible server for the state tests: moto's standalone server on loopback.

moto (from the `test` extra) runs as its own process, as a store would: the state backend talks
to it over a socket with real signed requests. `ignoring_proxy` puts a small proxy in front of it
that drops `If-None-Match`, like the S3-compatible stores that silently ignore the precondition;
the same proxy can make the store fail after a number of journal writes.

Run as a program (`python -m tests.s3_fixtures hold STORE_JSON SCOPE`), it is a lock holder for
the tests that need a second process: it takes the lock, says so on stdout, and holds it until its
stdin closes (or until it is killed).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconcile.state import StateBackend, StateSpec, open_state

ROOT = Path(__file__).resolve().parent.parent
#: Dummy keys: moto accepts any; the tests check that the secret never shows in a message.
KEYS = {"RECONCILE_TEST_S3_AK": "AKIDTESTKEY", "RECONCILE_TEST_S3_SK": "s3cr3t-test-value-XYZ"}
SECRET = KEYS["RECONCILE_TEST_S3_SK"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server in a process of its own on a free loopback port, for the session."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **KEYS, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"},
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1)
            break
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("moto's server did not start") from None
            time.sleep(0.1)
    try:
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


def make_bucket(endpoint: str) -> str:
    """A fresh bucket on the server (through moto's own client library, not ours)."""
    import boto3

    name = f"state-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEYS["RECONCILE_TEST_S3_AK"],
        aws_secret_access_key=SECRET,
    )
    client.create_bucket(Bucket=name)
    client.close()
    return name


def s3_spec(endpoint: str, bucket: str, *, lease_seconds: float = 120) -> StateSpec:
    return StateSpec(
        url=f"s3://{bucket}/team/prod",
        endpoint=endpoint,
        region="us-east-1",
        ak_env="RECONCILE_TEST_S3_AK",
        sk_env="RECONCILE_TEST_S3_SK",
        lease_seconds=lease_seconds,
    )


@dataclass
class Store:
    """How to open one store, in this process or (as JSON) in another."""

    spec: StateSpec
    default_dir: Path
    kind: str

    def open(self) -> StateBackend:
        return open_state(self.spec, default_dir=self.default_dir, environ=KEYS)

    def to_json(self) -> str:
        return json.dumps({"spec": self.spec.model_dump(), "default_dir": str(self.default_dir)})


@pytest.fixture(params=["local", "s3"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Store]]:
    """A factory of fresh stores of one kind (each test runs once per kind)."""
    kind: str = request.param

    def make(*, lease_seconds: float = 120) -> Store:
        if kind == "local":
            spec = StateSpec(url="local", lease_seconds=lease_seconds)
            return Store(spec, tmp_path / f"state-{uuid.uuid4().hex[:6]}" / ".reconcile", kind)
        endpoint = request.getfixturevalue("moto_endpoint")
        spec = s3_spec(endpoint, make_bucket(endpoint), lease_seconds=lease_seconds)
        return Store(spec, tmp_path / ".reconcile", kind)

    yield make


class S3Proxy:
    """An ASGI proxy to the S3 server. With `drop_if_none_match` it forwards every request
    without `If-None-Match` (a store that ignores the precondition); with `fail_after` it answers
    503 to every request once that many journal records went through (a store that starts
    failing mid-apply), and notes when (`failed_at`, on `time.monotonic()`)."""

    def __init__(
        self, target: str, *, drop_if_none_match: bool = False, fail_after: int | None = None
    ) -> None:
        self.target = target
        self.drop_if_none_match = drop_if_none_match
        self.fail_after = fail_after
        self.journal_writes = 0
        self.failed_at: float | None = None

    def _fails(self, method: str, path: str) -> bool:
        if self.failed_at is not None:
            return True
        if self.fail_after is None or method != "PUT" or "/journal/" not in path:
            return False
        if self.journal_writes < self.fail_after:
            self.journal_writes += 1
            return False
        self.failed_at = time.monotonic()
        return True

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["raw_path"].decode() + (
            "?" + scope["query_string"].decode() if scope["query_string"] else ""
        )
        if self._fails(scope["method"], path):
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"store unavailable"})
            return
        dropped = {b"host", b"content-length", b"transfer-encoding"}
        if self.drop_if_none_match:
            dropped.add(b"if-none-match")
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k not in dropped]
        async with httpx.AsyncClient() as client:
            answer = await client.request(
                scope["method"], self.target + path, headers=headers, content=body
            )
        skip = {"content-length", "transfer-encoding", "connection", "content-encoding"}
        await send(
            {
                "type": "http.response.start",
                "status": answer.status_code,
                "headers": [
                    (k.encode(), v.encode()) for k, v in answer.headers.items() if k not in skip
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.content})


@pytest.fixture
def ignoring_proxy(moto_endpoint: str) -> Iterator[str]:
    """The endpoint of a store that ignores If-None-Match (moto behind the proxy above)."""
    from tests.conftest import serve_over_loopback

    with serve_over_loopback(S3Proxy(moto_endpoint, drop_if_none_match=True)) as url:
        yield url


def hold(store_json: str, scope: str) -> int:
    """Take the lock, report it, hold it until stdin closes; or report the refusal."""
    from reconcile.errors import ReconcileError

    config = json.loads(store_json)
    store = Store(StateSpec(**config["spec"]), Path(config["default_dir"]), "?")
    with store.open() as state:
        try:
            held = state.acquire(scope, "apply", apply_id=f"apply-{os.getpid()}")
        except ReconcileError as error:
            print(json.dumps({"refused": str(error)}), flush=True)
            return 1
        with held:
            print(json.dumps({"acquired": held.id, "pid": os.getpid()}), flush=True)
            sys.stdin.read()
    return 0


def start_holder(store: Store, scope: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.s3_fixtures", "hold", store.to_json(), scope],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **KEYS},
    )


def first_line(process: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    """What a holder said (acquired or refused), waiting at most `timeout` seconds."""
    import selectors

    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            process.kill()
            raise AssertionError("the lock holder said nothing")
    line = process.stdout.readline()
    if not line:
        raise AssertionError(
            f"the lock holder failed: {process.stderr.read() if process.stderr else ''}"
        )
    result: dict[str, Any] = json.loads(line)
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["hold"]:
        sys.exit(hold(sys.argv[2], sys.argv[3]))
    sys.exit(f"usage: {sys.argv[0]} hold STORE_JSON SCOPE")
