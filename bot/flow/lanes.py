"""Per-platform lanes in the worker pool: how many actions of a platform run at once.

A rate-limited platform gets a lane of its own, as wide as its requests per second (at least 1,
at most QUEUE_WORKERS), with worker tasks of its own: an action waiting on Slack's 1/s limiter
never takes a worker that Trello's 10/s or an unlimited platform could use. Platforms without a
limit share one lane of QUEUE_WORKERS. So the pool runs QUEUE_WORKERS + the sum of the rate-limited
lanes' widths worker tasks, and every lane can be full at once.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from typing import Generic, TypeVar

T = TypeVar("T")
SHARED = "*"  # the lane of every platform without a rate limit


class Lanes(Generic[T]):
    """Caps on actions running at once per lane. An action whose lane is full is set aside
    (FIFO per platform) and taken by the next worker that finishes one of that lane's actions;
    meanwhile the pool claims other platforms' work (`crowded()` to exclude)."""

    def __init__(self, caps: Mapping[str, int], shared: int) -> None:
        self._caps = {**caps, SHARED: shared}
        self._running: Counter[str] = Counter()
        self._aside: dict[str, deque[T]] = {}
        self.waiting = 0

    @classmethod
    def from_limits(cls, limits: Mapping[str, tuple[int, float]], workers: int) -> Lanes[T]:
        """Width = the platform's requests per second (at least 1, at most `workers`)."""
        caps = {p: max(1, min(workers, int(n / window))) for p, (n, window) in limits.items()}
        return cls(caps, workers)

    @property
    def width(self) -> int:
        """Worker tasks needed for every lane to be full at once."""
        return sum(self._caps.values())

    def lane(self, platform: str) -> str:
        return platform if platform in self._caps else SHARED

    def cap(self, platform: str) -> int:
        return self._caps[self.lane(platform)]

    def admit(self, platform: str, item: T) -> bool:
        """Start `item` now (True) or set it aside until its platform has room (False)."""
        if self._running[self.lane(platform)] < self.cap(platform):
            self._running[self.lane(platform)] += 1
            return True
        self._aside.setdefault(platform, deque()).append(item)
        self.waiting += 1
        return False

    def take_aside(self) -> T | None:
        """An item set aside whose platform has room now (it counts as running)."""
        for platform, items in self._aside.items():
            if items and self._running[self.lane(platform)] < self.cap(platform):
                self._running[self.lane(platform)] += 1
                self.waiting -= 1
                return items.popleft()
        return None

    def done(self, platform: str) -> None:
        self._running[self.lane(platform)] -= 1

    def crowded(self) -> frozenset[str]:
        """Platforms with items set aside: claiming more of them now would only hoard."""
        return frozenset(p for p, items in self._aside.items() if items)
