"""Sliding-window limiter: never over the limit in any window, close to it under a backlog."""

from __future__ import annotations

import asyncio
import bisect

import pytest

from bot.flow.lanes import Lanes
from bot.flow.ratelimit import RateLimiters, SlidingWindowLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def max_in_any_window(times: list[float], window: float) -> int:
    """Largest number of grants in any closed interval [t, t + window]."""
    times = sorted(times)
    return max(bisect.bisect_right(times, t + window) - i for i, t in enumerate(times))


@pytest.mark.parametrize(
    ("limit", "window"), [(3, 1.0), (100, 10.0), (1, 1.0), (1000, 100.0), (100, 100.0)]
)
def test_backlog_never_exceeds_limit_and_runs_close_to_it(limit: int, window: float) -> None:
    t = FakeTime()
    limiter = SlidingWindowLimiter(limit, window, t.clock)
    grants: list[float] = []
    total = limit * 20
    while len(grants) < total:
        wait = limiter.try_acquire(t.now)
        if wait == 0:
            grants.append(t.now)
        else:
            t.now += wait
    assert max_in_any_window(grants, window) <= limit
    elapsed_windows = (grants[-1] - grants[0]) / window
    rate_share = (total - limit) / (elapsed_windows * limit)  # the first window is a free burst
    assert rate_share >= 0.95


def test_irregular_arrivals_never_exceed_limit() -> None:
    t = FakeTime()
    limiter = SlidingWindowLimiter(5, 1.0, t.clock)
    grants = []
    for i in range(2000):
        t.now += (i * 7919 % 13) / 40  # deterministic irregular gaps 0 .. 0.3 s
        if limiter.try_acquire(t.now) == 0:
            grants.append(t.now)
    assert max_in_any_window(grants, 1.0) <= 5


async def test_acquire_is_fifo_and_limits() -> None:
    t = FakeTime()
    limiter = SlidingWindowLimiter(2, 1.0, t.clock, t.sleep)
    order: list[tuple[int, float]] = []

    async def take(n: int) -> None:
        await limiter.acquire()
        order.append((n, t.now))

    await asyncio.gather(*(take(n) for n in range(6)))
    assert [n for n, _ in order] == list(range(6))
    assert max_in_any_window([at for _, at in order], 1.0) <= 2


async def test_cancelled_waiter_takes_no_grant() -> None:
    t = FakeTime()
    gate = asyncio.Event()

    async def slow_sleep(seconds: float) -> None:
        await gate.wait()
        t.now += seconds

    limiter = SlidingWindowLimiter(1, 1.0, t.clock, slow_sleep)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.stats().granted == 1
    gate.set()
    t.now += 1.1
    await asyncio.wait_for(limiter.acquire(), 1)  # the lock was released by the cancelled waiter
    assert limiter.stats().granted == 2


def test_penalise_blocks_for_retry_after() -> None:
    t = FakeTime()
    limiters = RateLimiters({"notion": (3, 1.0)}, t.clock)
    limiters.penalise("notion", 5.0)
    limiter = limiters.get("notion")
    assert limiter is not None
    assert limiter.try_acquire(t.now) == pytest.approx(5.0)
    t.now += 5.0
    assert limiter.try_acquire(t.now) == 0


async def test_unknown_platform_is_not_limited() -> None:
    limiters = RateLimiters({"notion": (3, 1.0)})
    throttle = limiters.throttle("nowhere")
    for _ in range(10):
        await throttle()


def test_lanes_cap_each_platform_and_keep_its_order() -> None:
    lanes: Lanes[str] = Lanes.from_limits({"slack": (1, 1.0), "notion": (3, 1.0)}, workers=5)
    assert (lanes.cap("slack"), lanes.cap("notion"), lanes.cap("echo")) == (1, 3, 5)
    assert lanes.admit("slack", "s1")
    assert not lanes.admit("slack", "s2") and not lanes.admit("slack", "s3")
    assert lanes.admit("notion", "n1")
    assert lanes.crowded() == {"slack"} and lanes.waiting == 2
    assert lanes.take_aside() is None  # slack is still busy
    lanes.done("slack")
    assert lanes.take_aside() == "s2"
    lanes.done("slack")
    assert lanes.take_aside() == "s3"
    assert lanes.crowded() == frozenset() and lanes.waiting == 0


async def test_the_throttle_never_passes_a_queued_waiter() -> None:
    # grant_now (the throttle's no-wait path) must not take a slot someone is queued for.
    t = FakeTime()
    gate = asyncio.Event()

    async def held_sleep(seconds: float) -> None:
        await gate.wait()
        t.now += seconds

    limiters = RateLimiters({"slack": (1, 1.0)}, t.clock, held_sleep)
    limiter = limiters.get("slack")
    assert limiter is not None
    throttle = limiters.throttle("slack")
    await throttle()  # immediate grant
    first_in_line = asyncio.create_task(throttle())
    await asyncio.sleep(0)  # queued, asleep until the window frees
    t.now += 2.0  # the window is free again, but the queued caller comes first
    assert limiter.grant_now() is None
    gate.set()
    await asyncio.wait_for(first_in_line, 1)
    assert limiter.stats().granted == 2
