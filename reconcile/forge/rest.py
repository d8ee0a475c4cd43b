"""A small JSON client for a forge's REST API: one token, every page, one-line errors.

The token is sent only to the API's own origin (a `Link` to another host is refused, a redirect
to another host is followed without it: httpx drops `Authorization` across origins) and is never
part of a message: text the forge returns is cut short and has the token taken out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconcile.forge import ForgeError

#: Pages of one listing before it is refused as endless (100 items each: 100k items).
MAX_PAGES = 1000
#: A downloaded artifact larger than this is refused (a 100k-version plan is ~150 MiB).
MAX_DOWNLOAD = 1 << 30
#: Tries of a GET on a connection error, 429 or 5xx; writes are never repeated (a comment posted
#: twice is worse than a job run again).
GET_ATTEMPTS = 3
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
#: Environment variable names as CI systems write them; a pasted token (ghp_..., glpat-...) is not.
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")


def token_from(env: Mapping[str, str], name: str) -> str:
    """The token in environment variable `name`; the name is checked, never the value shown."""
    if not _ENV_NAME.fullmatch(name):
        raise ForgeError(
            "--token-env takes the NAME of an environment variable in capitals (like "
            "GITHUB_TOKEN), not a token: the value given is not shown",
            hint="pass the token in an environment variable and give its name",
        )
    value = env.get(name, "")
    if not value.strip():
        raise ForgeError(
            f"environment variable {name} is not set or empty: no token for the forge's API",
            hint=f"set {name} from the CI's secret store (see the README, 'In a GitOps pipeline')",
        )
    return value.strip()


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _check_base(base_url: str) -> str:
    scheme = urlsplit(base_url).scheme
    loopback = urlsplit(base_url).hostname in ("127.0.0.1", "localhost", "::1")
    if scheme != "https" and not (scheme == "http" and loopback):
        raise ForgeError(
            f"forge API URL {base_url!r} is not https: a token is never sent in clear text",
            hint="give the https:// URL of the API (GITHUB_API_URL, CI_API_V4_URL)",
        )
    return base_url.rstrip("/")


class Rest:
    """Calls to one forge API with one token; `what` names the token in messages."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        forge: str,
        token: str,
        token_env: str,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30,
    ) -> None:
        self.base_url = _check_base(base_url)
        self.forge = forge
        self._token = token
        self.token_env = token_env
        self._client = httpx.Client(
            headers=dict(headers), timeout=timeout, transport=transport, follow_redirects=False
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Rest:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- calls ----------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, str | int] | None = None, *, need: str) -> Any:
        """One JSON document. `need` names the permission the call takes, for the 403 hint."""
        return self._json(self._send("GET", self._url(path), params, None, need=need))

    def get_or_none(self, path: str, *, need: str) -> Any:
        """A JSON document, or None where the forge answers 404 (or 403 for a feature the
        instance's tier does not have)."""
        response = self._send("GET", self._url(path), None, None, need=need, missing_ok=True)
        return None if response is None else self._json(response)

    def pages(
        self,
        path: str,
        params: Mapping[str, str | int] | None = None,
        *,
        need: str,
        key: str | None = None,
    ) -> Iterator[Any]:
        """Every item of a paginated listing: `Link: <...>; rel="next"` (GitHub and GitLab) or
        `X-Next-Page` (GitLab), 100 a page. `key`: the listing is under this key of an object."""
        url: str | None = self._url(path)
        query: dict[str, str | int] | None = {**(params or {}), "per_page": 100}
        for _ in range(MAX_PAGES):
            if url is None:
                return
            response = self._send("GET", url, query, None, need=need)
            assert response is not None
            page = self._json(response)
            items = page.get(key) if key and isinstance(page, dict) else page
            if not isinstance(items, list):
                raise self._shape_error("GET", url, "a list" + (f" under {key!r}" if key else ""))
            yield from items
            url, query = self._next(response, url, query)
        raise ForgeError(
            f"{self.forge} API: GET {self._path(path)} has more than {MAX_PAGES} pages",
            hint="report this: the listing did not end",
        )

    def send(self, method: str, path: str, body: Mapping[str, Any], *, need: str) -> Any:
        return self._json(self._send(method, self._url(path), None, body, need=need))

    def download(self, url: str, *, need: str) -> bytes:
        """A file (an artifact), following redirects to the forge's storage."""
        target = url if "://" in url else self._url(url)
        self._same_origin(target)
        try:
            with self._client.stream("GET", target, follow_redirects=True) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._status_error("GET", target, response, need)
                data = bytearray()
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > MAX_DOWNLOAD:
                        raise ForgeError(
                            f"{self.forge} API: GET {self._path(target)}: the file is larger "
                            f"than {MAX_DOWNLOAD >> 20} MiB",
                            hint="this is not a plan file reconcile made",
                        )
                return bytes(data)
        except httpx.HTTPError as exc:
            raise self._transport_error("GET", target, exc) from None

    # -- the parts ------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _path(self, url: str) -> str:
        """The call as a message shows it: the path below the API's base URL, no query."""
        path = url.split("?")[0]
        return path[len(self.base_url) :] if path.startswith(self.base_url) else urlsplit(path).path

    def _same_origin(self, url: str) -> None:
        if _origin(url) != _origin(self.base_url):
            raise ForgeError(
                f"{self.forge} API: refusing to send the token to {urlsplit(url).netloc!r}, "
                f"which is not the API's host",
                hint="check the API URL; report this if the forge sent the link",
            )

    def _next(
        self, response: httpx.Response, url: str, query: dict[str, str | int] | None
    ) -> tuple[str | None, dict[str, str | int] | None]:
        link = response.links.get("next", {}).get("url")
        if link:
            self._same_origin(link)
            return link, None  # the link carries the query
        page = response.headers.get("x-next-page", "").strip()
        if page.isdigit():
            return url.split("?")[0], {**(query or {}), "page": int(page)}
        return None, None

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, Any] | None,
        *,
        need: str,
        missing_ok: bool = False,
    ) -> httpx.Response | None:
        attempts = GET_ATTEMPTS if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self._client.request(method, url, params=params, json=body)
            except httpx.HTTPError as exc:
                if attempt == attempts:
                    raise self._transport_error(method, url, exc) from None
                time.sleep(attempt)
                continue
            status = response.status_code
            if (status == 429 or status >= 500) and attempt < attempts:
                time.sleep(attempt)
                continue
            if missing_ok and status in (403, 404):
                return None
            if status >= 300:
                raise self._status_error(method, url, response, need)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _json(self, response: httpx.Response | None) -> Any:
        assert response is not None
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise self._shape_error(response.request.method, str(response.url), "JSON") from None

    def _clean(self, text: str) -> str:
        text = _CONTROL.sub(" ", text).replace(self._token, "***")
        return text if len(text) <= 200 else text[:200] + "…"

    def _status_error(
        self, method: str, url: str, response: httpx.Response, need: str
    ) -> ForgeError:
        status = response.status_code
        said = ""
        try:
            body = response.json()
            said = (
                str(body.get("message") or body.get("error") or "")
                if isinstance(body, dict)
                else ""
            )
        except ValueError:
            said = response.text
        said = f" ({self._clean(said)})" if said.strip() else ""
        call = f"{self.forge} API: {method} {self._path(url)} answered HTTP {status}{said}"
        return ForgeError(call, hint=self._fix(status, need, response))

    def _fix(self, status: int, need: str, response: httpx.Response) -> str:
        env = f"${self.token_env}"
        if status == 401:
            return f"the token in {env} is missing, expired or not valid for this {self.forge}"
        if status == 403:
            return f"the token in {env} lacks a permission this call needs: {need}"
        if status == 404:
            return f"it does not exist, or the token in {env} cannot see it (it needs {need})"
        if 300 <= status < 400:
            where = self._clean(response.headers.get("location", "nowhere"))
            return f"redirects are not followed here (to {where}); check the API URL"
        if status == 429 or status >= 500:
            return f"the {self.forge} did not answer the call; run the job again later"
        return "report this with the job's log"

    def _transport_error(self, method: str, url: str, exc: httpx.HTTPError) -> ForgeError:
        return ForgeError(
            f"{self.forge} API: {method} {self._path(url)} failed: "
            f"{type(exc).__name__}: {self._clean(str(exc))}",
            hint=f"check that {self.base_url} is the API URL and reachable from the runner",
        )

    def _shape_error(self, method: str, url: str, expected: str) -> ForgeError:
        return ForgeError(
            f"{self.forge} API: {method} {self._path(url)} did not answer {expected}",
            hint=f"check that {self.base_url} is the forge's API URL",
        )
