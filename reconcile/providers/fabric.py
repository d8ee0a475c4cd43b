"""Huawei Cloud DataArts Fabric: list models, versions and service instances; delete.

Reading is split as fetch + pure parse: `parse_models_page`, `parse_versions_page` and
`parse_services_page` turn recorded JSON into records with no network, and are tested that way.

Over 450 lines on purpose: the whole contract of one platform (ids, pure parsing, error
mapping, signing, the provider), read top to bottom as API.md section 1 is.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

from reconcile.errors import (
    AuthError,
    InUseError,
    ListingIncompleteError,
    NotFoundError,
    ProviderError,
    ReconcileError,
)
from reconcile.model import (
    LiveModel,
    LiveVersion,
    MakeRecord,
    RawRecord,
    ServiceUse,
    Snapshot,
    copied,
)
from reconcile.providers.base import (
    Auth,
    Keys,
    Opening,
    Platform,
    Progress,
    Signable,
    Signer,
)
from reconcile.providers.failures import Refusal
from reconcile.providers.fanout import Fanout, gather_all
from reconcile.providers.http import Answer, Http, parse_json
from reconcile.providers.shapes import ShapeError, field, required, timestamp
from reconcile.providers.signing import (
    SDK_SIGNED_HEADERS,
    header_values,
    query_pairs,
    sdk_authorization,
    sdk_date,
)

PAGE_LIMIT = 100
#: Path ids (seed 000): model and workspace ids are 1-36 of these; version ids 32-36 (seed 003).
_MODEL_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")
_VERSION_ID = re.compile(r"^[A-Za-z0-9-]{32,36}$")
#: Service instances in these states serve nothing and do not block a delete.
_GONE_STATUSES = frozenset({"DELETED"})
#: The error-code family of the service's own refusals (as opposed to gateway or common errors).
_SERVICE_ERROR_PREFIX = "dataartsfabric."
#: The API gateway's codes (`APIG.0301`, `APIGW.0301`): its answers are about the request.
_GATEWAY_CODE = re.compile(r"APIGW?\.(\d{4})")
#: The gateway's credential and permission refusals (its error code tables): 03xx are IAM and app
#: authentication, signatures, permission and tokens to refresh (bar 0308, throttling); 1002 a
#: token that does not resolve; 1005 no permission for the method.
_GATEWAY_AUTH = frozenset({f"03{n:02d}" for n in range(1, 100) if n != 8} | {"1002", "1005"})

T = TypeVar("T")
#: A pinned order for offset paging: with the default (newest first) every object created
#: during a listing shifts the later pages. Oldest first, new objects land on the last page.
_OLDEST_FIRST = {"sort_by": "CREATE_TIME", "order_by": "ASC"}


def check_model_id(value: str, where: str = "") -> str:
    """A model or workspace id, checked before it goes into a URL path."""
    # fullmatch: `$` would also match before a trailing newline ("m1\n").
    if not _MODEL_ID.fullmatch(value):
        raise ProviderError(
            f"{where}{': ' if where else ''}refusing to use model id {value!r}: Fabric ids are "
            "1-36 letters, digits and '-'"
        )
    return value


def check_version_id(value: str, where: str = "") -> str:
    if not _VERSION_ID.fullmatch(value):
        raise ProviderError(
            f"{where}{': ' if where else ''}refusing to use version id {value!r}: Fabric version "
            "ids are 32-36 letters, digits and '-'"
        )
    return value


# -- pure parsing of recorded responses ---------------------------------------------------------


def _page(payload: Any, key: str, where: str) -> tuple[int, list[Any]]:
    total = required(payload, "total", int, where)
    items = required(payload, key, list, where)
    if total < 0:
        raise ShapeError(f"{where}: field 'total' is negative ({total})")
    return total, items


def parse_version(
    item: Any, model_id: str, where: str, records: MakeRecord = RawRecord.of
) -> LiveVersion:
    version_id = check_version_id(required(item, "id", str, where), where)
    config = field(item, "config", dict, where, optional=True) or {}
    llm = field(config, "llm_model_config", dict, f"{where}.config", optional=True) or {}
    llm_where = f"{where}.config.llm_model_config"
    attributes: dict[str, str | None] = {
        "description": field(item, "description", str, where, optional=True),
        "base_model_type": field(llm, "base_model_type", str, llm_where, optional=True),
        "model_path": field(llm, "model_path", str, llm_where, optional=True),
    }
    return LiveVersion.trusted(
        id=version_id,
        name=required(item, "name", str, where),
        model_id=model_id,
        created=timestamp(item, "create_time", where),
        attributes=attributes,
        preset=False,
        raw=records(item),
    )


def parse_models_page(
    payload: Any, records: MakeRecord = RawRecord.of
) -> tuple[int, list[LiveModel]]:
    """A page of `GET /v1/workspaces/{ws}/models`: (total, models without their versions);
    `records` makes their `raw` records."""
    total, items = _page(payload, "models", "list models")
    models = []
    for index, item in enumerate(items):
        where = f"list models: models[{index}]"
        models.append(
            LiveModel.trusted(
                id=check_model_id(required(item, "id", str, where), where),
                name=required(item, "name", str, where),
                created=timestamp(item, "create_time", where),
                attributes={"description": field(item, "description", str, where, optional=True)},
                # PUBLIC models are presets shared by the platform: never the caller's to delete.
                # Only PRIVATE models are the caller's own: PUBLIC ones are platform presets, and
                # a model whose visibility is missing or unknown is not assumed deletable.
                preset=field(item, "visibility", str, where, optional=True) != "PRIVATE",
                versions=(),
                raw=records(item),
            )
        )
    return total, models


def parse_versions_page(
    payload: Any, model_id: str, records: MakeRecord = RawRecord.of
) -> tuple[int, list[LiveVersion]]:
    """A page of `GET .../models/{model_id}/versions`: (total, versions)."""
    total, items = _page(payload, "versions", f"list versions of model {model_id}")
    return total, [
        parse_version(
            item, model_id, f"list versions of model {model_id}: versions[{index}]", records
        )
        for index, item in enumerate(items)
    ]


def parse_services_page(payload: Any) -> tuple[int, list[ServiceUse]]:
    """A page of `GET /v1/workspaces/{ws}/services/instances`: (total, services that serve)."""
    total, items = _page(payload, "service_instances", "list service instances")
    services = []
    for index, item in enumerate(items):
        where = f"list service instances: service_instances[{index}]"
        status = required(item, "status", str, where)
        source = field(item, "source", dict, where, optional=True) or {}
        model_id = field(source, "id", str, where + ".source", optional=True)
        version_id = field(source, "version_id", str, where + ".source", optional=True)
        if status in _GONE_STATUSES or not (model_id or version_id):
            continue
        services.append(
            ServiceUse(
                id=required(item, "id", str, where),
                name=field(item, "name", str, where, optional=True) or "",
                status=status,
                # A source naming only a version still holds that version.
                model_id=model_id or "",
                version_id=version_id or None,
            )
        )
    return total, services


def map_error(response: Answer, body: Any) -> Refusal:
    """Fabric's error bodies: `{error_code, error_msg, solution_msg?}`; the 403 body nests an
    `error` object and has a numeric `error_code`."""
    status = response.status_code
    code = message = solution = None
    if isinstance(body, dict):
        raw_code = body.get("error_code")
        code = str(raw_code) if raw_code is not None else None
        message = body.get("error_msg") if isinstance(body.get("error_msg"), str) else None
        solution = body.get("solution_msg") if isinstance(body.get("solution_msg"), str) else None
    text = f"HTTP {status}"
    if code:
        text += f" {code}"
    text += f": {message}" if message else f" (body: {response.text[:200]!r})"
    request_id = response.headers.get("X-Request-Id")
    if request_id:
        text += f" [request id {request_id}]"
    kind = _error_kind(status, code, solution)
    return Refusal(
        text,
        kind,
        status=status,
        code=code,
        platform_message=message,
        solution=solution,
        hint=solution or _default_hint(status, kind),
    )


def _error_kind(status: int, code: str | None, solution: str | None) -> type[ProviderError]:
    """Which refusal an error answer is. Credentials first: whatever else it says, a refused
    caller is never an object that is gone. A gateway's answer (no such API, throttling) is about
    the request, never about the object; nor is a 404 that carries no platform error code (a
    proxy's, or a path the service does not have)."""
    gateway = _GATEWAY_CODE.fullmatch(code or "")
    if status in (401, 403) or (gateway is not None and gateway.group(1) in _GATEWAY_AUTH):
        return AuthError
    if gateway is not None or code is None:
        return ProviderError
    if status == 404:
        return NotFoundError
    if status == 400 and code.startswith(_SERVICE_ERROR_PREFIX) and solution:
        return InUseError
    return ProviderError


def _default_hint(status: int, kind: type[ProviderError]) -> str | None:
    if kind is AuthError:
        if status == 403:
            return "the credentials lack permission on this workspace"
        return "check the credentials named in the manifest (token expired? wrong AK/SK?)"
    if status == 404 and kind is not NotFoundError:
        return (
            "the answer is not the Fabric service's own (no error code, or the gateway's): check "
            "the endpoint and services_endpoint in the manifest"
        )
    return {
        408: "the platform timed out; run again",
        500: "the platform failed; run again later",
    }.get(status)


def sdk_hmac_signer(
    access_key: str,
    secret_key: str,
    *,
    project_id: str | None = None,
    security_token: str | None = None,
    clock: Callable[[], datetime],
) -> Signer:
    """Signs each request with `SDK-HMAC-SHA256` (AK/SK), as Huawei's SDK does."""

    def sign(request: Signable) -> None:
        request.headers["X-Sdk-Date"] = sdk_date(clock())
        if project_id:
            request.headers["X-Project-Id"] = project_id
        if security_token:
            request.headers["X-Security-Token"] = security_token
        request.headers["Authorization"] = sdk_authorization(
            access_key=access_key,
            secret_key=secret_key,
            method=request.method,
            path=request.url.raw_path.split(b"?", 1)[0].decode("ascii"),
            params=query_pairs(request.url),
            headers=header_values(request.headers, SDK_SIGNED_HEADERS),
            body=request.content,
        )

    return sign


# -- the provider -------------------------------------------------------------------------------


class FabricProvider:
    type = "fabric"
    #: Fabric deletes one model per call.
    model_delete_batch = 1

    def __init__(
        self,
        name: str,
        *,
        workspace_id: str,
        http: Http,
        services_http: Http,
        endpoint: str,
        services_endpoint: str,
    ) -> None:
        self.name = name
        self.workspace_id = check_model_id(workspace_id)
        self.http = http
        self.services_http = services_http
        self.base = f"{endpoint}/v1/workspaces/{quote(workspace_id, safe='')}"
        self.services_base = f"{services_endpoint}/v1/workspaces/{quote(workspace_id, safe='')}"

    @property
    def requests_sent(self) -> int:
        return self.http.sent + (
            self.services_http.sent if self.services_http is not self.http else 0
        )

    async def snapshot(
        self, progress: Progress | None = None, *, records: MakeRecord = RawRecord.of
    ) -> Snapshot:
        # Each model's versions are asked for as soon as its page arrives: the pages after the
        # first come in parallel, and waiting for the last one held every version listing back.
        listings: Fanout[LiveModel] = Fanout()
        done = 0

        async def with_versions(model: LiveModel) -> LiveModel:
            nonlocal done
            versions = await self._list_versions(model.id, records)
            done += 1
            if progress is not None:
                progress(f"{self.name}: models listed", done, listings.total)
            return copied(model, versions=tuple(versions))

        def on_page(page: Sequence[LiveModel]) -> None:
            for model in page:
                listings.start(with_versions(model))

        (models, services), complete = await listings.run(
            self._list_models(records, on_page), self._list_services()
        )
        # In the listing's order (pages arrive in any order); ids are unique (`_all_pages`).
        by_id = {model.id: model for model in complete}
        return Snapshot(
            provider=self.name,
            provider_type=self.type,
            location=f"workspace {self.workspace_id}",
            models=tuple(by_id[model.id] for model in models),
            services=tuple(services),
        )

    async def _list_models(
        self,
        records: MakeRecord = RawRecord.of,
        on_page: Callable[[Sequence[LiveModel]], None] | None = None,
    ) -> list[LiveModel]:
        return await self._all_pages(
            "list models",
            lambda params: self._get(
                self.http, "list models", f"{self.base}/models", {**params, **_OLDEST_FIRST}
            ),
            lambda payload: parse_models_page(payload, records),
            on_page=on_page,
        )

    async def _list_versions(
        self, model_id: str, records: MakeRecord = RawRecord.of
    ) -> list[LiveVersion]:
        url = f"{self.base}/models/{quote(check_model_id(model_id), safe='')}/versions"
        what = f"list versions of model {model_id}"
        return await self._all_pages(
            what,
            lambda params: self._get(self.http, what, url, params),
            lambda payload: parse_versions_page(payload, model_id, records),
        )

    async def _list_services(self) -> list[ServiceUse]:
        url = f"{self.services_base}/services/instances"
        return await self._all_pages(
            "list service instances",
            lambda params: self._get(
                self.services_http, "list service instances", url, {**params, **_OLDEST_FIRST}
            ),
            parse_services_page,
            # Filtered pages (DELETED services dropped) are shorter than the total says.
            count=lambda payload: len(payload["service_instances"]),
        )

    async def _get(self, http: Http, what: str, url: str, params: Mapping[str, int | str]) -> Any:
        response = await http.request(what, "GET", url, params=params)
        return parse_json(response, f"{self.name}: {what}")

    async def _all_pages(
        self,
        what: str,
        fetch: Callable[[dict[str, int]], Awaitable[Any]],
        parse: Callable[[Any], tuple[int, Sequence[T]]],
        count: Callable[[Any], int] | None = None,
        on_page: Callable[[Sequence[T]], None] | None = None,
    ) -> list[T]:
        """Every item of an offset-paged listing: the first page tells `total`, the rest are
        fetched in parallel. Any disagreement (total changing between pages, a short page, an
        id seen twice) fails the listing: a plan is never made from a partial one. With
        `on_page`, each page's items go to it as soon as the page arrives."""
        first = await fetch({"offset": 0, "limit": PAGE_LIMIT})
        total, items = parse(first)

        async def page(offset: int) -> tuple[Sequence[T], int]:
            payload = await fetch({"offset": offset, "limit": PAGE_LIMIT})
            page_total, page_items = parse(payload)
            if page_total != total:
                raise ListingIncompleteError(
                    f"{self.name}: {what}: the total changed from {total} to {page_total} while "
                    f"paging (offset {offset}): the workspace changed during the listing",
                    hint="run again; nothing was planned from the partial listing",
                )
            if on_page is not None:
                on_page(page_items)
            return page_items, count(payload) if count else len(page_items)

        # Started before the first page's items are handed on, so that the pages, each of which
        # brings more work, are asked for first.
        later = [
            asyncio.ensure_future(page(offset)) for offset in range(PAGE_LIMIT, total, PAGE_LIMIT)
        ]
        if on_page is not None:
            on_page(items)
        pages = await gather_all(later)
        result = list(items)
        counts = [count(first) if count else len(items)]
        for page_items, page_count in pages:
            result.extend(page_items)
            counts.append(page_count)
        if sum(counts) != total:
            raise ListingIncompleteError(
                f"{self.name}: {what}: the platform announced {total} items but the pages held "
                f"{sum(counts)}",
                hint="run again; nothing was planned from the inconsistent listing",
            )
        ids = [getattr(item, "id", None) for item in result]
        if len(set(ids)) != len(ids):
            raise ListingIncompleteError(
                f"{self.name}: {what}: an item appeared on two pages: the workspace changed "
                "during the listing",
                hint="run again; nothing was planned from the inconsistent listing",
            )
        return result

    async def delete_version(self, model_id: str, version_id: str) -> None:
        url = (
            f"{self.base}/models/{quote(check_model_id(model_id), safe='')}"
            f"/versions/{quote(check_version_id(version_id), safe='')}"
        )
        await self.http.request(
            f"delete version {version_id} of model {model_id}", "DELETE", url, ok=(200, 202, 204)
        )

    async def delete_model(self, model_id: str) -> None:
        url = f"{self.base}/models/{quote(check_model_id(model_id), safe='')}"
        await self.http.request(f"delete model {model_id}", "DELETE", url, ok=(200, 204))

    async def delete_models(self, model_ids: Sequence[str]) -> list[ReconcileError | None]:
        outcomes: list[ReconcileError | None] = []
        for model_id in model_ids:
            try:
                await self.delete_model(model_id)
            except ReconcileError as error:
                outcomes.append(error)
            else:
                outcomes.append(None)
        return outcomes

    async def aclose(self) -> None:
        await self.http.client.aclose()
        if self.services_http.client is not self.http.client:
            await self.services_http.client.aclose()


# -- the registry entry ---------------------------------------------------------------------------

#: The built-in emulator's fixed demo token (its state files list it as valid).
EMULATOR_FABRIC_TOKEN = "demo-fabric-token"


def _authenticate(keys: Keys, spec: Any, clock: Callable[[], datetime]) -> Auth:
    """A token as `X-Auth-Token`, or the AK/SK signer (with the project and security token)."""
    if keys.token is not None:
        return Auth(headers={"X-Auth-Token": keys.token})
    assert keys.access_key is not None and keys.secret_key is not None  # as the wiring reads
    return Auth(
        sign=sdk_hmac_signer(
            keys.access_key,
            keys.secret_key,
            project_id=spec.project_id,
            security_token=keys.security_token,
            clock=clock,
        )
    )


def _open(opening: Opening) -> FabricProvider:
    spec = opening.spec
    return FabricProvider(
        opening.name,
        workspace_id=spec.workspace_id,
        http=opening.http,
        services_http=opening.http,
        endpoint=opening.endpoint(spec.endpoint),
        services_endpoint=opening.endpoint(spec.services_endpoint or spec.endpoint),
    )


PLATFORM = Platform(
    type=FabricProvider.type,
    title="Fabric",
    map_error=map_error,
    authenticate=_authenticate,
    open=_open,
    emulator_url="http://fabric.emulator",
    emulator_keys=Keys(token=EMULATOR_FABRIC_TOKEN),
    accepts_token=True,
    accepts_security_token=True,
)
