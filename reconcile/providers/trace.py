"""What the HTTP layer tells the debug log (`reconcile.http`): each attempt, and on debug the
canonical request of each signature. The standard `logging` module only: where the records go,
and the redaction of every secret on the way, are configured at the edge (`reconcile/logs.py`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

_http_log = logging.getLogger("reconcile.http")


def log_request(
    method: str,
    url: str,
    status: int | None,
    duration: float,
    attempt: int,
    retry_reason: str | None = None,
) -> None:
    """One HTTP attempt: on debug every attempt; on info those that failed (no response, 4xx,
    5xx) or are retried, with why. `status` None: no response (a timeout, a reset)."""
    failed = status is None or status >= 400
    level = logging.INFO if failed or retry_reason else logging.DEBUG
    if not _http_log.isEnabledFor(level):
        return
    answer = f"HTTP {status}" if status is not None else "no response"
    retry = f", retrying: {retry_reason}" if retry_reason else ""
    _http_log.log(
        level,
        "%s %s -> %s in %.3f s (attempt %d%s)",
        method.upper(),
        url,
        answer,
        duration,
        attempt,
        retry,
    )


#: Canonical header lines whose value is a credential (a temporary credential's session token
#: is signed as a header): masked here, at the source, so no handler ever sees them.
_SECRET_LINE = re.compile(r"(?im)^((?:x-security-token|x-auth-token|authorization)\s*:).*$")


def log_canonical_request(text: str) -> None:
    """The canonical request a signature was computed over (debug only): what to compare with
    the platform's own when it answers that the signature does not match; credential headers
    masked."""
    if _http_log.isEnabledFor(logging.DEBUG):
        _http_log.debug("canonical request:\n%s", _SECRET_LINE.sub(r"\g<1>***", text))


def limit_logger(endpoint: str) -> Callable[[int, int, str], None]:
    """The `on_change` hook of an adaptive limit (`--parallelism auto`) for one endpoint: each
    change of the requests it lets in flight, with why, on debug (what a slow run against a
    throttling platform is read from)."""

    def changed(old: int, new: int, why: str) -> None:
        _http_log.debug("parallelism for %s: %d -> %d (%s)", endpoint, old, new, why)

    return changed
