"""Baidu AI Cloud Qianfan, as the emulator speaks it (API.md section 2, seeds 001 and 002).

Every call is ``POST`` with a JSON body, signed with ``bce-auth-v1``:

- V2, ``{"requestId": ..., "result": ...}``: ``/v2/model?Action=`` ``DescribeCustomModelSets``,
  ``DescribeModelSet``, ``DescribeModel``, ``DeleteModel``, ``DeleteModelSet``;
  ``/v2/service?Action=`` ``DescribeServices``, ``DescribeService``.
- V1, ``{"log_id": ..., "result": ...}``: ``/wenxinworkshop/modelrepo/`` ``model/batchDelete``,
  ``model/user/list``, ``modelDetail``, ``model/version/batchDelete``.

Errors: the gateway (auth, unknown paths and actions, injected faults) and V2 answer an HTTP
4xx/5xx with ``{"requestId", "code", "message"}`` and the headers ``X-Bce-Error-Code`` /
``X-Bce-Error-Message``; V1 answers HTTP 200 with ``{"log_id", "error_code", "error_msg"}``.

State: ``Host.state["qianfan"]``, read and changed on every request (nothing cached).
Records use the V2 wire names; every field not marked required may be left out::

    "qianfan": {
      "access_keys": {"<AK>": "<SK>"},
      "model_sets": [{
        "modelSetId": "am-...",           # V2 id (V1 modelIdStr); derived from the position
        "v1ModelId": 1001,                # V1 int id; next free from 1001
        "modelSetName": "support-bot",    # required
        "modelType": "Text2Text",
        "source": "UserCreate",           # or "System" (a preset: never deletable)
        "labels": [], "description": "", "createUser": "emulator",
        "createTime": "2024-01-01T08:00:00+08:00", "modifyTime": <createTime>,
        "versions": [{                    # V2 calls a version a "model"
          "modelId": "amv-...",           # V2 id (V1 modelVersionIdStr); derived
          "v1VersionId": 50001,           # V1 int id; next free from 50001
          "modelName": "V1",              # required: the version's name (V1 "version")
          "status": "Ready",              # Ready / Creating / Fail
          "model": "",                    # the base model
          "sourceInfo": {"sourceType": "Train"},  # PlatformPreset (a preset) for System sets
          "description": "", "modelApplicationType": "chat",
          "createTime": <set's createTime>, "modifyTime": <createTime>}]}],
      "services": [{
        "serviceId": "svco-...",          # derived
        "name": "service-<n>", "description": "",
        "modelId": "amv-...",             # required: the version it serves
        "modelSetId": <the set holding modelId, else "">,
        "runStatus": "Serving",           # New / Deploying / Serving / Failed / Stopped
        "createTime": ..., "modifyTime": ...}]
    }

Choices the docs do not settle are marked (inferred) where they are made, in the constants below.

Long (~1,100 lines) on purpose: one platform's whole contract (its constants, state checks,
views and handlers) in one file, as API.md gives it one section; what both platforms share
is in ``common.py`` and ``host.py``.
"""

from __future__ import annotations

import hashlib
import json
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
from reconcile.emulator.host import REQUEST_ID_STATE_KEY, Host, query_of
from reconcile.emulator.index import ListIndex, SortMemo
from reconcile.emulator.responses import JSONResponse

# --------------------------------------------------------------------------------------------
# Platform constants: every code, message and limit the emulator answers with, in one place.
# --------------------------------------------------------------------------------------------

V2_PREFIX = "/v2/"
V1_PREFIX = "/wenxinworkshop/"
V1_REPO = "/wenxinworkshop/modelrepo"


@dataclass(frozen=True)
class BceError:
    """A gateway or V2 refusal: HTTP status, ``code`` and ``message`` (a format string)."""

    status: int
    code: str
    message: str


# Baidu Cloud's common error codes, with their published messages.
ACCESS_DENIED = BceError(403, "AccessDenied", "Access denied.")
MALFORMED_JSON = BceError(400, "MalformedJSON", "The JSON you provided was not well-formed.")
INAPPROPRIATE_JSON = BceError(
    400,
    "InappropriateJSON",
    "The JSON you provided was well-formed and valid, but not appropriate for this operation.",
)
INVALID_URI = BceError(400, "InvalidURI", "Could not parse the specified URI.")
INTERNAL_ERROR = BceError(
    500, "InternalError", "We encountered an internal error. Please try again."
)


def _gateway_authn(status: int, code: str, cause: str) -> BceError:
    """A refusal of the gateway's authentication (IAM, in front of V1 and V2 alike): its
    ``message`` and ``X-Bce-Error-Message`` read ``"<code>, cause: <cause>"``."""
    return BceError(status, code, f"{code}, cause: {cause}")


# The gateway's authentication refusals. The two messages the official SDK compares
# X-Bce-Error-Message with (qianfan/resources/requestor/base.py) are exact; their statuses
# (API.md, inferred) and the other three refusals' causes are inferred.
CREDENTIAL_NOT_FOUND = _gateway_authn(401, "NotFound", "Could not find credential.")
SIGNATURE_MISMATCH = _gateway_authn(
    400, "SignatureDoesNotMatch", "Fail to authn user: Signature does not match"
)
REQUEST_EXPIRED = _gateway_authn(
    400, "RequestExpired", "Fail to authn user: Request has expired. Timestamp date is {when}."
)
INVALID_AUTH_HEADER = _gateway_authn(
    400, "InvalidHTTPAuthHeader", "Fail to authn user: The HTTP authorization header is invalid."
)
AUTHORIZATION_MISSING = _gateway_authn(
    403, "AccessDenied", "Fail to authn user: The request has no Authorization header."
)

