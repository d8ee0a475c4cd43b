"""The manifest's records: what a TOML manifest may declare, as frozen strict pydantic models.

`reconcile schema` derives the JSON Schema from these; the loader validates each file's tables
with them (strictly: "2" is not an integer).

Over 450 lines on purpose: every table a manifest may hold, each field with the description that
`reconcile schema` publishes; read top to bottom they are the manifest format, and split they
would no longer read as one.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from reconcile.model import digest

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
#: Fabric path ids (seed 000): 1 to 36 letters, digits and '-'.
FABRIC_ID_PATTERN = r"^[A-Za-z0-9-]{1,36}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
#: `local`, a folder, or s3://BUCKET[/PREFIX] (the state store checks the rest when opened).
STATE_URL_PATTERN = r"^(local|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?|[^:\s][^:]*)$"

#: The units of a duration ("45s", "90m", "24h", "30d", "2w"), in seconds.
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_PATTERN = r"^[0-9]{1,9}[smhdw]$"
_UNITS_TEXT = "s (seconds), m (minutes), h (hours), d (days), w (weeks)"


def parse_duration(text: str) -> timedelta:
    """`"24h"` -> 24 hours: a whole number and one unit of `DURATION_UNITS`, nothing else."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(
            f'invalid duration {text!r}: write a whole number and a unit, as "45s", "90m", '
            f'"24h", "30d" or "2w"; the units are {_UNITS_TEXT}'
        )
    return timedelta(seconds=int(text[:-1]) * DURATION_UNITS[text[-1]])


def _check_duration(value: Any) -> Any:
    """A duration must be a string with its unit: a bare number (hours? days?) is refused."""
    if not isinstance(value, str):
        raise ValueError(
            f'a duration needs a unit: write it as a string such as "24h" or "30d" (got '
            f"{value!r}); the units are {_UNITS_TEXT}"
        )
    parse_duration(value)
    return value


#: A duration in a manifest: "45s", "90m", "24h", "30d", "2w".
Duration = Annotated[str, Field(pattern=DURATION_PATTERN), BeforeValidator(_check_duration)]
Mode = Literal["enforce", "observe"]


class Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Credentials(Spec):
    """Names of environment variables that hold secrets; never the secrets themselves."""

    token_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)] | None = Field(
        None, description="Environment variable holding a token (Fabric: sent as X-Auth-Token)."
    )
    ak_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)] | None = Field(
        None, description="Environment variable holding the access key (AK); give sk_env too."
    )
    sk_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)] | None = Field(
        None, description="Environment variable holding the secret key (SK); give ak_env too."
    )
    security_token_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)] | None = Field(
        None, description="Environment variable holding the security token of temporary keys."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Credentials:
        has_token = self.token_env is not None
        has_keys = self.ak_env is not None or self.sk_env is not None
        if has_token and has_keys:
            raise ValueError("give either token_env or ak_env + sk_env, not both")
        if has_keys and (self.ak_env is None or self.sk_env is None):
            raise ValueError("ak_env and sk_env go together: give both")
        if not has_token and not has_keys:
            raise ValueError("give token_env, or ak_env and sk_env")
        return self


class PolicyOverrides(Spec):
    """A `[providers.X.policy]` table: each key given replaces the global one for that provider."""

    protect: tuple[str, ...] | None = Field(
        None, description="Replaces the global [policy] protect for this provider."
    )
    ignore: tuple[str, ...] | None = Field(
        None, description="Replaces the global [policy] ignore for this provider."
    )
    keep_latest: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Replaces the global [policy] keep_latest for this provider."
    )
    max_deletes: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Replaces the global [policy] max_deletes for this provider."
    )
    confirm_name_above: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Replaces the global [policy] confirm_name_above for this provider."
    )
    retry_attempts: Annotated[int, Field(ge=1, le=20)] | None = Field(
        None, description="Replaces the global [policy] retry_attempts for this provider."
    )
    request_timeout: Annotated[float, Field(gt=0, le=600)] | None = Field(
        None, description="Replaces the global [policy] request_timeout for this provider."
    )

    min_age: Duration | None = Field(
        None, description="Replaces the global [policy] min_age for this provider."
    )
    keep_within: Duration | None = Field(
        None, description="Replaces the global [policy] keep_within for this provider."
    )
    keep_before_in_use: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Replaces the global [policy] keep_before_in_use for this provider."
    )
    max_delete_percent: Annotated[float, Field(gt=0, le=100)] | None = Field(
        None, description="Replaces the global [policy] max_delete_percent for this provider."
    )
    mode: Mode | None = Field(
        None,
        description='"observe": this provider is planned and reported, never deleted from '
        "(apply refuses its deletes).",
    )
    grace: Duration | None = Field(
        None, description="Replaces the global [policy] grace for this provider."
    )


