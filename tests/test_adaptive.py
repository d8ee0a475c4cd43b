"""The adaptive limit's mechanics, on a fake clock: slow start, cuts once per round trip,
additive increase, latency, bounds, and pacing after a throttle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any, cast

import pytest

from reconcile.manifest import Manifest
from reconcile.providers.adaptive import (
    AdaptiveLimit,
    Cubic,
    FixedLimit,
    Limit,
    SharedLimit,
    Signal,
    Slot,
    signal_of,
)
from reconcile.wiring import Options, _Opener


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limit_on(clock: Clock, **kw: object) -> AdaptiveLimit:
    return AdaptiveLimit(clock=clock, sleep=clock.sleep, **kw)  # type: ignore[arg-type]


def round_trip(limit: AdaptiveLimit, clock: Clock, status: int, latency: float = 0.02) -> int:
    """Fill the limit, let `latency` pass, answer every request with `status`; the new limit."""

    async def run() -> list[Slot]:
        slots = []
        for _ in range(limit.current):
            await limit._acquire()
            await limit._pace()
            slots.append(limit._start())
        return slots

    slots = asyncio.run(run())
    clock.now += latency
    for slot in slots:
        slot.answered(status)
        limit._release(slot)
    return limit.current


def test_slow_start_grows_the_limit_by_a_quarter_each_round_trip_then_by_half() -> None:
    clock = Clock()
    limit = limit_on(clock, initial=16)
    assert [round_trip(limit, clock, 200) for _ in range(3)] == [20, 25, 31]
    limit = limit_on(clock, initial=32)
    assert [round_trip(limit, clock, 200) for _ in range(2)] == [48, 72]


def test_the_limit_never_passes_its_maximum_or_falls_below_its_minimum() -> None:
    clock = Clock()
    limit = limit_on(clock, initial=8, maximum=20, minimum=2)
    for _ in range(5):
        round_trip(limit, clock, 200)
    assert limit.current == 20
    for _ in range(20):
        round_trip(limit, clock, 429)
    assert limit.current == 2


def test_a_round_trip_of_429s_cuts_the_limit_once() -> None:
    """Every answer of one round trip was sent before the cut: they say nothing about the new
    limit, so 32 throttled answers make one cut, not 32."""
    clock = Clock()
    limit = limit_on(clock, initial=32)
    assert round_trip(limit, clock, 429) == int(32 * 0.7)
    assert limit.cuts == 1
    assert limit.congested == 32


def test_after_a_cut_the_limit_grows_by_about_one_per_round_trip() -> None:
    clock = Clock()
    limit = limit_on(clock, initial=32)
    round_trip(limit, clock, 503)
    cut = limit.current
    grown = [round_trip(limit, clock, 200) for _ in range(3)]
    assert grown == [cut + 1, cut + 2, cut + 3]


def test_a_rising_latency_cuts_the_limit() -> None:
    clock = Clock()
    limit = limit_on(clock, initial=16, latency_tolerance=2.0)
    round_trip(limit, clock, 200, latency=0.02)
    before = limit.current
    for _ in range(10):
        round_trip(limit, clock, 200, latency=0.2)
    assert limit.current < before
    # A latency is no quota met: slow start goes on, to find the limit again once it falls.
    assert limit.slow_start


def test_a_timeout_is_congestion_and_a_reset_is_no_signal() -> None:
    assert signal_of(None, timed_out=True) is Signal.CONGESTED
    assert signal_of(None) is Signal.NEUTRAL
    assert signal_of(404) is Signal.OK
    assert signal_of(429) is Signal.THROTTLED
    assert signal_of(503) is Signal.CONGESTED

    async def timed_out(limit: AdaptiveLimit) -> None:
        with pytest.raises(TimeoutError):
            async with limit.slot():
                raise TimeoutError

    clock = Clock()
    limit = limit_on(clock, initial=10)
    asyncio.run(timed_out(limit))
    assert limit.current == 7
    assert limit.in_flight == 0


def test_after_a_throttle_starts_are_paced_below_the_rate_that_throttled() -> None:
    """A platform that limits the rate, not the concurrency: once throttled, requests start
    spaced by 1/rate, the rate cut to 0.7 times what was measured, then growing back."""
    clock = Clock()
    limit = limit_on(clock, initial=4)
    # 100 answers a second for two seconds, then a 429.
    for _ in range(200):
        slot = Slot(clock())
        limit.in_flight += 1
        clock.now += 0.01
        slot.answered(200)
        limit._release(slot)
    # A burst of 429s to requests all sent before the first of them came back: one cut of the
    # rate, not one per answer (0.7 ** 20 of it would starve the listing).
    burst = [Slot(clock()) for _ in range(20)]
    for slot in burst:
        limit.in_flight += 1
        slot.answered(429)
        limit._release(slot)
    assert limit.cubic is not None
    assert limit.cuts == 1
    assert 60 <= limit.send_rate <= 75
    clock.slept.clear()

    async def starts(n: int) -> None:
        for _ in range(n):
            async with limit.slot():
                pass

    asyncio.run(starts(5))
    assert clock.slept, "starts after a throttle are paced"
    assert all(gap == pytest.approx(clock.slept[0], rel=0.5) for gap in clock.slept)


def test_a_throttle_in_slow_start_paces_from_the_rate_answers_came_at_lately() -> None:
    """In slow start the rate grows with every round trip; the pace after the first throttle
    starts from the rate of the last answers (0.7 of 1,000/s), not from an average over the
    last second (about 400/s here), which left a 1,000/s platform at a fifth of its rate."""
    clock = Clock()
    limit = limit_on(clock, initial=4)
    for rate in (100, 200, 400, 800, 1000):  # a fifth of a second at each
        for _ in range(rate // 5):
            slot = Slot(clock())
            limit.in_flight += 1
            clock.now += 1 / rate
            slot.answered(200)
            limit._release(slot)
    throttled = Slot(clock())
    limit.in_flight += 1
    throttled.answered(429)
    limit._release(throttled)
    assert limit.send_rate == pytest.approx(700, rel=0.05)


@pytest.mark.parametrize("rate", [100, 1000])
def test_after_a_throttle_the_rate_is_back_in_one_second_whatever_it_is(rate: int) -> None:
    """The cubic's flat top comes one second after the throttle at any rate: with one constant
    curve it came in 1.4 s at 100/s and 3.1 s at 1,000/s."""
    cubic = Cubic(w_max=rate, last_fail=0.0)
    assert cubic.throttled(rate, 10.0) == pytest.approx(0.7 * rate)
    assert cubic.success(10.0) == pytest.approx(0.7 * rate)
    assert cubic.success(10.5) == pytest.approx(rate * (1 - 0.3 / 8))
    assert cubic.success(11.0) == pytest.approx(rate)
    assert cubic.success(12.0) == pytest.approx(1.3 * rate)  # then probing above it


def test_a_waiting_request_starts_when_a_slot_frees() -> None:
    order: list[str] = []

    async def run() -> None:
        limit = AdaptiveLimit(initial=1, maximum=1)
        release = asyncio.Event()

        async def first() -> None:
            async with limit.slot():
                order.append("first in")
                await release.wait()
            order.append("first out")

        async def second() -> None:
            async with limit.slot():
                order.append("second in")

        tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert order == ["first in"]
        release.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())
    assert order == ["first in", "first out", "second in"]


def test_a_cancelled_waiter_passes_its_wake_up_on() -> None:
    async def run() -> list[str]:
        limit = AdaptiveLimit(initial=1, maximum=1)
        got: list[str] = []
        hold = asyncio.Event()

        async def holder() -> None:
            async with limit.slot():
                await hold.wait()

        async def waiter(name: str) -> None:
            async with limit.slot():
                got.append(name)

        h = asyncio.create_task(holder())
        await asyncio.sleep(0)
        cancelled = asyncio.create_task(waiter("cancelled"))
        patient = asyncio.create_task(waiter("patient"))
        await asyncio.sleep(0)
        hold.set()
        cancelled.cancel()
        await asyncio.gather(h, patient, cancelled, return_exceptions=True)
        assert limit.in_flight == 0
        return got

    assert asyncio.run(run()) == ["patient"]


def test_queued_requests_start_in_order_each_woken_once() -> None:
    """1,000 requests queued on a limit of 4: they start in the order they asked, never more
    than 4 at once, and each waits on one wake-up (waking all that might fit, each to find
    the limit full again, cost about 20 wake-ups per request)."""

    async def run() -> tuple[list[int], int, int]:
        limit = AdaptiveLimit(initial=4, maximum=4)
        started: list[int] = []
        inside = peak = 0
        futures = 0
        loop = asyncio.get_running_loop()
        create_future = loop.create_future

        def counting_future() -> asyncio.Future[None]:
            nonlocal futures
            futures += 1
            return create_future()

        loop.create_future = counting_future  # type: ignore[method-assign]

        async def one(index: int) -> None:
            nonlocal inside, peak
            async with limit.slot() as slot:
                started.append(index)
                inside += 1
                peak = max(peak, inside)
                await asyncio.sleep(0)
                slot.answered(200)
                inside -= 1

        await asyncio.gather(*(one(index) for index in range(1000)))
        return started, peak, futures

    started, peak, futures = asyncio.run(run())
    assert started == list(range(1000))
    assert peak == 4
    assert futures <= 1000


def test_a_fixed_limit_holds_at_most_its_number_in_flight() -> None:
    async def run() -> int:
        limit = FixedLimit(3)
        peak = 0
        inside = 0

        async def one() -> None:
            nonlocal peak, inside
            async with limit.slot() as slot:
                inside += 1
                peak = max(peak, inside)
                await asyncio.sleep(0)
                slot.answered(429)  # a fixed limit ignores what comes back
                inside -= 1

        await asyncio.gather(*(one() for _ in range(10)))
        return peak

    assert asyncio.run(run()) == 3


@pytest.mark.parametrize("shared", [False, True], ids=["own", "within-a-shared-total"])
def test_a_limit_of_one_grows_on_a_real_clock(shared: bool) -> None:
    """The request that fills the limit is limited by it, so its answer raises the limit (on a
    real clock, which advances between the fill and the start, it once did not: stuck at 1).
    Within a shared total (`auto`, as wiring makes it), the slot starts once the total lets it
    go, after the fill: a limit cut to 1 by a slow start-up stayed at 1 for the whole run."""

    async def run() -> int:
        own = AdaptiveLimit(initial=1)
        limit: Limit = SharedLimit(own, FixedLimit(128)) if shared else own

        async def one() -> None:
            async with limit.slot() as slot:
                await asyncio.sleep(0.001)
                slot.answered(200)

        await asyncio.gather(*(one() for _ in range(50)))
        return own.current

    assert asyncio.run(run()) > 4


def test_the_debug_log_says_each_change_of_an_endpoints_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`--parallelism auto` as the providers get it (one limit per endpoint, from wiring): its
    cuts and raises reach the debug log with the endpoint and why."""
    opener = _Opener(cast(Manifest, None), Options(state_dir=tmp_path), {})
    shared = opener.limit_for("https://fabric.example.test")
    assert isinstance(shared, SharedLimit)
    limit = shared.own
    assert isinstance(limit, AdaptiveLimit)
    caplog.set_level(logging.DEBUG, logger="reconcile.http")
    clock = Clock()
    limit.clock, limit.sleep = clock, clock.sleep
    limit._window_start = clock.now
    round_trip(limit, clock, 429)
    round_trip(limit, clock, 200)
    lines = [r.getMessage() for r in caplog.records if r.name == "reconcile.http"]
    assert lines == [
        "parallelism for https://fabric.example.test: 4 -> 2 (throttled (429, 503 or a timeout))",
        "parallelism for https://fabric.example.test: 2 -> 3 (answers succeed)",
    ]
    assert all(r.levelno == logging.DEBUG for r in caplog.records)


