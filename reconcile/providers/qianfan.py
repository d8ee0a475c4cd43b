"""Baidu AI Cloud Qianfan: model sets ("models") and their models ("versions"), services; delete.

Listing, in the fewest calls that still give every field a plan needs:

- V2 `DescribeCustomModelSets`, marker pages of 100: every model set of the account with the ids
  and names of its versions (System presets are not in it: they are never in scope);
- V1 `/modelDetail`, one call per model set: the set's description and source, and *all* its
  versions with their creation times, descriptions and source types. V2 would need
  `DescribeModelSet` plus one `DescribeModel` per version (1 + k calls for a k-version set instead
  of 1), so V1 is never the dearer of the two. Creation times (for `keep_latest`), source types
  (presets) and descriptions (drift) are in neither V2 listing, so a set cannot go undetailed.
  The detail must name exactly the versions the V2 listing named, or the listing fails closed;
- V2 `DescribeServices`, marker pages of 100: which versions are in use.

A listing of S sets and V services therefore costs max(1, ceil(S/100)) + S + max(1, ceil(V/100))
calls.

Deleting: versions with V2 `DeleteModel` (seed 002); whole model sets with the V1
`/model/batchDelete` (seed 001), up to `BATCH_SIZE` ids a call, string ids (`am-`) and V1 int ids
never in one call; or, where a manifest says `model_delete = "v2"`, one V2 `DeleteModelSet` each.

V1 answers errors with HTTP 200 and `error_code` in the body; a V2 200 whose body has `code` or
`message` and no `result` is an error too. Both are checked here, not only the status.

(Over 450 lines: the whole contract of one platform, read top to bottom as API.md section 2 is:
pure parsers, error reading, signer, the provider, its registry entry. The parsers are tested as
data and the provider against the emulator; splitting them would part each from its reason.)
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from reconcile.errors import (
    AuthError,
    InUseError,
    ListingIncompleteError,
    NotFoundError,
    ProviderError,
    ReconcileError,
)
from reconcile.model import (
    EMPTY_RECORD,
    LiveModel,
    LiveVersion,
    MakeRecord,
    RawRecord,
    ServiceUse,
    Snapshot,
    copied,
)
from reconcile.providers.adaptive import Headroom
from reconcile.providers.base import (
    Auth,
    Keys,
    Opening,
    Platform,
    Progress,
    Signable,
    Signer,
)
from reconcile.providers.failures import Call, Refusal, platform_error
from reconcile.providers.fanout import Fanout
from reconcile.providers.http import Answer, Http, parse_json
from reconcile.providers.shapes import ShapeError, field, json_type, required, strings, timestamp
from reconcile.providers.signing import (
    BCE_DATE_FORMAT,
    bce_authorization,
    header_values,
    query_pairs,
)

#: `maxKeys` of the V2 listings: the documented maximum.
PAGE_SIZE = 100
#: Ids per V1 batch delete call. The platform documents no limit (inferred: the V2 page size, so
#: one page of listed sets goes in one call). A refused batch is retried id by id.
BATCH_SIZE = 100
#: Signature validity sent in `bce-auth-v1` (seconds).
EXPIRATION = 1800
#: Words for where a Qianfan provider's objects live, in plan lines.
LOCATION = "the Qianfan account"
#: Headers signed on every request (`Host` with its port); the gateway verifies what is listed.
SIGNED_HEADERS = ("host", "content-type", "x-bce-date")
# Ids go into JSON bodies, never into paths, but are still checked: an id of another shape means
# the response is not what we think it is.
_SET_ID = re.compile(r"^am-[A-Za-z0-9-]{1,64}$")
_VERSION_ID = re.compile(r"^amv-[A-Za-z0-9-]{1,64}$")
#: A V1 integer model id (seed 001: `modelIDs: [585]`), as a plan would carry it.
_V1_INT_ID = re.compile(r"^[1-9][0-9]{0,17}$")
#: The sources of the caller's own model sets and versions (API.md section 2). Anything else
#: (System, PlatformPreset, missing, or a value not documented) is treated as a platform preset
#: and never planned: fail closed.
_OWN_SET_SOURCES = frozenset({"UserCreate"})
_OWN_VERSION_SOURCES = frozenset({"Train", "Acceleration", "Import"})
#: "ModelInUse" (V2) and 500002 (V1, the emulator's code; inferred) refuse a delete in use.
_IN_USE_CODES = frozenset({"ModelInUse", "500002"})
_NOT_FOUND_CODES = frozenset({"ResourceNotFound", "ModelNotFound", "NotFound"})
#: Codes that refuse the caller, not the object (API.md; V1's are the SDK's `APIErrorCode`:
#: 6 NoPermissionToAccessData, 13 GetServiceTokenFailed, 14 IAMCertificationFailed, 110/111 an
#: access token invalid or expired, 336004 PermissionError).
_AUTH_CODES = frozenset(
    {
        *("SignatureDoesNotMatch", "InvalidHTTPAuthHeader", "InvalidAccessKeyId"),
        *("RequestExpired", "AccessDenied", "6", "13", "14", "110", "111", "336004"),
    }
)
#: The gateway's credential refusals, as the official SDK recognises them in
#: `X-Bce-Error-Message` (qianfan/resources/requestor/base.py): an unknown or revoked access key
#: ("NotFound, cause: Could not find credential."), a wrong secret key ("SignatureDoesNotMatch,
#: cause: Fail to authn user: Signature does not match"). Matched in any message, any status.
_AUTH_MESSAGE = re.compile(
    r"could not find credential|fail to authn|signature does not match", re.IGNORECASE
)
_HINTS = {
    "SignatureDoesNotMatch": "check the secret key (the sk_env variable)",
    "InvalidHTTPAuthHeader": "check the access key and secret key",
    "InvalidAccessKeyId": "check the access key (the ak_env variable)",
    "RequestExpired": "the request's signing time was refused: is this machine's clock right?",
    "AccessDenied": "the credentials lack permission: QianfanFullControlAccessPolicy (or "
    "QianfanModelTuningFullControlAccessPolicy) is needed",
}

T = TypeVar("T")
#: What a marker listing yields: records with an id.
_Listed = TypeVar("_Listed", LiveModel, ServiceUse)


def check_set_id(value: str, where: str = "") -> str:
    # fullmatch: `$` would also match before a trailing newline ("am-x\n").
    if not _SET_ID.fullmatch(value):
        raise ProviderError(f"{where}{': ' if where else ''}refusing to use model set id {value!r}")
    return value


def check_version_id(value: str, where: str = "") -> str:
    if not _VERSION_ID.fullmatch(value):
        raise ProviderError(f"{where}{': ' if where else ''}refusing to use model id {value!r}")
    return value


def v1_model_key(value: str) -> str | int:
    """A model id as V1 `/model/batchDelete` takes it: an `am-` string, or a V1 integer id."""
    if _V1_INT_ID.fullmatch(value):
        return int(value)
    return check_set_id(value)


# -- pure parsing of recorded responses ---------------------------------------------------------


def v2_result(payload: Any, what: str) -> Any:
    """The `result` of a V2 answer; an error body (even with HTTP 200) raises."""
    if not isinstance(payload, dict):
        raise ShapeError(f"{what}: expected an object, got {json_type(type(payload))}")
    if "result" not in payload:
        code, message = payload.get("code"), payload.get("message")
        if code or message:
            raise _platform_error(
                what, str(code or "?"), str(message or ""), payload.get("requestId")
            )
        raise ShapeError(f"{what}: the answer has no 'result'")
    return payload["result"]


def v1_result(payload: Any, what: str) -> Any:
    """The `result` of a V1 answer: V1 reports errors with HTTP 200 and `error_code` (seed 001)."""
    if not isinstance(payload, dict):
        raise ShapeError(f"{what}: expected an object, got {json_type(type(payload))}")
    if payload.get("error_code") not in (None, 0, ""):
        raise _platform_error(
            what,
            str(payload["error_code"]),
            str(payload.get("error_msg", "")),
            payload.get("log_id"),
        )
    if "result" not in payload:
        raise ShapeError(f"{what}: the answer has no 'result'")
    return payload["result"]


def _platform_error(what: str, code: str, message: str, request_id: Any) -> ProviderError:
    text = f"{code}: {message}" + (f" [request id {request_id}]" if request_id else "")
    kind = _error_kind(None, code, message)
    refusal = Refusal(text, kind, code=code, platform_message=message, hint=_hint(code, kind))
    return platform_error(refusal, Call(operation=what))


def _error_kind(status: int | None, code: str | None, *messages: str | None) -> type[ProviderError]:
    """Which refusal an answer is. Credentials first, whatever the status and code say: the
    gateway answers an unknown access key with `NotFound`, which is never an object gone."""
    if (
        status in (401, 403)
        or code in _AUTH_CODES
        or any(_AUTH_MESSAGE.search(text) for text in messages if text)
    ):
        return AuthError
    if code in _IN_USE_CODES:
        return InUseError
    if code in _NOT_FOUND_CODES or (status == 404 and code):
        return NotFoundError
    return ProviderError


def _hint(code: str | None, kind: type[ProviderError]) -> str | None:
    if code in _HINTS:
        return _HINTS[code]
    if kind is AuthError:
        return (
            "the gateway refused the credentials (an access key unknown, revoked or mistyped, or "
            "a wrong secret key): check the ak_env and sk_env variables"
        )
    return None


def _page_marker(result: Any, where: str) -> str | None:
    """The marker of the next page, None on the last one."""
    page = required(result, "pageInfo", dict, where)
    truncated = required(page, "isTruncated", bool, where + ".pageInfo")
    marker = field(page, "nextMarker", str, where + ".pageInfo", optional=True)
    if truncated and not marker:
        raise ShapeError(f"{where}: isTruncated is true but there is no nextMarker")
    return marker if truncated else None


def parse_model_sets_page(
    payload: Any, records: MakeRecord = RawRecord.of
) -> tuple[list[LiveModel], str | None]:
    """A `DescribeCustomModelSets` answer: (model sets without version details, next marker);
    `records` makes their `raw` records."""
    where = "describe custom model sets"
    result = v2_result(payload, where)
    items = required(result, "customModelSetList", list, where)
    marker = _page_marker(result, where)
    models = []
    for index, item in enumerate(items):
        at = f"{where}: customModelSetList[{index}]"
        set_id = check_set_id(required(item, "modelSetId", str, at), at)
        version_ids = strings(item, "modelIds", at)
        version_names = strings(item, "modelNames", at)
        if len(version_ids) != len(version_names):
            raise ShapeError(f"{at}: modelIds and modelNames differ in length")
        # Trusted constructors: every value is checked above (validation, and the deep copy
        # of each default, were half of a marker page's CPU).
        models.append(
            LiveModel.trusted(
                id=set_id,
                name=required(item, "modelSetName", str, at),
                created=timestamp(item, "createTime", at),
                attributes={},
                preset=False,
                versions=tuple(
                    LiveVersion.trusted(
                        id=check_version_id(vid, at),
                        name=name,
                        model_id=set_id,
                        created=None,
                        attributes={},
                        preset=False,
                        raw=EMPTY_RECORD,
                    )
                    for vid, name in zip(version_ids, version_names, strict=True)
                ),
                raw=records(item),
            )
        )
    return models, marker


def parse_model_detail(
    payload: Any, listed: LiveModel, records: MakeRecord = RawRecord.of
) -> LiveModel:
    """A V1 `/modelDetail` answer for one set, checked against what the V2 listing said it holds."""
    where = f"model detail of {listed.id}"
    result = v1_result(payload, where)
    id_str = field(result, "modelIdStr", str, where, optional=True)
    if id_str is not None and id_str != listed.id:
        raise ShapeError(f"{where}: the answer is about model set {id_str!r}")
    source = field(result, "source", str, where, optional=True)
    description = field(result, "description", str, where, optional=True)
    versions = []
    for index, item in enumerate(required(result, "modelVersionList", list, where)):
        at = f"{where}: modelVersionList[{index}]"
        source_type = field(item, "sourceType", str, at, optional=True)
        versions.append(
            LiveVersion.trusted(
                id=check_version_id(required(item, "modelVersionIdStr", str, at), at),
                name=required(item, "version", str, at),
                model_id=listed.id,
                created=timestamp(item, "createTime", at),
                attributes={"description": field(item, "description", str, at, optional=True)},
                preset=source_type not in _OWN_VERSION_SOURCES,
                raw=records(item),
            )
        )
    detailed = sorted(version.id for version in versions)
    if len(set(detailed)) != len(detailed) or detailed != sorted(v.id for v in listed.versions):
        raise ListingIncompleteError(
            f"{where}: the set's versions ({len(versions)}) are not the ones the model set "
            f"listing named ({len(listed.versions)}): it changed during the listing",
            hint="run again; nothing was planned from the inconsistent listing",
        )
    return copied(
        listed,
        attributes={"description": description},
        preset=source not in _OWN_SET_SOURCES,
        versions=tuple(versions),
        raw=records(
            {
                **listed.raw.value(),
                **{k: v for k, v in result.items() if k != "modelVersionList"},
            }
        ),
    )


def parse_services_page(payload: Any) -> tuple[list[ServiceUse], str | None]:
    """A `DescribeServices` answer: (services, next marker).

    Every service counts, whatever its `runStatus` (API.md: a version is in use when a service
    names it; whether a stopped one still pins it is not documented, so fail closed). A service's
    `model_id` is its `modelSetId` as reported ("" when none): the snapshot re-derives it from
    the listing, which knows which set holds each version.
    """
    where = "describe services"
    result = v2_result(payload, where)
    items = required(result, "serviceList", list, where)
    marker = _page_marker(result, where)
    services = []
    for index, item in enumerate(items):
        at = f"{where}: serviceList[{index}]"
        services.append(
            ServiceUse(
                id=required(item, "serviceId", str, at),
                name=field(item, "name", str, at, optional=True) or "",
                status=field(item, "runStatus", str, at, optional=True) or "unknown",
                model_id=field(item, "modelSetId", str, at, optional=True) or "",
                version_id=field(item, "modelId", str, at, optional=True) or None,
            )
        )
    return services, marker


def attach_services(
    services: Iterable[ServiceUse], models: Iterable[LiveModel]
) -> list[ServiceUse]:
    """Services that use one of `models`, each naming the set that holds its version.

    The set comes from the listing (which holds every version id), not from the service's own
    `modelSetId`, so a service is never missed for a missing or stale set id. Services of other
    sets (System presets) block nothing here and are dropped.
    """
    owner = {version.id: model.id for model in models for version in model.versions}
    sets = {model.id for model in models}
    attached = []
    for service in services:
        if service.version_id is not None and service.version_id in owner:
            attached.append(service.model_copy(update={"model_id": owner[service.version_id]}))
        elif service.model_id in sets:
            attached.append(service)
    return attached


def map_error(response: Answer, body: Any) -> Refusal:
    """HTTP errors: `{requestId, code, message}` and `X-Bce-Error-Code`/`-Message` headers."""
    code = response.headers.get("X-Bce-Error-Code")
    message = response.headers.get("X-Bce-Error-Message")
    request_id = response.headers.get("X-Request-Id")
    if isinstance(body, dict):
        code = str(body.get("code") or code or "") or None
        message = str(body.get("message") or message or "") or None
        request_id = body.get("requestId") or request_id
    text = f"HTTP {response.status_code} {code or '?'}: {message or response.text[:200]}"
    if request_id:
        text += f" [request id {request_id}]"
    kind = _error_kind(
        response.status_code, code, message, response.headers.get("X-Bce-Error-Message")
    )
    return Refusal(
        text,
        kind,
        status=response.status_code,
        code=code,
        platform_message=message,
        hint=_hint(code, kind),
    )


def bce_signer(access_key: str, secret_key: str, *, clock: Callable[[], datetime]) -> Signer:
    """Signs each request with `bce-auth-v1`, over host, content-type and x-bce-date."""

    def sign(request: Signable) -> None:
        timestamp = clock().strftime(BCE_DATE_FORMAT)
        request.headers["x-bce-date"] = timestamp
        request.headers["Authorization"] = bce_authorization(
            access_key=access_key,
            secret_key=secret_key,
            timestamp=timestamp,
            expiration=EXPIRATION,
            method=request.method,
            path=request.url.path,
            params=query_pairs(request.url),
            headers=header_values(request.headers, SIGNED_HEADERS),
            signed_headers=SIGNED_HEADERS,
        )

    return sign


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


# -- the provider -------------------------------------------------------------------------------


class QianfanProvider:
    type = "qianfan"

    def __init__(
        self,
        name: str,
        *,
        http: Http,
        endpoint: str,
        model_delete: str = "v1_batch",
    ) -> None:
        if model_delete not in ("v1_batch", "v2"):
            raise ValueError(f"model_delete must be 'v1_batch' or 'v2', not {model_delete!r}")
        self.name = name
        self.http = http
        self.endpoint = endpoint
        self.model_delete_batch = BATCH_SIZE if model_delete == "v1_batch" else 1
        self._model_delete = model_delete

    @property
    def requests_sent(self) -> int:
        return self.http.sent

    async def _v2(self, what: str, route: str, action: str, body: dict[str, Any]) -> Any:
        """One V2 action; its `result`, or the platform's refusal as a `ProviderError`."""
        response = await self.http.request(
            what, "POST", f"{self.endpoint}/v2/{route}", params={"Action": action}, json=body
        )
        payload = parse_json(response, f"{self.name}: {what}")
        return self._checked(what, v2_result, payload, what)

    async def _v1(
        self, what: str, path: str, body: dict[str, Any], *, within: Headroom | None = None
    ) -> Any:
        """One V1 model repository call; its raw answer (V1 errors come with HTTP 200)."""
        response = await self.http.request(
            what,
            "POST",
            f"{self.endpoint}/wenxinworkshop/modelrepo/{path}",
            json=body,
            within=within,
        )
        return parse_json(response, f"{self.name}: {what}")

    def _checked(self, what: str, parse: Callable[..., T], *args: Any) -> T:
        """Run a pure parse; its errors name the provider and the call."""
        try:
            return parse(*args)
        except ProviderError as error:
            raise platform_error(
                Refusal.of(error, what), Call(self.name, what), redact=self.http.redact
            ) from None

    # -- listing ------------------------------------------------------------------------------

    async def snapshot(
        self, progress: Progress | None = None, *, records: MakeRecord = RawRecord.of
    ) -> Snapshot:
        # Each set's details are asked for as soon as its marker page arrives: the pages come
        # one after another, so waiting for the last one first would add their whole chain.
        details: Fanout[LiveModel] = Fanout()
        # Detail calls in flight at most: one less than the requests allowed, so that the next
        # marker page, which the whole listing waits on, never queues behind them.
        slots = Headroom(self.http.limit, spare=1)
        done = 0

        async def detailed(listed: LiveModel) -> LiveModel:
            nonlocal done
            what = f"model detail of {listed.id}"
            payload = await self._v1(what, "modelDetail", {"modelId": listed.id}, within=slots)
            model = self._checked(what, parse_model_detail, payload, listed, records)
            done += 1
            if progress is not None:
                # How many sets there are is known once the last page came.
                progress(f"{self.name}: model sets listed", done, details.total)
            return model

        def on_page(page: Sequence[LiveModel]) -> None:
            for listed in page:
                details.start(detailed(listed))

        async def sets() -> list[LiveModel]:
            try:
                return await self._list_sets(records, on_page)
            finally:
                slots.spend_spare()  # no marker page to wait for: details may use every slot

        (_, services), models = await details.run(sets(), self._list_services())
        return Snapshot(
            provider=self.name,
            provider_type=self.type,
            location=LOCATION,
            models=tuple(models),
            services=tuple(attach_services(services, models)),
        )

    async def _list_sets(
        self,
        records: MakeRecord = RawRecord.of,
        on_page: Callable[[Sequence[LiveModel]], None] | None = None,
    ) -> list[LiveModel]:
        return await self._pages(
            "describe custom model sets",
            "model",
            "DescribeCustomModelSets",
            lambda payload: parse_model_sets_page(payload, records),
            noun="model set",
            on_page=on_page,
        )

    async def _list_services(self) -> list[ServiceUse]:
        return await self._pages(
            "describe services", "service", "DescribeServices", parse_services_page, noun="service"
        )

    async def _pages(
        self,
        what: str,
        route: str,
        action: str,
        parse: Callable[[Any], tuple[list[_Listed], str | None]],
        *,
        noun: str,
        on_page: Callable[[Sequence[_Listed]], None] | None = None,
    ) -> list[_Listed]:
        """Every page of a V2 marker listing, in order; an item seen twice, or a marker sent
        twice, fails the listing (the account changed under it). With `on_page`, each page's
        items, checked, go to it as soon as they arrive, and none is returned: held here too,
        the 10,000 sets of a large listing (with their records) were 40 MB more at its end."""
        items: list[_Listed] = []
        take = on_page if on_page is not None else items.extend
        seen: set[str] = set()
        marker: str | None = None
        markers: set[str] = set()
        while True:
            body: dict[str, Any] = {"maxKeys": PAGE_SIZE}
            if marker is not None:
                body["marker"] = marker
            response = await self.http.request(
                what, "POST", f"{self.endpoint}/v2/{route}", params={"Action": action}, json=body
            )
            payload = parse_json(response, f"{self.name}: {what}")
            page, marker = self._checked(what, parse, payload)
            for item in page:
                if item.id in seen:
                    raise ListingIncompleteError(
                        f"{self.name}: {what}: {noun} {item.id} appeared on two pages: the "
                        "account changed during the listing",
                        hint="run again; nothing was planned from the inconsistent listing",
                    )
                seen.add(item.id)
            take(page)
            if marker is None:
                return items
            if marker in markers:
                raise ListingIncompleteError(
                    f"{self.name}: {what}: the platform sent the marker {marker!r} twice: the "
                    "listing would never end",
                    hint="run again; nothing was planned from the incomplete listing",
                )
            markers.add(marker)

    # -- deleting -----------------------------------------------------------------------------

    async def delete_version(self, model_id: str, version_id: str) -> None:
        """V2 `DeleteModel` (seed 002): one version ("model") of a model set."""
        what = f"delete model {version_id} of set {model_id}"
        await self._v2(what, "model", "DeleteModel", {"modelId": check_version_id(version_id)})

    async def delete_model(self, model_id: str) -> None:
        (error,) = await self.delete_models([model_id])
        if error is not None:
            raise error

    async def delete_models(self, model_ids: Sequence[str]) -> list[ReconcileError | None]:
        """Delete whole model sets; one outcome per id, in order (None: deleted).

        V1: string ids and integer ids go in separate calls (seed 001: never mixed), up to
        `BATCH_SIZE` a call. A refused or failed batch is retried id by id, so one refused set does
        not hide whether the others went; an id the single call refuses is looked up, and one
        that no longer exists is reported as already gone (V1 answers an unknown id with the
        same "param invalid" as a malformed one).
        """
        outcomes: list[ReconcileError | None] = [None] * len(model_ids)
        keys: dict[int, str | int] = {}
        for index, model_id in enumerate(model_ids):
            try:
                keys[index] = (
                    check_set_id(model_id) if self._model_delete == "v2" else v1_model_key(model_id)
                )
            except ProviderError as error:
                outcomes[index] = platform_error(Refusal.of(error), Call(self.name))
        if self._model_delete == "v2":
            for index, key in keys.items():
                outcomes[index] = await self._outcome(self._delete_set_v2(str(key)))
            return outcomes
        strings = [index for index, key in keys.items() if isinstance(key, str)]
        ints = [index for index, key in keys.items() if isinstance(key, int)]
        for group in (strings, ints):
            for chunk in _chunks(group, BATCH_SIZE):
                if len(chunk) > 1:
                    refused = await self._outcome(self._batch_delete([keys[i] for i in chunk]))
                    if refused is None:
                        continue
                    if isinstance(refused, AuthError):
                        # The credentials were refused: every single call would be refused too.
                        for index in chunk:
                            outcomes[index] = refused
                        continue
                for index in chunk:
                    outcomes[index] = await self._delete_one_v1(keys[index])
        return outcomes

    async def _outcome(self, call: Awaitable[None]) -> ReconcileError | None:
        try:
            await call
        except ReconcileError as error:
            return error
        return None

    async def _batch_delete(self, ids: Sequence[str | int]) -> None:
        named = ", ".join(map(str, ids)) if len(ids) <= 3 else f"{ids[0]} ... {ids[-1]}"
        what = f"batch delete of {len(ids)} model set(s) ({named})"
        payload = await self._v1(what, "model/batchDelete", {"modelIDs": list(ids)})
        result = self._checked(what, v1_result, payload, what)
        if result != {}:
            # Seed 001: `{}` means deleted. Anything else (a list of failures?) is not proof.
            raise ProviderError(
                f"{self.name}: {what}: the platform answered result {result!r} instead of {{}}: "
                "not counted as deleted",
                hint="run plan again to see what is still live",
            )

    async def _delete_one_v1(self, key: str | int) -> ReconcileError | None:
        error = await self._outcome(self._batch_delete([key]))
        if error is None or not isinstance(key, str):
            return error
        if isinstance(error, NotFoundError | AuthError):
            return error
        if isinstance(error, ProviderError) and error.status is not None:
            return error  # the gateway refused the request itself (throttling, ...)
        try:
            await self._v2(
                f"describe model set {key}", "model", "DescribeModelSet", {"modelSetId": key}
            )
        except NotFoundError:
            return NotFoundError(
                f"{self.name}: model set {key} no longer exists ({error.message})",
                provider=self.name,
                operation=f"batch delete of 1 model set(s) ({key})",
            )
        except ReconcileError:
            return error
        return error

    async def _delete_set_v2(self, model_id: str) -> None:
        what = f"delete model set {model_id}"
        await self._v2(what, "model", "DeleteModelSet", {"modelSetId": model_id})

    async def aclose(self) -> None:
        await self.http.client.aclose()


# -- the registry entry ---------------------------------------------------------------------------

#: The built-in emulator's fixed demo credentials (its state files list them as valid).
EMULATOR_QIANFAN_KEYS = ("demo-qianfan-ak", "demo-qianfan-sk")


def _authenticate(keys: Keys, spec: Any, clock: Callable[[], datetime]) -> Auth:
    assert keys.access_key is not None and keys.secret_key is not None  # as the wiring reads
    return Auth(sign=bce_signer(keys.access_key, keys.secret_key, clock=clock))


def _open(opening: Opening) -> QianfanProvider:
    return QianfanProvider(
        opening.name,
        http=opening.http,
        endpoint=opening.endpoint(opening.spec.endpoint),
        model_delete=opening.spec.model_delete,
    )


PLATFORM = Platform(
    type=QianfanProvider.type,
    title="Qianfan",
    map_error=map_error,
    authenticate=_authenticate,
    open=_open,
    emulator_url="http://qianfan.emulator",
    emulator_keys=Keys(access_key=EMULATOR_QIANFAN_KEYS[0], secret_key=EMULATOR_QIANFAN_KEYS[1]),
    default_key_env=("QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY"),
)