# (inferred) The rest: all the wording; the codes too, but InvalidMarker's and ModelInUse's.
INVALID_MARKER = BceError(400, "InvalidMarker", "The marker {marker} is not valid.")
NOT_FOUND = BceError(404, "ResourceNotFound", "The resource {id} does not exist.")
MODEL_IN_USE = BceError(400, "ModelInUse", "Model {id} is in use by service(s): {services}.")
REQUEST_TIMEOUT = BceError(408, "RequestTimeout", "The request timed out. Please try again.")
THROTTLED = BceError(
    429, "RequestRateLimitExceeded", "The request rate limit was exceeded. Please try again later."
)
THROTTLED_RETRY_AFTER = "1"
INVALID_HTTP_REQUEST = BceError(
    400, "InvalidHTTPRequest", "There was an error in the body of your HTTP request."
)
# (inferred) The gateway's answers when the service behind it fails, and a 404 naming nothing.
RESOURCE_NOT_FOUND = BceError(404, "ResourceNotFound", "The resource you requested does not exist.")
BAD_GATEWAY = BceError(
    502, "BadGateway", "The gateway received an invalid response. Please try again."
)
SERVICE_UNAVAILABLE = BceError(
    503, "ServiceUnavailable", "Service is temporarily unavailable. Please try again later."
)
GATEWAY_TIMEOUT = BceError(
    504, "GatewayTimeout", "The gateway timed out waiting for the service. Please try again."
)
# The gateway's answer for an injected fault with each status (faults.STATUSES).
FAULTS = {
    400: INVALID_HTTP_REQUEST,
    403: ACCESS_DENIED,
    404: RESOURCE_NOT_FOUND,
    408: REQUEST_TIMEOUT,
    429: THROTTLED,
    500: INTERNAL_ERROR,
    502: BAD_GATEWAY,
    503: SERVICE_UNAVAILABLE,
    504: GATEWAY_TIMEOUT,
}
# The V2 listings' item lists and the id a marker names in each.
MARKER_KEYS = {"customModelSetList": "modelSetId", "serviceList": "serviceId"}
# Requests that change the state (a fault that needs the real answer never touches them).
STATE_CHANGING_ACTIONS = frozenset({"DeleteModel", "DeleteModelSet"})
STATE_CHANGING_V1 = frozenset({"/model/batchDelete", "/model/version/batchDelete"})

# V1 answers HTTP 200 with these bodies. Seed 001 gives the first (used for every malformed
# request, and, inferred, for unknown ids); the other two are inferred.
V1_PARAM_INVALID: Json = {"error_code": 500001, "error_msg": "param invalid"}
V1_IN_USE_CODE = 500002
V1_IN_USE_MSG = "model in use by service(s): {services}"
V1_PRESET_CODE = 500003
V1_PRESET_MSG = "permission denied: preset model(s) cannot be deleted: {ids}"

# Auth: how far ahead of the emulator's clock a signing time may be (inferred, as Fabric's 15
# minutes); the SDK signs for 1800 s by default.
MAX_FUTURE_SECONDS = 15 * 60

# V2 paging (inferred beyond the documented default 10 and max 100): the marker is the id of the
# first item of the page, nextMarker that of the next page's first item ("" on the last page).
# Lists are newest first (createTime, then id, descending); pageReverse turns that around.
MAX_KEYS_DEFAULT = 10
MAX_KEYS_MIN, MAX_KEYS_MAX = 1, 100
# V1 /model/user/list paging: pageNo from 1; pageSize default as the SDK's (inferred max 100).
PAGE_NO_DEFAULT = 1
PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MIN, PAGE_SIZE_MAX = 1, 100
V1_ORDER_FIELDS = {"create_time": "createTime", "modify_time": "modifyTime"}
V1_ORDERS = ("asc", "desc")

MODEL_SET_SOURCES = ("UserCreate", "System")
CUSTOM_SOURCE = "UserCreate"
SYSTEM_SOURCE = "System"
VERSION_STATUSES = ("Ready", "Creating", "Fail")
SOURCE_TYPES = ("Train", "Acceleration", "Import", "PlatformPreset")
PRESET_SOURCE_TYPE = "PlatformPreset"
RUN_STATUSES = ("New", "Deploying", "Serving", "Failed", "Stopped")
# A service holds the version it names whatever its runStatus: API.md says a version is in use
# when a service names its modelId (a Stopped or Failed service can be started again).

# Defaults for fields a state file leaves out.
DEFAULT_TIME = "2024-01-01T08:00:00+08:00"
DEFAULT_MODEL_TYPE = "Text2Text"
DEFAULT_USER = "emulator"
DEFAULT_APPLICATION_TYPE = "chat"
FIRST_V1_MODEL_ID = 1001
FIRST_V1_VERSION_ID = 50001
MODEL_SET_ID_RE = re.compile(r"am-[A-Za-z0-9-]{1,64}")
VERSION_ID_RE = re.compile(r"amv-[A-Za-z0-9-]{1,64}")
SERVICE_ID_RE = re.compile(r"svco-[A-Za-z0-9-]{1,64}")

# --------------------------------------------------------------------------------------------


class QianfanError(Exception):
    """A gateway or V2 refusal; the endpoint wrapper turns it into the response."""

    def __init__(self, error: BceError, **details: str) -> None:
        super().__init__(error.code)
        self.error = error
        self.message = error.message.format(**details)

    def response(self, request_id: str) -> Response:
        return _bce_error_response(self.error, self.message, request_id)


class V1Error(Exception):
    """A V1 refusal: ``{error_code, error_msg}``, sent with HTTP 200 beside ``log_id``."""

    def __init__(self, body: Json) -> None:
        super().__init__(body)
        self.body = body


