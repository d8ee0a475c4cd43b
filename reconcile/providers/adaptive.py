"""How many requests may be in flight to one platform endpoint, and how fast they may start.

`FixedLimit` is `--parallelism N`: a semaphore. `AdaptiveLimit` is `--parallelism auto`, which
finds what the platform allows instead of guessing a number:

- **In flight** (AIMD, as TCP's congestion window): the limit grows by a quarter per round trip
  up to 32 and by half above (slow start) until the first sign of congestion, then by one per
  round trip while answers succeed and their latency holds. It is cut multiplicatively on a
  429 or 503, on a timeout, or when the latency of a request sent after the last cut rises
  above `latency_tolerance` times the baseline (the least latency seen in the recent window).
  One cut per round trip: answers to requests sent before a cut say nothing about the limit
  after it.
- **Send rate** (CUBIC, as the AWS SDKs' "adaptive" retry mode, botocore/retries/adaptive.py):
  a platform that throttles by rate rather than by concurrency answers 429 at any concurrency
  once its bucket is empty. After the first throttle, request starts are paced at a rate that
  drops to `beta` times the measured rate on each throttle and grows back along a cubic curve,
  flat near the rate that last throttled, so the platform is probed rarely and 429s stay few.

The clock is injected, so the behaviour is tested with a fake one.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

#: A platform that throttles says so with 429; 503 is an overloaded one.
THROTTLED_STATUS = 429
OVERLOADED_STATUS = 503


class Signal(Enum):
    """What one request's answer says about the platform's capacity."""

    OK = "ok"  # answered, whatever the status but these: latency is a sample
    THROTTLED = "throttled"  # 429: cut the limit, and pace the starts from now on
    CONGESTED = "congested"  # 503 or a timeout: cut the limit
    NEUTRAL = "neutral"  # no answer for another reason (a reset, a refused response)


def signal_of(status: int | None, *, timed_out: bool = False) -> Signal:
    if timed_out or status == OVERLOADED_STATUS:
        return Signal.CONGESTED
    if status == THROTTLED_STATUS:
        return Signal.THROTTLED
    return Signal.NEUTRAL if status is None else Signal.OK


class Slot:
    """One request's hold on the limit; `answered` tells the limit what came back."""

    __slots__ = ("limited", "signal", "started")

    def __init__(self, started: float) -> None:
        self.started = started
        self.signal = Signal.NEUTRAL
        #: This request filled the limit when it started: its success says the limit was used.
        self.limited = False

    def answered(self, status: int) -> None:
        self.signal = signal_of(status)

    def timed_out(self) -> None:
        self.signal = Signal.CONGESTED


class Limit(Protocol):
    """What `Http` needs: a slot per request, held while it is in flight."""

    @property
    def current(self) -> int: ...

    def slot(self) -> AbstractAsyncContextManager[Slot]: ...


