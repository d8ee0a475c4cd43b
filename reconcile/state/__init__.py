"""Where reconcile keeps its state: lock, journal, saved plans, first-seen ledger.

`open_state(spec, default_dir=..., environ=...)` is the one place that picks the store from the
`[state]` table (or `--state URL`); everything above uses the `StateBackend` it returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from reconcile.state.base import (
    DEFAULT_AK_ENV,
    DEFAULT_SK_ENV,
    HeldLock,
    LocalLocation,
    LockInfo,
    Migration,
    S3Location,
    StateBackend,
    StateConflictError,
    StateError,
    StateSpec,
    Versioned,
    check_endpoint,
    parse_state_url,
    split_object_url,
)

__all__ = [
    "HeldLock",
    "LockInfo",
    "Migration",
    "StateBackend",
    "StateConflictError",
    "StateError",
    "StateSpec",
    "Versioned",
    "open_state",
    "parse_state_url",
    "split_object_url",
]


def open_state(spec: StateSpec, *, default_dir: Path, environ: Mapping[str, str]) -> StateBackend:
    """The store `spec` names: `local` is `default_dir` (`.reconcile/` beside the manifests), a
    path is that folder, `s3://...` an object store with keys from the variables it names."""
    location = parse_state_url(spec.url)
    if isinstance(location, LocalLocation):
        from reconcile.state.local import LocalState

        root = Path(location.path) if location.path else default_dir
        return LocalState(root, lease_seconds=spec.lease_seconds)
    return _open_s3(spec, location, environ)


def _open_s3(spec: StateSpec, location: S3Location, environ: Mapping[str, str]) -> StateBackend:
    from reconcile.state.s3 import S3Credentials, S3State

    if (spec.ak_env is None) != (spec.sk_env is None):
        raise StateError(
            "ak_env and sk_env go together: give both, or neither for "
            f"{DEFAULT_AK_ENV}/{DEFAULT_SK_ENV}",
            store=str(location),
        )
    endpoint = check_endpoint(spec.endpoint) if spec.endpoint else None
    ak_env, sk_env = spec.ak_env or DEFAULT_AK_ENV, spec.sk_env or DEFAULT_SK_ENV
    names = [ak_env, sk_env] + ([spec.security_token_env] if spec.security_token_env else [])
    missing = [name for name in names if not environ.get(name)]
    if missing:
        raise StateError(
            f"the environment variable(s) {', '.join(missing)} holding the store's keys are "
            "not set",
            store=str(location),
            operation="open",
            hint="export them in the job's environment (from its secret store), or name other "
            "variables with ak_env / sk_env in the [state] table",
        )
    return S3State(
        location,
        endpoint=endpoint,
        region=spec.region or "us-east-1",
        credentials=S3Credentials(
            environ[ak_env],
            environ[sk_env],
            environ[spec.security_token_env] if spec.security_token_env else None,
        ),
        credential_names=(ak_env, sk_env),
        addressing_style=spec.addressing_style,
        lease_seconds=spec.lease_seconds,
    )
