"""Huawei Cloud DataArts Fabric, as the emulator speaks it (API.md section 1, seeds 000 and 003).

One app serves both hosts: ``fabric.{region}`` (models, versions, base models) and
``fabric-ep.{region}`` (service instances). Handlers read and change ``Host.state["fabric"]``
directly on every request (nothing derived is cached), so tests may edit the state in between.

Long (~830 lines) on purpose: one platform's whole contract (its constants, state checks,
views and handlers) in one file, as API.md gives it one section; what both platforms share
is in ``common.py`` and ``host.py``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from reconcile.emulator import signatures
from reconcile.emulator.common import (
    ALL_METHODS,
    Json,
    check_time,
    check_unique,
    newest,
    newest_first,
    require,
    section,
    time_key,
)
from reconcile.emulator.host import Host, query_of
from reconcile.emulator.index import ListIndex, SortMemo
from reconcile.emulator.responses import JSONResponse

# --------------------------------------------------------------------------------------------
# Platform constants: every code, message and limit the emulator answers with, in one place.
# --------------------------------------------------------------------------------------------

API_PREFIX = "/v1/"

ERROR_TYPE_MISMATCH: Json = {
    "error_code": "common.01000001",
    "error_msg": (
        "failed to read http request, please check your input, code: 400, "
        "reason: Type mismatch., cause: TypeMismatchException"
    ),
}
# Out-of-range and bad-enum parameters: same code, a reason naming the parameter (inferred).
BAD_REQUEST_CODE = "common.01000001"
BAD_REQUEST_MSG = (
    "failed to read http request, please check your input, code: 400, reason: {reason}"
)
ERROR_UNAUTHORIZED: Json = {
    "error_code": "APIG.1002",
    "error_msg": "Incorrect token or token resolution failed",
}
# Seed 000's 403 example; note error_code is a number here, unlike every other body.
ERROR_FORBIDDEN: Json = {
    "error": {
        "code": "403",
        "message": "X-Auth-Token is invalid in the request",
        "title": "Forbidden",
    },
    "error_code": 403,
    "error_msg": "X-Auth-Token is invalid in the request",
    "title": "Forbidden",
}
ERROR_NOT_FOUND: Json = {
    "error_code": "common.01000001",
    "error_msg": "response status exception, code: 404",
}
ERROR_TIMEOUT: Json = {"error_code": "common.00000408", "error_msg": "timeout exception occurred"}
ERROR_INTERNAL: Json = {"error_code": "common.00000500", "error_msg": "internal error"}
ERROR_THROTTLED: Json = {
    "error_code": "APIGW.0308",
    "error_msg": (
        "The throttling threshold has been reached: "
        "policy user over ratelimit,limit:100,time:1 second"
    ),
}
THROTTLED_RETRY_AFTER = "1"
# The API gateway's answers when the service behind it fails (inferred from APIG's error-code
# table: APIG.0202 backend unavailable, APIG.0203 backend timeout; 503 as unavailable).
ERROR_BAD_GATEWAY: Json = {"error_code": "APIG.0202", "error_msg": "Backend unavailable."}
ERROR_UNAVAILABLE: Json = {"error_code": "APIG.0202", "error_msg": "Backend unavailable."}
ERROR_GATEWAY_TIMEOUT: Json = {"error_code": "APIG.0203", "error_msg": "Backend timeout."}

# The body of an injected fault with each status (faults.STATUSES; 429 is ERROR_THROTTLED, with
# its Retry-After). 400 is seed 000's example.
FAULT_BODIES: dict[int, Json] = {
    400: ERROR_TYPE_MISMATCH,
    403: ERROR_FORBIDDEN,
    404: ERROR_NOT_FOUND,
    408: ERROR_TIMEOUT,
    429: ERROR_THROTTLED,
    500: ERROR_INTERNAL,
    502: ERROR_BAD_GATEWAY,
    503: ERROR_UNAVAILABLE,
    504: ERROR_GATEWAY_TIMEOUT,
}

# AK/SK (SDK-HMAC-SHA256) refusals: the API gateway's 401 with APIGW.0301. The unknown-AK wording
# is Huawei's published one; the reasons after "verify aksk signature fail, " are inferred.
AKSK_CODE = "APIGW.0301"
AKSK_UNKNOWN_AK_MSG = (
    "Incorrect IAM authentication information: Get secretKey failed,ak:{ak},err:ak not exist"
)
AKSK_FAIL_MSG = "Incorrect IAM authentication information: verify aksk signature fail, {reason}"
AKSK_MALFORMED = "malformed Authorization header"
AKSK_MUST_SIGN = "signed headers must include host and x-sdk-date"
AKSK_HEADER_MISSING = "signed header {name} is not in the request"
AKSK_BAD_DATE = "X-Sdk-Date is missing or not in the form YYYYMMDDTHHMMSSZ"
AKSK_STALE_DATE = "X-Sdk-Date is more than 15 minutes away from the server time"
AKSK_BODY_HASH = "the body does not match X-Sdk-Content-Sha256"
AKSK_SECURITY_TOKEN = "X-Security-Token is missing, not signed or not valid for this AK"
AKSK_MISMATCH = "signature mismatch"
AKSK_MAX_SKEW_SECONDS = 15 * 60
AKSK_HEADER_RE = re.compile(
    r"SDK-HMAC-SHA256\s+Access=([^\s,]+),\s*SignedHeaders=([^\s,]+),\s*Signature=([0-9A-Fa-f]+)"
)
AKSK_REQUIRED_SIGNED = ("host", "x-sdk-date")
SECURITY_TOKEN_HEADER = "x-security-token"
# The API gateway's answer for a path or method it has no API for (inferred, APIG's usual body).
ERROR_NO_SUCH_API: Json = {
    "error_code": "APIGW.0101",
    "error_msg": "The API does not exist or has not been published in the environment",
}

# Deleting what an inference service uses (inferred: API.md only fixes status 400 and the family).
IN_USE_CODE = "dataartsfabric.11000012"
MODEL_IN_USE_MSG = "model {model_id} has versions in use by service instance(s): {services}"
MODEL_IN_USE_SOLUTION = (
    "Delete the service instance(s) {services} that use this model first, "
    "then delete the model again."
)
VERSION_IN_USE_MSG = (
    "version {version_id} of model {model_id} is in use by service instance(s): {services}"
)
VERSION_IN_USE_SOLUTION = (
    "Delete the service instance(s) {services} that use this version first, "
    "then delete the version again."
)
# Deleting a PUBLIC (preset) model or one of its versions (inferred).
PUBLIC_CODE = "dataartsfabric.11000003"
PUBLIC_MODEL_MSG = "public model {model_id} cannot be deleted"
PUBLIC_VERSION_MSG = "version {version_id} of public model {model_id} cannot be deleted"

# Seed 000: workspace and model ids. Seed 003: version ids.
ID_RE = re.compile(r"[A-Za-z0-9-]{1,36}")
VERSION_ID_RE = re.compile(r"[A-Za-z0-9-]{32,36}")
ID_REASON = "{name} must be 1 to 36 letters, digits or hyphens"
VERSION_ID_REASON = "{name} must be 32 to 36 letters, digits or hyphens"
MAX_TOKEN_LENGTH = 65534  # seed 000: X-Auth-Token is at most this long

OFFSET_DEFAULT = 0
LIMIT_DEFAULT = 10
LIMIT_MIN, LIMIT_MAX = 1, 100
INT32_MAX = 2**31 - 1  # the platform is Java: a larger number is a type mismatch, not a range error

MODEL_TYPES = ("LLM_MODEL",)
VISIBILITY_FILTERS = ("PRIVATE", "PUBLIC", "ALL")
SORT_FIELDS = {"CREATE_TIME": "create_time", "UPDATE_TIME": "update_time", "NAME": "name"}
SORT_BY_DEFAULT = "CREATE_TIME"
ORDERS = ("ASC", "DESC")
ORDER_DEFAULT = "DESC"
SERVICE_STATUSES = (
    "PENDING",
    "CREATING",
    "RUNNING",
    "UPDATING",
    "SUCCEEDED",
    "FAILED",
    "STOPPING",
    "STOPPED",
    "DELETING",
    "DELETED",
)
SERVICE_GONE = "DELETED"  # the one status whose service no longer holds its version

# Defaults for fields a state file leaves out.
DEFAULT_TIME = "2024-01-01T00:00:00.000Z"
DEFAULT_USER: Json = {
    "domain_name": "emulator",
    "domain_id": "0" * 32,
    "user_name": "emulator",
    "user_id": "0" * 32,
}
DEFAULT_BASE_MODEL: Json = {"max_tokens": 4096, "num_of_mu": 1}
# Ids left out of a state file are derived from where the object sits, so reloading the same
# file gives the same ids.
_ID_NAMESPACE = uuid.UUID("5d0f3c52-7c1e-4a8e-9a43-0c6f2b7e9a10")

# --------------------------------------------------------------------------------------------


class FabricError(Exception):
    """A refusal in the platform's words; the endpoint wrapper turns it into the response."""

    def __init__(self, status: int, body: Json) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def _bad_request(reason: str) -> FabricError:
    return FabricError(
        400, {"error_code": BAD_REQUEST_CODE, "error_msg": BAD_REQUEST_MSG.format(reason=reason)}
    )


