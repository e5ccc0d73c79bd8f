"""Per-platform rate limiting: a sliding-window log of the last N requests.

The platforms count requests in a sliding window, so a token bucket (which allows a burst of N
right after a full window of N) could overshoot; a log of the last N requests cannot: a new
grant is allowed only once one of the N most recent requests has left the window. Every HTTP request
acquires, retries included, so "never more than N per window" covers retries too.

Time is injected (`clock`, `sleep`) so tests run a long simulated backlog without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial

from bot.config import Settings
from bot.flow.attempt import attempt_paused
from executors.base import Answered, Throttle

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# A platform counts a request when it ARRIVES, somewhere between our grant (just before sending)
# and its answer. The lag varies (a new connection, a busy event loop, the GIL, a stalled
# server): bench/rate_limit_bench.py saw 429s at Notion 3/s and Slack 1/s when grants alone
# were spaced, on the first request of a cold connection and when the stand-in's loop stalled.
# So a request holds its place in the window from its grant until its ANSWER (`Answered`):
# the request `limit` grants later waits until one window after that answer, and arrivals can
# never be closer than a window, whatever the lag. On a 1-s window and a 5 ms local answer this
# costs ~1.5% of the limit; on a real 300 ms answer, more (the price of never seeing a 429).
# The margin covers clock granularity between our clock and the platform's.
MARGIN_SHARE = 0.01
MIN_MARGIN = 0.005


def default_margin(window: float) -> float:
    """Seconds added to the window between an answer and the grant `limit` grants later."""
    return max(MIN_MARGIN, MARGIN_SHARE * window)


@dataclass(frozen=True)
class LimiterStats:
    limit: int
    window: float
    granted: int
    waited: int
    in_window: int
    blocked_for: float
    waited_seconds: float = 0.0  # cumulative seconds from asking to grant (lock queue + sleeps)


class _Slot:
    """One granted request: it counts from `until` back one window (grant time, then answer)."""

    __slots__ = ("until",)

    def __init__(self, at: float) -> None:
        self.until = at


class SlidingWindowLimiter:
    """At most `limit` requests in any `window`-second interval, as the platform counts them:
    a request is counted from its grant until its answer (plus `margin` seconds; by default
    `default_margin(window)`)."""

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        margin: float | None = None,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"rate limit: got {limit} per {window}s, expected >= 1 per > 0s")
        self.limit = limit
        self.window = window
        self._span = window + (default_margin(window) if margin is None else margin)
        self._clock = clock
        self._sleep = sleep
        # Only the `limit` slots that free last matter, so the log never holds more than that.
        self._log: deque[_Slot] = deque()
        self._blocked_until = 0.0
        # asyncio.Lock hands itself over in FIFO order and, when a waiter is cancelled, nothing
        # was granted: fairness and cancellation safety come with it.
        self._lock = asyncio.Lock()
        self._granted = 0
        self._waited = 0
        self._waited_seconds = 0.0
        self._queued = 0  # callers inside acquire(): while any, grant_now passes nobody

    def try_acquire(self, now: float) -> float:
        """Grant now and return 0, or return the seconds to wait before trying again."""
        wait, _ = self._try_grant(now)
        return wait

    def try_grant(self, now: float) -> tuple[float, Answered | None]:
        """(0, what to call once answered) for a grant now, else (seconds to wait, None)."""
        wait, slot = self._try_grant(now)
        return wait, (None if slot is None else partial(self._answered, slot))

    def _try_grant(self, now: float) -> tuple[float, _Slot | None]:
        log = self._log
        while log and log[0].until <= now - self._span:
            log.popleft()  # keeps the log small for generous limits
        wait = self._blocked_until - now
        freed: _Slot | None = None
        if len(log) >= self.limit:
            # Answers come out of grant order: the slot that frees first is the one answered
            # first, not always the oldest grant.
            freed = min(log, key=_until)
            wait = max(wait, freed.until + self._span - now)
        if wait > 0:
            return wait, None
        if freed is not None:
            log.remove(freed)
        slot = _Slot(now)
        log.append(slot)
        self._granted += 1
        return 0.0, slot

    def grant_now(self) -> Answered | None:
        """A grant without waiting, if one is free and nobody is queued for it; else None."""
        if self._queued:
            return None
        _, slot = self._try_grant(self._clock())
        return None if slot is None else partial(self._answered, slot)

    async def acquire(self) -> Answered:
        """Wait for a grant; call the returned function once the platform has answered (or the
        request failed). Fair (first come, first served) and safe to cancel."""
        started = self._clock()
        self._queued += 1
        try:
            async with self._lock:
                wait, slot = self._try_grant(self._clock())
                if wait > 0:
                    self._waited += 1
                while slot is None:
                    await self._sleep(wait)
                    wait, slot = self._try_grant(self._clock())
        finally:  # in line behind others, then asleep; a cancelled waiter's time counts too
            self._queued -= 1
            self._waited_seconds += max(0.0, self._clock() - started)
        return partial(self._answered, slot)

    def _answered(self, slot: _Slot) -> None:
        slot.until = max(slot.until, self._clock())

    def block(self, until: float) -> None:
        """Grant nothing before `until` (the platform said Retry-After)."""
        self._blocked_until = max(self._blocked_until, until)

    def stats(self, now: float | None = None) -> LimiterStats:
        now = self._clock() if now is None else now
        in_window = sum(1 for slot in self._log if slot.until > now - self.window)
        return LimiterStats(
            self.limit,
            self.window,
            self._granted,
            self._waited,
            in_window,
            max(0.0, self._blocked_until - now),
            self._waited_seconds,
        )


def _until(slot: _Slot) -> float:
    return slot.until


class RateLimiters:
    """One limiter per platform; platforms without a configured limit are not limited."""

    def __init__(
        self,
        limits: Mapping[str, tuple[int, float]],
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        margin: float | None = None,
    ) -> None:
        self._clock = clock
        self._limiters = {
            platform: SlidingWindowLimiter(limit, window, clock, sleep, margin)
            for platform, (limit, window) in limits.items()
        }

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock = time.monotonic) -> RateLimiters:
        return cls(settings.rate_limits, clock)

    def get(self, platform: str) -> SlidingWindowLimiter | None:
        return self._limiters.get(platform)

    def throttle(self, platform: str) -> Throttle:
        """The coroutine function an executor awaits before each request it sends. The running
        attempt's timeout is paused while it waits: it bounds the work, not the queue in front
        of a busy platform."""
        limiter = self._limiters.get(platform)
        if limiter is None:
            return _unlimited

        async def throttle() -> Answered:
            answered = limiter.grant_now()  # the common case: no wait, nothing to pause
            if answered is not None:
                return answered
            with attempt_paused():
                return await limiter.acquire()

        return throttle

    def penalise(self, platform: str, retry_after: float | None) -> None:
        """After a 429: send nothing to `platform` for `retry_after` seconds."""
        limiter = self._limiters.get(platform)
        if limiter is not None and retry_after and retry_after > 0:
            limiter.block(self._clock() + retry_after)

    def stats(self) -> dict[str, LimiterStats]:
        return {platform: limiter.stats() for platform, limiter in self._limiters.items()}


async def _unlimited() -> Answered:
    return _nothing


def _nothing() -> None:
    return None
