"""Backoff bounds and error classification."""

from __future__ import annotations

import pytest

from bot.flow.retry import RetryPolicy, classify, error_kind
from executors.base import (
    AuthError,
    NotReversible,
    PermanentError,
    PlatformDisabled,
    RateLimited,
    RetryableError,
)


@pytest.mark.parametrize(("attempt", "cap"), [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (9, 30.0)])
def test_full_jitter_bounds(attempt: int, cap: float) -> None:
    policy = RetryPolicy()
    assert policy.delay(attempt, rand=lambda: 0.0) == 0.0
    assert policy.delay(attempt, rand=lambda: 0.999999) == pytest.approx(cap, rel=1e-5)
    assert 0 <= policy.delay(attempt) <= cap


def test_delay_is_at_least_retry_after() -> None:
    policy = RetryPolicy()
    assert policy.delay(1, retry_after=7.5, rand=lambda: 0.5) == 7.5
    assert policy.delay(9, retry_after=90.0, rand=lambda: 1.0) == 90.0  # beyond the cap: obeyed


def test_defaults_match_the_seed() -> None:
    policy = RetryPolicy()
    assert (policy.max_retries, policy.initial, policy.multiplier, policy.max_delay) == (
        3,
        1.0,
        2.0,
        30.0,
    )
    assert policy.max_attempts == 4


@pytest.mark.parametrize(
    "exc",
    [
        RetryableError("503", status=503),
        RateLimited("429", status=429, retry_after=2),
        TimeoutError(),
        ConnectionResetError(),
        KeyError("bug"),
    ],
)
def test_retryable(exc: BaseException) -> None:
    assert classify(exc) == "retry"


@pytest.mark.parametrize(
    "exc",
    [
        PermanentError("400", status=400),
        PermanentError("404", status=404),
        AuthError("401", status=401),
        AuthError("403", status=403),
        NotReversible("no"),
        PlatformDisabled("no key"),
    ],
)
def test_dead(exc: BaseException) -> None:
    assert classify(exc) == "dead"


def test_error_kind_names_the_type() -> None:
    assert error_kind(TimeoutError()) == "Timeout"
    assert error_kind(KeyError("x")) == "KeyError"
    assert error_kind(RateLimited("x")) == "RateLimited"
