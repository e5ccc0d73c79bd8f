"""The deadline of the action attempt running in this task, paused while the attempt waits for
something that is not its own work (a busy platform's rate limit).

The worker enters `AttemptDeadline`; the rate limiter waits inside `attempt_paused()` (only when
it really has to wait: an immediate grant costs nothing here). The deadline travels in a context
variable, so it follows the attempt into the worker threads of sync SDKs (their throttle waits
run on the loop in a copy of the attempt's context) without being passed through every executor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import TracebackType


class AttemptDeadline:
    """`async with AttemptDeadline(seconds)`: like `asyncio.timeout(seconds)`, except while
    `attempt_paused()` runs inside it (nested pauses count: parallel requests of one attempt
    may wait at the same time)."""

    def __init__(self, seconds: float) -> None:
        self._timeout = asyncio.timeout(seconds)
        self._paused = 0
        self._remaining = 0.0
        self._token: Token[AttemptDeadline | None] | None = None

    async def __aenter__(self) -> AttemptDeadline:
        await self._timeout.__aenter__()
        self._token = _current.set(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
        await self._timeout.__aexit__(exc_type, exc, tb)  # raises TimeoutError when it fired

    def pause(self) -> None:
        self._paused += 1
        when = self._timeout.when()
        if self._paused == 1 and when is not None and not self._timeout.expired():
            self._remaining = when - asyncio.get_running_loop().time()
            self._timeout.reschedule(None)

    def resume(self) -> None:
        self._paused -= 1
        if self._paused == 0 and not self._timeout.expired():
            self._timeout.reschedule(asyncio.get_running_loop().time() + self._remaining)


_current: ContextVar[AttemptDeadline | None] = ContextVar("opsbot_attempt_deadline", default=None)


@contextmanager
def attempt_paused() -> Iterator[None]:
    """Stop the running attempt's clock meanwhile (no attempt running: nothing happens)."""
    deadline = _current.get()
    if deadline is None:
        yield
        return
    deadline.pause()
    try:
        yield
    finally:
        deadline.resume()
