"""Fault injection: which API requests the emulator answers wrongly, and how.

A `Fault` selects requests (by method, path glob and Qianfan ``Action``) and says what happens to
them instead of a normal answer. Faults are drawn on arrival, in the order requests arrive, from a
generator seeded by the emulator's seed, so the same requests in the same order fail the same way.
The first fault in the list that selects a request and fires wins.

Kinds (``--fault KIND[,key=value...]`` on the command line, ``Fault(KIND, ...)`` in Python):

- ``status``: answer ``status`` in the owning platform's own words (its exact error body); the
  request is not handled.
- ``slow``: wait ``delay_ms``, then handle the request normally. A slow request is a late one, not
  a failed one: a client that gives up meanwhile does not stop it.
- ``reset``: close the connection without any response; the request is not handled. Over a real
  socket the connection is aborted; in-process, `ConnectionDropped` is raised for the transport
  to turn into its connection error.
- ``truncate``: handle the request, then send only the first half of the body (with a
  Content-Length that matches what is sent: a complete HTTP message holding cut JSON). Read
  requests only.
- ``inconsistent`` (alias ``wrong_total``): handle the request, then make the page disagree with
  the rest of its listing: Fabric's ``total`` off by ``delta``; a Qianfan V2 page that points back
  at itself (``nextMarker`` = its own marker: a marker loop); a V1 ``/modelDetail`` without its
  last version; a V1 ``total`` off by ``delta``. Read requests only.
- ``throttle``: a token bucket per client (per AK, else per token, else per address): ``rps``
  tokens a second, at most ``burst`` saved. A request that finds the bucket empty is answered 429
  with ``Retry-After`` (the wait in whole seconds, or ``retry_after``). ``rate`` does not apply.
- ``lost``: handle the request (a delete IS applied), then answer ``status`` or, with
  ``reply=reset``, close the connection: the client cannot tell that it succeeded.

Every other kind never changes the state: a faulted delete is not applied.

Selection and budget: ``method`` (any when absent), ``path`` (an ``fnmatch`` glob on the request
path; ``*`` also spans ``/``), ``action`` (Qianfan's ``?Action=``), ``rate`` (the chance that a
selected request is faulted) and ``times`` (fire at most this many times).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import math
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("status", "slow", "reset", "truncate", "inconsistent", "throttle", "lost")
ALIASES = {"wrong_total": "inconsistent"}
#: The statuses every platform can answer a fault with, each in its own words.
STATUSES = (400, 403, 404, 408, 429, 500, 502, 503, 504)
REPLIES = ("status", "reset")
#: Kinds that must see the real answer to distort it, so never touch a request that changes state.
READ_ONLY_KINDS = frozenset({"truncate", "inconsistent"})


class ConnectionDropped(ConnectionResetError):
    """Raised in-process where a real server would drop the connection without a response."""


@dataclass(frozen=True)
class Fault:
    """One kind of fault and the requests it selects (see the module docstring)."""

    kind: str
    method: str | None = None
    path: str | None = None
    action: str | None = None
    rate: float = 1.0
    times: int | None = None
    #: status, lost: the status answered (lost with reply=status).
    status: int = 500
    #: slow: the extra delay.
    delay_ms: float = 0.0
    #: lost: "status" (answer `status`) or "reset" (drop the connection).
    reply: str = "status"
    #: throttle: tokens added per second, and how many may be saved up.
    rps: float = 10.0
    burst: int = 10
    #: throttle, status 429: the Retry-After sent, in seconds (default: the platform's, or the
    #: throttle's wait rounded up to whole seconds).
    retry_after: float | None = None
    #: inconsistent: how far a total is off.
    delta: int = 1

    def __post_init__(self) -> None:
        for name in _FLOATS:  # nan passes every bound below (its comparisons are all false)
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"fault {name} must be a finite number, got {value}")
        kind = ALIASES.get(self.kind, self.kind)
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}: one of {', '.join(KINDS)}")
        object.__setattr__(self, "kind", kind)
        if self.method is not None:
            object.__setattr__(self, "method", self.method.upper())
        if not 0 <= self.rate <= 1:
            raise ValueError(f"fault rate must be between 0 and 1, got {self.rate}")
        if self.times is not None and self.times < 0:
            raise ValueError(f"fault times must not be negative, got {self.times}")
        if self.status not in STATUSES:
            allowed = ", ".join(map(str, STATUSES))
            raise ValueError(f"fault status must be one of {allowed}, got {self.status}")
        if self.delay_ms < 0:
            raise ValueError(f"fault delay_ms must not be negative, got {self.delay_ms}")
        if self.reply not in REPLIES:
            raise ValueError(f"fault reply must be one of {', '.join(REPLIES)}, got {self.reply!r}")
        if self.rps <= 0 or self.burst < 1:
            raise ValueError("a throttle needs rps > 0 and burst >= 1")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError(f"fault retry_after must not be negative, got {self.retry_after}")

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``KIND[,key=value...]``, e.g. ``status,status=503,method=GET,path=/v1/*,rate=0.1``."""
        kind, *pairs = (part.strip() for part in text.split(","))
        fields: dict[str, Any] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise ValueError(f"fault {text!r}: expected key=value, got {pair!r}")
            fields[key.strip()] = value.strip()
        return cls.of({"kind": kind, **fields})

    @classmethod
    def of(cls, spec: FaultSpec) -> Fault:
        """A fault from a `Fault`, a spec string, or a mapping of its fields (values may be
        strings, as a JSON or command-line spec gives them)."""
        if isinstance(spec, Fault):
            return spec
        if isinstance(spec, str):
            return cls.parse(spec)
        known = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(spec) - set(known))
        if unknown:
            raise ValueError(
                f"unknown fault field(s) {', '.join(unknown)}: one of {', '.join(known)}"
            )
        if "kind" not in spec:
            raise ValueError("a fault needs a kind")
        return cls(**{key: _convert(key, value) for key, value in spec.items()})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def selects(self, method: str, path: str, action: str | None, changes_state: bool) -> bool:
        if self.kind in READ_ONLY_KINDS and changes_state:
            return False
        return (
            (self.method is None or self.method == method.upper())
            and (self.path is None or fnmatch.fnmatchcase(path, self.path))
            and (self.action is None or self.action == action)
        )