def _not_found() -> FabricError:
    return FabricError(404, dict(ERROR_NOT_FOUND))


def _aksk_refusal(reason: str) -> FabricError:
    return FabricError(
        401, {"error_code": AKSK_CODE, "error_msg": AKSK_FAIL_MSG.format(reason=reason)}
    )


def _signed_body_hashes(body: bytes, headers: dict[str, str]) -> list[str]:
    """The body hashes a valid SDK-HMAC-SHA256 signature may have signed, or the refusal of a
    declared X-Sdk-Content-Sha256 that the body does not match."""
    body_hash = signatures.sha256_hex(body)
    declared_hash = headers.get(signatures.SDK_CONTENT_SHA256_HEADER)
    if declared_hash is None:
        return [body_hash]
    # The SDK signs this header's value instead of hashing the body.
    declared_hash = declared_hash.strip()
    if declared_hash not in (signatures.SDK_UNSIGNED_PAYLOAD, body_hash):
        raise _aksk_refusal(AKSK_BODY_HASH)
    # Huawei's signers differ on an empty body: huaweicloudsdkcore (Python) signs the empty
    # body's hash whatever this header says (and sends the header with every non-JSON content
    # type), the API gateway's own signers (APIGW Go SDK) sign the header's value. Both are
    # accepted: an empty body has nothing to tamper with.
    return [declared_hash] if body else [declared_hash, body_hash]


