"""The outcome bus: what workers report, and its fan-out to producers in this process.

The queue publishes a small view of every action whose outcome was recorded, after the commit,
so a producer in the same process gets its results without polling. The write side of an
outcome (the record transaction) is bot.outcome_record; the worker wake-up is bot.work_signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What a worker reports about one claimed action (re-exported by bot.queue).

    kind: "succeeded"; "retry" (runs again at `retry_at`); "dead" (dead letter); "release"
    (back to queued without spending the attempt: circuit open, shutdown).
    """

    action_id: str
    kind: Literal["succeeded", "retry", "dead", "release"]
    started_at: float
    finished_at: float
    worker: str
    result: dict[str, Any] | None = None
    served_by: str | None = None
    fallback_used: bool = False
    error: str | None = None
    error_kind: str | None = None
    status_code: int | None = None
    retry_after: float | None = None
    retry_at: float | None = None


Subscriber = Callable[[dict[str, Any]], Awaitable[None] | None]


class OutcomeBus:
    """Fan-out of outcome views to subscribers and to per-action waiters."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def watch(self, action_id: str) -> asyncio.Future[dict[str, Any]]:
        """A future resolved with the action's view when it reaches a final status."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(action_id, []).append(future)
        return future

    def unwatch(self, action_id: str, future: asyncio.Future[dict[str, Any]]) -> None:
        futures = self._waiters.get(action_id, [])
        with contextlib.suppress(ValueError):
            futures.remove(future)
        if not futures:
            self._waiters.pop(action_id, None)

    def publish(self, views: list[dict[str, Any]]) -> None:
        """Deliver views (call on the event loop, after the commit)."""
        for view in views:
            if view.get("final"):
                for future in self._waiters.pop(view["id"], []):
                    if not future.done():
                        future.set_result(view)
            for callback in list(self._subscribers):
                self._call(callback, view)

    def _call(self, callback: Subscriber, view: dict[str, Any]) -> None:
        try:
            result = callback(view)
        except Exception:
            log.exception("outcome subscriber failed")
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(_guarded(result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for futures in self._waiters.values():
            for future in futures:
                future.cancel()
        self._waiters.clear()


async def _guarded(awaitable: Awaitable[None]) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("outcome subscriber failed")
