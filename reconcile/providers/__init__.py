"""Platform providers: an explicit registry from a manifest's provider `type` to its opener."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from reconcile.errors import ReconcileError
from reconcile.manifest import FabricProvider as FabricSpec
from reconcile.manifest import Manifest, Policy
from reconcile.manifest import QianfanProvider as QianfanSpec
from reconcile.providers import fabric, qianfan
from reconcile.providers.base import Provider
from reconcile.providers.failures import Redactor
from reconcile.providers.http import (
    AiohttpTransport,
    Http,
    RateLimiter,
    RetryPolicy,
    check_endpoint,
)

EMULATOR_SCHEME = "emulator:"
#: The built-in emulator's fixed demo credentials (its state files list them as valid).
EMULATOR_FABRIC_TOKEN = "demo-fabric-token"
EMULATOR_QIANFAN_KEYS = ("demo-qianfan-ak", "demo-qianfan-sk")


@dataclass(frozen=True)
class Options:
    """How providers talk to platforms, from the command line."""

    state_dir: Path
    parallelism: int = 16
    insecure: bool = False
    #: Attempts per request and seconds per attempt; None: the provider's policy decides.
    attempts: int | None = None
    timeout: float | None = None
    #: Requests per second to each provider at most; None: no limit but `parallelism`.
    max_rps: float | None = None

    def retry(self, policy: Policy) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.attempts if self.attempts is not None else policy.retry_attempts,
            timeout=self.timeout if self.timeout is not None else policy.request_timeout,
        )


def open_providers(
    manifest: Manifest,
    names: list[str] | None,
    options: Options,
    env: Mapping[str, str] | None = None,
) -> dict[str, Provider]:
    """Providers for `names` (all of the manifest's when None), ready to list and delete."""
    environ = os.environ if env is None else env
    semaphore = asyncio.Semaphore(options.parallelism)
    # Providers that name one emulator seed share one in-process emulator (one store).
    emulators: dict[Path, httpx.ASGITransport] = {}
    opened: dict[str, Provider] = {}
    for name in names if names is not None else list(manifest.providers):
        spec = manifest.providers[name]
        if isinstance(spec, FabricSpec):
            opened[name] = _open_fabric(
                name, spec, manifest, options, environ, semaphore, emulators
            )
        elif isinstance(spec, QianfanSpec):
            opened[name] = _open_qianfan(
                name, spec, manifest, options, environ, semaphore, emulators
            )
    return opened


def _open_fabric(
    name: str,
    spec: FabricSpec,
    manifest: Manifest,
    options: Options,
    env: Mapping[str, str],
    semaphore: asyncio.Semaphore,
    emulators: dict[Path, httpx.ASGITransport],
) -> Provider:
    redact = Redactor()
    headers: dict[str, str] = {}
    retry = options.retry(manifest.policy_for(name))
    timeout = httpx.Timeout(retry.timeout)
    if spec.endpoint.startswith(EMULATOR_SCHEME):
        transport = emulator_transport(spec.endpoint, name, manifest, options.state_dir, emulators)
        direct: AiohttpTransport | None = None
        endpoint = services_endpoint = "http://fabric.emulator"
        client = httpx.AsyncClient(transport=transport, timeout=timeout)
        services_client = client
        token: str | None = EMULATOR_FABRIC_TOKEN
        sign = None
    else:
        endpoint = check_endpoint(spec.endpoint, insecure=options.insecure)
        services_endpoint = check_endpoint(
            spec.services_endpoint or spec.endpoint, insecure=options.insecure
        )
        token, sign = _fabric_auth(name, spec, env, redact)
        client, direct = platform_client(options, retry)
        services_client = client
    if token is not None:
        headers["X-Auth-Token"] = token
        redact.add(token)
    client.headers.update(headers)

    def http(on: httpx.AsyncClient) -> Http:
        return Http(
            on,
            provider=name,
            map_error=fabric.map_error,
            semaphore=semaphore,
            retry=retry,
            limiter=RateLimiter.per_second(options.max_rps),
            redact=redact,
            sign=sign,
            transport=direct if on is client else None,
        )

    main = http(client)
    return fabric.FabricProvider(
        name,
        workspace_id=spec.workspace_id,
        http=main,
        services_http=main if services_client is client else http(services_client),
        endpoint=endpoint,
        services_endpoint=services_endpoint,
    )


def _open_qianfan(
    name: str,
    spec: QianfanSpec,
    manifest: Manifest,
    options: Options,
    env: Mapping[str, str],
    semaphore: asyncio.Semaphore,
    emulators: dict[Path, httpx.ASGITransport],
) -> Provider:
    redact = Redactor()
    retry = options.retry(manifest.policy_for(name))
    timeout = httpx.Timeout(retry.timeout)
    if spec.endpoint.startswith(EMULATOR_SCHEME):
        transport = emulator_transport(spec.endpoint, name, manifest, options.state_dir, emulators)
        client = httpx.AsyncClient(transport=transport, timeout=timeout)
        direct: AiohttpTransport | None = None
        endpoint = "http://qianfan.emulator"
        access_key, secret_key = EMULATOR_QIANFAN_KEYS
    else:
        endpoint = check_endpoint(spec.endpoint, insecure=options.insecure)
        client, direct = platform_client(options, retry)
        credentials = spec.credentials
        ak_env = credentials.ak_env if credentials else "QIANFAN_ACCESS_KEY"
        sk_env = credentials.sk_env if credentials else "QIANFAN_SECRET_KEY"
        if ak_env is None or sk_env is None:
            raise ReconcileError(
                f'provider "{name}": Qianfan signs requests with AK/SK',
                hint='use credentials = { ak_env = "QIANFAN_ACCESS_KEY", sk_env = '
                '"QIANFAN_SECRET_KEY" } (token_env is not supported by Qianfan)',
            )
        access_key = _credential(env, name, "ak_env", ak_env)
        secret_key = _credential(env, name, "sk_env", sk_env)
    redact.add(access_key, secret_key)
    http = Http(
        client,
        provider=name,
        map_error=qianfan.map_error,
        semaphore=semaphore,
        retry=retry,
        limiter=RateLimiter.per_second(options.max_rps),
        redact=redact,
        sign=qianfan.bce_signer(access_key, secret_key, clock=lambda: datetime.now(UTC)),
        transport=direct,
    )
    return qianfan.QianfanProvider(
        name,
        http=http,
        endpoint=endpoint,
        model_delete=spec.model_delete,
        parallelism=options.parallelism,
    )


def platform_client(
    options: Options, retry: RetryPolicy
) -> tuple[httpx.AsyncClient, AiohttpTransport]:
    """The client for a real endpoint, and its transport: httpx's interface over aiohttp's
    connection pool, which stays O(1) per request at any parallelism (see `AiohttpTransport`)."""
    transport = AiohttpTransport(max_connections=options.parallelism, timeout=retry.timeout)
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(retry.timeout)), transport


