"""Malformed platform responses: each is one error naming the call, never a crash.

`tests/bad_inputs/responses/*.json` hold recorded payloads ({"parser", "payload", "expected"}) for
the pure parsers; the transport-level cases (HTML, truncated JSON, huge bodies) are below.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.errors import ProviderError
from reconcile.model import LiveModel, LiveVersion
from reconcile.providers import fabric, qianfan
from reconcile.providers.adaptive import FixedLimit
from reconcile.providers.http import MAX_BODY_BYTES, Http, RetryPolicy, parse_json

CASES = Path(__file__).parent / "bad_inputs" / "responses"
#: What the Qianfan model set listing said `am-abc` holds, for the `/modelDetail` cases.
LISTED_SET = LiveModel(
    id="am-abc",
    name="chat",
    versions=(
        LiveVersion(id="amv-abc1", name="V1", model_id="am-abc"),
        LiveVersion(id="amv-abc2", name="V2", model_id="am-abc"),
    ),
)
PARSERS: dict[str, Callable[[Any], object]] = {
    "fabric.models": fabric.parse_models_page,
    "fabric.versions": lambda payload: fabric.parse_versions_page(payload, "m1"),
    "fabric.services": fabric.parse_services_page,
    "qianfan.model_sets": qianfan.parse_model_sets_page,
    "qianfan.model_detail": lambda payload: qianfan.parse_model_detail(payload, LISTED_SET),
    "qianfan.services": qianfan.parse_services_page,
}


def _cases() -> list[Path]:
    return sorted(CASES.glob("*.json"))


@pytest.mark.parametrize("case", _cases(), ids=lambda path: path.stem)
def test_each_malformed_response_gives_its_exact_error(case: Path) -> None:
    data = json.loads(case.read_text(encoding="utf-8"))
    with pytest.raises(ProviderError) as caught:
        PARSERS[data["parser"]](data["payload"])
    assert str(caught.value) == data["expected"]


def test_the_corpus_is_large_enough() -> None:
    assert len(_cases()) >= 20
    by_platform = {name: [c for c in _cases() if c.stem.startswith(name)] for name in PLATFORMS}
    assert all(len(cases) >= 10 for cases in by_platform.values()), by_platform
    used = {json.loads(case.read_text(encoding="utf-8"))["parser"] for case in _cases()}
    assert used == set(PARSERS)


PLATFORMS = ("fabric-", "qianfan-")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
KEYS = st.sampled_from(
    [
        "id",
        "name",
        "total",
        "models",
        "versions",
        "service_instances",
        "status",
        "source",
        "config",
        "llm_model_config",
        "create_time",
        "visibility",
        "version_id",
        "description",
    ]
)
SHAPED = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=40,
)
QIANFAN_KEYS = st.sampled_from(
    [
        "requestId",
        "result",
        "code",
        "message",
        "log_id",
        "error_code",
        "error_msg",
        "pageInfo",
        "isTruncated",
        "nextMarker",
        "modelSetId",
        "modelSetName",
        "modelIds",
        "modelNames",
        "createTime",
        "modelIdStr",
        "source",
        "description",
        "modelVersionList",
        "modelVersionIdStr",
        "version",
        "sourceType",
        "serviceId",
        "name",
        "runStatus",
        "modelId",
    ]
)
#: Leaves that pass the checks on the way (ids of the right shape, times, the listed versions),
#: so that examples get past the first check and reach the deeper ones.
QIANFAN_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-3, 300)
    | st.text(max_size=20)
    | st.sampled_from(["am-abc", "amv-abc1", "amv-abc2", "V1", "System", "2024-06-04T18:38:59"])
)
QIANFAN_VALUES = st.recursive(
    QIANFAN_LEAVES,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(QIANFAN_KEYS, children, max_size=6)
    ),
    max_leaves=20,
)
#: Any of the fields of a listed item, each present or not, with plausible or odd values.
QIANFAN_ITEM = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(
        [
            *("modelSetId", "modelSetName", "createTime", "serviceId", "runStatus", "modelId"),
            *("modelVersionIdStr", "version", "sourceType", "description", "name"),
        ],
        QIANFAN_VALUES,
    )
    | {
        "modelIds": st.lists(st.sampled_from(["amv-abc1", "amv-abc2"]) | QIANFAN_LEAVES),
        "modelNames": st.lists(st.sampled_from(["V1", "V2"]) | QIANFAN_LEAVES),
    },
)
QIANFAN_PAGE_INFO = st.one_of(
    st.fixed_dictionaries({"isTruncated": st.booleans()}, optional={"nextMarker": QIANFAN_LEAVES}),
    st.dictionaries(QIANFAN_KEYS, QIANFAN_VALUES, max_size=4),
)
QIANFAN_SHAPED = st.builds(
    lambda items, page, extra, list_key: {
        "requestId": "r",
        "log_id": "1",
        "result": {**extra, list_key: items, "pageInfo": page},
    },
    st.lists(QIANFAN_ITEM, max_size=3),
    QIANFAN_PAGE_INFO,
    st.fixed_dictionaries({}, optional={"modelIdStr": QIANFAN_VALUES, "source": QIANFAN_VALUES}),
    st.sampled_from(["customModelSetList", "serviceList", "modelVersionList"]),
)


@settings(max_examples=400, deadline=None)
@given(payload=st.one_of(JSON, SHAPED), parser=st.sampled_from(sorted(PARSERS)))
def test_parsers_raise_only_provider_errors_on_any_json(payload: Any, parser: str) -> None:
    with contextlib.suppress(ProviderError):
        PARSERS[parser](payload)


@settings(max_examples=300, deadline=None)
@given(
    payload=st.one_of(QIANFAN_SHAPED, st.dictionaries(QIANFAN_KEYS, QIANFAN_VALUES)),
    parser=st.sampled_from([name for name in sorted(PARSERS) if name.startswith("qianfan.")]),
)
def test_qianfan_parsers_raise_only_provider_errors_on_near_valid_answers(
    payload: Any, parser: str
) -> None:
    with contextlib.suppress(ProviderError):
        PARSERS[parser](payload)


def _http(handler: Callable[[httpx.Request], httpx.Response]) -> Http:
    return Http(
        httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        provider="fab",
        map_error=fabric.map_error,
        limit=FixedLimit(1),
        retry=RetryPolicy(attempts=1),
    )


def _get(handler: Callable[[httpx.Request], httpx.Response]) -> Any:
    async def scenario() -> Any:
        http = _http(handler)
        try:
            response = await http.request("list models", "GET", "https://fabric.test/v1/x")
            return parse_json(response, "fab: list models")
        finally:
            await http.client.aclose()

    return asyncio.run(scenario())


def test_html_instead_of_json_is_an_error_naming_the_call() -> None:
    page = b"<html><body>502 Bad Gateway</body></html>"
    with pytest.raises(ProviderError) as caught:
        _get(lambda _: httpx.Response(200, content=page, headers={"Content-Type": "text/html"}))
    assert str(caught.value).startswith(
        "fab: list models: the platform answered HTTP 200 with a body that is not JSON "
        "(text/html, 41 bytes)"
    )


def test_truncated_json_is_an_error_naming_the_call() -> None:
    with pytest.raises(ProviderError, match=r"fab: list models: .* not JSON"):
        _get(lambda _: httpx.Response(200, content=b'{"total": 3, "models": [{"id"'))


def test_nan_is_not_json_and_is_refused() -> None:
    """Python's parser takes NaN and Infinity; a record holding them could not be written back
    (journal receipts, plan files) as it was read."""
    with pytest.raises(ProviderError, match=r"fab: list models: .* not JSON"):
        _get(lambda _: httpx.Response(200, content=b'{"total": 1, "models": [{"x": NaN}]}'))


def test_a_number_beyond_a_float_s_range_is_refused_naming_it() -> None:
    """JSON, but 1e400 cannot be kept as the platform sent it (a receipt would say null or
    Infinity): the listing fails, saying which number."""
    with pytest.raises(ProviderError, match=r"fab: list models: .* cannot be kept .* 1e400"):
        _get(lambda _: httpx.Response(200, content=b'{"total": 1, "models": [{"x": 1e400}]}'))


def test_values_nested_too_deeply_are_refused_naming_the_call() -> None:
    nested = b"[" * 5000 + b"]" * 5000
    with pytest.raises(ProviderError, match=r"fab: list models: .* nested too deeply"):
        _get(lambda _: httpx.Response(200, content=b'{"total": 1, "models": ' + nested + b"}"))


def test_a_huge_announced_body_is_refused_before_it_is_read() -> None:
    headers = {"Content-Length": str(50 * 1024 * 1024)}
    with pytest.raises(ProviderError, match="announced 52428800 bytes"):
        _get(lambda _: httpx.Response(200, content=b"{}", headers=headers))


def test_a_huge_streamed_body_is_cut_off() -> None:
    chunk = b" " * (1024 * 1024)

    async def endless() -> Any:
        for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
            yield chunk

    with pytest.raises(ProviderError, match=f"sent more than {MAX_BODY_BYTES} bytes"):
        _get(lambda _: httpx.Response(200, content=endless()))


def test_an_error_status_with_an_html_body_still_names_status_and_call() -> None:
    with pytest.raises(ProviderError) as caught:
        _get(lambda _: httpx.Response(403, content=b"<html>denied</html>"))
    assert "fab: list models (GET https://fabric.test/v1/x) failed: HTTP 403" in str(caught.value)