# --------------------------------------------------------------------------------------------
# Query parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Page:
    offset: int
    limit: int

    def take(self, items: list[Json]) -> list[Json]:
        return items[self.offset : self.offset + self.limit]


def _int_param(request: Request, name: str, default: int) -> int:
    raw = query_of(request).get(name, "")
    if raw == "":  # an empty value counts as absent, as the platform's framework treats it
        return default
    if not re.fullmatch(r"[+-]?[0-9]+", raw) or abs(int(raw)) > INT32_MAX:
        raise FabricError(400, dict(ERROR_TYPE_MISMATCH))
    return int(raw)


def _page(request: Request) -> _Page:
    offset = _int_param(request, "offset", OFFSET_DEFAULT)
    limit = _int_param(request, "limit", LIMIT_DEFAULT)
    if offset < 0:
        raise _bad_request("offset must be greater than or equal to 0")
    if not LIMIT_MIN <= limit <= LIMIT_MAX:
        raise _bad_request(f"limit must be between {LIMIT_MIN} and {LIMIT_MAX}")
    return _Page(offset, limit)


def _enum_param(request: Request, name: str, allowed: Iterable[str], default: str = "") -> str:
    value = query_of(request).get(name, "")
    if value == "":
        return default
    allowed = tuple(allowed)
    if value not in allowed:
        raise _bad_request(f"{name} must be one of {', '.join(allowed)}")
    return value


def _text_param(request: Request, name: str) -> str:
    return query_of(request).get(name, "")


_PATH_IDS = {
    "workspace_id": (ID_RE, ID_REASON),
    "model_id": (ID_RE, ID_REASON),
    "version_id": (VERSION_ID_RE, VERSION_ID_REASON),
}


def _check_path_ids(request: Request) -> None:
    """Refuse a malformed id in the path before anything is looked up."""
    for name, (pattern, reason) in _PATH_IDS.items():
        value = request.path_params.get(name)
        if value is not None and not pattern.fullmatch(value):
            raise _bad_request(reason.format(name=name))


def _fuzzy(needle: str, haystack: Any) -> bool:
    return needle.casefold() in str(haystack or "").casefold()