def test_endpoints_adapt_on_their_own_within_one_shared_total() -> None:
    """`auto` over many endpoints: each has its own limit, and all of them together stay within
    the total; a request waiting on its own endpoint holds none of the total."""

    async def run() -> tuple[int, dict[str, int]]:
        total = FixedLimit(4)
        limits = {
            "slow": SharedLimit(AdaptiveLimit(initial=1, maximum=1), total),
            "fast": SharedLimit(AdaptiveLimit(initial=8, maximum=8), total),
        }
        inside = dict.fromkeys(limits, 0)
        peaks = dict.fromkeys(limits, 0)
        peak = 0

        async def one(endpoint: str) -> None:
            nonlocal peak
            async with limits[endpoint].slot() as slot:
                inside[endpoint] += 1
                peaks[endpoint] = max(peaks[endpoint], inside[endpoint])
                peak = max(peak, sum(inside.values()))
                await asyncio.sleep(0.001)
                slot.answered(200)
                inside[endpoint] -= 1

        await asyncio.gather(*(one(name) for _ in range(20) for name in ("slow", "fast")))
        return peak, peaks

    peak, peaks = asyncio.run(run())
    assert peak == 4  # the fast endpoint alone would have sent 8
    assert peaks["slow"] == 1
    assert peaks["fast"] == 4  # once the slow one is done, the whole total