#: What a fault may be given as: itself, a spec string, or a mapping of its fields.
FaultSpec = Fault | Mapping[str, Any] | str

_INTS = frozenset({"times", "status", "burst", "delta"})
_FLOATS = frozenset({"rate", "delay_ms", "rps", "retry_after"})


def _convert(key: str, value: Any) -> Any:
    if not isinstance(value, str) or value == "":
        return None if value == "" else value
    try:
        if key in _INTS:
            return int(value)
        if key in _FLOATS:
            return float(value)
    except ValueError:
        raise ValueError(f"fault {key} must be a number, got {value!r}") from None
    return value


@dataclass(frozen=True)
class Drawn:
    """A fault drawn for one request; `retry_after` is the header a throttle sends."""

    fault: Fault
    retry_after: str | None = None


def seconds(value: float) -> str:
    """A Retry-After value: whole seconds stay whole ("1"), fractions are kept ("0.05")."""
    return f"{value:g}"


class FaultInjector:
    """The faults in force, their remaining budgets, the throttles' buckets and the seeded draw."""

    def __init__(
        self,
        faults: Iterable[FaultSpec] = (),
        *,
        seed: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # Its own generator: adding faults never changes which requests `fail_rate` picks.
        self._rng = random.Random(None if seed is None else f"faults-{seed}")
        self.monotonic = monotonic
        self._faults: tuple[Fault, ...] = ()
        self._left: list[int | None] = []
        self._buckets: dict[tuple[int, str], tuple[float, float]] = {}
        self.faults = tuple(Fault.of(spec) for spec in faults)

    @property
    def faults(self) -> tuple[Fault, ...]:
        return self._faults

    @faults.setter
    def faults(self, specs: Iterable[FaultSpec]) -> None:
        """Replace the faults; budgets and buckets start afresh (the generator goes on)."""
        self._faults = tuple(Fault.of(spec) for spec in specs)
        self._left = [fault.times for fault in self._faults]
        self._buckets = {}

    def draw(
        self, method: str, path: str, action: str | None, changes_state: bool, client: str
    ) -> Drawn | None:
        """The fault for this request, if any fires."""
        for index, fault in enumerate(self._faults):
            if self._left[index] == 0 or not fault.selects(method, path, action, changes_state):
                continue
            retry_after = None
            if fault.kind == "throttle":
                wait = self._take(index, fault, client)
                if wait is None:
                    continue
                retry_after = seconds(
                    fault.retry_after if fault.retry_after is not None else max(1, math.ceil(wait))
                )
            elif fault.rate < 1 and self._rng.random() >= fault.rate:
                continue
            elif fault.retry_after is not None:
                retry_after = seconds(fault.retry_after)
            left = self._left[index]
            if left is not None:
                self._left[index] = left - 1
            return Drawn(fault, retry_after)
        return None

    def _take(self, index: int, fault: Fault, client: str) -> float | None:
        """Take a token from the client's bucket: None if there was one, else the wait for it."""
        now = self.monotonic()
        tokens, since = self._buckets.get((index, client), (float(fault.burst), now))
        tokens = min(float(fault.burst), tokens + (now - since) * fault.rps)
        if tokens >= 1:
            self._buckets[(index, client)] = (tokens - 1, now)
            return None
        self._buckets[(index, client)] = (tokens, now)
        return (1 - tokens) / fault.rps


_SDK_ACCESS = re.compile(r"Access=([^\s,]+)")


def client_of(headers: Mapping[str, str], address: str | None) -> str:
    """Who a throttle counts a request against: its AK, else (a digest of) its token, else the
    address it came from. No secret is kept."""
    authorization = headers.get("authorization", "")
    found = _SDK_ACCESS.search(authorization)
    if found:
        return "ak:" + found.group(1)
    if authorization.startswith("bce-auth-v1/"):
        return "ak:" + authorization.split("/")[1]
    token = headers.get("x-auth-token")
    if token:
        return "token:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]
    return "address:" + (address or "unknown")