def _sorted(items: Iterable[Json], sort_by: str, order_by: str) -> list[Json]:
    """Items ordered by one field, ties broken by id, so that every page is stable."""
    field = SORT_FIELDS[sort_by]

    def key(item: Json) -> tuple[Any, str]:
        value = item.get(field)
        primary = str(value or "") if field == "name" else time_key(value)
        return primary, str(item.get("id", ""))

    return sorted(items, key=key, reverse=order_by == "DESC")


def _newest_first(versions: Iterable[Json]) -> list[Json]:
    return newest_first(versions, "create_time", "id")


# --------------------------------------------------------------------------------------------
# State: defaults and checks on load
# --------------------------------------------------------------------------------------------


def _derived_id(*parts: object) -> str:
    name = "/".join(str(p) for p in parts)
    try:
        name.encode()
    except UnicodeEncodeError:  # uuid5 hashes UTF-8, which a lone surrogate ("\\ud800") lacks
        name = name.encode("utf-8", "surrogatepass").decode("latin-1")
    return str(uuid.uuid5(_ID_NAMESPACE, name))


def _user(value: Any, where: str) -> Json:
    require(value is None or isinstance(value, dict), where, "must be an object")
    return {**DEFAULT_USER, **(value or {})}


def normalize_fabric(section: Json) -> None:
    """Check the ``fabric`` section of a state and fill in defaults, in place.

    Raises ValueError naming the offending place. Names may repeat (the reconciler must report
    that as ambiguous); ids may not.

    Credentials: ``tokens`` (a list of accepted X-Auth-Token values), ``access_keys`` (``{AK:
    SK}`` for SDK-HMAC-SHA256) and ``security_tokens`` (``{AK: token}``: that AK is a temporary
    one, valid only with this X-Security-Token, signed). All optional.
    """
    require(isinstance(section, dict), "fabric", "must be an object")
    tokens = section.setdefault("tokens", [])
    require(
        isinstance(tokens, list) and all(isinstance(t, str) for t in tokens),
        "fabric.tokens",
        "must be a list of strings",
    )
    for key in ("access_keys", "security_tokens"):
        mapping = section.setdefault(key, {})
        require(
            isinstance(mapping, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()),
            f"fabric.{key}",
            "must be an object of strings",
        )
    for ak in section["security_tokens"]:
        require(ak in section["access_keys"], "fabric.security_tokens", f"unknown AK {ak!r}")
    base_models = section.setdefault("base_models", [])
    require(isinstance(base_models, list), "fabric.base_models", "must be a list")
    for i, base in enumerate(base_models):
        where = f"fabric.base_models[{i}]"
        require(
            isinstance(base, dict) and "base_model_type" in base, where, "needs base_model_type"
        )
        for key, value in DEFAULT_BASE_MODEL.items():
            base.setdefault(key, value)
    workspaces = section.setdefault("workspaces", {})
    require(isinstance(workspaces, dict), "fabric.workspaces", "must be an object")
    for ws_id, workspace in workspaces.items():
        where = f"fabric.workspaces.{ws_id}"
        require(bool(ID_RE.fullmatch(ws_id)), where, ID_REASON.format(name="workspace id"))
        require(isinstance(workspace, dict), where, "must be an object")
        _normalize_workspace(ws_id, workspace, where)


def _normalize_workspace(ws_id: str, workspace: Json, where: str) -> None:
    models = workspace.setdefault("models", [])
    require(isinstance(models, list), f"{where}.models", "must be a list")
    for i, model in enumerate(models):
        _normalize_model(ws_id, i, model, f"{where}.models[{i}]")
    check_unique((m["id"] for m in models), f"{where}.models", "id")
    services = workspace.setdefault("service_instances", [])
    require(isinstance(services, list), f"{where}.service_instances", "must be a list")
    for i, service in enumerate(services):
        _normalize_service(ws_id, i, service, f"{where}.service_instances[{i}]")
    check_unique((s["id"] for s in services), f"{where}.service_instances", "id")