def test_providers_of_one_endpoint_share_one_connection_pool(tmp_path: Path) -> None:
    """200 workspaces on one platform need one pool of connections (and one TLS context, whose
    CA bundle costs 40 ms to load), not one each; another endpoint has its own."""
    from reconcile.manifest import load_manifest
    from reconcile.providers.transport import _tls_context
    from reconcile.wiring import close_providers, open_providers

    (tmp_path / "m.toml").write_text(
        "".join(
            f'[providers.{name}]\ntype = "fabric"\nendpoint = "{endpoint}"\n'
            f'workspace_id = "ws-{name}"\ncredentials = {{ token_env = "T" }}\n'
            for name, endpoint in [
                ("a", "https://fabric.example.com"),
                ("b", "https://fabric.example.com"),
                ("c", "https://other.example.com"),
            ]
        ),
        encoding="utf-8",
    )
    manifest = load_manifest(tmp_path / "m.toml")
    providers = open_providers(manifest, None, Options(state_dir=tmp_path), {"T": "token"})
    pools = {name: cast(Any, provider).http.transport for name, provider in providers.items()}
    assert pools["a"] is pools["b"]
    assert pools["c"] is not pools["a"]

    async def tls_contexts() -> list[object]:
        sessions = [pools[name]._open() for name in ("a", "c")]
        try:
            return [session.connector._ssl for session in sessions]
        finally:
            for session in sessions:
                await session.close()
            await close_providers(providers)

    assert asyncio.run(tls_contexts()) == [_tls_context(), _tls_context()]