class Policy(Spec):
    #: Globs on model names or "model/version": never deleted, whatever else says.
    protect: tuple[str, ...] = Field(
        (),
        description='Globs on model names or "model/version": never deleted, whatever else says.',
    )
    #: Globs on model names or "model/version": not managed at all (never deleted, no drift).
    ignore: tuple[str, ...] = Field(
        (),
        description='Globs on model names or "model/version": not managed at all (never '
        "deleted, never reported as drift).",
    )
    #: Undeclared versions of a managed model: the N newest stay anyway.
    keep_latest: Annotated[int, Field(ge=0)] = Field(
        0, description="Undeclared versions of a declared model: the N newest are kept anyway."
    )
    #: Apply refuses a plan that deletes more than this (override: --max-deletes).
    max_deletes: Annotated[int, Field(ge=0)] = Field(
        25,
        description="Apply refuses a plan that deletes more than this per provider "
        "(override: --max-deletes).",
    )
    #: Above this many deletes, interactive apply asks for the workspace name instead of "yes".
    confirm_name_above: Annotated[int, Field(ge=0)] = Field(
        10,
        description="Above this many deletes, interactive apply asks for the workspace name "
        'instead of "yes".',
    )
    #: Tries per request on timeouts, 408, 429 and 5xx (override: --attempts).
    retry_attempts: Annotated[int, Field(ge=1, le=20)] = Field(
        4, description="Tries per request on timeouts, 408, 429 and 5xx (override: --attempts)."
    )
    #: Seconds one attempt may take (override: --timeout).
    request_timeout: Annotated[float, Field(gt=0, le=600)] = Field(
        30.0, description="Seconds one attempt may take (override: --timeout)."
    )

    #: Never delete an object created less than this long ago (unknown creation time: kept).
    min_age: Duration | None = Field(
        None,
        description='Never delete an object created less than this long ago ("24h"; units s, '
        "m, h, d, w); an object with no creation time is kept too.",
    )
    #: Undeclared versions of a declared model created within this window are kept.
    keep_within: Duration | None = Field(
        None,
        description='Undeclared versions of a declared model created within this window ("30d") '
        "are kept; with keep_latest, a version kept by either stays.",
    )
    #: For each version an inference service uses, the N versions created just before it stay.
    keep_before_in_use: Annotated[int, Field(ge=0)] = Field(
        0,
        description="For every version an inference service uses, the N versions of its model "
        "created just before it are kept (rollback targets).",
    )
    #: Apply refuses a provider's plan that deletes more than this share of its live objects.
    max_delete_percent: Annotated[float, Field(gt=0, le=100)] | None = Field(
        None,
        description="Apply refuses when a provider's plan deletes more than this percentage of "
        "its live objects in scope (counted as max_deletes counts).",
    )
    #: "observe": planned and reported, never deleted.
    mode: Mode = Field(
        "enforce",
        description='"enforce": apply deletes what the plan says; "observe": planned and '
        "reported, never deleted (apply refuses the provider's deletes).",
    )
    #: An object is deleted only once it has been deletable this long, in consecutive plans.
    grace: Duration | None = Field(
        None,
        description="An object is deleted only after it has been seen deletable for this long "
        '("7d") in consecutive plans; until then the plan shows it as pending.',
    )

    def merged(self, overrides: PolicyOverrides | None) -> Policy:
        if overrides is None:
            return self
        given = {key: value for key, value in overrides.model_dump().items() if value is not None}
        return self.model_copy(update=given)


class ProviderBase(Spec):
    #: "declared": only declared models are managed; "workspace": the manifest is the whole truth.
    scope: Literal["declared", "workspace"] = Field(
        "declared",
        description='"declared": only declared models are managed; "workspace": the manifests '
        "are the whole truth (anything undeclared is deleted).",
    )
    #: Let a "workspace" scope with no declared model delete everything in it.
    allow_empty: bool = Field(
        False,
        description='Let a "workspace" scope with no declared model delete everything in it.',
    )
    policy: PolicyOverrides | None = Field(
        None, description="Policy keys that replace the global [policy] ones for this provider."
    )


