"""The deadline of the action attempt running in this task, paused while the attempt waits for
something that is not its own work (a busy platform's rate limit).

The worker enters `attempt_deadline`; the rate limiter waits inside `attempt_paused()`. The
deadline travels in a context variable, so it follows the attempt into the worker threads of
sync SDKs (their throttle waits run on the loop in a copy of the attempt's context) without
being passed through every executor.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar


class _Deadline:
    """An entered asyncio.Timeout that can be paused (nested pauses count: parallel requests
    of one attempt may wait at the same time)."""

    def __init__(self, timeout: asyncio.Timeout) -> None:
        self._timeout = timeout
        self._paused = 0
        self._remaining = 0.0

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


_current: ContextVar[_Deadline | None] = ContextVar("opsbot_attempt_deadline", default=None)


@asynccontextmanager
async def attempt_deadline(seconds: float) -> AsyncIterator[None]:
    """Like `asyncio.timeout(seconds)`, except while `attempt_paused()` runs inside it."""
    async with asyncio.timeout(seconds) as timeout:
        token = _current.set(_Deadline(timeout))
        try:
            yield
        finally:
            _current.reset(token)


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