def test_headroom_wakes_only_as_many_waiters_as_may_go() -> None:
    """Qianfan's details wait for headroom under the limit: 500 of them, 4 at a time, finish,
    never more than 4 at once, and a release wakes only those that may go (waking all of them,
    each to find no room, read the limit 31,500 times here; 2,232 now)."""
    from reconcile.providers.adaptive import Headroom

    class Counted:
        reads = 0

        @property
        def current(self) -> int:
            Counted.reads += 1
            return 5

        def slot(self) -> Any:
            raise AssertionError("not used by Headroom")

    async def run() -> int:
        headroom = Headroom(cast(Limit, Counted()), spare=1)
        inside = peak = 0

        async def one() -> None:
            nonlocal inside, peak
            async with headroom.hold():
                inside += 1
                peak = max(peak, inside)
                await asyncio.sleep(0)
                inside -= 1

        await asyncio.gather(*(one() for _ in range(500)))
        return peak

    assert asyncio.run(run()) == 4
    assert Counted.reads < 10 * 500


def test_a_request_cancelled_while_it_waits_for_the_total_gives_its_endpoint_slot_back() -> None:
    async def run() -> tuple[int, int, bool]:
        own = AdaptiveLimit(initial=2, maximum=2)
        total = FixedLimit(1)
        limit = SharedLimit(own, total)
        first = limit.slot()
        await first.__aenter__()
        waiting = asyncio.ensure_future(limit.slot().__aenter__())
        await asyncio.sleep(0.01)
        held_while_waiting = own.in_flight
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await first.__aexit__(None, None, None)
        return held_while_waiting, own.in_flight, total._semaphore.locked()

    assert asyncio.run(run()) == (2, 0, False)


