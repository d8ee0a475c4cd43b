"""The two AK/SK signature schemes, computed as the platforms' gateways verify them.

Pure functions over already-parsed request parts (no Starlette, no clock), so that the published
test vectors can be checked directly. Written from the platforms' signing guides (API.md
"Authentication" in sections 1 and 2), independently of the client's signing code in
``reconcile.providers``: a bug shared by signer and verifier would hide itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import quote

# --------------------------------------------------------------------------------------------
# Shared
# --------------------------------------------------------------------------------------------


def uri_encode(text: str, *, keep_slash: bool = False) -> str:
    """Percent-encode UTF-8 ``text``, leaving only ``A-Za-z0-9-_.~`` (and '/' if asked) bare.

    ``%XX`` is upper case. (``quote`` always keeps exactly those unreserved characters.)
    """
    return quote(text, safe="/" if keep_slash else "")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hmac_sha256_hex(key: str, message: str) -> str:
    return hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def same_signature(expected: str, given: str) -> bool:
    """Constant-time comparison of two hex signatures, ignoring the case of the hex digits."""
    return hmac.compare_digest(expected.lower().encode(), given.lower().encode())


# --------------------------------------------------------------------------------------------
# Huawei Cloud: SDK-HMAC-SHA256
# --------------------------------------------------------------------------------------------

SDK_HMAC_ALGORITHM = "SDK-HMAC-SHA256"
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
# With this header the body is not hashed: its value stands in for the body's hash.
SDK_CONTENT_SHA256_HEADER = "x-sdk-content-sha256"
SDK_UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def sdk_canonical_uri(path: str) -> str:
    """Each segment of the (decoded) path encoded on its own; always ends in '/'."""
    encoded = "/".join(uri_encode(segment) for segment in path.split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def sdk_canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Pairs sorted (by key, then value, before encoding, as the SDK sorts), ``k=v`` by '&'."""
    return "&".join(f"{uri_encode(k)}={uri_encode(v)}" for k, v in sorted(pairs))


def sdk_canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: list[str],
    body_hash: str,
) -> str:
    """``headers`` maps lower-case names to values; ``signed_headers`` are lower-case, sorted.

    Every signed header must be in ``headers`` (the caller checks).
    """
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed_headers)
    return "\n".join(
        [
            method.upper(),
            sdk_canonical_uri(path),
            sdk_canonical_query(query),
            canonical_headers,
            ";".join(signed_headers),
            body_hash,
        ]
    )


def sdk_string_to_sign(sdk_date: str, canonical_request: str) -> str:
    return "\n".join([SDK_HMAC_ALGORITHM, sdk_date, sha256_hex(canonical_request.encode("utf-8"))])


def sdk_signature(secret_key: str, string_to_sign: str) -> str:
    return hmac_sha256_hex(secret_key, string_to_sign)


# --------------------------------------------------------------------------------------------
# Baidu AI Cloud: bce-auth-v1
# --------------------------------------------------------------------------------------------

BCE_AUTH_VERSION = "bce-auth-v1"
BCE_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Signed when the Authorization header lists no headers (besides every x-bce-* header).
BCE_DEFAULT_SIGNED_HEADERS = frozenset({"host", "content-length", "content-type", "content-md5"})
BCE_HEADER_PREFIX = "x-bce-"


def bce_auth_prefix(access_key: str, timestamp: str, expiration_seconds: int) -> str:
    return f"{BCE_AUTH_VERSION}/{access_key}/{timestamp}/{expiration_seconds}"


def bce_signing_key(secret_key: str, auth_prefix: str) -> str:
    """The hex string of HMAC-SHA256(SK, prefix): that hex text is the next step's key."""
    return hmac_sha256_hex(secret_key, auth_prefix)


def bce_headers_to_sign(headers: Mapping[str, str], listed: Iterable[str]) -> list[str]:
    """The signed header names present in ``headers`` (lower-case keys), sorted.

    ``listed`` is the Authorization header's list, in any order (the Python SDK sends a set);
    an empty list means the defaults and every ``x-bce-*`` header.
    """
    wanted = {name.strip().lower() for name in listed if name.strip()}
    if not wanted:
        wanted = {
            name
            for name in headers
            if name in BCE_DEFAULT_SIGNED_HEADERS or name.startswith(BCE_HEADER_PREFIX)
        }
    return sorted(name for name in wanted if name in headers)


def bce_canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Iterable[str],
) -> str:
    """``headers`` maps lower-case names to values; ``signed_headers`` as from the header.

    A signed header whose value is empty (after trimming) is left out of the canonical headers,
    as Baidu's own signer (``baidubce.auth.bce_v1_signer``) leaves it out.
    """
    canonical_query = "&".join(
        sorted(f"{uri_encode(k)}={uri_encode(v)}" for k, v in query if k.lower() != "authorization")
    )
    canonical_headers = "\n".join(
        sorted(
            f"{uri_encode(name)}:{uri_encode(headers[name].strip())}"
            for name in bce_headers_to_sign(headers, signed_headers)
            if headers[name].strip()
        )
    )
    return "\n".join(
        [method.upper(), uri_encode(path, keep_slash=True), canonical_query, canonical_headers]
    )


def bce_signature(signing_key: str, canonical_request: str) -> str:
    return hmac_sha256_hex(signing_key, canonical_request)
