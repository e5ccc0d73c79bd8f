"""The executor contract and the shared error tree.

An executor turns an action (type + data) into calls on one platform. Workers are the only
callers. Each executor translates its SDK's exceptions into these errors at its boundary, so the
queue can decide: retry later (RetryableError, RateLimited), stop (PermanentError, AuthError).

Rate limiting is per HTTP request, not per action: an operation may make several requests
(a duplicate check then a create), and the platform counts requests. Executors therefore receive a
`Throttle`, await it before every request they send and call what it returns (`Answered`) once
the answer came or the request failed: a request counts against the limit until it is answered
(see bot.flow.ratelimit). Sync SDKs do both from their transport adapter in a worker thread
(`blocking_throttle`, `run_blocking`).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import Executor as ThreadPool
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

JSON = dict[str, Any]
Operation = Callable[[JSON], Awaitable[JSON]]
Answered = Callable[[], None]
# Awaited before each request. What it returns is called once that request was answered; a
# throttle that does not care (tests) may return None.
Throttle = Callable[[], Awaitable[Answered | None]]
T = TypeVar("T")


async def no_throttle() -> None:
    """A Throttle that never waits (tests of an executor alone)."""


def answered_by(answered: Answered | None) -> None:
    """Tell the throttle a request was answered (or failed), if it wants to know."""
    if answered is not None:
        answered()


class ExecutorError(Exception):
    """Base of every error an executor raises. `platform` and `status` help the operator."""

    retryable = False

    def __init__(self, message: str, *, platform: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.platform = platform
        self.status = status

    @property
    def kind(self) -> str:
        return type(self).__name__


class RetryableError(ExecutorError):
    """Timeouts, connection errors, 5xx: try again later, at least `retry_after` seconds."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        platform: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, platform=platform, status=status)
        self.retry_after = retry_after


class RateLimited(RetryableError):
    """HTTP 429 or the platform's own rate-limit error; honour `retry_after`."""


class PermanentError(ExecutorError):
    """400, 404, validation: retrying cannot help."""


class AuthError(PermanentError):
    """401, 403, missing or revoked credentials. Shown in the health view."""


class NotReversible(PermanentError):
    """Raised by `compensate` for an operation that cannot be undone."""


class PlatformDisabled(PermanentError):
    """The platform has no (valid) configuration; `reason` says what is missing."""


@dataclass(frozen=True)
class CheckResult:
    platform: str
    ok: bool
    detail: str
    latency_ms: float | None = None


@runtime_checkable
class Executor(Protocol):
    """One platform. `operations` maps an action type to a coroutine taking the action data."""

    platform: str
    # Optional: `keyed_operations: frozenset[str]`, the operations that deduplicate on
    # `data["idempotency_key"]`; the worker fills it in (the action's key, else its id).

    @property
    def operations(self) -> Mapping[str, Operation]: ...

    def reversible(self, action_type: str) -> bool:
        """False for operations that cannot be compensated (they are named in rollbacks)."""
        ...

    async def compensate(self, action_type: str, data: JSON, result: JSON) -> JSON:
        """Undo an operation from its recorded `result`. Raises NotReversible if impossible."""
        ...

    async def check(self) -> CheckResult:
        """Credentials and reachability with one cheap read-only call."""
        ...

    async def aclose(self) -> None: ...


# Set by `run_blocking` in the context its thread runs in: the attempt gave up on the call.
_abandoned: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "opsbot_call_abandoned", default=None
)


class Abandoned(RetryableError):
    """A sync call's attempt timed out or was cancelled before this request was sent."""


def blocking_throttle(
    throttle: Throttle, loop: asyncio.AbstractEventLoop
) -> Callable[[], Answered]:
    """For sync SDKs running in a worker thread: block that thread until the limiter allows,
    and return what to call (from the thread) once the answer came.

    A call whose attempt was abandoned meanwhile (the worker timed out or stopped: it will
    retry or release the action) sends nothing: sending late would do the work twice."""

    async def acquire() -> Answered | None:
        return await throttle()

    def wait() -> Answered:
        abandoned = _abandoned.get()
        if abandoned is not None and abandoned.is_set():
            raise Abandoned("the attempt gave up before this request was sent")
        coroutine: Coroutine[Any, Any, Answered | None] = acquire()
        answered = asyncio.run_coroutine_threadsafe(coroutine, loop).result()

        def done() -> None:
            if answered is not None:
                loop.call_soon_threadsafe(answered)

        if abandoned is not None and abandoned.is_set():
            done()
            raise Abandoned("the attempt gave up before this request was sent")
        return done

    return wait


async def run_blocking(pool: ThreadPool | None, call: Callable[[], T]) -> T:
    """Run a sync SDK call in a thread; if the awaiting attempt is cancelled (timeout,
    shutdown), the call sends no further request (see `blocking_throttle`)."""
    abandoned = threading.Event()
    context = contextvars.copy_context()
    context.run(_abandoned.set, abandoned)
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, context.run, call)
    except asyncio.CancelledError:
        abandoned.set()
        raise


def require(data: JSON, *names: str, platform: str = "") -> None:
    """Refuse missing parameters before any call, naming each one."""
    missing = [name for name in names if data.get(name) in (None, "")]
    if missing:
        raise PermanentError(
            f"missing parameter(s): {', '.join(missing)}", platform=platform, status=400
        )
