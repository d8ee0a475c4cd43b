"""How an emulator runs, beside the state it serves: one record, passed whole.

`create_app`, `serve`, `Emulator` and the `emulator serve` command all take an
`EmulatorSettings`; the first three also take its fields as keywords (``latency_ms=5``), which
override the record's.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconcile.emulator.faults import FaultSpec
from reconcile.emulator.host import Clock


@dataclass(frozen=True)
class EmulatorSettings:
    """Where the state is persisted, latency, faults and the clock of one emulator.

    ``persist_path``: where the state is written after every successful mutation (None: never).
    ``latency_ms`` and ``latency_jitter_ms``: delay every API request by that much, plus up to
    the jitter. ``fail_rate``: the share of API requests answered with a 500, 408 or 429.
    ``faults``: `Fault` objects, spec strings such as ``"reset,method=DELETE,rate=0.1"`` or
    mappings (see ``faults.py``), drawn from ``seed``. ``clock``: seconds since the epoch, what
    signed requests' timestamps are checked against. ``state_private``: nothing but the
    emulator's own handlers changes the state (`serve` sets it: the state lives in the server's
    process), so what listings derive from it holds until a handler changes it; in-process,
    tests edit the state in place, and every listing reads it again.
    """

    persist_path: str | os.PathLike[str] | None = None
    latency_ms: float = 0
    latency_jitter_ms: float = 0
    fail_rate: float = 0
    seed: int | None = None
    faults: tuple[FaultSpec, ...] = ()
    clock: Clock = time.time
    state_private: bool = False

    def __post_init__(self) -> None:
        if not all(map(math.isfinite, (self.latency_ms, self.latency_jitter_ms, self.fail_rate))):
            raise ValueError("latency_ms, latency_jitter_ms and fail_rate must be finite numbers")
        if self.latency_ms < 0 or self.latency_jitter_ms < 0:
            raise ValueError("latency_ms and latency_jitter_ms must not be negative")
        if not 0 <= self.fail_rate <= 1:
            raise ValueError(f"fail_rate must be between 0 and 1, got {self.fail_rate}")
        object.__setattr__(self, "faults", tuple(self.faults))

    @classmethod
    def of(cls, settings: EmulatorSettings | None, options: Mapping[str, Any]) -> EmulatorSettings:
        """``settings`` (the defaults when None) with the fields named in ``options`` replaced;
        a name that is no field is a TypeError, as an unknown keyword argument is."""
        base = cls() if settings is None else settings
        return dataclasses.replace(base, **options) if options else base
