"""Per-platform rate limiting: a sliding-window log of grant times.

The platforms count requests in a sliding window, so a token bucket (which allows a burst of N
right after a full window of N) could overshoot; a log of the last N grant times cannot: a new
grant is allowed only once the N-th most recent grant has left the window. Every HTTP request
acquires, retries included, so "never more than N per window" covers retries too.

Time is injected (`clock`, `sleep`) so tests run a long simulated backlog without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from bot.config import Settings
from executors.base import Throttle

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# A platform measures when requests ARRIVE, which lags when we send them by a little network
# and scheduling jitter; two requests sent exactly one window apart may arrive slightly less than
# a window apart. Spacing grants by window + this margin keeps the platform's count within N
# (costs ~1% of throughput at 3 requests/s, nothing measurable on long windows).
DEFAULT_MARGIN = 0.010


@dataclass(frozen=True)
class LimiterStats:
    limit: int
    window: float
    granted: int
    waited: int
    in_window: int
    blocked_for: float


class SlidingWindowLimiter:
    """At most `limit` grants in any `window`-second interval (plus `margin`)."""

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"rate limit: got {limit} per {window}s, expected >= 1 per > 0s")
        self.limit = limit
        self.window = window
        self._span = window + margin
        self._clock = clock
        self._sleep = sleep
        # Only the last `limit` grants matter, so the log never holds more than that.
        self._log: deque[float] = deque(maxlen=limit)
        self._blocked_until = 0.0
        # asyncio.Lock hands itself over in FIFO order and, when a waiter is cancelled, nothing
        # was granted: fairness and cancellation safety come with it.
        self._lock = asyncio.Lock()
        self._granted = 0
        self._waited = 0

    def try_acquire(self, now: float) -> float:
        """Grant now and return 0, or return the seconds to wait before trying again."""
        log = self._log
        while log and log[0] <= now - self._span:
            log.popleft()  # keeps the log small for generous limits (echo)
        wait = self._blocked_until - now
        if len(log) >= self.limit:
            wait = max(wait, log[0] + self._span - now)
        if wait > 0:
            return wait
        log.append(now)
        self._granted += 1
        return 0.0

    async def acquire(self) -> None:
        """Wait for a grant. Fair (first come, first served) and safe to cancel."""
        async with self._lock:
            wait = self.try_acquire(self._clock())
            if wait > 0:
                self._waited += 1
            while wait > 0:
                await self._sleep(wait)
                wait = self.try_acquire(self._clock())

    def block(self, until: float) -> None:
        """Grant nothing before `until` (the platform said Retry-After)."""
        self._blocked_until = max(self._blocked_until, until)

    def stats(self, now: float | None = None) -> LimiterStats:
        now = self._clock() if now is None else now
        in_window = sum(1 for t in self._log if t > now - self.window)
        return LimiterStats(
            self.limit,
            self.window,
            self._granted,
            self._waited,
            in_window,
            max(0.0, self._blocked_until - now),
        )


class RateLimiters:
    """One limiter per platform; platforms without a configured limit are not limited."""

    def __init__(
        self,
        limits: Mapping[str, tuple[int, float]],
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        margin: float = DEFAULT_MARGIN,
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
        """The coroutine function an executor awaits before each request it sends."""
        limiter = self._limiters.get(platform)
        if limiter is None:
            return _unlimited
        return limiter.acquire

    def penalise(self, platform: str, retry_after: float | None) -> None:
        """After a 429: send nothing to `platform` for `retry_after` seconds."""
        limiter = self._limiters.get(platform)
        if limiter is not None and retry_after and retry_after > 0:
            limiter.block(self._clock() + retry_after)

    def stats(self) -> dict[str, LimiterStats]:
        return {platform: limiter.stats() for platform, limiter in self._limiters.items()}


async def _unlimited() -> None:
    return None
