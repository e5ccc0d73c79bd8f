"""The rate limiter's cumulative wait, in seconds, and where /metrics shows it."""

from __future__ import annotations

import asyncio

from bot.flow.ratelimit import RateLimiters
from bot.metrics import Metrics
from tests.conftest import FakeClock


async def test_waited_seconds_add_up_and_show_as_a_counter() -> None:
    clock = FakeClock(0.0)

    async def sleep(seconds: float) -> None:  # simulated time: no real waiting
        clock.advance(seconds)
        await asyncio.sleep(0)

    limiters = RateLimiters({"notion": (1, 1.0)}, clock, sleep, margin=0.0)
    limiter = limiters.get("notion")
    assert limiter is not None
    for _ in range(3):  # the 2nd waits ~1 s, the 3rd ~1 s more
        (await limiter.acquire())()
    stats = limiter.stats()
    assert stats.waited == 2
    assert stats.waited_seconds == 2.0
    metrics = Metrics()
    metrics.add_limiter_collector(limiters)
    text = metrics.render().decode()
    assert 'opsbot_rate_limit_wait_seconds_total{platform="notion"} 2.0' in text


async def test_a_cancelled_waiter_counts_the_time_it_waited() -> None:
    clock = FakeClock(0.0)
    asleep = asyncio.Event()

    async def sleep(seconds: float) -> None:
        clock.advance(0.25)
        asleep.set()
        await asyncio.Event().wait()  # never granted: the caller gives up

    limiters = RateLimiters({"trello": (1, 10.0)}, clock, sleep, margin=0.0)
    limiter = limiters.get("trello")
    assert limiter is not None
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.wait_for(asleep.wait(), 5)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert limiter.stats().waited_seconds == 0.25