def _fabric_auth(
    name: str, spec: FabricSpec, env: Mapping[str, str], redact: Redactor
) -> tuple[str | None, Callable[[httpx.Request], None] | None]:
    """A token, or an AK/SK signer, from the environment variables the manifest names."""
    credentials = spec.credentials
    if credentials is None:
        raise ReconcileError(
            f'provider "{name}": no credentials in the manifest',
            hint=f'add credentials = {{ token_env = "ENV_VAR_NAME" }} (or ak_env + sk_env) to '
            f"[providers.{name}]",
        )
    if credentials.token_env is not None:
        return _credential(env, name, "token_env", credentials.token_env), None
    assert credentials.ak_env is not None and credentials.sk_env is not None  # schema-checked
    access_key = _credential(env, name, "ak_env", credentials.ak_env)
    secret_key = _credential(env, name, "sk_env", credentials.sk_env)
    security_token = (
        _credential(env, name, "security_token_env", credentials.security_token_env)
        if credentials.security_token_env
        else None
    )
    redact.add(access_key, secret_key, security_token)
    signer = fabric.sdk_hmac_signer(
        access_key,
        secret_key,
        project_id=spec.project_id,
        security_token=security_token,
        clock=lambda: datetime.now(UTC),
    )
    return None, signer


def _credential(env: Mapping[str, str], provider: str, key: str, var: str) -> str:
    value = env.get(var)
    if not value:
        raise ReconcileError(
            f'provider "{provider}": environment variable {var} (named by '
            f"providers.{provider}.credentials.{key}) is not set",
            hint=f"export {var}=... before running reconcile",
        )
    if not _PRINTABLE_SECRET.fullmatch(value):
        # A value read from a file with Windows line endings, or pasted with a space: it
        # would be refused by the platform, and an HTTP library's error would quote it.
        raise ReconcileError(
            f'provider "{provider}": environment variable {var} (named by '
            f"providers.{provider}.credentials.{key}) holds whitespace, control or non-ASCII "
            "characters (the value is not shown)",
            hint=f"set {var} to the bare credential, e.g. without a trailing newline or \\r",
        )
    return value


#: Credentials are printable ASCII with no whitespace (tokens, access keys, secret keys).
_PRINTABLE_SECRET = re.compile(r"[\x21-\x7e]+")


def emulator_state_copy(seed: Path, state_dir: Path) -> Path:
    """The mutable copy of an emulator seed state, kept in the state dir (never in git)."""
    return state_dir / "emulator" / seed.name


def emulator_transport(
    endpoint: str,
    provider: str,
    manifest: Manifest,
    state_dir: Path,
    emulators: dict[Path, httpx.ASGITransport],
) -> httpx.ASGITransport:
    """An in-process emulator for an `emulator:STATE.json` endpoint, one per seed file.

    The seed is resolved beside the manifest file that declares the provider; the emulator runs on
    a copy in the state dir, so running the demo never changes tracked files.
    """
    origin = manifest.origins.get(f"providers.{provider}")
    base = Path(origin.file).parent if origin else _folder(manifest.root)
    seed = (base / endpoint.removeprefix(EMULATOR_SCHEME)).resolve()
    if not seed.is_file():
        raise ReconcileError(
            f'provider "{provider}": emulator state file {seed.name} not found beside '
            f"{origin.file if origin else manifest.root}",
            hint='endpoint = "emulator:FILE.json" names a JSON state file relative to the manifest',
        )
    copy = emulator_state_copy(seed, state_dir)
    if copy not in emulators:
        from reconcile.emulator import create_app  # deferred: only emulated runs load Starlette

        if not copy.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(seed, copy)
        try:
            app = create_app(copy, persist_path=copy)
        except (ValueError, OSError) as error:
            raise ReconcileError(
                f'provider "{provider}": the emulator state {copy} cannot be loaded: {error}',
                hint=f"fix {seed.name}, then `reconcile emulator reset` to copy it again",
            ) from None
        emulators[copy] = httpx.ASGITransport(app=app)
    return emulators[copy]


def _folder(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def default_state_dir(manifest_path: Path) -> Path:
    return _folder(manifest_path) / ".reconcile"
