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
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from bot.config import Settings
from executors.base import Throttle

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# A platform counts requests when they ARRIVE; we grant when we SEND. The lag between the two
# varies (a new connection, a busy event loop, the GIL, the network), so two requests granted one
# window apart can arrive less than a window apart and the second gets a 429. Grants are spaced
# by window + margin, the margin a share of the window with a floor: bench/rate_limit_bench.py
# measured a grant->arrival spread of up to ~35 ms on a loaded 2-core machine, more than the
# 10 ms once used on 1-s windows (429s at Notion 3/s and Slack 1/s). 3% covers 30 ms there and
# seconds on 100-s windows, for at most 3% of the limit's throughput.
MARGIN_SHARE = 0.03
MIN_MARGIN = 0.010


def default_margin(window: float) -> float:
    """Seconds added to the window between a grant and the one `limit` grants later."""
    return max(MIN_MARGIN, MARGIN_SHARE * window)


@dataclass(frozen=True)
class LimiterStats:
    limit: int
    window: float
    granted: int
    waited: int
    in_window: int
    blocked_for: float


class SlidingWindowLimiter:
    """At most `limit` grants in any `window`-second interval (plus `margin` seconds; by default
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


class Lanes(Generic[T]):
    """Per-platform caps on actions running at once, derived from the rate limits.

    Without them every worker could end up waiting on one slow platform's limiter (Slack: 1/s)
    while other platforms' work waits behind. An action whose platform is at its cap is set
    aside (FIFO per platform) and taken by the next worker that finishes one of that platform's
    actions; meanwhile the pool claims other platforms' work (`crowded()` to exclude).
    """

    def __init__(self, caps: Mapping[str, int], default: int) -> None:
        self._caps = dict(caps)
        self._default = default
        self._running: Counter[str] = Counter()
        self._aside: dict[str, deque[T]] = {}
        self.waiting = 0

    @classmethod
    def from_limits(cls, limits: Mapping[str, tuple[int, float]], workers: int) -> Lanes[T]:
        """Cap = the platform's requests per second (at least 1, at most `workers`)."""
        caps = {p: max(1, min(workers, int(n / window))) for p, (n, window) in limits.items()}
        return cls(caps, workers)

    def cap(self, platform: str) -> int:
        return self._caps.get(platform, self._default)

    def admit(self, platform: str, item: T) -> bool:
        """Start `item` now (True) or set it aside until its platform has room (False)."""
        if self._running[platform] < self.cap(platform):
            self._running[platform] += 1
            return True
        self._aside.setdefault(platform, deque()).append(item)
        self.waiting += 1
        return False

    def take_aside(self) -> T | None:
        """An item set aside whose platform has room now (it counts as running)."""
        for platform, items in self._aside.items():
            if items and self._running[platform] < self.cap(platform):
                self._running[platform] += 1
                self.waiting -= 1
                return items.popleft()
        return None

    def done(self, platform: str) -> None:
        self._running[platform] -= 1

    def crowded(self) -> frozenset[str]:
        """Platforms with items set aside: claiming more of them now would only hoard."""
        return frozenset(p for p, items in self._aside.items() if items)
