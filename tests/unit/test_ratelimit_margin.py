"""The limiter against the platform's own count: a request counts where it ARRIVES, anywhere
between our grant and its answer. Whatever the lag (a cold connection, a stalled server, answers
out of order), arrivals must fit the platform's sliding window; with quick answers the limiter
still runs within ~2% of the limit."""

from __future__ import annotations

import heapq

import pytest

from bot.config import DEFAULT_RATE_LIMITS
from bot.flow.ratelimit import SlidingWindowLimiter, default_margin
from executors.base import Answered
from executors.sandbox.measure import SlidingWindow

SEED_LIMITS = [DEFAULT_RATE_LIMITS[p] for p in ("notion", "trello", "slack", "drive", "sheets")]


class Backlog:
    """`count` requests always waiting, sent by `workers` senders; request i is answered
    `latency(i)` seconds after its grant. Discrete-event: no real time passes."""

    def __init__(self, limit: int, window: float, workers: int) -> None:
        self.now = 0.0
        self.limiter = SlidingWindowLimiter(limit, window, clock=lambda: self.now)
        self.workers = workers
        self.grants: list[float] = []
        self.answers: list[float] = []
        self._pending: list[tuple[float, int, Answered]] = []

    def run(self, count: int, latency: list[float]) -> None:
        free = [0.0] * self.workers
        t = 0.0
        for i in range(count):
            t = max(t, heapq.heappop(free))
            answered = self._grant(t)
            t = self.now
            self.grants.append(t)
            self.answers.append(t + latency[i])
            heapq.heappush(self._pending, (t + latency[i], i, answered))
            heapq.heappush(free, t + latency[i])

    def _grant(self, t: float) -> Answered:
        while True:
            while self._pending and self._pending[0][0] <= t:
                self.now, _, answered = heapq.heappop(self._pending)
                answered()  # the limiter reads the answer time from its clock
            self.now = t
            wait, answered_or_none = self.limiter.try_grant(t)
            if answered_or_none is not None:
                return answered_or_none
            t += wait


def fits_platform(arrivals: list[float], limit: int, window: float) -> bool:
    clock = iter(sorted(arrivals))
    platform = SlidingWindow(limit, window, lambda: next(clock))
    return all(platform.admit() == 0.0 for _ in arrivals)


def lags(count: int) -> list[float]:
    """Deterministic, irregular answer times: 2-150 ms, a 400 ms cold start, 700 ms stalls."""
    values = [0.002 + (i * 7919 % 149) / 1000 for i in range(count)]
    values[0] = 0.4
    for i in range(17, count, 53):
        values[i] = 0.7
    return values


@pytest.mark.parametrize(("limit", "window"), SEED_LIMITS)
@pytest.mark.parametrize("where", ["grant", "answer", "alternating", "spread"])
def test_arrivals_anywhere_between_grant_and_answer_fit(
    limit: int, window: float, where: str
) -> None:
    count = limit * 6
    backlog = Backlog(limit, window, workers=max(1, min(10, limit)))
    backlog.run(count, lags(count))
    pairs = list(zip(backlog.grants, backlog.answers, strict=True))
    if where == "grant":
        arrivals = [g for g, _ in pairs]
    elif where == "answer":
        arrivals = [a for _, a in pairs]
    elif where == "alternating":  # one window's requests late, the next window's early
        arrivals = [a if (i // limit) % 2 == 0 else g for i, (g, a) in enumerate(pairs)]
    else:
        arrivals = [g + (a - g) * (i * 37 % 11) / 10 for i, (g, a) in enumerate(pairs)]
    assert fits_platform(arrivals, limit, window)


@pytest.mark.parametrize(("limit", "window"), SEED_LIMITS)
def test_quick_answers_cost_at_most_two_percent(limit: int, window: float) -> None:
    total = limit * 21
    backlog = Backlog(limit, window, workers=max(1, min(5, limit)))
    backlog.run(total, [0.005] * total)
    grants = backlog.grants
    rate_share = (total - limit) / ((grants[-1] - grants[0]) / window * limit)
    assert rate_share >= 0.98


def test_margin_grows_with_the_window_and_has_a_floor() -> None:
    assert default_margin(1.0) == pytest.approx(0.01)
    assert default_margin(100.0) == pytest.approx(1.0)
    assert default_margin(0.1) == pytest.approx(0.005)


def test_an_explicit_margin_is_seconds() -> None:
    limiter = SlidingWindowLimiter(1, 1.0, margin=0.1)
    assert limiter.try_acquire(0.0) == 0.0
    assert limiter.try_acquire(0.5) == pytest.approx(0.6)


def test_a_slot_frees_one_window_after_its_answer() -> None:
    now = [0.0]
    limiter = SlidingWindowLimiter(1, 1.0, clock=lambda: now[0], margin=0.0)
    _, answered = limiter.try_grant(0.0)
    assert answered is not None
    now[0] = 0.3  # the platform answered 300 ms later: it may have counted it at 0.3
    answered()
    assert limiter.try_acquire(1.0) == pytest.approx(0.3)
    assert limiter.try_acquire(1.3) == 0.0
