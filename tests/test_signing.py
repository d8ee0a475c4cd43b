"""Request signing against the platforms' published test vectors."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import httpx
import pytest

from reconcile.providers.fabric import sdk_hmac_signer
from reconcile.providers.signing import (
    bce_authorization,
    bce_signing_key,
    header_values,
    query_pairs,
    sdk_authorization,
    sdk_canonical_request,
    sdk_canonical_uri,
)

# Huawei's signing guide (API.md, section 1).
VECTOR_AK = "QTWAOYTTINDUT2QVKYUC"
VECTOR_SK = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
VECTOR_PATH = "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs"
VECTOR_QUERY = [("limit", "2"), ("marker", "13551d6b-755d-4757-b956-536f674975c0")]
VECTOR_HEADERS = {
    "Content-Type": "application/json",
    "X-Sdk-Date": "20191115T033655Z",
    "Host": "service.region.example.com",
}


def test_fabric_published_vector_canonical_request_hash() -> None:
    request, signed = sdk_canonical_request("GET", VECTOR_PATH, VECTOR_QUERY, VECTOR_HEADERS, b"")
    assert signed == "content-type;host;x-sdk-date"
    assert (
        hashlib.sha256(request.encode()).hexdigest()
        == "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
    )


def test_fabric_published_vector_signature() -> None:
    header = sdk_authorization(
        access_key=VECTOR_AK,
        secret_key=VECTOR_SK,
        method="GET",
        path=VECTOR_PATH,
        params=VECTOR_QUERY,
        headers=VECTOR_HEADERS,
        body=b"",
    )
    assert header == (
        "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, "
        "Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
    )


def test_fabric_canonical_uri_encodes_segments_and_ends_in_a_slash() -> None:
    assert sdk_canonical_uri("/v1/a b/模型") == "/v1/a%20b/%E6%A8%A1%E5%9E%8B/"
    assert sdk_canonical_uri("/v1/a%20b/") == "/v1/a%20b/"


def test_fabric_signer_on_an_httpx_request_matches_the_vector() -> None:
    sign = sdk_hmac_signer(
        VECTOR_AK, VECTOR_SK, clock=lambda: datetime(2019, 11, 15, 3, 36, 55, tzinfo=UTC)
    )
    request = httpx.Request(
        "GET",
        "https://service.region.example.com" + VECTOR_PATH,
        params=VECTOR_QUERY,
        headers={"Content-Type": "application/json"},
    )
    sign(request)
    assert request.headers["X-Sdk-Date"] == "20191115T033655Z"
    assert request.headers["Authorization"].endswith(
        "Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
    )


# Baidu's signing doc (API.md, section 2).
BCE_HEADERS = {
    "Host": "bj.bcebos.com",
    "Content-Type": "text/plain",
    "Content-Length": "8",
    "Content-Md5": "NFzcPqhviddjRNnSOGo4rw==",
    "x-bce-date": "2015-04-27T08:23:49Z",
}
BCE_ARGS = {
    "access_key": "a" * 32,
    "secret_key": "b" * 32,
    "timestamp": "2015-04-27T08:23:49Z",
    "expiration": 1800,
    "method": "PUT",
    "path": "/v1/test/myfolder/readme.txt",
    "params": [("partNumber", "9"), ("uploadId", "a44cc9bab11cbd156984767aad637851")],
    "headers": BCE_HEADERS,
}


def test_bce_published_vector_signing_key() -> None:
    prefix = "bce-auth-v1/" + "a" * 32 + "/2015-04-27T08:23:49Z/1800"
    assert (
        bce_signing_key("b" * 32, prefix)
        == "1d5ce5f464064cbee060330d973218821825ac6952368a482a592e6615aef479"
    )


def test_bce_published_vector_with_default_headers() -> None:
    assert bce_authorization(**BCE_ARGS) == (  # type: ignore[arg-type]
        "bce-auth-v1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/2015-04-27T08:23:49Z/1800//"
        "d74a04362e6a848f5b39b15421cb449427f419c95a480fd6b8cf9fc783e2999e"
    )


def test_bce_published_vector_with_signed_headers_in_any_order() -> None:
    for listed in (["host", "x-bce-date"], ["x-bce-date", "host"]):
        header = bce_authorization(**BCE_ARGS, signed_headers=listed)  # type: ignore[arg-type]
        assert header.endswith(
            "/host;x-bce-date/1b8de5a23a56eef657c69f94c621e7acd227d049a4ba577f537d5e5cebf0cf32"
        )


@pytest.mark.parametrize(
    "url",
    [
        "http://h/p",
        "http://h/p?Action=DescribeModelSet",
        "http://h/p?b=2&a=1&a=%20x&empty=&flag",
        "http://h/p?k=%E4%B8%AD%E6%96%87&k=v",
    ],
)
def test_the_signers_read_the_query_and_headers_as_httpx_does(url: str) -> None:
    """`query_pairs` and `header_values`, the signers' one-pass reads, give what the request's
    own `url.params` and `headers[name]` give (a repeated header joined by ", ", a missing one
    left out), and again from the cache."""
    parsed = httpx.URL(url)
    assert query_pairs(parsed) == tuple(parsed.params.multi_items())
    assert query_pairs(httpx.URL(url)) == tuple(parsed.params.multi_items())
    headers = httpx.Headers(
        [("Host", "h"), ("X-Bce-Date", "d1"), ("content-type", "a/b"), ("x-bce-date", "d2")]
    )
    names = ("host", "content-type", "x-bce-date", "x-missing")
    assert header_values(headers, names) == {
        name: headers[name] for name in names if name in headers
    }
    assert header_values(headers, names)["x-bce-date"] == "d1, d2"