def test_a_timeout_inside_a_shared_slot_cuts_its_endpoints_limit() -> None:
    async def run() -> int:
        own = AdaptiveLimit(initial=8, maximum=8)
        limit = SharedLimit(own, FixedLimit(8))
        with contextlib.suppress(TimeoutError):
            async with limit.slot():
                raise TimeoutError
        return own.current

    assert asyncio.run(run()) < 8


def test_headroom_given_up_by_a_cancelled_waiter_goes_to_the_next() -> None:
    from reconcile.providers.adaptive import Headroom

    async def run() -> tuple[int, int]:
        headroom = Headroom(FixedLimit(2), spare=1)  # one place
        first = headroom.hold()
        await first.__aenter__()
        cancelled = asyncio.ensure_future(headroom.hold().__aenter__())
        third = asyncio.ensure_future(headroom.hold().__aenter__())
        await asyncio.sleep(0)
        cancelled.cancel()
        await first.__aexit__(None, None, None)  # the place goes past the cancelled waiter
        await asyncio.wait_for(third, timeout=1)
        await asyncio.gather(cancelled, return_exceptions=True)
        return headroom.in_flight, len(headroom._waiters)

    assert asyncio.run(run()) == (1, 0)


def test_spending_the_spare_lets_the_waiting_kind_use_it() -> None:
    """Qianfan's details leave one slot to the marker pages; once the last page came, they may
    use it too, or a limit cut to 3 would keep them at 2 in flight for the rest of the listing."""
    from reconcile.providers.adaptive import Headroom

    headroom = Headroom(FixedLimit(3), spare=1)

    async def run() -> tuple[bool, bool]:
        holds = [headroom.hold() for _ in range(3)]
        await holds[0].__aenter__()
        await holds[1].__aenter__()
        third = asyncio.ensure_future(holds[2].__aenter__())
        await asyncio.sleep(0)
        waited = not third.done()
        headroom.spend_spare()
        await asyncio.sleep(0)
        return waited, third.done()

    assert asyncio.run(run()) == (True, True)


def test_a_request_waiting_to_retry_holds_no_place_of_its_headroom() -> None:
    """A detail answered 429 waits its Retry-After (a second) before the retry: holding its
    place meanwhile, a throttled listing's details sat idle for that second."""
    import httpx

    from reconcile.providers import fabric
    from reconcile.providers.adaptive import Headroom
    from reconcile.providers.http import Http, RetryPolicy

    headroom = Headroom(FixedLimit(2), spare=1)
    held_while_waiting: list[int] = []

    async def sleep(_: float) -> None:
        held_while_waiting.append(headroom.in_flight)

    statuses = iter([429, 200])
    http = Http(
        httpx.AsyncClient(
            transport=httpx.MockTransport(
                lambda _: httpx.Response(next(statuses), headers={"Retry-After": "1"})
            )
        ),
        provider="p",
        map_error=fabric.map_error,
        limit=FixedLimit(2),
        retry=RetryPolicy(base_delay=0.0),
        sleep=sleep,
    )
    answer = asyncio.run(http.request("a detail", "GET", "http://p.test/d", within=headroom))
    assert answer.status_code == 200
    assert held_while_waiting == [0]
    assert headroom.in_flight == 0
