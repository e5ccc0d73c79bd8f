"""Retry policy: which failures are worth another attempt, and how long to wait before it.

Backoff is exponential with full jitter (a uniform delay between 0 and the exponential step,
capped), which spreads retries of many actions that failed together, and never shorter than the
platform's Retry-After.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot.config import Settings
from executors.base import ExecutorError, RetryableError

Decision = Literal["retry", "dead"]


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    initial: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_retries=settings.max_retry_attempts,
            initial=settings.retry_initial_delay,
            multiplier=settings.retry_backoff_multiplier,
            max_delay=settings.retry_max_delay,
        )

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1

    def delay(
        self,
        attempt: int,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        step = min(self.max_delay, self.initial * self.multiplier ** max(0, attempt - 1))
        return max(rand() * step, retry_after or 0.0)

    def classify(self, exc: BaseException) -> Decision:
        return classify(exc)


def classify(exc: BaseException) -> Decision:
    """`retry` for transient failures, `dead` when another attempt cannot help.

    Executors translate their SDK errors into the ExecutorError tree, so anything else reaching
    the worker is a bug or an untranslated transport error: it is retried (the attempt records
    its type), since dead-lettering on an unknown error would turn a blip into lost work.
    """
    if isinstance(exc, ExecutorError):
        return "retry" if exc.retryable else "dead"
    return "retry"


def error_kind(exc: BaseException) -> str:
    """The name recorded with the attempt: the error class, timeouts named plainly."""
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "Timeout"
    return type(exc).__name__


def retry_after_of(exc: BaseException) -> float | None:
    return exc.retry_after if isinstance(exc, RetryableError) else None


def status_of(exc: BaseException) -> int | None:
    return exc.status if isinstance(exc, ExecutorError) else None
