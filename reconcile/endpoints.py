"""The endpoint rules, in one place: the manifest loader and the HTTP layer both apply them.

An endpoint is an https URL; plain http only to a loopback host (a local emulator) or with
--insecure; never with a user name or password in it. A provider's API endpoint may instead be
`emulator:STATE.json`, the built-in emulator on a state file.

Loopback means the names `localhost`, `127.0.0.1` and `::1` only, not all of 127.0.0.0/8: where the
loader and the HTTP layer used to differ (the loader let `http://127.0.0.2` through, the HTTP layer
refused it), the stricter rule holds for both.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from reconcile.errors import ReconcileError

#: An endpoint that starts with this names the built-in emulator's state file.
EMULATOR_PREFIX = "emulator:"
#: Hosts that plain http:// may reach without --insecure.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: How to write an endpoint, for hints.
ENDPOINT_HINT = (
    "use https://HOST; http:// only for a loopback host (localhost, 127.0.0.1 or ::1: a local "
    "emulator) or with --insecure"
)
EMULATOR_HINT = "or emulator:STATE.json for the built-in emulator"


def is_emulator(endpoint: str) -> bool:
    """Whether `endpoint` names the built-in emulator (`emulator:STATE.json`)."""
    return endpoint.startswith(EMULATOR_PREFIX)


def endpoint_problem(url: str, *, emulator_allowed: bool, insecure: bool = False) -> str | None:
    """What is wrong with `url` as an endpoint, in words that never repeat a password; None: ok.

    `emulator_allowed`: `emulator:STATE.json` is accepted (a provider's API endpoint, not its
    services endpoint). `insecure`: plain http:// to any host is accepted (--insecure).
    """
    if emulator_allowed and is_emulator(url):
        if url == EMULATOR_PREFIX:
            return "emulator: needs the name of a state file, as in emulator:state.json"
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "not a valid URL"
    # Checked first, so that no message below repeats a password.
    if "@" in parts.netloc:
        return "the URL carries a user name or password: secrets never go into a manifest"
    if parts.scheme not in ("https", "http") or not host:
        return f"{_quote(url)} is not an https:// URL"
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS and not insecure:
        return f"{_quote(url)} is plain http:// to a host that is not loopback"
    return None


def endpoint_hint(*, emulator_allowed: bool) -> str:
    return f"{ENDPOINT_HINT}, {EMULATOR_HINT}" if emulator_allowed else ENDPOINT_HINT


def check_endpoint(endpoint: str, *, insecure: bool = False) -> str:
    """`endpoint` without its trailing '/', or a `ReconcileError` before any request is sent."""
    problem = endpoint_problem(endpoint, emulator_allowed=False, insecure=insecure)
    if problem is not None:
        raise ReconcileError(f"endpoint: {problem}", hint=endpoint_hint(emulator_allowed=True))
    return endpoint.rstrip("/")


def _quote(text: str) -> str:
    """A URL, quoted for a message; cut short when long."""
    return repr(text if len(text) <= 60 else text[:57] + "...")
