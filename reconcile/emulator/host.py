"""The two sides of the emulator's one seam: what a platform needs from the app that hosts it
(`Host`), and what the app needs from a platform (`Platform`).

``app.py`` imports the platform modules; they import only this module, never ``app.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

# Where a request's X-Request-Id is kept in the ASGI scope's state: platforms whose bodies echo
# it (Qianfan's requestId) read ``request.state.request_id``.
REQUEST_ID_STATE_KEY = "request_id"
# Where the query the app parsed is kept in the state, for `query_of`.
QUERY_STATE_KEY = "query"

# Seconds since the epoch, like time.time: what signed requests' timestamps are checked against.
Clock = Callable[[], float]


class Host(Protocol):
    """What a platform reads and calls on the emulator hosting it."""

    #: The live state, shaped like the state file; read and changed on every request.
    state: dict[str, Any]

    #: What signed requests' timestamps are checked against.
    clock: Clock

    @property
    def revision(self) -> int | None:
        """A number that changes with every change of the state when nothing else changes it
        (a served emulator), or None when tests may edit it in place."""
        ...

    def persist(self) -> None:
        """Called after every successful mutation (writes the state where it is kept)."""
        ...


class Platform(Protocol):
    """What the shared plumbing needs from one platform's module."""

    def owns(self, path: str) -> bool:
        """Whether a request path belongs to this platform's API."""
        ...

    def normalize(self, state: dict[str, Any]) -> None:
        """Check this platform's section of a freshly loaded state and fill in defaults."""
        ...

    def routes(self) -> list[BaseRoute]: ...

    def fault_response(self, status: int, request_id: str) -> Response:
        """The platform's own answer for an injected fault with this status (any of
        ``faults.STATUSES``)."""
        ...

    def internal_error_response(self, request_id: str) -> Response: ...

    def changes_state(self, method: str, path: str, query: QueryParams) -> bool:
        """Whether this request would change the state if handled (a delete)."""
        ...

    def inconsistent(self, path: str, query: QueryParams, body: Any, delta: int) -> Any:
        """``body`` (a successful answer's JSON) made to disagree with the rest of its listing,
        or None when this answer has nothing to make inconsistent."""
        ...


def query_of(request: Request) -> QueryParams:
    """The request's query, as the app parsed it on arrival (parsed again per request, it was a
    twentieth of the emulator's CPU on a listing's version pages)."""
    parsed: QueryParams | None = request.scope.get("state", {}).get(QUERY_STATE_KEY)
    return parsed if parsed is not None else request.query_params
