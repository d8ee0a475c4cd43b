"""Request signing, as pure functions of the request's parts.

`SDK-HMAC-SHA256` is Huawei Cloud's AK/SK scheme, computed as its official Python SDK does
(huaweicloudsdkcore.signer); checked against Huawei's published test vector in the tests.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime
from urllib.parse import quote, unquote

import httpx

from reconcile.providers.trace import log_canonical_request

SDK_ALGORITHM = "SDK-HMAC-SHA256"
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
SDK_CONTENT_SHA256_HEADER = "x-sdk-content-sha256"


# The encoders are memoized: a listing signs 10,000 requests whose paths, header names and
# values (the date changes once a second) repeat, and quote() was a quarter of a signature.
@functools.lru_cache(maxsize=4096)
def _sdk_encode(text: str) -> str:
    # Huawei's signer leaves only A-Za-z0-9 and -_.~ bare.
    return quote(text, safe="~")


def sdk_canonical_uri(path: str) -> str:
    """Each segment percent-encoded; always ends in '/' (a Huawei quirk the gateway expects)."""
    encoded = "/".join(_sdk_encode(segment) for segment in unquote(path).split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def sdk_canonical_query(params: Sequence[tuple[str, str]]) -> str:
    return "&".join(f"{_sdk_encode(k)}={_sdk_encode(v)}" for k, v in sorted(params))


def sdk_canonical_request(
    method: str,
    path: str,
    params: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> tuple[str, str]:
    """(canonical request, signed headers) for headers that are all to be signed.

    As Huawei's SDK: a header whose name holds `_` is never signed (proxies such as nginx drop
    those by default, so the gateway could not check it), and with a body, a signed
    `X-Sdk-Content-Sha256` stands in for the body's hash (`UNSIGNED-PAYLOAD`: not signed).
    """
    lowered = {name.lower(): value for name, value in headers.items() if "_" not in name}
    signed = sorted(lowered)
    canonical_headers = "".join(f"{name}:{lowered[name].strip()}\n" for name in signed)
    signed_headers = ";".join(signed)
    declared_hash = lowered.get(SDK_CONTENT_SHA256_HEADER) if body else None
    request = "\n".join(
        [
            method.upper(),
            sdk_canonical_uri(path),
            sdk_canonical_query(params),
            canonical_headers,
            signed_headers,
            declared_hash or hashlib.sha256(body).hexdigest(),
        ]
    )
    return request, signed_headers


def sdk_string_to_sign(canonical_request: str, sdk_date: str) -> str:
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    return f"{SDK_ALGORITHM}\n{sdk_date}\n{digest}"


def sdk_signature(secret_key: str, string_to_sign: str) -> str:
    return _hmac_sha256(secret_key, string_to_sign)


def sdk_date(now: datetime) -> str:
    return now.strftime(SDK_DATE_FORMAT)


def sdk_authorization(
    *,
    access_key: str,
    secret_key: str,
    method: str,
    path: str,
    params: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    """The `Authorization` header for a request whose `headers` (including `X-Sdk-Date` and
    `Host`) are all signed (but those with `_` in their name, as Huawei's SDK)."""
    date = next(value for name, value in headers.items() if name.lower() == "x-sdk-date")
    request, signed = sdk_canonical_request(method, path, params, headers, body)
    log_canonical_request(request)
    signature = sdk_signature(secret_key, sdk_string_to_sign(request, date))
    return f"{SDK_ALGORITHM} Access={access_key}, SignedHeaders={signed}, Signature={signature}"


#: Headers our client signs (when present). The gateway verifies whatever SignedHeaders lists; these
#: are the ones that matter and that no proxy rewrites. X-Sdk-Content-Sha256 changes what the
#: gateway hashes for the body, so it is signed whenever it is sent, as the SDK signs it.
SDK_SIGNED_HEADERS = (
    "content-type",
    "host",
    "x-project-id",
    "x-sdk-content-sha256",
    "x-sdk-date",
    "x-security-token",
)


# -- bce-auth-v1 (Baidu AI Cloud, Qianfan) --------------------------------------------------------

BCE_PREFIX = "bce-auth-v1"
BCE_DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: Signed when a request names no signed headers (Baidu's default set, plus every x-bce-*).
BCE_DEFAULT_HEADERS = frozenset({"host", "content-length", "content-type", "content-md5"})


@functools.lru_cache(maxsize=4096)
def _bce_encode(text: str) -> str:
    # Baidu leaves only A-Za-z0-9 and -._~ bare, %XX upper-case (what quote() produces).
    return quote(text, safe="-._~")


@functools.lru_cache(maxsize=4096)
def bce_canonical_uri(path: str) -> str:
    return quote(path, safe="/-._~")


def bce_canonical_query(params: Sequence[tuple[str, str]]) -> str:
    pairs = [
        f"{_bce_encode(key)}={_bce_encode(value)}"
        for key, value in params
        if key.lower() != "authorization"
    ]
    return "&".join(sorted(pairs))


def bce_canonical_headers(
    headers: Mapping[str, str], signed: Sequence[str]
) -> tuple[str, list[str]]:
    """(canonical headers, the names signed). With `signed` empty, Baidu's default set."""
    lowered = {name.strip().lower(): value for name, value in headers.items()}
    if signed:
        names = sorted({name.strip().lower() for name in signed})
    else:
        names = sorted(
            name for name in lowered if name in BCE_DEFAULT_HEADERS or name.startswith("x-bce-")
        )
    lines = sorted(
        f"{_bce_encode(name)}:{_bce_encode(lowered[name].strip())}"
        for name in names
        if name in lowered and lowered[name].strip()
    )
    return "\n".join(lines), names


# The prefix holds the time to the second: a listing signs a hundred requests with each key.
@functools.lru_cache(maxsize=16)
def bce_signing_key(secret_key: str, auth_prefix: str) -> str:
    return _hmac_sha256(secret_key, auth_prefix)


def bce_authorization(
    *,
    access_key: str,
    secret_key: str,
    timestamp: str,
    expiration: int,
    method: str,
    path: str,
    params: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Sequence[str] = (),
) -> str:
    """The `Authorization` header of `bce-auth-v1`. `signed_headers` empty: Baidu's default set,
    and the header's signed-headers part is left empty, as Baidu's own example does."""
    prefix = f"{BCE_PREFIX}/{access_key}/{timestamp}/{expiration}"
    canonical_headers, names = bce_canonical_headers(headers, signed_headers)
    canonical = "\n".join(
        [method.upper(), bce_canonical_uri(path), bce_canonical_query(params), canonical_headers]
    )
    log_canonical_request(canonical)
    key = bce_signing_key(secret_key, prefix)
    signature = _hmac_sha256(key, canonical)
    listed = ";".join(names) if signed_headers else ""
    return f"{prefix}/{listed}/{signature}"


def _hmac_sha256(key: str, message: str) -> str:
    """HMAC-SHA256 in hex, by the one-shot C function (an `hmac.new` object per signature
    cost three times as much)."""
    return hmac.digest(key.encode(), message.encode(), hashlib.sha256).hex()


def header_values(headers: httpx.Headers, names: Sequence[str]) -> dict[str, str]:
    """The values of those of `names` (lower case) that `headers` holds, as `headers[name]`
    reads each (repeated ones joined by ", "), in one pass over them: a lookup per name scanned
    them all each time, a seventh of a signature."""
    found: dict[str, list[str]] = {}
    for name, value in headers.multi_items():
        if name in names:
            found.setdefault(name, []).append(value)
    return {name: ", ".join(found[name]) for name in names if name in found}


def query_pairs(url: httpx.URL) -> Sequence[tuple[str, str]]:
    """The URL's query parameters in order, as `url.params.multi_items()` gives them; parsed
    once per query (a listing's requests repeat a few)."""
    return _query_pairs(url.query)


@functools.lru_cache(maxsize=256)
def _query_pairs(query: bytes) -> tuple[tuple[str, str], ...]:
    return tuple(httpx.QueryParams(query.decode("ascii")).multi_items())