def _bce_error_response(error: BceError, message: str, request_id: str) -> Response:
    headers = {"X-Bce-Error-Code": error.code, "X-Bce-Error-Message": _header_safe(message)}
    if error is THROTTLED:
        headers["Retry-After"] = THROTTLED_RETRY_AFTER
    body = {"requestId": _v2_request_id(request_id), "code": error.code, "message": message}
    return JSONResponse(body, status_code=error.status, headers=headers)


def _header_safe(text: str) -> str:
    """``text`` as a header value: ids echoed from a request may hold anything."""
    return "".join(ch if " " <= ch <= "~" else f"\\u{ord(ch):04x}" for ch in text)


def _v2_request_id(request_id: str) -> str:
    """The plumbing's X-Request-Id (32 hex digits) in V2's dashed form (seed 002)."""
    return str(uuid.UUID(hex=request_id))


def _v1_log_id(request_id: str) -> str:
    """A V1 log id from the request id: digits in a string, as seed 001's examples."""
    return str(int(request_id[:8], 16))


def _request_id(request: Request) -> str:
    # Set by the shared plumbing before any platform code runs.
    return str(getattr(request.state, REQUEST_ID_STATE_KEY))


def _v1_param_invalid() -> V1Error:
    return V1Error(dict(V1_PARAM_INVALID))


# --------------------------------------------------------------------------------------------
# Body fields
# --------------------------------------------------------------------------------------------


