"""What the schema cannot see: endpoint safety, credentials that a platform can use, declared ids
that the platform could have made.
"""

from __future__ import annotations

import re

from reconcile.endpoints import endpoint_hint, endpoint_problem, is_emulator
from reconcile.errors import ManifestError
from reconcile.manifest.credentials import (
    SUPPORTED_KEYS,
    credentials_example,
    looks_like_secret,
    secret_hint,
)
from reconcile.manifest.explain import _quote
from reconcile.manifest.scanner import Loc
from reconcile.manifest.source import FileManifest
from reconcile.manifest.specs import FabricProvider, ModelSpec, QianfanProvider

#: The ids each platform gives models and versions (API.md; seed 000 for Fabric's path ids, 001
#: and 002 for Qianfan, whose V2 ids are the ones a listing reports): (pattern, rule in words).
#: Fabric's version ids are 32 to 36 characters (seed 003), but a shorter one is only an id that
#: matches nothing (as a planner case declares): the rule refuses what could never be an id.
_FABRIC_ID = (re.compile(r"[A-Za-z0-9-]{1,36}"), "1 to 36 letters, digits and '-'")
ID_RULES: dict[str, dict[str, tuple[re.Pattern[str], str]]] = {
    "fabric": {"model": _FABRIC_ID, "version": _FABRIC_ID},
    "qianfan": {
        "model": (
            re.compile(r"am-[A-Za-z0-9-]{1,64}"),
            "'am-' and 1 to 64 letters, digits and '-' (the modelSetId)",
        ),
        "version": (
            re.compile(r"amv-[A-Za-z0-9-]{1,64}"),
            "'amv-' and 1 to 64 letters, digits and '-' (the modelId)",
        ),
    },
}
_PLATFORMS = {"fabric": "Fabric", "qianfan": "Qianfan"}


def provider_problems(
    name: str, provider: FabricProvider | QianfanProvider, manifest: FileManifest
) -> list[ManifestError]:
    loc: Loc = ("providers", name)
    return [
        *_endpoint_problems(loc, provider, manifest),
        *_credential_problems(loc, provider, manifest),
    ]


def _endpoint_problems(
    loc: Loc, provider: FabricProvider | QianfanProvider, manifest: FileManifest
) -> list[ManifestError]:
    endpoints = [("endpoint", provider.endpoint)]
    if isinstance(provider, FabricProvider) and provider.services_endpoint is not None:
        endpoints.append(("services_endpoint", provider.services_endpoint))
    problems = []
    for key, url in endpoints:
        # Only the API endpoint can be the built-in emulator; it serves the services too.
        emulator_allowed = key == "endpoint"
        problem = endpoint_problem(
            url, emulator_allowed=emulator_allowed, insecure=manifest.insecure
        )
        if problem is not None:
            hint = endpoint_hint(emulator_allowed=emulator_allowed)
            problems.append(manifest.error((*loc, key), problem, hint=hint))
    return problems


def _credential_problems(
    loc: Loc, provider: FabricProvider | QianfanProvider, manifest: FileManifest
) -> list[ManifestError]:
    credentials = provider.credentials
    if credentials is None:
        # Qianfan falls back to the SDK's own variables, QIANFAN_ACCESS_KEY / QIANFAN_SECRET_KEY.
        if is_emulator(provider.endpoint) or isinstance(provider, QianfanProvider):
            return []
        return [
            manifest.error(
                loc,
                f"missing credentials for the real endpoint {_quote(provider.endpoint)}",
                hint=f"add credentials = {credentials_example(provider.type)} (or token_env): "
                "the names of environment variables holding the secrets; or use endpoint = "
                '"emulator:STATE.json" for the built-in emulator',
            )
        ]
    problems = []
    for key, value in credentials.model_dump(exclude_none=True).items():
        at = (*loc, "credentials", key)
        if key not in SUPPORTED_KEYS[provider.type]:
            problems.append(
                manifest.error(
                    at,
                    f"{_PLATFORMS[provider.type]} signs requests with AK/SK (an access key and "
                    f"a secret key) only: {key} is not supported",
                    hint=f"write credentials = {credentials_example(provider.type)}",
                )
            )
        elif looks_like_secret(value):
            problems.append(
                manifest.error(
                    at,
                    "expected the NAME of an environment variable, got a value that looks like "
                    "a secret itself",
                    hint=secret_hint(key, provider.type),
                )
            )
    return problems


def id_problems(
    model: ModelSpec, index: int, provider_type: str, manifest: FileManifest
) -> list[ManifestError]:
    """Declared ids that the platform could not have made (`../../admin%2Fx`): refused, since an
    id goes into request paths and is what a live object is matched by."""
    rules = ID_RULES[provider_type]
    loc: Loc = ("models", index)
    declared = [(loc, "model", model.id)]
    declared += [
        ((*loc, "versions", number), "version", version.id)
        for number, version in enumerate(model.versions or ())
    ]
    problems = []
    for at, kind, value in declared:
        pattern, rule = rules[kind]
        if value is not None and not pattern.fullmatch(value):
            problems.append(
                manifest.error(
                    (*at, "id"),
                    f"invalid id {_quote(value)}: a {_PLATFORMS[provider_type]} {kind} id is "
                    f"{rule}",
                    hint="id is the platform's id as its console or API shows it; leave it out "
                    "to match by name",
                )
            )
    return problems
