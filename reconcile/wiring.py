"""Wiring: manifests + environment + options -> providers, ready to list and delete.

The app layer's one place that reads credentials from the environment, starts the built-in
emulator for `emulator:STATE.json` endpoints, and turns a manifest's provider table into a
provider through the registry of platforms (`reconcile.providers.PLATFORMS`), by its `type`.

Just over 450 lines: credentials, limits and connection pools per endpoint, the emulator, and
the state store are each opened here and nowhere else.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reconcile.endpoints import EMULATOR_PREFIX
from reconcile.errors import ReconcileError
from reconcile.manifest import Credentials, Manifest, Policy
from reconcile.providers import PLATFORMS
from reconcile.providers.adaptive import AdaptiveLimit, FixedLimit, Limit, SharedLimit
from reconcile.providers.base import Keys, Opening, Platform, Provider
from reconcile.providers.failures import Redactor
from reconcile.providers.http import (
    Http,
    RateLimiter,
    RetryPolicy,
    check_endpoint,
    in_process_client,
    platform_client,
)
from reconcile.providers.trace import limit_logger
from reconcile.providers.transport import AiohttpTransport
from reconcile.state import StateBackend, StateSpec, open_state, split_object_url

#: An endpoint `emulator:STATE.json` runs the built-in emulator on that state file.
EMULATOR_SCHEME = EMULATOR_PREFIX


@dataclass(frozen=True)
class Options:
    """How providers talk to platforms, from the command line."""

    state_dir: Path
    #: Requests in flight at most; None: `auto`, adapted per endpoint to what the platform
    #: answers (providers/adaptive.py), within `max_parallelism`.
    parallelism: int | None = None
    max_parallelism: int = 128
    insecure: bool = False
    #: Attempts per request and seconds per attempt; None: the provider's policy decides.
    attempts: int | None = None
    timeout: float | None = None
    #: Requests per second to each provider at most; None: no limit but `parallelism`.
    max_rps: float | None = None
    #: `--state URL`: the state store instead of the manifests' [state] table.
    state_url: str | None = None

    @property
    def most_in_flight(self) -> int:
        """Requests in flight at most, whatever the limit does: connections, deletes."""
        return self.parallelism if self.parallelism is not None else self.max_parallelism

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
    *,
    failed: dict[str, ReconcileError] | None = None,
) -> dict[str, Provider]:
    """Providers for `names` (all of the manifest's when None), ready to list and delete. With
    `failed`, a provider that cannot be opened (a credential variable not set, say) is put there
    instead of raising, so that the others still run."""
    opener = _Opener(manifest, options, os.environ if env is None else env)
    chosen = names if names is not None else list(manifest.providers)
    providers = {}
    for name in chosen:
        try:
            providers[name] = opener.open(name)
        except ReconcileError as error:
            if failed is None:
                raise
            failed[name] = error
    return providers


def provider_rows(manifest: Manifest, names: list[str] | None) -> list[dict[str, str | None]]:
    """The provider scopes `reconcile providers` shows: name, type, workspace, scope, endpoint."""
    chosen = names if names is not None else list(manifest.providers)
    return [
        {
            "name": name,
            "type": spec.type,
            "workspace_id": getattr(spec, "workspace_id", None),
            "scope": spec.scope,
            "endpoint": spec.endpoint,
        }
        for name, spec in ((name, manifest.providers[name]) for name in chosen)
    ]


async def close_providers(providers: Mapping[str, Provider]) -> None:
    """Close what `open_providers` opened (their HTTP clients)."""
    for provider in providers.values():
        await provider.aclose()


def select_providers(manifest: Manifest, globs: Sequence[str]) -> list[str] | None:
    """The providers `--provider GLOB` (repeatable) names, in the manifest's order; None when no
    glob is given (all of them). A glob that names no provider is an error."""
    if not globs:
        return None
    names = list(manifest.providers)
    for glob in globs:
        if not fnmatch.filter(names, glob):
            close = difflib.get_close_matches(glob, names, n=3, cutoff=0.4)
            raise ReconcileError(
                f"--provider {glob} names no provider of the manifests",
                hint="the providers are "
                + ", ".join(close or names[:10])
                + ("" if close or len(names) <= 10 else ", ..."),
            )
    return [name for name in names if any(fnmatch.fnmatchcase(name, glob) for glob in globs)]


class _Opener:
    """Opens a manifest's providers; they share one bound on requests in flight, and those that
    name one emulator seed share one in-process emulator (one store)."""

    def __init__(self, manifest: Manifest, options: Options, env: Mapping[str, str]) -> None:
        self.manifest = manifest
        self.options = options
        self.env = env
        #: A fixed `--parallelism` bounds all providers together; `auto` adapts one limit per
        #: endpoint, since each platform endpoint throttles on its own, and `--max-parallelism`
        #: bounds them all together.
        self.limits: dict[str, Limit] = {}
        self.total: FixedLimit | None = None
        self.emulators: dict[Path, Any] = {}
        #: (endpoint, timeout) -> the connection pool its providers share.
        self.transports: dict[tuple[str, float], AiohttpTransport] = {}

    def open(self, name: str) -> Provider:
        spec = self.manifest.providers[name]
        platform = PLATFORMS[spec.type]
        retry = self.options.retry(self.manifest.policy_for(name))
        endpoint: Callable[[str], str]
        if spec.endpoint.startswith(EMULATOR_SCHEME):
            app = emulator_app(
                spec.endpoint, name, self.manifest, self.options.state_dir, self.emulators
            )
            client = in_process_client(app, retry.timeout)
            direct = None
            keys = platform.emulator_keys
            endpoint = _always(platform.emulator_url)
        else:
            keys = read_keys(name, spec.credentials, platform, self.env)
            # Providers of one endpoint share its connection pool (200 workspaces on one
            # platform need one pool, not 200); close_providers closes them all together.
            shared = self.transports.get((spec.endpoint, retry.timeout))
            client, direct = platform_client(self.options.most_in_flight, retry.timeout, shared)
            self.transports[(spec.endpoint, retry.timeout)] = direct
            endpoint = _checked_endpoint(insecure=self.options.insecure)
        redact = Redactor()
        redact.add(*keys.values())
        auth = platform.authenticate(keys, spec, _now)
        client.headers.update(auth.headers)
        http = Http(
            client,
            provider=name,
            map_error=platform.map_error,
            limit=self.limit_for(spec.endpoint),
            retry=retry,
            limiter=RateLimiter.per_second(self.options.max_rps),
            redact=redact,
            sign=auth.sign,
            transport=direct,
        )
        return platform.open(Opening(name, spec, http, endpoint))

    def limit_for(self, endpoint: str) -> Limit:
        if self.options.parallelism is not None:
            return self._total(self.options.parallelism)
        if endpoint not in self.limits:
            own = AdaptiveLimit(
                maximum=self.options.max_parallelism, on_change=limit_logger(endpoint)
            )
            self.limits[endpoint] = SharedLimit(own, self._total(self.options.max_parallelism))
        return self.limits[endpoint]

    def _total(self, limit: int) -> FixedLimit:
        """The one bound on all providers' requests in flight together."""
        if self.total is None:
            self.total = FixedLimit(limit)
        return self.total


def _now() -> datetime:
    return datetime.now(UTC)


def _always(url: str) -> Callable[[str], str]:
    return lambda _: url


def _checked_endpoint(*, insecure: bool) -> Callable[[str], str]:
    return lambda url: check_endpoint(url, insecure=insecure)


# -- credentials ----------------------------------------------------------------------------------


def read_keys(
    provider: str, credentials: Credentials | None, platform: Platform, env: Mapping[str, str]
) -> Keys:
    """The credential values from the environment variables the manifest names (or, where it
    names none, the platform SDK's own variables)."""
    if credentials is None:
        if platform.default_key_env is None:
            raise ReconcileError(
                f'provider "{provider}": no credentials in the manifest',
                hint=f"add credentials = {_example(platform)} to [providers.{provider}]",
            )
        ak_env, sk_env = platform.default_key_env
        return Keys(
            access_key=_credential(env, provider, "ak_env", ak_env),
            secret_key=_credential(env, provider, "sk_env", sk_env),
        )
    if credentials.token_env is not None:
        if not platform.accepts_token:
            raise ReconcileError(
                f'provider "{provider}": {platform.title} signs requests with AK/SK',
                hint=f"use credentials = {_example(platform)} (token_env is not supported by "
                f"{platform.title})",
            )
        return Keys(token=_credential(env, provider, "token_env", credentials.token_env))
    assert credentials.ak_env is not None and credentials.sk_env is not None  # schema-checked
    security_env = credentials.security_token_env if platform.accepts_security_token else None
    return Keys(
        access_key=_credential(env, provider, "ak_env", credentials.ak_env),
        secret_key=_credential(env, provider, "sk_env", credentials.sk_env),
        security_token=(
            _credential(env, provider, "security_token_env", security_env) if security_env else None
        ),
    )


def _example(platform: Platform) -> str:
    if platform.default_key_env is not None:
        ak_env, sk_env = platform.default_key_env
        return f'{{ ak_env = "{ak_env}", sk_env = "{sk_env}" }}'
    if platform.accepts_token:
        return '{ token_env = "ENV_VAR_NAME" } (or ak_env + sk_env)'
    return '{ ak_env = "ENV_VAR_NAME", sk_env = "ENV_VAR_NAME" }'


def _credential(env: Mapping[str, str], provider: str, key: str, var: str) -> str:
    field = f"providers.{provider}.credentials.{key}"
    if looks_like_a_secret(var):
        # A key or token pasted where its variable's name belongs: never echo it.
        named = f"the environment variable named by {field}"
        example = _EXAMPLE_NAMES.get(key, "MY_SECRET")
        fix = (
            f"set {field} to the NAME of an environment variable (e.g. {example}) and export "
            "the secret in it; if a secret was pasted into the manifest, rotate it"
        )
        shown = f"{named} (its name looks like a key or token, so it is not shown)"
        subject = "that variable"
    else:
        subject = var
        shown = f"environment variable {var} (named by {field})"
        fix = f"export {var}=... before running reconcile"
    value = env.get(var)
    if not value:
        raise ReconcileError(f'provider "{provider}": {shown} is not set', hint=fix)
    if not _PRINTABLE_SECRET.fullmatch(value):
        # A value read from a file with Windows line endings, or pasted with a space: it
        # would be refused by the platform, and an HTTP library's error would quote it.
        raise ReconcileError(
            f'provider "{provider}": {shown} holds whitespace, control or non-ASCII characters '
            "(the value is not shown)",
            hint=f"set {subject} to the bare credential, e.g. without a trailing newline or \\r",
        )
    return value


def looks_like_a_secret(name: str) -> bool:
    """Whether a credentials field's "variable name" looks like a key or token pasted in its
    place: not of the form [A-Za-z_][A-Za-z0-9_]*, an IAM token (`MII...`) or JWT (`eyJ...`), a
    word of 16 or more characters between underscores (an access key is 20 or 32 of them), or a
    word mixing upper and lower case (random text does; variable names do not)."""
    if not _ENV_NAME.fullmatch(name) or len(name) > 64 or name.startswith(("MII", "eyJ")):
        return True
    words = [word for word in name.split("_") if word]
    return any(len(word) >= 16 or (word.lower() != word != word.upper()) for word in words)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXAMPLE_NAMES = {
    "token_env": "MY_TOKEN",
    "ak_env": "MY_ACCESS_KEY",
    "sk_env": "MY_SECRET_KEY",
    "security_token_env": "MY_SECURITY_TOKEN",
}


#: Credentials are printable ASCII with no whitespace (tokens, access keys, secret keys).
_PRINTABLE_SECRET = re.compile(r"[\x21-\x7e]+")


# -- the built-in emulator and the state dir ------------------------------------------------------


def emulator_state_copy(seed: Path, state_dir: Path) -> Path:
    """The mutable copy of an emulator seed state, kept in the state dir (never in git)."""
    return state_dir / "emulator" / seed.name


def emulator_app(
    endpoint: str,
    provider: str,
    manifest: Manifest,
    state_dir: Path,
    emulators: dict[Path, Any],
) -> Any:
    """The in-process emulator (an ASGI app) for an `emulator:STATE.json` endpoint, one per
    seed file (kept in `emulators`).

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
        emulators[copy] = _emulator_app(provider, seed, copy)
    return emulators[copy]


def _emulator_app(provider: str, seed: Path, copy: Path) -> Any:
    from reconcile.emulator import create_app  # deferred: only emulated runs load Starlette
    from reconcile.emulator.store import copy_seed, seed_changed

    if not copy.exists():
        copy_seed(seed, copy)
    elif seed_changed(seed, copy):
        # The seed was edited (the demo's state file, say): the copy follows it, and says so,
        # rather than answer from a state the user no longer has in front of them.
        logging.getLogger("reconcile.emulator").warning(
            "%s changed since its working copy was made: the emulator starts again from it "
            "(what earlier applies deleted in the copy is back)",
            seed.name,
        )
        copy_seed(seed, copy)
    try:
        return create_app(copy, persist_path=copy)
    except (ValueError, OSError) as error:
        raise ReconcileError(
            f'provider "{provider}": the emulator state {copy} cannot be loaded: {error}',
            hint=f"fix {seed.name}, then `reconcile emulator reset` to copy it again",
        ) from None


def _folder(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def default_state_dir(manifest_path: Path) -> Path:
    return _folder(manifest_path) / ".reconcile"


# -- the state store ------------------------------------------------------------------------------

#: The environment variable that names the state store (below --state, above the [state] table).
STATE_ENV = "RECONCILE_STATE"


def state_spec(
    manifest: Manifest | None, url: str | None, env: Mapping[str, str] | None = None
) -> StateSpec:
    """The store to use: `--state URL`, else $RECONCILE_STATE, else the manifests' [state]
    table, else `local`. A URL given on the command line or in the environment keeps the
    table's endpoint, region and variable names (the table says how to reach the store)."""
    environ = os.environ if env is None else env
    table = manifest.state if manifest is not None else None
    fields = table.model_dump(exclude_none=True) if table is not None else {}
    chosen = url or environ.get(STATE_ENV) or None
    if chosen:
        fields["url"] = chosen
    return StateSpec(**fields)


def open_state_store(
    manifest: Manifest | None, options: Options, env: Mapping[str, str] | None = None
) -> StateBackend:
    """The state store of these manifests and options (closed by the caller)."""
    environ = os.environ if env is None else env
    spec = state_spec(manifest, options.state_url, environ)
    return open_state(spec, default_dir=options.state_dir, environ=environ)


def open_local_store(options: Options, env: Mapping[str, str] | None = None) -> StateBackend:
    """The store in the state dir (`.reconcile/` or --state-dir), whatever [state] says."""
    environ = os.environ if env is None else env
    return open_state(StateSpec(url="local"), default_dir=options.state_dir, environ=environ)


def open_object_store(
    manifest: Manifest | None, options: Options, url: str, env: Mapping[str, str] | None = None
) -> tuple[StateBackend, str]:
    """The store holding the object `s3://BUCKET/KEY` (reached with the [state] table's endpoint,
    region and key names), and the key within it."""
    environ = os.environ if env is None else env
    store_url, key = split_object_url(url)
    spec = state_spec(manifest, store_url, {})
    return open_state(spec, default_dir=options.state_dir, environ=environ), key


def lock_scope(manifest: Manifest, provider: str, state_dir: Path) -> str:
    """The provider scope a lock covers: the platform, its host and workspace. Two manifests
    naming one workspace share a lock; two workspaces never block each other."""
    spec = manifest.providers[provider]
    endpoint = spec.endpoint
    if endpoint.startswith(EMULATOR_SCHEME):
        origin = manifest.origins.get(f"providers.{provider}")
        folder = Path(origin.file).parent if origin is not None else _folder(manifest.root)
        seed = (folder / endpoint[len(EMULATOR_SCHEME) :]).name
        host = f"emulator:{emulator_state_copy(Path(seed), state_dir.resolve())}"
    else:
        host = urlsplit(endpoint).netloc or endpoint
    where = getattr(spec, "workspace_id", None)
    return f"{spec.type}:{host}" + (f"/{where}" if where else "")