def _field(body: Json, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    """``body[key]`` if it has type ``kind`` (a bool is no int), ``default`` when absent/null.

    Raises a bare ValueError on a wrong type; each API turns that into its own refusal.
    """
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ValueError(key)
    if not isinstance(value, kind):
        raise ValueError(key)
    return value


def _newest_first(items: Iterable[Json], id_key: str) -> list[Json]:
    return newest_first(items, "createTime", id_key)


def _marker_page(
    items: list[Json], id_key: str, body: Json, places: dict[Any, int] | None = None
) -> tuple[list[Json], Json]:
    """One V2 page of ``items`` (already newest first) and its ``pageInfo``. ``places``, when
    given, is where each id first appears in ``items``: it saves a scan per page."""
    try:
        marker = _field(body, "marker", str, "")
        max_keys = _field(body, "maxKeys", int, MAX_KEYS_DEFAULT)
        reverse = _field(body, "pageReverse", bool, False)
    except ValueError:
        raise QianfanError(INAPPROPRIATE_JSON) from None
    if not MAX_KEYS_MIN <= max_keys <= MAX_KEYS_MAX:
        raise QianfanError(INAPPROPRIATE_JSON)
    ordered = list(reversed(items)) if reverse else items
    start = 0
    if marker and places is not None and not reverse:
        found = places.get(marker)
        if found is None:
            raise QianfanError(INVALID_MARKER, marker=marker)
        start = found
    elif marker:
        ids = [item.get(id_key) for item in ordered]
        if marker not in ids:
            raise QianfanError(INVALID_MARKER, marker=marker)
        start = ids.index(marker)
    end = start + max_keys
    truncated = end < len(ordered)
    page_info = {
        "marker": marker,
        "maxKeys": max_keys,
        "isTruncated": truncated,
        "nextMarker": str(ordered[end][id_key]) if truncated else "",
    }
    return ordered[start:end], page_info


# --------------------------------------------------------------------------------------------
# State: defaults and checks on load
# --------------------------------------------------------------------------------------------


def _derived_id(prefix: str, *parts: object) -> str:
    digest = hashlib.sha256(
        "/".join(str(p) for p in parts).encode("utf-8", "surrogatepass")
    ).hexdigest()
    return prefix + digest[:12]


def _check_choice(record: Json, key: str, allowed: Iterable[str], where: str) -> None:
    allowed = tuple(allowed)
    require(record[key] in allowed, f"{where}.{key}", f"must be one of {', '.join(allowed)}")


def _assign_v1_ids(records: list[Json], key: str, first: int, where: str) -> None:
    """Give each record without a V1 id the next unused int from ``first``."""
    for record in records:
        if key in record:
            value = record[key]
            require(
                isinstance(value, int) and not isinstance(value, bool) and value > 0,
                f"{where}.{key}",
                "must be a positive integer",
            )
    used = {record[key] for record in records if key in record}
    next_id = first
    for record in records:
        if key not in record:
            while next_id in used:
                next_id += 1
            record[key] = next_id
            used.add(next_id)
    check_unique((record[key] for record in records), where, key)


def normalize_qianfan(section: Json) -> None:
    """Check the ``qianfan`` section of a state and fill in defaults, in place.

    Raises ValueError naming the offending place. Names may repeat (the reconciler must report
    that as ambiguous); ids may not, and version ids are unique across model sets.
    """
    require(isinstance(section, dict), "qianfan", "must be an object")
    keys = section.setdefault("access_keys", {})
    require(
        isinstance(keys, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items()),
        "qianfan.access_keys",
        "must be an object of strings",
    )
    model_sets = section.setdefault("model_sets", [])
    require(isinstance(model_sets, list), "qianfan.model_sets", "must be a list")
    for i, model_set in enumerate(model_sets):
        _normalize_model_set(i, model_set, f"qianfan.model_sets[{i}]")
    check_unique((s["modelSetId"] for s in model_sets), "qianfan.model_sets", "modelSetId")
    _assign_v1_ids(model_sets, "v1ModelId", FIRST_V1_MODEL_ID, "qianfan.model_sets")
    versions = [v for s in model_sets for v in s["versions"]]
    check_unique((v["modelId"] for v in versions), "qianfan.model_sets[].versions", "modelId")
    _assign_v1_ids(versions, "v1VersionId", FIRST_V1_VERSION_ID, "qianfan.model_sets[].versions")
    set_of_version = {v["modelId"]: s["modelSetId"] for s in model_sets for v in s["versions"]}
    services = section.setdefault("services", [])
    require(isinstance(services, list), "qianfan.services", "must be a list")
    for i, service in enumerate(services):
        _normalize_service(i, service, set_of_version, f"qianfan.services[{i}]")
    check_unique((s["serviceId"] for s in services), "qianfan.services", "serviceId")


def _normalize_model_set(index: int, model_set: Any, where: str) -> None:
    require(
        isinstance(model_set, dict) and isinstance(model_set.get("modelSetName"), str),
        where,
        "needs a modelSetName",
    )
    model_set.setdefault("modelSetId", _derived_id("am-", "set", index, model_set["modelSetName"]))
    require(
        isinstance(model_set["modelSetId"], str)
        and bool(MODEL_SET_ID_RE.fullmatch(model_set["modelSetId"])),
        f"{where}.modelSetId",
        "must be am- and letters, digits or hyphens",
    )
    model_set.setdefault("modelType", DEFAULT_MODEL_TYPE)
    model_set.setdefault("source", CUSTOM_SOURCE)
    _check_choice(model_set, "source", MODEL_SET_SOURCES, where)
    labels = model_set.setdefault("labels", [])
    require(
        isinstance(labels, list) and all(isinstance(label, str) for label in labels),
        f"{where}.labels",
        "must be a list of strings",
    )
    model_set.setdefault("description", "")
    model_set.setdefault("createUser", DEFAULT_USER)
    model_set.setdefault("createTime", DEFAULT_TIME)
    model_set.setdefault("modifyTime", model_set["createTime"])
    check_time(model_set, "createTime", where)
    check_time(model_set, "modifyTime", where)
    versions = model_set.setdefault("versions", [])
    require(isinstance(versions, list), f"{where}.versions", "must be a list")
    for i, version in enumerate(versions):
        _normalize_version(model_set, i, version, f"{where}.versions[{i}]")


def _normalize_version(model_set: Json, index: int, version: Any, where: str) -> None:
    require(
        isinstance(version, dict) and isinstance(version.get("modelName"), str),
        where,
        "needs a modelName (the version's name)",
    )
    version.setdefault(
        "modelId", _derived_id("amv-", model_set["modelSetId"], index, version["modelName"])
    )
    require(
        isinstance(version["modelId"], str) and bool(VERSION_ID_RE.fullmatch(version["modelId"])),
        f"{where}.modelId",
        "must be amv- and letters, digits or hyphens",
    )
    version.setdefault("status", VERSION_STATUSES[0])
    _check_choice(version, "status", VERSION_STATUSES, where)
    version.setdefault("model", "")
    preset = model_set["source"] == SYSTEM_SOURCE
    source_info = version.setdefault(
        "sourceInfo", {"sourceType": PRESET_SOURCE_TYPE if preset else SOURCE_TYPES[0]}
    )
    require(isinstance(source_info, dict), f"{where}.sourceInfo", "must be an object")
    source_info.setdefault("sourceType", SOURCE_TYPES[0])
    _check_choice(source_info, "sourceType", SOURCE_TYPES, f"{where}.sourceInfo")
    version.setdefault("description", "")
    version.setdefault("modelApplicationType", DEFAULT_APPLICATION_TYPE)
    version.setdefault("createTime", model_set["createTime"])
    version.setdefault("modifyTime", version["createTime"])
    check_time(version, "createTime", where)
    check_time(version, "modifyTime", where)


def _normalize_service(
    index: int, service: Any, set_of_version: dict[str, str], where: str
) -> None:
    require(
        isinstance(service, dict) and isinstance(service.get("modelId"), str),
        where,
        "needs the modelId (amv-) of the version it serves",
    )
    service.setdefault("serviceId", _derived_id("svco-", "service", index))
    require(
        isinstance(service["serviceId"], str)
        and bool(SERVICE_ID_RE.fullmatch(service["serviceId"])),
        f"{where}.serviceId",
        "must be svco- and letters, digits or hyphens",
    )
    service.setdefault("modelSetId", set_of_version.get(service["modelId"], ""))
    service.setdefault("name", f"service-{index}")
    service.setdefault("description", "")
    service.setdefault("runStatus", "Serving")
    _check_choice(service, "runStatus", RUN_STATUSES, where)
    service.setdefault("createTime", DEFAULT_TIME)
    service.setdefault("modifyTime", service["createTime"])
    check_time(service, "createTime", where)
    check_time(service, "modifyTime", where)


# --------------------------------------------------------------------------------------------
# Views: stored records as the APIs show them
# --------------------------------------------------------------------------------------------


def _version_ids(model_set: Json) -> list[str]:
    return [str(v["modelId"]) for v in model_set["versions"]]


def _model_set_summary(model_set: Json) -> Json:
    """An item of DescribeCustomModelSets' customModelSetList."""
    return {
        "modelSetId": model_set["modelSetId"],
        "modelSetName": model_set["modelSetName"],
        "modelType": model_set["modelType"],
        "labels": list(model_set["labels"]),
        "createTime": model_set["createTime"],
        "modifyTime": model_set["modifyTime"],
        "modelCount": len(model_set["versions"]),
        "modelIds": _version_ids(model_set),
        "modelNames": [v["modelName"] for v in model_set["versions"]],
    }


def _model_set_detail(model_set: Json) -> Json:
    """DescribeModelSet's result."""
    return {
        "modelSetId": model_set["modelSetId"],
        "modelSetName": model_set["modelSetName"],
        "modelType": model_set["modelType"],
        "source": model_set["source"],
        "labels": list(model_set["labels"]),
        "createTime": model_set["createTime"],
        "modifyTime": model_set["modifyTime"],
        "description": model_set["description"],
        "modelIds": _version_ids(model_set),
        "modelNames": [v["modelName"] for v in model_set["versions"]],
    }


def _version_detail(model_set: Json, version: Json) -> Json:
    """DescribeModel's result."""
    return {
        "modelSetId": model_set["modelSetId"],
        "modelId": version["modelId"],
        "modelName": version["modelName"],
        "status": version["status"],
        "model": version["model"],
        "sourceInfo": dict(version["sourceInfo"]),
        "description": version["description"],
        "createTime": version["createTime"],
        "modifyTime": version["modifyTime"],
        "modelApplicationType": version["modelApplicationType"],
    }


def _v1_version(version: Json) -> Json:
    """A version in V1's words (modelDetail's modelVersionList, user/list's latestVersionInfo)."""
    return {
        "modelVersionId": version["v1VersionId"],
        "modelVersionIdStr": version["modelId"],
        "version": version["modelName"],
        "sourceType": version["sourceInfo"]["sourceType"],
        "state": version["status"],
        "description": version["description"],
        "createTime": version["createTime"],
        "modifyTime": version["modifyTime"],
    }


def _v1_model_item(model_set: Json) -> Json:
    """An item of V1 /model/user/list."""
    latest = newest(model_set["versions"], "createTime", "modelId")
    return {
        "modelName": model_set["modelSetName"],
        "modelId": model_set["v1ModelId"],
        "modelIdStr": model_set["modelSetId"],
        "modelType": model_set["modelType"],
        "tags": list(model_set["labels"]),
        "createTime": model_set["createTime"],
        "versionCount": len(model_set["versions"]),
        "latestVersionInfo": None if latest is None else _v1_version(latest),
    }


def _v1_model_detail(model_set: Json) -> Json:
    """V1 /modelDetail's result."""
    return {
        "modelId": model_set["v1ModelId"],
        "modelIdStr": model_set["modelSetId"],
        "modelName": model_set["modelSetName"],
        "source": model_set["source"],
        "modelType": model_set["modelType"],
        "createUser": model_set["createUser"],
        "createTime": model_set["createTime"],
        "modifyTime": model_set["modifyTime"],
        "description": model_set["description"],
        "modelVersionList": [_v1_version(v) for v in model_set["versions"]],
    }


def _service_view(service: Json) -> Json:
    return {
        key: service[key]
        for key in (
            "serviceId",
            "name",
            "description",
            "modelSetId",
            "modelId",
            "runStatus",
            "createTime",
            "modifyTime",
        )
    }


def _is_preset_set(model_set: Json) -> bool:
    return model_set["source"] == SYSTEM_SOURCE or any(
        _is_preset_version(v) for v in model_set["versions"]
    )


def _is_preset_version(version: Json) -> bool:
    return bool(version["sourceInfo"].get("sourceType") == PRESET_SOURCE_TYPE)


# --------------------------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------------------------

V2Handler = Callable[[Json], Json]
V1Handler = Callable[[Json], Json]


class QianfanApi:
    """The Qianfan half of the emulator: routes, auth, faults, and the handlers over the state."""

    def __init__(self, host: Host) -> None:
        self.host = host
        # Derived from the state and checked against it on every use (see index.py).
        self._set_index = {key: ListIndex(key) for key in ("modelSetId", "v1ModelId")}
        #: version modelId -> the model set that held it when last looked at
        self._set_of_version: dict[str, Json] = {}
        self._sorts = SortMemo()

    # -- what the shared plumbing asks of a platform ---------------------------------------

    def owns(self, path: str) -> bool:
        return path.startswith((V2_PREFIX, V1_PREFIX))

    def normalize(self, state: Json) -> None:
        # A state without a qianfan section stays without one: nothing is added to the file.
        if "qianfan" in state:
            normalize_qianfan(state["qianfan"])

    def routes(self) -> list[BaseRoute]:
        model_actions: dict[str, V2Handler] = {
            "DescribeCustomModelSets": self.describe_custom_model_sets,
            "DescribeModelSet": self.describe_model_set,
            "DescribeModel": self.describe_model,
            "DeleteModel": self.delete_model,
            "DeleteModelSet": self.delete_model_set,
        }
        service_actions: dict[str, V2Handler] = {
            "DescribeServices": self.describe_services,
            "DescribeService": self.describe_service,
        }
        v1: dict[str, V1Handler] = {
            "/model/batchDelete": self.v1_batch_delete_models,
            "/model/user/list": self.v1_list_user_models,
            "/modelDetail": self.v1_model_detail,
            "/model/version/batchDelete": self.v1_batch_delete_versions,
        }
        return [
            Route("/v2/model", self._v2_endpoint(model_actions), methods=["POST"]),
            Route("/v2/service", self._v2_endpoint(service_actions), methods=["POST"]),
            *(
                Route(V1_REPO + path, self._v1_endpoint(handler), methods=["POST"])
                for path, handler in v1.items()
            ),
            # Last: any other path or method the gateway has no API for (inferred: InvalidURI).
            Route("/v2/{rest:path}", self._no_such_api, methods=ALL_METHODS),
            Route("/wenxinworkshop/{rest:path}", self._no_such_api, methods=ALL_METHODS),
        ]

    def fault_response(self, status: int, request_id: str) -> Response:
        error = FAULTS[status]
        return _bce_error_response(error, error.message, request_id)

    def internal_error_response(self, request_id: str) -> Response:
        return _bce_error_response(INTERNAL_ERROR, INTERNAL_ERROR.message, request_id)

    def changes_state(self, method: str, path: str, query: QueryParams) -> bool:
        if path.startswith(V2_PREFIX):
            return query.get("Action", "") in STATE_CHANGING_ACTIONS
        return path.removeprefix(V1_REPO) in STATE_CHANGING_V1

    def inconsistent(self, path: str, query: QueryParams, body: Any, delta: int) -> Any:
        """A V2 page that points back at itself (``nextMarker`` is its own marker, or on the
        first page its first item: a client that follows it loops); a V1 ``/modelDetail``
        without its last version (it disagrees with the set's listing); a V1 ``total`` off by
        ``delta``. None for any other answer."""
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, dict):
            return None
        if path.startswith(V2_PREFIX):
            page_info = result.get("pageInfo")
            if not isinstance(page_info, dict):
                return None
            marker = page_info.get("marker")
            for list_key, id_key in MARKER_KEYS.items():
                items = result.get(list_key)
                if not marker and isinstance(items, list) and items:
                    marker = items[0].get(id_key)
            if not marker:
                return None
            looped = {**page_info, "isTruncated": True, "nextMarker": marker}
            return {**body, "result": {**result, "pageInfo": looped}}
        if path == V1_REPO + "/modelDetail":
            versions = result.get("modelVersionList")
            if not isinstance(versions, list) or not versions:
                return None
            return {**body, "result": {**result, "modelVersionList": versions[:-1]}}
        if type(result.get("total")) is int:
            return {**body, "result": {**result, "total": result["total"] + delta}}
        return None

    # -- plumbing --------------------------------------------------------------------------

    def _v2_endpoint(
        self, actions: dict[str, V2Handler]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            request_id = _request_id(request)
            try:
                await self.authenticate(request)
                handler = actions.get(query_of(request).get("Action", ""))
                if handler is None:
                    raise QianfanError(INVALID_URI)
                body = await _json_object(request)
                if body is None:
                    raise QianfanError(MALFORMED_JSON)
                if not isinstance(body, dict):
                    raise QianfanError(INAPPROPRIATE_JSON)
                result = handler(body)
            except QianfanError as refusal:
                return refusal.response(request_id)
            return JSONResponse({"requestId": _v2_request_id(request_id), "result": result})

        return endpoint

    def _v1_endpoint(self, handler: V1Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            request_id = _request_id(request)
            try:
                await self.authenticate(request)
            except QianfanError as refusal:
                return refusal.response(request_id)
            log_id = _v1_log_id(request_id)
            try:
                body = await _json_object(request)
                if not isinstance(body, dict):
                    raise _v1_param_invalid()
                result = handler(body)
            except V1Error as refusal:
                return JSONResponse({"log_id": log_id, **refusal.body})
            return JSONResponse({"log_id": log_id, "result": result})

        return endpoint

    async def _no_such_api(self, request: Request) -> Response:
        return QianfanError(INVALID_URI).response(_request_id(request))

    async def authenticate(self, request: Request) -> None:
        """Raise the gateway's refusal unless the request carries a valid bce-auth-v1 signature.

        An unknown (or revoked) access key is the credential ``NotFound`` that the SDK names.
        """
        authorization = request.headers.get("authorization", "").strip()
        if not authorization:
            raise QianfanError(AUTHORIZATION_MISSING)
        parts = authorization.split("/")
        if len(parts) != 6 or parts[0] != signatures.BCE_AUTH_VERSION:
            raise QianfanError(INVALID_AUTH_HEADER)
        _, access_key, timestamp, expiration, signed_list, signature = parts
        try:
            signed_at = datetime.strptime(timestamp, signatures.BCE_TIME_FORMAT)
        except ValueError:
            raise QianfanError(INVALID_AUTH_HEADER) from None
        if not expiration.isdigit() or int(expiration) <= 0:
            raise QianfanError(INVALID_AUTH_HEADER)
        secret_key = self._qianfan().get("access_keys", {}).get(access_key)
        if secret_key is None:
            raise QianfanError(CREDENTIAL_NOT_FOUND)
        signed_epoch = signed_at.replace(tzinfo=UTC).timestamp()
        now = self.host.clock()
        if now > signed_epoch + int(expiration) or signed_epoch > now + MAX_FUTURE_SECONDS:
            raise QianfanError(REQUEST_EXPIRED, when=timestamp)
        headers = {name.lower(): value for name, value in request.headers.items()}
        canonical_request = signatures.bce_canonical_request(
            request.method,
            request.scope["path"],
            parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True),
            headers,
            signed_list.split(";"),
        )
        prefix = signatures.bce_auth_prefix(access_key, timestamp, int(expiration))
        signing_key = signatures.bce_signing_key(secret_key, prefix)
        expected = signatures.bce_signature(signing_key, canonical_request)
        if not signatures.same_signature(expected, signature):
            raise QianfanError(SIGNATURE_MISMATCH)

    # -- state access ----------------------------------------------------------------------

    def _qianfan(self) -> Json:
        return section(self.host.state, "qianfan")

    def _model_sets(self) -> list[Json]:
        model_sets: list[Json] = self._qianfan().get("model_sets", [])
        return model_sets

    def _services(self) -> list[Json]:
        services: list[Json] = self._qianfan().get("services", [])
        return services

    def _find_set(self, key: str, value: object) -> Json | None:
        index = self._set_index.get(key)
        if index is None:
            return next((s for s in self._model_sets() if s[key] == value), None)
        model_sets = self._model_sets()
        place = index.find(model_sets, value)
        return None if place is None else model_sets[place]

    def _find_version(self, key: str, value: object) -> tuple[Json, Json] | None:
        if key == "modelId" and isinstance(value, str):
            # Version ids are unique across sets (checked on load): the set that held this one
            # is checked to be still listed and still to hold it, else every set is looked at.
            for attempt in range(2):
                if attempt:
                    self._set_of_version = {
                        v["modelId"]: s for s in self._model_sets() for v in s["versions"]
                    }
                model_set = self._set_of_version.get(value)
                if (
                    model_set is None
                    or self._find_set("modelSetId", model_set["modelSetId"]) is not model_set
                ):
                    continue
                version = next((v for v in model_set["versions"] if v[key] == value), None)
                if version is not None:
                    return model_set, version
            return None
        for model_set in self._model_sets():
            for version in model_set["versions"]:
                if version[key] == value:
                    return model_set, version
        return None

    def _users(self, model_set: Json, versions: Iterable[Json]) -> list[str]:
        """Ids of the services of any of ``versions`` (or naming ``model_set`` itself)."""
        version_ids = {v["modelId"] for v in versions}
        return [
            service["serviceId"]
            for service in self._services()
            if service["modelId"] in version_ids or service["modelSetId"] == model_set["modelSetId"]
        ]

    def _delete_sets(self, doomed: list[Json]) -> None:
        model_sets = self._model_sets()
        index = self._set_index["modelSetId"]
        places = [index.find(model_sets, s["modelSetId"]) for s in doomed]
        if all(p is not None and model_sets[p] is s for p, s in zip(places, doomed, strict=True)):
            kept = index.without(model_sets, [p for p in places if p is not None])
        else:
            ids = {id(s) for s in doomed}
            kept = [s for s in model_sets if id(s) not in ids]
        self._qianfan()["model_sets"] = kept
        self.host.persist()

    def _delete_versions(self, doomed: list[tuple[Json, Json]]) -> None:
        ids = {id(version) for _, version in doomed}
        for model_set in {id(s): s for s, _ in doomed}.values():
            model_set["versions"] = [v for v in model_set["versions"] if id(v) not in ids]
        self.host.persist()

    # -- V2 handlers -----------------------------------------------------------------------

    def describe_custom_model_sets(self, body: Json) -> Json:
        ordered, places = self._sorts.sort(
            "custom model sets",
            lambda: [s for s in self._model_sets() if s["source"] == CUSTOM_SOURCE],
            ("createTime", "modelSetId"),
            lambda items: _newest_first(items, "modelSetId"),
            place_of="modelSetId",
            revision=self.host.revision,
        )
        page, page_info = _marker_page(ordered, "modelSetId", body, places)
        return {
            "customModelSetList": [_model_set_summary(s) for s in page],
            "pageInfo": page_info,
        }

    def describe_model_set(self, body: Json) -> Json:
        set_id, set_name = _v2_strings(body, "modelSetId", "modelSetName")
        if (set_id is None) == (set_name is None):  # exactly one of the two
            raise QianfanError(INAPPROPRIATE_JSON)
        # Names may repeat in a state file: the first holder wins (inferred; the console
        # refuses a second set with a taken name).
        model_set = (
            self._find_set("modelSetId", set_id)
            if set_id is not None
            else self._find_set("modelSetName", set_name)
        )
        if model_set is None:
            raise QianfanError(NOT_FOUND, id=str(set_id if set_id is not None else set_name))
        return _model_set_detail(model_set)

    def describe_model(self, body: Json) -> Json:
        (model_id,) = _v2_strings(body, "modelId", required=True)
        found = self._find_version("modelId", model_id)
        if found is None:
            raise QianfanError(NOT_FOUND, id=str(model_id))
        return _version_detail(*found)

    def delete_model(self, body: Json) -> Json:
        """Seed 002: delete one of my model versions."""
        (model_id,) = _v2_strings(body, "modelId", required=True)
        found = self._find_version("modelId", model_id)
        if found is None:
            raise QianfanError(NOT_FOUND, id=str(model_id))
        model_set, version = found
        if model_set["source"] == SYSTEM_SOURCE or _is_preset_version(version):
            raise QianfanError(ACCESS_DENIED)
        users = [
            service["serviceId"] for service in self._services() if service["modelId"] == model_id
        ]
        if users:
            raise QianfanError(MODEL_IN_USE, id=str(model_id), services=", ".join(users))
        self._delete_versions([found])
        return {}

    def delete_model_set(self, body: Json) -> Json:
        """Delete a whole model set with its versions (inferred: no need to empty it first)."""
        (set_id,) = _v2_strings(body, "modelSetId", required=True)
        model_set = self._find_set("modelSetId", set_id)
        if model_set is None:
            raise QianfanError(NOT_FOUND, id=str(set_id))
        if _is_preset_set(model_set):
            raise QianfanError(ACCESS_DENIED)
        users = self._users(model_set, model_set["versions"])
        if users:
            raise QianfanError(MODEL_IN_USE, id=str(set_id), services=", ".join(users))
        self._delete_sets([model_set])
        return {}

    def describe_services(self, body: Json) -> Json:
        try:
            name = _field(body, "name", str, "")
            run_statuses = _field(body, "runStatus", list, [])
        except ValueError:
            raise QianfanError(INAPPROPRIATE_JSON) from None
        if not all(isinstance(status, str) for status in run_statuses):
            raise QianfanError(INAPPROPRIATE_JSON)
        matching = [
            service
            for service in self._services()
            if name.casefold() in str(service["name"]).casefold()
            and (not run_statuses or service["runStatus"] in run_statuses)
        ]
        page, page_info = _marker_page(_newest_first(matching, "serviceId"), "serviceId", body)
        return {"serviceList": [_service_view(s) for s in page], "pageInfo": page_info}

    def describe_service(self, body: Json) -> Json:
        (service_id,) = _v2_strings(body, "serviceId", required=True)
        service = next((s for s in self._services() if s["serviceId"] == service_id), None)
        if service is None:
            raise QianfanError(NOT_FOUND, id=str(service_id))
        return _service_view(service)

    # -- V1 handlers -----------------------------------------------------------------------

    def v1_batch_delete_models(self, body: Json) -> Json:
        """Seed 001. All or nothing (inferred): one refused id deletes none of the others."""
        ids = _v1_ids(body, "modelIDs")
        key = "v1ModelId" if isinstance(ids[0], int) else "modelSetId"
        doomed: list[Json] = []
        for model_id in ids:
            model_set = self._find_set(key, model_id)
            if model_set is None:
                raise _v1_param_invalid()
            if all(model_set is not d for d in doomed):
                doomed.append(model_set)
        presets = [str(s["modelSetId"]) for s in doomed if _is_preset_set(s)]
        if presets:
            message = V1_PRESET_MSG.format(ids=", ".join(presets))
            raise V1Error({"error_code": V1_PRESET_CODE, "error_msg": message})
        users = [u for s in doomed for u in self._users(s, s["versions"])]
        if users:
            message = V1_IN_USE_MSG.format(services=", ".join(dict.fromkeys(users)))
            raise V1Error({"error_code": V1_IN_USE_CODE, "error_msg": message})
        self._delete_sets(doomed)
        return {}

    def v1_batch_delete_versions(self, body: Json) -> Json:
        """All or nothing (inferred), as the batch delete of models."""
        ids = _v1_ids(body, "modelVersionIds")
        key = "v1VersionId" if isinstance(ids[0], int) else "modelId"
        doomed: list[tuple[Json, Json]] = []
        for version_id in ids:
            found = self._find_version(key, version_id)
            if found is None:
                raise _v1_param_invalid()
            if all(found[1] is not v for _, v in doomed):
                doomed.append(found)
        presets = [
            str(v["modelId"])
            for s, v in doomed
            if s["source"] == SYSTEM_SOURCE or _is_preset_version(v)
        ]
        if presets:
            message = V1_PRESET_MSG.format(ids=", ".join(presets))
            raise V1Error({"error_code": V1_PRESET_CODE, "error_msg": message})
        doomed_ids = {v["modelId"] for _, v in doomed}
        users = [
            service["serviceId"] for service in self._services() if service["modelId"] in doomed_ids
        ]
        if users:
            message = V1_IN_USE_MSG.format(services=", ".join(users))
            raise V1Error({"error_code": V1_IN_USE_CODE, "error_msg": message})
        self._delete_versions(doomed)
        return {}

    def v1_list_user_models(self, body: Json) -> Json:
        try:
            page_no = _field(body, "pageNo", int, PAGE_NO_DEFAULT)
            page_size = _field(body, "pageSize", int, PAGE_SIZE_DEFAULT)
            name_filter = _field(body, "nameFilter", str, "")
            model_types = _field(body, "modelType", (list, str), [])
            order_by = _field(body, "orderBy", str, "create_time")
            order = _field(body, "order", str, "desc")
        except ValueError:
            raise _v1_param_invalid() from None
        if isinstance(model_types, str):
            model_types = [model_types]
        if (
            page_no < 1
            or not PAGE_SIZE_MIN <= page_size <= PAGE_SIZE_MAX
            or order_by not in V1_ORDER_FIELDS
            or order not in V1_ORDERS
            or not all(isinstance(t, str) for t in model_types)
        ):
            raise _v1_param_invalid()
        field = V1_ORDER_FIELDS[order_by]
        matching, _ = self._sorts.sort(
            ("v1 user models", name_filter, tuple(model_types), field, order),
            lambda: [
                s
                for s in self._model_sets()
                if s["source"] == CUSTOM_SOURCE
                and name_filter.casefold() in s["modelSetName"].casefold()
                and (not model_types or s["modelType"] in model_types)
            ],
            (field, "v1ModelId"),
            lambda items: sorted(
                items,
                key=lambda s: (time_key(s[field]), s["v1ModelId"]),
                reverse=order == "desc",
            ),
            revision=self.host.revision,
        )
        start = (page_no - 1) * page_size
        items = matching[start : start + page_size]
        return {"total": len(matching), "items": [_v1_model_item(s) for s in items]}

    def v1_model_detail(self, body: Json) -> Json:
        """``modelId`` is the V1 int id or (inferred, as the SDK sends it) the am- string."""
        model_id = body.get("modelId")
        if isinstance(model_id, int) and not isinstance(model_id, bool):
            model_set = self._find_set("v1ModelId", model_id)
        elif isinstance(model_id, str):
            model_set = self._find_set("modelSetId", model_id)
        else:
            raise _v1_param_invalid()
        if model_set is None:
            raise _v1_param_invalid()
        return _v1_model_detail(model_set)


async def _json_object(request: Request) -> Any:
    """The parsed body (an empty body counts as ``{}``), or None when it is not JSON."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _v2_strings(body: Json, *keys: str, required: bool = False) -> tuple[str | None, ...]:
    """Non-empty string fields of a V2 body (None when absent); any other type is refused."""
    values: list[str | None] = []
    for key in keys:
        value = body.get(key)
        if value is None and not required:
            values.append(None)
            continue
        if not isinstance(value, str) or not value:
            raise QianfanError(INAPPROPRIATE_JSON)
        values.append(value)
    return tuple(values)


def _v1_ids(body: Json, key: str) -> list[int] | list[str]:
    """A V1 id list: non-empty, all ints or all strings, never mixed (seed 001)."""
    ids = body.get(key)
    if not isinstance(ids, list) or not ids:
        raise _v1_param_invalid()
    if all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        return [int(i) for i in ids]
    if all(isinstance(i, str) and i for i in ids):
        return [str(i) for i in ids]
    raise _v1_param_invalid()