def _normalize_model(ws_id: str, index: int, model: Any, where: str) -> None:
    require(isinstance(model, dict) and isinstance(model.get("name"), str), where, "needs a name")
    model.setdefault("id", _derived_id(ws_id, "model", index, model["name"]))
    require(bool(ID_RE.fullmatch(str(model["id"]))), f"{where}.id", ID_REASON.format(name="id"))
    model.setdefault("description", "")
    model.setdefault("type", MODEL_TYPES[0])
    model.setdefault("visibility", "PRIVATE")
    require(
        model["visibility"] in ("PRIVATE", "PUBLIC"), f"{where}.visibility", "PRIVATE or PUBLIC"
    )
    model.setdefault("create_time", DEFAULT_TIME)
    model.setdefault("update_time", model["create_time"])
    check_time(model, "create_time", where)
    check_time(model, "update_time", where)
    model["create_user"] = _user(model.get("create_user"), f"{where}.create_user")
    model["update_user"] = _user(
        model.get("update_user", model["create_user"]), f"{where}.update_user"
    )
    versions = model.setdefault("versions", [])
    require(isinstance(versions, list), f"{where}.versions", "must be a list")
    for i, version in enumerate(versions):
        _normalize_version(model, i, version, f"{where}.versions[{i}]")
    check_unique((v["id"] for v in versions), f"{where}.versions", "id")


def _normalize_version(model: Json, index: int, version: Any, where: str) -> None:
    require(
        isinstance(version, dict) and isinstance(version.get("name"), str), where, "needs a name"
    )
    version.setdefault("id", _derived_id(model["id"], "version", index, version["name"]))
    require(
        bool(VERSION_ID_RE.fullmatch(str(version["id"]))),
        f"{where}.id",
        VERSION_ID_REASON.format(name="id"),
    )
    version.setdefault("description", "")
    version.setdefault("cap_white_list", [])
    config = version.setdefault("config", {})
    require(isinstance(config, dict), f"{where}.config", "must be an object")
    llm = config.setdefault("llm_model_config", {})
    require(isinstance(llm, dict), f"{where}.config.llm_model_config", "must be an object")
    llm.setdefault("base_model_type", "")
    llm.setdefault("model_path", "")
    version.setdefault("create_time", model["create_time"])
    check_time(version, "create_time", where)
    version["create_user"] = _user(
        version.get("create_user", model["create_user"]), f"{where}.create_user"
    )


def _normalize_service(ws_id: str, index: int, service: Any, where: str) -> None:
    require(isinstance(service, dict), where, "must be an object")
    source = service.get("source")
    require(
        isinstance(source, dict) and isinstance(source.get("id"), str),
        f"{where}.source",
        "needs the id of the model it serves",
    )
    source.setdefault("version_id", "")
    service.setdefault("id", _derived_id(ws_id, "service", index))
    require(bool(ID_RE.fullmatch(str(service["id"]))), f"{where}.id", ID_REASON.format(name="id"))
    service.setdefault("name", f"service-{service['id'][:8]}")
    service.setdefault("description", "")
    service.setdefault("endpoint_id", _derived_id(ws_id, "endpoint", service["id"]))
    service.setdefault("type", MODEL_TYPES[0])
    service.setdefault("visibility", "PRIVATE")
    service.setdefault("status", "RUNNING")
    require(service["status"] in SERVICE_STATUSES, f"{where}.status", "unknown status")
    service.setdefault("create_time", DEFAULT_TIME)
    service.setdefault("update_time", service["create_time"])
    check_time(service, "create_time", where)
    check_time(service, "update_time", where)
    service.setdefault("duration", 0)
    given = service.get("create_user")
    require(given is None or isinstance(given, dict), f"{where}.create_user", "must be an object")
    # ServiceInstanceBriefInfo's user has only these two fields.
    service["create_user"] = {
        "domain_name": DEFAULT_USER["domain_name"],
        "user_name": DEFAULT_USER["user_name"],
        **(given or {}),
    }


# --------------------------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------------------------

Handler = Callable[[Request], Response]