class FixedLimit:
    """`--parallelism N`: at most N requests in flight, whatever comes back."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = max(1, limit)
        self.clock = clock
        self._semaphore = asyncio.Semaphore(self.limit)

    @property
    def current(self) -> int:
        return self.limit

    def slot(self) -> _FixedHold:
        return _FixedHold(self)


class _FixedHold(AbstractAsyncContextManager[Slot]):
    """A `FixedLimit` slot, held for one request. A class, not an `asynccontextmanager`: a
    generator per request (and the event loop's weak set of them) cost a third of a slot."""

    __slots__ = ("limit",)

    def __init__(self, limit: FixedLimit) -> None:
        self.limit = limit

    async def __aenter__(self) -> Slot:
        await self.limit._semaphore.acquire()
        return Slot(self.limit.clock())

    async def __aexit__(self, *exc: object) -> None:
        self.limit._semaphore.release()


class RateClock:
    """The rate of the last `count` events (or of those there were), from their times.

    The limit records its successful answers: after a throttle, the rate the platform let
    through. Counted, not timed: over a window of one second, a rate that grew in slow start
    read as half of what it had become when a 1,000/s platform first throttled (the pace then
    started at a fifth of the allowed rate); 64 answers span 64 ms there and 0.64 s at 100/s."""

    def __init__(self, count: int = 64) -> None:
        self._times: deque[float] = deque(maxlen=count)

    def record(self, now: float) -> float:
        self._times.append(now)
        return self.rate()

    def rate(self) -> float:
        times = self._times
        span = times[-1] - times[0] if times else 0.0
        return (len(times) - 1) / span if span >= 0.01 else 0.0


@dataclass
class Cubic:
    """The send rate after a throttle: cut to `beta` times the rate that throttled, then back
    along w(t) = C (t - K)^3 + w_max, flat near w_max (botocore's CubicCalculator). K, the time
    back to w_max, is one second whatever the rate (C follows from it): botocore's C of 0.4 took
    eight seconds to come back to a 100/s platform's limit, and a C of 10, fine at 100/s, took
    three at 1,000/s, where 55-62% of the allowed rate was achieved (benchmarks/run.py
    throttled)."""

    w_max: float
    last_fail: float
    k: float = 1.0
    beta: float = 0.7

    @property
    def scale(self) -> float:
        return self.w_max * (1 - self.beta) / self.k**3

    def success(self, now: float) -> float:
        return self.scale * (now - self.last_fail - self.k) ** 3 + self.w_max

    def throttled(self, rate: float, now: float) -> float:
        self.w_max = rate
        self.last_fail = now
        return rate * self.beta


class _Places:
    """At most `_allowed()` places in use, handed out in the order asked. A place freed while
    requests wait is handed to the first of them (counted in use for it at once), so a wake-up
    is never lost or repeated: waking every waiter that might fit, each to find the limit full
    again, cost 20 wake-ups per request at 10,000 queued; a condition variable woken for each
    release was a tenth of a large Qianfan listing's CPU."""

    def __init__(self) -> None:
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def _allowed(self) -> int:
        raise NotImplementedError

    async def _acquire(self) -> None:
        if self.in_flight < self._allowed() and not self._waiters:
            self.in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake()  # the queue may hold only given-up waiters: this one may fit now
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Handed a place, then cancelled before using it: the place goes to the next.
                self._give_back()
            raise

    def _give_back(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        """Hand the free places to the first waiters (more than one when the limit grew);
        given-up waiters are dropped."""
        if not self._waiters:
            return
        allowed = self._allowed()
        while self.in_flight < allowed and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)


class AdaptiveLimit(_Places):
    """`--parallelism auto`: requests in flight and request starts, adapted to what the
    platform's answers say (see the module's docstring)."""

    #: Below this, a rate is no rate: pacing never waits more than 2 s between two starts.
    MIN_RATE = 0.5
    #: Below this many in flight, slow start grows at half its pace (see `slow_start_growth`).
    CAUTIOUS_BELOW = 32

    def __init__(
        self,
        *,
        initial: int = 4,
        slow_start_growth: float = 0.5,
        minimum: int = 1,
        maximum: int = 128,
        decrease: float = 0.7,
        latency_tolerance: float = 3.0,
        latency_decrease: float = 0.9,
        baseline_window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        on_change: Callable[[int, int, str], None] | None = None,
    ) -> None:
        super().__init__()
        self.minimum = max(1, minimum)
        self.maximum = max(self.minimum, maximum)
        self.limit = float(min(max(initial, self.minimum), self.maximum))
        #: What each answer adds in slow start: half a slot, so the limit grows by half per
        #: round trip; below `CAUTIOUS_BELOW` in flight, half of that. Requests in flight when
        #: a 100/s platform's bucket of 20 runs dry nearly all come back 429, so the early
        #: growth sets the first wave of 429s: doubling (TCP's 1) made 2.2-3.1% of the
        #: listing's requests 429s, a half 2.4-2.5% once the client got faster (18 of 26 in one
        #: 20 ms wave, 20 in flight), a quarter below 32 1.7% (`benchmarks/run.py throttled`).
        #: A quarter all the way was 5-8% slower on the large plan (interleaved runs): after
        #: the model pages' latency cuts, the limit climbs from 8 to 128 again.
        self.slow_start_growth = slow_start_growth
        self.decrease = decrease
        self.latency_tolerance = latency_tolerance
        self.latency_decrease = latency_decrease
        self.baseline_window = baseline_window
        self.clock = clock
        self.sleep = sleep
        #: Told (old, new, why) whenever the whole-number limit changes: the debug log's hook.
        self.on_change = on_change
        #: When the requests in flight last filled the limit: a request in flight then was
        #: limited by it, and only such a request's success raises it (TCP's "cwnd-limited").
        self._last_full = -math.inf
        self.slow_start = True
        self.last_cut = -math.inf
        #: Least latency of the current and the previous window: the uncongested round trip.
        self.baseline = math.inf
        #: Recent latency, smoothed so that one slow answer is no signal.
        self.latency = 0.0
        self._window_min = math.inf
        self._window_start = clock()
        self.rates = RateClock()
        #: Set at the first throttle: from then on, starts are paced.
        self.cubic: Cubic | None = None
        self.send_rate = math.inf
        self._next_start = -math.inf
        #: Counters for benchmarks and the debug log.
        self.congested = 0
        self.cuts = 0

    @property
    def current(self) -> int:
        return int(self.limit)

    def slot(self) -> _AdaptiveHold:
        return _AdaptiveHold(self)

    def _allowed(self) -> int:
        return int(self.limit)

    def _start(self) -> Slot:
        slot = Slot(self.clock())
        if self.in_flight >= self.current:
            # This request filled the limit: it, and those in flight with it, were limited.
            self._last_full = slot.started
            slot.limited = True
        return slot

    async def _pace(self) -> None:
        while self.cubic is not None:
            now = self.clock()
            start = max(now, self._next_start)
            self._next_start = start + 1.0 / max(self.send_rate, self.MIN_RATE)
            if start <= now:
                return
            cuts = self.cuts
            await self.sleep(start - now)
            if self.cuts == cuts:
                return
            # The rate was cut while this request waited for a turn reserved at the old rate:
            # it queues again at the new one, or the reserved turns would all meet 429s.

    def _release(self, slot: Slot) -> None:
        self.in_flight -= 1
        now = self.clock()
        if slot.signal is Signal.OK:
            self._answered(slot, now)
        elif slot.signal is not Signal.NEUTRAL:
            self.congested += 1
            measured = self.rates.rate()
            # Only the first answer about the current limit counts: a burst of 429s to requests
            # sent before the cut would otherwise cut the rate and the limit again and again.
            if slot.started > self.last_cut:
                if slot.signal is Signal.THROTTLED:
                    self._throttled(measured, now)
                self._cut(slot.started, now, f"{slot.signal.value} (429, 503 or a timeout)")
        self._wake()

    def _answered(self, slot: Slot, now: float) -> None:
        started = slot.started
        latency = now - started
        self._track_baseline(latency, now)
        self.latency = latency if self.latency == 0.0 else 0.9 * self.latency + 0.1 * latency
        measured = self.rates.record(now)
        if self.cubic is not None:
            self.send_rate = max(min(self.cubic.success(now), 2 * measured), self.MIN_RATE)
        if self.latency > self.baseline * self.latency_tolerance:
            self._cut(
                started, now, f"latency {self.latency * 1000:.0f} ms", by=self.latency_decrease
            )
        elif slot.limited or self._last_full >= started:
            # Only a limit that was reached is raised: an unused limit says nothing. (By the
            # flag, not the times alone: a shared total moves `started` past the fill.)
            if not self.slow_start:
                step = 1 / self.limit
            elif self.limit < self.CAUTIOUS_BELOW:
                step = self.slow_start_growth / 2
            else:
                step = self.slow_start_growth
            self._set(self.limit + step, "answers succeed")

    def _throttled(self, measured: float, now: float) -> None:
        rate = min(measured, self.send_rate)
        if rate <= 0:
            return  # no rate measured yet: the cut of the limit is all there is to do
        if self.cubic is None:
            self.cubic = Cubic(w_max=rate, last_fail=now)
        self.send_rate = max(self.cubic.throttled(rate, now), self.MIN_RATE)

    def _cut(self, started: float, now: float, why: str, *, by: float | None = None) -> None:
        """Cut the limit by `by` (default `decrease`). A latency cut (`by` given) leaves slow
        start on: a latency says the platform (or this machine) is busy, not that a quota was
        met, and one heavier kind of request (a page of 100 models beside version pages) is
        slower without any congestion."""
        if started <= self.last_cut:
            return  # sent before the last cut: its answer is about the old limit
        if by is None:
            self.slow_start = False
        self.last_cut = now
        self.cuts += 1
        # Turns reserved at the old rate are given up (their requests queue again).
        self._next_start = min(self._next_start, now)
        self._set(self.limit * (self.decrease if by is None else by), why)

    def _track_baseline(self, latency: float, now: float) -> None:
        self._window_min = min(self._window_min, latency)
        if now - self._window_start >= self.baseline_window:
            # The previous window's least latency stays in force with the new one's, so the
            # baseline follows a platform that got slower for good, and forgets old spikes.
            self.baseline = self._window_min
            self._window_min = latency
            self._window_start = now
        self.baseline = min(self.baseline, latency)

    def _set(self, limit: float, why: str) -> None:
        old = self.current
        self.limit = min(max(limit, float(self.minimum)), float(self.maximum))
        if self.on_change is not None and self.current != old:
            self.on_change(old, self.current, why)


class _AdaptiveHold(AbstractAsyncContextManager[Slot]):
    """An `AdaptiveLimit` slot, held for one request (a class for the reason `_FixedHold` is)."""

    __slots__ = ("limit", "slot")

    def __init__(self, limit: AdaptiveLimit) -> None:
        self.limit = limit
        self.slot: Slot | None = None

    async def __aenter__(self) -> Slot:
        # A slot first, then the pace: requests queued for a slot before the first throttle
        # must be paced too when their turn comes. The wait is not counted as latency (the
        # slot starts after it), and a limit that pacing keeps full grows, as it should.
        limit = self.limit
        await limit._acquire()
        try:
            await limit._pace()
        except BaseException:
            limit._give_back()
            raise
        self.slot = limit._start()
        return self.slot

    async def __aexit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        assert self.slot is not None  # entered
        if kind is not None and issubclass(kind, TimeoutError):
            self.slot.timed_out()
        self.limit._release(self.slot)


class SharedLimit:
    """One endpoint's limit inside a total shared by all endpoints (`auto` over many providers):
    each endpoint adapts on its own, and `--max-parallelism` bounds them together.

    The endpoint's slot is taken first, then one of the total's (a FIFO semaphore, so endpoints
    waiting for the total take turns): a request waiting on its own endpoint's limit holds none
    of the total another endpoint could use. The wait for the total is not the endpoint's
    latency, so the slot starts when the request may go."""

    def __init__(self, own: Limit, total: FixedLimit) -> None:
        self.own = own
        self.total = total

    @property
    def current(self) -> int:
        return min(self.own.current, self.total.current)

    def slot(self) -> _SharedHold:
        return _SharedHold(self)


class _SharedHold(AbstractAsyncContextManager[Slot]):
    """A `SharedLimit` slot: the endpoint's, then the total's, as two nested `async with`
    would hold them (a class for the reason `_FixedHold` is: as an `asynccontextmanager`, the
    slots were a quarter of a delete's CPU in a large apply)."""

    __slots__ = ("clock", "own", "total")

    def __init__(self, limit: SharedLimit) -> None:
        self.clock = limit.total.clock
        self.own = limit.own.slot()
        self.total = limit.total.slot()

    async def __aenter__(self) -> Slot:
        slot = await self.own.__aenter__()
        try:
            await self.total.__aenter__()
        except BaseException as error:
            await self.own.__aexit__(type(error), error, error.__traceback__)
            raise
        slot.started = max(slot.started, self.clock())
        return slot

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: Any
    ) -> None:
        try:
            await self.total.__aexit__(kind, value, traceback)
        finally:
            await self.own.__aexit__(kind, value, traceback)


class Headroom(_Places):
    """At most the limit's current number less `spare` in flight, for one kind of request
    (Qianfan's details while its marker pages come): the limit changes, so this follows it."""

    def __init__(self, limit: Limit, spare: int = 1) -> None:
        super().__init__()
        self.limit = limit
        self.spare = spare

    def hold(self) -> _HeadroomHold:
        return _HeadroomHold(self)

    def spend_spare(self) -> None:
        """The requests the spare was kept for are done: this kind may use it too. (Kept, it
        held a throttled Qianfan listing at 84% of a 100/s platform's rate: with the limit cut
        to 3, details had 2 in flight, and the limit, never full, never grew.)"""
        self.spare = 0
        self._wake()

    def _allowed(self) -> int:
        return max(1, self.limit.current - self.spare)


class _HeadroomHold(AbstractAsyncContextManager[None]):
    __slots__ = ("headroom",)

    def __init__(self, headroom: Headroom) -> None:
        self.headroom = headroom

    async def __aenter__(self) -> None:
        await self.headroom._acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.headroom._give_back()