class FabricProvider(ProviderBase):
    type: Literal["fabric"] = Field(description="Huawei Cloud DataArts Fabric.")
    #: https URL of the Fabric API, or "emulator:STATE.json" for the built-in emulator.
    endpoint: str = Field(
        description='https URL of the Fabric API, or "emulator:STATE.json" for the built-in '
        "emulator (relative to the manifest)."
    )
    #: Host of the inference services (fabric-ep); defaults to `endpoint`.
    services_endpoint: str | None = Field(
        None, description="URL of the inference services API (fabric-ep); default: endpoint."
    )
    workspace_id: Annotated[str, Field(pattern=FABRIC_ID_PATTERN)] = Field(
        description="The DataArts Fabric workspace id."
    )
    project_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")] | None = Field(
        None, description="The project id, for AK/SK signing."
    )
    #: Required for real endpoints; the emulator uses its fixed demo credentials.
    credentials: Credentials | None = Field(
        None,
        description="Names of the environment variables holding the secrets; required for real "
        "endpoints, not for emulator: ones.",
    )


class QianfanProvider(ProviderBase):
    type: Literal["qianfan"] = Field(description="Baidu AI Cloud Qianfan.")
    endpoint: str = Field(
        "https://qianfan.baidubce.com",
        description='https URL of the Qianfan API, or "emulator:STATE.json" for the built-in '
        "emulator.",
    )
    credentials: Credentials | None = Field(
        None,
        description="Names of the environment variables holding the secrets; required for real "
        "endpoints, not for emulator: ones.",
    )
    #: How whole models are deleted: the V1 batch call (fewest calls) or V2 DeleteModelSet.
    model_delete: Literal["v1_batch", "v2"] = Field(
        "v1_batch",
        description="How whole models are deleted: the V1 batch call (fewest calls) or V2 "
        "DeleteModelSet.",
    )


ProviderConfig = Annotated[FabricProvider | QianfanProvider, Field(discriminator="type")]


class VersionSpec(Spec):
    name: Annotated[str, Field(min_length=1, max_length=128)] = Field(
        description="The version's name; live versions are matched by it (or by id)."
    )
    id: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="The platform's version id: match this one live version by id."
    )
    description: str | None = Field(
        None, description="Compared with the live one: drift when it differs."
    )
    base_model_type: str | None = Field(
        None, description="Compared with the live one (Fabric): drift when it differs."
    )
    model_path: str | None = Field(
        None, description="Compared with the live one (Fabric): drift when it differs."
    )
    protect: bool = Field(False, description="true: never deleted.")

    def declared_attributes(self) -> dict[str, str]:
        return {
            key: value
            for key in ("description", "base_model_type", "model_path")
            if (value := getattr(self, key)) is not None
        }