class FabricApi:
    """The Fabric half of the emulator: routes, auth, faults, and the handlers over the state."""

    def __init__(self, host: Host) -> None:
        self.host = host
        # Derived from the state and checked against it on every use (see index.py).
        self._model_index: dict[str, ListIndex] = {}
        self._sorts = SortMemo()

    # -- what the shared plumbing asks of a platform ---------------------------------------

    def owns(self, path: str) -> bool:
        return path.startswith(API_PREFIX)

    def normalize(self, state: Json) -> None:
        # A state without a fabric section stays without one: nothing is added to the file.
        if "fabric" in state:
            normalize_fabric(state["fabric"])

    def routes(self) -> list[BaseRoute]:
        ws = "/v1/workspaces/{workspace_id}"
        model = ws + "/models/{model_id}"
        return [
            Route(ws + "/models", self._endpoint(self.list_models), methods=["GET"]),
            Route(model, self._endpoint(self.delete_model), methods=["DELETE"]),
            Route(model + "/versions", self._endpoint(self.list_versions), methods=["GET"]),
            Route(
                model + "/versions/{version_id}",
                self._endpoint(self.delete_version),
                methods=["DELETE"],
            ),
            Route("/v1/base-models", self._endpoint(self.list_base_models), methods=["GET"]),
            Route(
                ws + "/services/instances",
                self._endpoint(self.list_service_instances),
                methods=["GET"],
            ),
            # Last: any other path or method under /v1/ is one the gateway has no API for. (A
            # known path with another method lands here too, as APIG routes on method and path.)
            Route("/v1/{rest:path}", self._no_such_api, methods=ALL_METHODS),
        ]

    def fault_response(self, status: int, request_id: str) -> Response:
        if status == 429:
            return JSONResponse(
                ERROR_THROTTLED, status_code=429, headers={"Retry-After": THROTTLED_RETRY_AFTER}
            )
        return JSONResponse(FAULT_BODIES[status], status_code=status)

    def internal_error_response(self, request_id: str) -> Response:
        return JSONResponse(ERROR_INTERNAL, status_code=500)

    def changes_state(self, method: str, path: str, query: QueryParams) -> bool:
        return method not in ("GET", "HEAD")

    def inconsistent(self, path: str, query: QueryParams, body: Any, delta: int) -> Any:
        """Every Fabric listing says its ``total``: off by ``delta``, it disagrees with the
        pages (a workspace changing under the listing, or a platform bug)."""
        if not isinstance(body, dict) or type(body.get("total")) is not int:
            return None
        return {**body, "total": body["total"] + delta}

    # -- plumbing --------------------------------------------------------------------------

    def _endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                await self.authenticate(request)
                _check_path_ids(request)
                return handler(request)
            except FabricError as refusal:
                return JSONResponse(refusal.body, status_code=refusal.status)

        return endpoint

    async def _no_such_api(self, request: Request) -> Response:
        return JSONResponse(ERROR_NO_SUCH_API, status_code=404)

    async def authenticate(self, request: Request) -> None:
        """Raise the platform's refusal unless the request is authenticated.

        The one place auth is decided: an X-Auth-Token, else an ``SDK-HMAC-SHA256`` signature
        (async: the signature covers the body).
        """
        token = request.headers.get("x-auth-token")
        authorization = request.headers.get("authorization", "")
        if token is None and authorization.startswith(signatures.SDK_HMAC_ALGORITHM + " "):
            await self._verify_aksk(request, authorization)
            return
        if token is not None and len(token) > MAX_TOKEN_LENGTH:
            raise FabricError(403, dict(ERROR_FORBIDDEN))
        if not token or token not in self._fabric().get("tokens", []):
            raise FabricError(401, dict(ERROR_UNAUTHORIZED))

    async def _verify_aksk(self, request: Request, authorization: str) -> None:
        """Check an SDK-HMAC-SHA256 signature as the API gateway does (API.md section 1)."""
        match = AKSK_HEADER_RE.fullmatch(authorization.strip())
        if match is None:
            raise _aksk_refusal(AKSK_MALFORMED)
        access_key, signed_list, signature = match.groups()
        secret_key = self._fabric().get("access_keys", {}).get(access_key)
        if secret_key is None:
            message = AKSK_UNKNOWN_AK_MSG.format(ak=access_key)
            raise FabricError(401, {"error_code": AKSK_CODE, "error_msg": message})
        signed = sorted({name.lower() for name in signed_list.split(";") if name})
        if not all(name in signed for name in AKSK_REQUIRED_SIGNED):
            raise _aksk_refusal(AKSK_MUST_SIGN)
        headers = {name.lower(): value for name, value in request.headers.items()}
        for name in signed:
            if name not in headers:
                raise _aksk_refusal(AKSK_HEADER_MISSING.format(name=name))
        sdk_date = headers["x-sdk-date"].strip()
        try:
            signed_at = datetime.strptime(sdk_date, signatures.SDK_DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise _aksk_refusal(AKSK_BAD_DATE) from None
        if abs(self.host.clock() - signed_at.timestamp()) > AKSK_MAX_SKEW_SECONDS:
            raise _aksk_refusal(AKSK_STALE_DATE)
        expected_token = self._fabric().get("security_tokens", {}).get(access_key)
        if expected_token is not None and (
            SECURITY_TOKEN_HEADER not in signed
            or headers[SECURITY_TOKEN_HEADER].strip() != expected_token
        ):
            raise _aksk_refusal(AKSK_SECURITY_TOKEN)
        body_hashes = _signed_body_hashes(await request.body(), headers)
        canonical_requests = [
            signatures.sdk_canonical_request(
                request.method,
                request.scope["path"],  # decoded, as the SDK unquotes the path before encoding it
                parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True),
                headers,
                signed,
                body_hash,
            )
            for body_hash in body_hashes
        ]
        expected = [
            signatures.sdk_signature(
                secret_key, signatures.sdk_string_to_sign(sdk_date, canonical_request)
            )
            for canonical_request in canonical_requests
        ]
        if not any(signatures.same_signature(candidate, signature) for candidate in expected):
            raise _aksk_refusal(AKSK_MISMATCH)

    def _fabric(self) -> Json:
        return section(self.host.state, "fabric")

    def _workspace(self, request: Request) -> Json:
        ws_id = request.path_params["workspace_id"]
        workspace: Json | None = self._fabric().get("workspaces", {}).get(ws_id)
        if workspace is None:
            raise _not_found()
        return workspace

    def _model(self, request: Request, workspace: Json) -> Json:
        models, place = self._model_place(request, workspace)
        found: Json = models[place]
        return found

    def _model_place(self, request: Request, workspace: Json) -> tuple[list[Json], int]:
        """The workspace's model list and the place in it of the path's model (the first with
        that id), or the platform's 404."""
        ws_id = request.path_params["workspace_id"]
        models: list[Json] = workspace.get("models", [])
        index = self._model_index.setdefault(ws_id, ListIndex("id"))
        place = index.find(models, request.path_params["model_id"])
        if place is None:
            raise _not_found()
        return models, place

    # -- handlers --------------------------------------------------------------------------

    def list_models(self, request: Request) -> Response:
        page = _page(request)
        name = _text_param(request, "name")
        model_id = _text_param(request, "id")
        model_type = _enum_param(request, "type", MODEL_TYPES)
        visibility = _enum_param(request, "visibility", VISIBILITY_FILTERS, "ALL")
        sort_by = _enum_param(request, "sort_by", SORT_FIELDS, SORT_BY_DEFAULT)
        order_by = _enum_param(request, "order_by", ORDERS, ORDER_DEFAULT)
        workspace = self._workspace(request)

        def matching() -> list[Json]:
            models: list[Json] = workspace.get("models", [])
            if not (name or model_id or model_type or visibility != "ALL"):
                return list(models)
            return [
                model
                for model in models
                if (not name or _fuzzy(name, model.get("name")))
                and (not model_id or model.get("id") == model_id)
                and (not model_type or model.get("type") == model_type)
                and (visibility == "ALL" or model.get("visibility") == visibility)
            ]

        filters = (name, model_id, model_type, visibility)
        ordered, _ = self._sorts.sort(
            ("models", id(workspace), filters, sort_by, order_by),
            matching,
            (SORT_FIELDS[sort_by], "id"),
            lambda items: _sorted(items, sort_by, order_by),
            revision=self.host.revision,
        )
        return JSONResponse(
            {"total": len(ordered), "models": [_model_info(m) for m in page.take(ordered)]}
        )

    def list_versions(self, request: Request) -> Response:
        page = _page(request)
        version_id = _text_param(request, "version_id")
        name = _text_param(request, "name")
        workspace = self._workspace(request)
        model = self._model(request, workspace)
        matching = [
            version
            for version in model.get("versions", [])
            if (not version_id or version.get("id") == version_id)
            and (not name or _fuzzy(name, version.get("name")))
        ]
        ordered = _newest_first(matching)
        return JSONResponse({"total": len(ordered), "versions": page.take(ordered)})

    def delete_model(self, request: Request) -> Response:
        workspace = self._workspace(request)
        models, place = self._model_place(request, workspace)
        model = models[place]
        model_id = model["id"]
        if model.get("visibility") == "PUBLIC":
            raise FabricError(
                403,
                {
                    "error_code": PUBLIC_CODE,
                    "error_msg": PUBLIC_MODEL_MSG.format(model_id=model_id),
                },
            )
        version_ids = {v.get("id") for v in model.get("versions", [])}
        users = _services_using(
            workspace,
            lambda source: source.get("id") == model_id or source.get("version_id") in version_ids,
        )
        if users:
            services = ", ".join(users)
            raise FabricError(
                400,
                {
                    "error_code": IN_USE_CODE,
                    "error_msg": MODEL_IN_USE_MSG.format(model_id=model_id, services=services),
                    "solution_msg": MODEL_IN_USE_SOLUTION.format(services=services),
                },
            )
        index = self._model_index[request.path_params["workspace_id"]]
        workspace["models"] = index.without(models, [place])
        self.host.persist()
        return Response(status_code=200)

    def delete_version(self, request: Request) -> Response:
        workspace = self._workspace(request)
        model = self._model(request, workspace)
        version_id = request.path_params["version_id"]
        versions = model.get("versions", [])
        version = next((v for v in versions if v.get("id") == version_id), None)
        if version is None:
            raise _not_found()
        model_id = model["id"]
        if model.get("visibility") == "PUBLIC":
            message = PUBLIC_VERSION_MSG.format(version_id=version_id, model_id=model_id)
            raise FabricError(403, {"error_code": PUBLIC_CODE, "error_msg": message})
        users = _services_using(workspace, lambda source: source.get("version_id") == version_id)
        if users:
            services = ", ".join(users)
            message = VERSION_IN_USE_MSG.format(
                version_id=version_id, model_id=model_id, services=services
            )
            raise FabricError(
                400,
                {
                    "error_code": IN_USE_CODE,
                    "error_msg": message,
                    "solution_msg": VERSION_IN_USE_SOLUTION.format(services=services),
                },
            )
        model["versions"] = [v for v in versions if v is not version]
        self.host.persist()
        return Response(status_code=202)

    def list_base_models(self, request: Request) -> Response:
        page = _page(request)
        base_models = list(self._fabric().get("base_models", []))
        return JSONResponse({"total": len(base_models), "models": page.take(base_models)})

    def list_service_instances(self, request: Request) -> Response:
        page = _page(request)
        filters = {
            key: _text_param(request, key)
            for key in ("id", "endpoint_id", "source_id", "version_id")
        }
        name = _text_param(request, "name")
        service_type = _enum_param(request, "type", MODEL_TYPES)
        visibility = _enum_param(request, "visibility", VISIBILITY_FILTERS, "ALL")
        sort_by = _enum_param(request, "sort_by", SORT_FIELDS, SORT_BY_DEFAULT)
        order_by = _enum_param(request, "order_by", ORDERS, ORDER_DEFAULT)
        workspace = self._workspace(request)

        def wanted(service: Json) -> bool:
            source = service.get("source") or {}
            actual = {
                "id": service.get("id"),
                "endpoint_id": service.get("endpoint_id"),
                "source_id": source.get("id"),
                "version_id": source.get("version_id"),
            }
            return (
                all(not value or actual[key] == value for key, value in filters.items())
                and (not name or _fuzzy(name, service.get("name")))
                and (not service_type or service.get("type") == service_type)
                and (visibility == "ALL" or service.get("visibility") == visibility)
            )

        matching = [s for s in workspace.get("service_instances", []) if wanted(s)]
        ordered = _sorted(matching, sort_by, order_by)
        return JSONResponse({"total": len(ordered), "service_instances": page.take(ordered)})


def _model_info(model: Json) -> Json:
    """A stored model as ModelInfo: without its versions, with its newest as current_version."""
    info = {key: value for key, value in model.items() if key != "versions"}
    info["current_version"] = newest(model.get("versions", []), "create_time", "id")
    return info


def _services_using(workspace: Json, uses: Callable[[Json], bool]) -> list[str]:
    """Ids of the live (not DELETED) service instances whose source satisfies ``uses``."""
    ids: list[str] = []
    for service in workspace.get("service_instances", []):
        if service.get("status") == SERVICE_GONE:
            continue
        if uses(service.get("source") or {}) and service.get("id") not in ids:
            ids.append(str(service.get("id")))
    return ids
