"""The limiter's margin: grants are timed at send, platforms count at arrival. Requests that
arrive out of step by up to 2.5% of the window (a new connection, a busy loop) must still fit
the platform's count, at no more than ~3% of the limit's throughput."""

from __future__ import annotations

import pytest

from bot.config import DEFAULT_RATE_LIMITS
from bot.flow.ratelimit import SlidingWindowLimiter, default_margin
from executors.sandbox.measure import SlidingWindow

SEED_LIMITS = [DEFAULT_RATE_LIMITS[p] for p in ("notion", "trello", "slack", "drive", "sheets")]


def backlog_grants(limiter: SlidingWindowLimiter, count: int) -> list[float]:
    """Grant times for `count` requests all waiting from t=1000 (the limiter always busy)."""
    now = 1000.0
    grants: list[float] = []
    while len(grants) < count:
        wait = limiter.try_acquire(now)
        if wait == 0:
            grants.append(now)
        else:
            now += wait
    return grants


@pytest.mark.parametrize(("limit", "window"), SEED_LIMITS)
def test_late_arrivals_stay_within_the_platform_count(limit: int, window: float) -> None:
    grants = backlog_grants(SlidingWindowLimiter(limit, window), limit * 6)
    # Worst case: every request of one window arrives late, those of the next on time, so the
    # request paced one window behind a late one arrives less than `span` after it.
    jitter = 0.025 * window
    arrivals = sorted(t + (jitter if (i // limit) % 2 == 0 else 0.0) for i, t in enumerate(grants))
    clock = iter(arrivals)
    platform = SlidingWindow(limit, window, lambda: next(clock))
    assert [platform.admit() for _ in arrivals] == [0.0] * len(arrivals)


@pytest.mark.parametrize(("limit", "window"), SEED_LIMITS)
def test_margin_costs_at_most_three_percent(limit: int, window: float) -> None:
    total = limit * 21
    grants = backlog_grants(SlidingWindowLimiter(limit, window), total)
    rate_share = (total - limit) / ((grants[-1] - grants[0]) / window * limit)
    assert rate_share >= 0.97


def test_margin_grows_with_the_window_and_has_a_floor() -> None:
    assert default_margin(1.0) == pytest.approx(0.03)
    assert default_margin(100.0) == pytest.approx(3.0)
    assert default_margin(0.1) == pytest.approx(0.010)


def test_an_explicit_margin_is_seconds() -> None:
    limiter = SlidingWindowLimiter(1, 1.0, margin=0.1)
    assert limiter.try_acquire(0.0) == 0.0
    assert limiter.try_acquire(0.5) == pytest.approx(0.6)
