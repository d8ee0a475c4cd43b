"""The shared HTTP layer: rate limiting, retry settings from flags and policy, --insecure."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reconcile.emulator import create_app
from reconcile.errors import ManifestError, ProviderError
from reconcile.manifest import load_manifest
from reconcile.providers.fabric import FabricProvider
from reconcile.providers.http import RateLimiter
from reconcile.wiring import Options, open_providers
from tests.conftest import demo_state, serve_over_loopback


def test_the_rate_limiter_spaces_request_starts_evenly() -> None:
    now = [100.0]
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(4.0, clock=lambda: now[0])

    async def scenario() -> None:
        original = asyncio.sleep
        asyncio.sleep = fake_sleep  # type: ignore[assignment]
        try:
            for _ in range(5):
                await limiter.wait()
        finally:
            asyncio.sleep = original

    asyncio.run(scenario())
    assert sleeps == pytest.approx([0.25, 0.25, 0.25, 0.25])


def _flaky_manifest(tmp_path: Path, url: str, extra: str = "") -> Path:
    manifest = tmp_path / "m.toml"
    manifest.write_text(
        f"""
[providers.fab]
type = "fabric"
endpoint = "{url}"
workspace_id = "ws-demo"
credentials = {{ token_env = "RECONCILE_TEST_TOKEN" }}

[policy]
{extra}
"""
    )
    return manifest


@pytest.mark.loopback
@pytest.mark.parametrize(("policy", "flag", "expected"), [(2, None, 2), (2, 3, 3), (None, None, 4)])
def test_attempts_come_from_the_flag_or_else_the_policy(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    policy: int | None,
    flag: int | None,
    expected: int,
) -> None:
    state = demo_state()
    state["fabric"]["tokens"] = ["t0ken-for-retries"]
    monkeypatch.setenv("RECONCILE_TEST_TOKEN", "t0ken-for-retries")
    app = create_app(state, fail_rate=1.0, seed=1)
    extra = f"retry_attempts = {policy}" if policy else ""
    with serve_over_loopback(app) as url:
        manifest = load_manifest(_flaky_manifest(tmp_path, url, extra))
        options = Options(state_dir=tmp_path, attempts=flag)
        (provider,) = open_providers(manifest, None, options).values()
        assert isinstance(provider, FabricProvider)
        provider.http.sleep = _no_sleep

        async def listing() -> None:
            try:
                await provider._list_models()
            finally:
                await provider.aclose()

        with pytest.raises(ProviderError, match=r"fab: list models .* failed: HTTP"):
            asyncio.run(listing())
    assert len(app.state.emulator.requests) == expected


async def _no_sleep(_: float) -> None:
    return None


def test_plain_http_to_a_remote_host_needs_insecure(tmp_path: Path) -> None:
    manifest = _flaky_manifest(tmp_path, "http://models.internal.example:8080")
    with pytest.raises(ManifestError, match="plain http:// to a host that is not loopback"):
        load_manifest(manifest)
    loaded = load_manifest(manifest, insecure=True)
    assert loaded.providers["fab"].endpoint == "http://models.internal.example:8080"


def test_a_credential_with_a_control_character_is_refused_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A secret read from a file with Windows line endings: an HTTP library would quote the bad
    header value in its error; reconcile refuses it first, naming only the variable."""
    from reconcile.cli import main

    monkeypatch.setenv("RECONCILE_TEST_TOKEN", "SECRETTOKEN-value\r")
    manifest = _flaky_manifest(tmp_path, "http://127.0.0.1:9")
    assert main(["plan", str(manifest)]) == 1
    err = capsys.readouterr().err
    assert "environment variable RECONCILE_TEST_TOKEN" in err
    assert "whitespace, control or non-ASCII characters" in err
    assert "SECRETTOKEN" not in err