class ModelSpec(Spec):
    provider: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(
        description="The NAME of a [providers.NAME] table."
    )
    name: Annotated[str, Field(min_length=1, max_length=128)] = Field(
        description="The model's name; live models are matched by it (or by id)."
    )
    id: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="The platform's model id: match this one live model by id."
    )
    description: str | None = Field(
        None, description="Compared with the live one: drift when it differs."
    )
    #: None when the key is left out: the model is managed, its versions are not.
    versions: tuple[VersionSpec, ...] | None = Field(
        None,
        description='The versions to keep: names (["v7", "v8"]) or tables. Left out: the model '
        "is managed, its versions are not.",
    )
    #: Declared removal: delete this model (in either scope).
    absent: bool = Field(
        False, description="true: delete this model (a declared removal, in either scope)."
    )
    protect: bool = Field(False, description="true: never deleted.")
    #: With a provider template: the workspaces this declaration is for (None: all of them).
    workspaces: tuple[Annotated[str, Field(pattern=FABRIC_ID_PATTERN)], ...] | None = Field(
        None,
        description="For a provider with workspaces = [...]: declare the model in these "
        "workspaces only (left out: in every one).",
    )

    @field_validator("versions", mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        """`versions = ["v7", "v8"]` is short for a table per name."""
        # A tuple too: the loader validates strictly, with TOML arrays turned into tuples.
        if isinstance(value, list | tuple):
            return tuple({"name": item} if isinstance(item, str) else item for item in value)
        return value

    @model_validator(mode="after")
    def _absent_alone(self) -> ModelSpec:
        if self.absent and self.versions:
            raise ValueError("a model declared absent = true cannot also declare versions")
        if self.absent and self.protect:
            raise ValueError("a model cannot be both absent = true and protect = true")
        return self

    def declared_attributes(self) -> dict[str, str]:
        return {} if self.description is None else {"description": self.description}


class StateTable(Spec):
    """The `[state]` table: where the lock, the journal and saved plans live (a team's store)."""

    url: Annotated[str, Field(pattern=STATE_URL_PATTERN)] = Field(
        "local",
        description='"local" (.reconcile/ beside the manifests), a folder, or s3://BUCKET/PREFIX '
        "on any store that speaks the S3 API (AWS S3, Huawei OBS, Baidu BOS).",
    )
    endpoint: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = Field(
        None,
        description="The object store's endpoint, e.g. https://obs.cn-north-4.myhuaweicloud.com; "
        "AWS's own when omitted.",
    )
    region: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")] | None = Field(
        None, description="The region requests are signed for [default: us-east-1]."
    )
    ak_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)] | None = Field(
        None,
        description="Environment variable holding the store's access key "
        "[default: AWS_ACCESS_KEY_ID]; give sk_env too.",
    )
    sk_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)] | None = Field(
        None,
        description="Environment variable holding the store's secret key "
        "[default: AWS_SECRET_ACCESS_KEY]; give ak_env too.",
    )
    security_token_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)] | None = Field(
        None, description="Environment variable holding the session token of temporary keys."
    )
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto", description="Bucket in the path or in the host name (auto: the client picks)."
    )
    lease_seconds: Annotated[float, Field(gt=0, le=86400)] = Field(
        120.0,
        description="How long a lock outlives its holder's last renewal before it is stale.",
    )

    @model_validator(mode="after")
    def _keys_together(self) -> StateTable:
        if (self.ak_env is None) != (self.sk_env is None):
            raise ValueError("ak_env and sk_env go together: give both, or neither")
        return self


class Location(Spec):
    """Where something is declared: `file` as the user spelt the manifest path (to open it)."""

    file: str
    line: int

    def __str__(self) -> str:
        """`NAME.toml:LINE`: the file's name only, as plans show it. A manifest path stands for one
        file or a folder's files, so the name says which within it; and a plan's text (and so its
        digest) must not depend on how the path was spelt (`manifests/` or an absolute path)."""
        return f"{Path(self.file).name}:{self.line}"


class Manifest(Spec):
    providers: dict[str, ProviderConfig]
    policy: Policy = Policy()
    models: tuple[ModelSpec, ...] = ()
    #: Where the state lives; None: no [state] table (the default store, or --state).
    state: StateTable | None = None
    #: Where things were declared, for messages: "providers.NAME" and "models.PROVIDER/NAME".
    origins: dict[str, Location] = {}
    #: The file or folder the manifest was loaded from.
    root: Path = Path()

    def policy_for(self, provider: str) -> Policy:
        return self.policy.merged(self.providers[provider].policy)

    def models_for(self, provider: str) -> tuple[ModelSpec, ...]:
        """The models declared for one provider, in manifest order."""
        return tuple(model for model in self.models if model.provider == provider)

    def digest(self) -> str:
        """Digest of what the manifest means (comments and layout do not count)."""
        return digest(self.model_dump(mode="json", include={"providers", "policy", "models"}))


def is_glob_match(patterns: tuple[str, ...], *names: str) -> str | None:
    """The first pattern that matches any of `names` (fnmatch-style, case-sensitive), or None."""
    if not patterns:  # the common case, asked for every live object
        return None
    for pattern in patterns:
        regex = _glob_regex(pattern)
        if any(regex.match(name) for name in names):
            return pattern
    return None


_GLOB_CACHE: dict[str, re.Pattern[str]] = {}


def _glob_regex(pattern: str) -> re.Pattern[str]:
    regex = _GLOB_CACHE.get(pattern)
    if regex is None:
        regex = _GLOB_CACHE[pattern] = re.compile(fnmatch.translate(pattern))
    return regex
