"""Baidu AI Cloud Qianfan: model sets ("models") and their models ("versions"), services; delete.

Listing: V2 `DescribeCustomModelSets` (marker pages of 100) gives every model set with the ids and
names of its versions; V1 `/modelDetail` then gives all of one set's versions with their details in
one call, where V2 would need one `DescribeModel` per version (10 calls for a 10-version set
instead of 1). The two must agree, or the listing fails closed. Services (`DescribeServices`) say
which versions are in use.

Deleting: versions with V2 `DeleteModel`; whole model sets with the V1 `/model/batchDelete` (up to
`BATCH_SIZE` string ids a call; seed 001: never mixed with int ids), or V2 `DeleteModelSet` where a
manifest asks for it.

V1 answers errors with HTTP 200 and `error_code` in the body; a V2 200 whose body has `code` and
`message` and no `result` is an error too. Both are checked here, not only the status.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import httpx

from reconcile.errors import (
    InUseError,
    ListingIncompleteError,
    NotFoundError,
    ProviderError,
    ReconcileError,
)
from reconcile.model import LiveModel, LiveVersion, ServiceUse, Snapshot
from reconcile.providers.base import Progress
from reconcile.providers.http import Http, parse_json
from reconcile.providers.signing import BCE_DATE_FORMAT, bce_authorization

PAGE_SIZE = 100
#: Ids per V1 batch delete call. The platform documents no limit (inferred: kept modest).
BATCH_SIZE = 20
#: Signature validity sent in `bce-auth-v1` (seconds).
EXPIRATION = 1800
_SET_ID = re.compile(r"^am-[A-Za-z0-9]{1,64}$")
_VERSION_ID = re.compile(r"^amv-[A-Za-z0-9]{1,64}$")
#: Model sets of this source are the platform's presets; versions of this source type too.
_PRESET_SOURCES = frozenset({"System", "PlatformPreset"})
_IN_USE_CODES = frozenset({"ModelInUse"})
_NOT_FOUND_CODES = frozenset({"ResourceNotFound", "ModelNotFound", "NotFound"})

T = TypeVar("T")


def check_set_id(value: str, where: str = "") -> str:
    if not _SET_ID.match(value):
        raise ProviderError(f"{where}{': ' if where else ''}refusing to use model set id {value!r}")
    return value


def check_version_id(value: str, where: str = "") -> str:
    if not _VERSION_ID.match(value):
        raise ProviderError(f"{where}{': ' if where else ''}refusing to use model id {value!r}")
    return value


# -- pure parsing of recorded responses ---------------------------------------------------------


class ShapeError(ProviderError):
    """A response that does not have the documented shape."""


def _get(item: Any, key: str, kind: type, where: str, *, optional: bool = False) -> Any:
    if not isinstance(item, dict):
        raise ShapeError(f"{where}: expected an object, got {type(item).__name__}")
    value = item.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        got = "nothing" if value is None else type(value).__name__
        raise ShapeError(f"{where}: field {key!r} should be {kind.__name__}, got {got}")
    return value


def _time(item: dict[str, Any], key: str, where: str) -> datetime | None:
    text = _get(item, key, str, where, optional=True)
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ShapeError(f"{where}: field {key!r} is not an ISO 8601 time: {text!r}") from None


def v2_result(payload: Any, what: str) -> Any:
    """The `result` of a V2 answer; an error body (even with HTTP 200) raises."""
    if not isinstance(payload, dict):
        raise ShapeError(f"{what}: expected an object, got {type(payload).__name__}")
    if "result" not in payload:
        code, message = payload.get("code"), payload.get("message")
        if code or message:
            raise _platform_error(str(code or "?"), str(message or ""), payload.get("requestId"))
        raise ShapeError(f"{what}: the answer has no 'result'")
    return payload["result"]


def v1_result(payload: Any, what: str) -> Any:
    """The `result` of a V1 answer: V1 reports errors with HTTP 200 and `error_code`."""
    if not isinstance(payload, dict):
        raise ShapeError(f"{what}: expected an object, got {type(payload).__name__}")
    if payload.get("error_code") not in (None, 0):
        raise _platform_error(
            str(payload["error_code"]), str(payload.get("error_msg", "")), payload.get("log_id")
        )
    if "result" not in payload:
        raise ShapeError(f"{what}: the answer has no 'result'")
    return payload["result"]


def _platform_error(code: str, message: str, request_id: Any) -> ProviderError:
    text = f"{code}: {message}" + (f" [request id {request_id}]" if request_id else "")
    kind: type[ProviderError] = ProviderError
    if code in _IN_USE_CODES:
        kind = InUseError
    elif code in _NOT_FOUND_CODES:
        kind = NotFoundError
    return kind(text, code=code, platform_message=message)


def parse_model_sets_page(payload: Any) -> tuple[list[LiveModel], str | None]:
    """A `DescribeCustomModelSets` result: (model sets without version details, next marker)."""
    where = "describe custom model sets"
    result = v2_result(payload, where)
    items = _get(result, "customModelSetList", list, where)
    page = _get(result, "pageInfo", dict, where)
    truncated = _get(page, "isTruncated", bool, where + ".pageInfo")
    marker = _get(page, "nextMarker", str, where + ".pageInfo", optional=True)
    if truncated and not marker:
        raise ShapeError(f"{where}: isTruncated is true but there is no nextMarker")
    models = []
    for index, item in enumerate(items):
        at = f"{where}: customModelSetList[{index}]"
        set_id = check_set_id(_get(item, "modelSetId", str, at), at)
        version_ids = _get(item, "modelIds", list, at, optional=True) or []
        version_names = _get(item, "modelNames", list, at, optional=True) or []
        if len(version_ids) != len(version_names):
            raise ShapeError(f"{at}: modelIds and modelNames differ in length")
        models.append(
            LiveModel(
                id=set_id,
                name=_get(item, "modelSetName", str, at),
                created=_time(item, "createTime", at),
                versions=tuple(
                    LiveVersion(id=check_version_id(str(vid), at), name=str(name), model_id=set_id)
                    for vid, name in zip(version_ids, version_names, strict=True)
                ),
                raw=item,
            )
        )
    return models, marker if truncated else None


def parse_model_detail(payload: Any, listed: LiveModel) -> LiveModel:
    """V1 `/modelDetail` of one set, checked against what the V2 listing said it holds."""
    where = f"model detail of {listed.id}"
    result = v1_result(payload, where)
    source = _get(result, "source", str, where, optional=True)
    description = _get(result, "description", str, where, optional=True)
    versions = []
    for index, item in enumerate(_get(result, "modelVersionList", list, where)):
        at = f"{where}: modelVersionList[{index}]"
        version_id = check_version_id(_get(item, "modelVersionIdStr", str, at), at)
        source_type = _get(item, "sourceType", str, at, optional=True)
        versions.append(
            LiveVersion(
                id=version_id,
                name=_get(item, "version", str, at),
                model_id=listed.id,
                created=_time(item, "createTime", at),
                attributes={"description": _get(item, "description", str, at, optional=True)},
                preset=source_type in _PRESET_SOURCES,
                raw=item,
            )
        )
    if sorted(v.id for v in versions) != sorted(v.id for v in listed.versions):
        raise ListingIncompleteError(
            f"{where}: the set's versions ({len(versions)}) are not the ones the model set "
            f"listing named ({len(listed.versions)}): it changed during the listing",
            hint="run again; nothing was planned from the inconsistent listing",
        )
    return listed.model_copy(
        update={
            "attributes": {"description": description},
            "preset": source in _PRESET_SOURCES,
            "versions": tuple(versions),
            "raw": {**listed.raw, **{k: v for k, v in result.items() if k != "modelVersionList"}},
        }
    )


def parse_services_page(payload: Any) -> tuple[list[ServiceUse], str | None]:
    where = "describe services"
    result = v2_result(payload, where)
    items = _get(result, "serviceList", list, where)
    page = _get(result, "pageInfo", dict, where)
    truncated = _get(page, "isTruncated", bool, where + ".pageInfo")
    marker = _get(page, "nextMarker", str, where + ".pageInfo", optional=True)
    if truncated and not marker:
        raise ShapeError(f"{where}: isTruncated is true but there is no nextMarker")
    services = []
    for index, item in enumerate(items):
        at = f"{where}: serviceList[{index}]"
        model_set = _get(item, "modelSetId", str, at, optional=True)
        if not model_set:
            continue  # serves no model of the user's (a preset): blocks nothing of ours
        services.append(
            ServiceUse(
                id=_get(item, "serviceId", str, at),
                name=_get(item, "name", str, at, optional=True) or "",
                # Every status blocks: whether a stopped service still pins its model is not
                # documented, so fail closed.
                status=_get(item, "runStatus", str, at, optional=True) or "unknown",
                model_id=model_set,
                version_id=_get(item, "modelId", str, at, optional=True),
            )
        )
    return services, marker if truncated else None


def map_error(response: httpx.Response, body: Any) -> ProviderError:
    """HTTP errors: `{requestId, code, message}` and `X-Bce-Error-Code`/`-Message` headers."""
    code = response.headers.get("X-Bce-Error-Code")
    message = response.headers.get("X-Bce-Error-Message")
    request_id = None
    if isinstance(body, dict):
        code = str(body.get("code") or code or "") or None
        message = str(body.get("message") or message or "") or None
        request_id = body.get("requestId")
    error = _platform_error(code or "?", message or response.text[:200], request_id)
    error.message = f"HTTP {response.status_code} {error.message}"
    error.status = response.status_code
    if response.status_code == 404:
        return NotFoundError(error.message, status=404, code=code, platform_message=message)
    error.hint = {
        400: "check the credentials (SignatureDoesNotMatch, RequestExpired: is the clock right?)",
        403: "the credentials lack permission: QianfanFullControlAccessPolicy is needed",
    }.get(response.status_code)
    return error


def bce_signer(
    access_key: str, secret_key: str, *, clock: Callable[[], datetime]
) -> Callable[[httpx.Request], None]:
    """Signs each request with `bce-auth-v1`, over host, content-type and x-bce-date."""

    def sign(request: httpx.Request) -> None:
        timestamp = clock().strftime(BCE_DATE_FORMAT)
        request.headers["x-bce-date"] = timestamp
        signed = ("host", "content-type", "x-bce-date")
        request.headers["Authorization"] = bce_authorization(
            access_key=access_key,
            secret_key=secret_key,
            timestamp=timestamp,
            expiration=EXPIRATION,
            method=request.method,
            path=request.url.path,
            params=request.url.params.multi_items(),
            headers={name: request.headers[name] for name in signed if name in request.headers},
            signed_headers=signed,
        )

    return sign


# -- the provider -------------------------------------------------------------------------------


class QianfanProvider:
    type = "qianfan"

    def __init__(
        self, name: str, *, http: Http, endpoint: str, model_delete: str = "v1_batch"
    ) -> None:
        self.name = name
        self.http = http
        self.endpoint = endpoint
        self.model_delete_batch = BATCH_SIZE if model_delete == "v1_batch" else 1
        self._model_delete = model_delete

    @property
    def requests_sent(self) -> int:
        return self.http.sent

    async def _v2(self, what: str, route: str, action: str, body: dict[str, Any]) -> Any:
        response = await self.http.request(
            what, "POST", f"{self.endpoint}/v2/{route}", params={"Action": action}, json=body
        )
        return parse_json(response, f"{self.name}: {what}")

    async def _v1(self, what: str, path: str, body: dict[str, Any]) -> Any:
        response = await self.http.request(
            what, "POST", f"{self.endpoint}/wenxinworkshop/modelrepo/{path}", json=body
        )
        return parse_json(response, f"{self.name}: {what}")

    def _checked(self, what: str, parse: Callable[..., T], *args: Any) -> T:
        """Run a pure parse; its errors name the provider and the call."""
        try:
            return parse(*args)
        except ProviderError as error:
            if not error.message.startswith(f"{self.name}: "):
                error.message = f"{self.name}: {what}: {error.message}"
            error.provider = self.name
            error.operation = what
            raise

    async def snapshot(self, progress: Progress | None = None) -> Snapshot:
        sets, services = await asyncio.gather(self._list_sets(), self._list_services())
        done = 0

        async def detailed(listed: LiveModel) -> LiveModel:
            nonlocal done
            what = f"model detail of {listed.id}"
            payload = await self._v1(what, "modelDetail", {"modelId": listed.id})
            model = self._checked(what, parse_model_detail, payload, listed)
            done += 1
            if progress is not None:
                progress("model sets listed", done, len(sets))
            return model

        models = await asyncio.gather(*(detailed(listed) for listed in sets))
        return Snapshot(
            provider=self.name,
            provider_type=self.type,
            location="account's model sets",
            models=tuple(models),
            services=tuple(services),
        )

    async def _list_sets(self) -> list[LiveModel]:
        what = "describe custom model sets"
        result: list[LiveModel] = []
        marker: str | None = None
        seen: set[str] = set()
        while True:
            body: dict[str, Any] = {"maxKeys": PAGE_SIZE}
            if marker is not None:
                body["marker"] = marker
            payload = await self._v2(what, "model", "DescribeCustomModelSets", body)
            page, marker = self._checked(what, parse_model_sets_page, payload)
            for model in page:
                if model.id in seen:
                    raise ListingIncompleteError(
                        f"{self.name}: {what}: model set {model.id} appeared on two pages: the "
                        "account changed during the listing",
                        hint="run again; nothing was planned from the inconsistent listing",
                    )
                seen.add(model.id)
            result.extend(page)
            if marker is None:
                return result

    async def _list_services(self) -> list[ServiceUse]:
        what = "describe services"
        result: list[ServiceUse] = []
        marker: str | None = None
        while True:
            body: dict[str, Any] = {"maxKeys": PAGE_SIZE}
            if marker is not None:
                body["marker"] = marker
            payload = await self._v2(what, "service", "DescribeServices", body)
            services, marker = self._checked(what, parse_services_page, payload)
            result.extend(services)
            if marker is None:
                return result

    async def delete_version(self, model_id: str, version_id: str) -> None:
        what = f"delete model {version_id} of set {model_id}"
        payload = await self._v2(
            what, "model", "DeleteModel", {"modelId": check_version_id(version_id)}
        )
        self._checked(what, v2_result, payload, what)

    async def delete_model(self, model_id: str) -> None:
        (error,) = await self.delete_models([model_id])
        if error is not None:
            raise error

    async def delete_models(self, model_ids: Sequence[str]) -> list[ReconcileError | None]:
        """Delete whole model sets; one outcome per id (None: deleted). A failed batch is retried
        id by id, so one refused set does not hide whether the others went."""
        ids = [check_set_id(model_id) for model_id in model_ids]
        if self._model_delete == "v2":
            return [await self._one(self._delete_set_v2, model_id) for model_id in ids]
        if len(ids) > 1:
            try:
                await self._batch_delete(ids)
                return [None] * len(ids)
            except ReconcileError:
                pass
        return [await self._one(self._batch_delete, [model_id]) for model_id in ids]

    async def _one(self, call: Any, argument: Any) -> ReconcileError | None:
        try:
            await call(argument)
        except ReconcileError as error:
            return error
        return None

    async def _batch_delete(self, ids: list[str]) -> None:
        what = f"batch delete model sets {', '.join(ids)}"
        payload = await self._v1(what, "model/batchDelete", {"modelIDs": ids})
        self._checked(what, v1_result, payload, what)

    async def _delete_set_v2(self, model_id: str) -> None:
        what = f"delete model set {model_id}"
        payload = await self._v2(what, "model", "DeleteModelSet", {"modelSetId": model_id})
        self._checked(what, v2_result, payload, what)

    async def aclose(self) -> None:
        await self.http.client.aclose()
