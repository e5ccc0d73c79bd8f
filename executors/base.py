"""The executor contract and the shared error tree.

An executor turns an action (type + data) into calls on one platform. Workers are the only
callers. Each executor translates its SDK's exceptions into these errors at its boundary, so the
queue can decide: retry later (RetryableError, RateLimited), stop (PermanentError, AuthError).

Rate limiting is per HTTP request, not per action: an operation may make several requests
(a duplicate check then a create), and the platform counts requests. Executors therefore receive a
`Throttle` and await it before every request they send (the sync SDKs do it from their transport
adapter through `blocking_throttle`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

JSON = dict[str, Any]
Operation = Callable[[JSON], Awaitable[JSON]]
Throttle = Callable[[], Awaitable[None]]


async def no_throttle() -> None:
    """A Throttle that never waits (tests of an executor alone)."""


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


def blocking_throttle(throttle: Throttle, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """For sync SDKs running in a worker thread: block that thread until the limiter allows."""

    async def acquire() -> None:
        await throttle()

    def wait() -> None:
        coroutine: Coroutine[Any, Any, None] = acquire()
        asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    return wait


def require(data: JSON, *names: str, platform: str = "") -> None:
    """Refuse missing parameters before any call, naming each one."""
    missing = [name for name in names if data.get(name) in (None, "")]
    if missing:
        raise PermanentError(
            f"missing parameter(s): {', '.join(missing)}", platform=platform, status=400
        )
