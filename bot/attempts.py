"""One attempt of one claimed action: route it (its own platform or its fallback), pass the
platform's circuit breaker, run the executor's operation under the attempt deadline, and turn
what happened into an Outcome for the recorder. The worker pool (bot.worker) decides when.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from bot.flow.attempt import AttemptDeadline
from bot.flow.breaker import Breakers
from bot.flow.fallback import FallbackChain
from bot.flow.ratelimit import RateLimiters
from bot.flow.retry import RetryPolicy, classify, error_kind, retry_after_of, status_of
from bot.queue import Claimed, Outcome
from executors.base import Executor, PlatformDisabled, RateLimited

log = logging.getLogger("bot.worker")

ATTEMPT_TIMEOUT = 60.0  # seconds per attempt, rate-limit waits excluded (bot.flow.attempt)


class AttemptRunner:
    def __init__(
        self,
        executors: Mapping[str, Executor],
        limiters: RateLimiters,
        breakers: Breakers,
        policy: RetryPolicy,
        fallbacks: FallbackChain,
        clock: Callable[[], float] = time.time,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
    ) -> None:
        self.executors, self.limiters, self.breakers = executors, limiters, breakers
        self.policy, self.fallbacks, self.clock = policy, fallbacks, clock
        self.attempt_timeout = attempt_timeout

    async def run(self, claimed: Claimed, worker: str) -> Outcome:
        """The outcome of one attempt; "release" when no platform can take it now."""
        started = self.clock()
        route = self._route(claimed)
        if route is None:
            return Outcome(claimed.id, "release", started, self.clock(), worker)
        platform, action_type, data = route
        fallback_used = platform != claimed.platform
        executor = self.executors[platform]
        if action_type in getattr(executor, "keyed_operations", ()):
            # Lets the platform side deduplicate a retry whose first response was lost.
            data = {"idempotency_key": claimed.idempotency_key or claimed.id, **data}
        breaker = self.breakers.get(platform)
        operation = executor.operations.get(action_type)
        try:
            if operation is None:
                raise PlatformDisabled(f"{platform} has no operation {action_type!r}")
            async with AttemptDeadline(self.attempt_timeout):
                result = await operation(data)
        except Exception as exc:
            breaker.record_failure(exc)
            if isinstance(exc, RateLimited):
                self.limiters.penalise(platform, exc.retry_after)
            return self.failed(claimed, worker, started, exc, platform, fallback_used)
        except asyncio.CancelledError:
            breaker.release_probe()  # shutdown: the action is released, nothing was learnt
            raise
        breaker.record_success()
        return Outcome(
            claimed.id, "succeeded", started, self.clock(), worker,
            result=result, served_by=platform, fallback_used=fallback_used,
        )  # fmt: skip

    def _route(self, claimed: Claimed) -> tuple[str, str, dict[str, Any]] | None:
        """(platform, type, data) to run now: the action's own, its fallback, or None (wait)."""

        def can_run(platform: str) -> bool:
            return platform in self.executors and self.breakers.get(platform).allow()

        return self.fallbacks.route(claimed.platform, claimed.type, claimed.data, can_run)

    def failed(
        self, claimed: Claimed, worker: str, started: float, exc: BaseException,
        platform: str, fallback_used: bool,
    ) -> Outcome:  # fmt: skip
        """A failed attempt: retry later (retryable, attempts left) or dead-letter."""
        now = self.clock()
        retry_after = retry_after_of(exc)
        retry = classify(exc) == "retry" and claimed.attempt < claimed.max_attempts
        message = str(exc) or type(exc).__name__
        if retry:
            log.debug("action %s attempt %d failed: %s", claimed.id, claimed.attempt, message)
        return Outcome(
            claimed.id, "retry" if retry else "dead", started, now, worker,
            served_by=platform, fallback_used=fallback_used, error=message,
            error_kind=error_kind(exc), status_code=status_of(exc), retry_after=retry_after,
            retry_at=now + self.policy.delay(claimed.attempt, retry_after) if retry else None,
        )  # fmt: skip
