"""The producer API for code in the same process (the agent, workflows, HTTP, Slack, the CLI).

    intake = Intake(queue)
    action_id = await intake.submit({"type": "echo", "data": {"hello": "world"}})
    view = await intake.wait(action_id, timeout=30)   # final view, or TimeoutError
    unsubscribe = intake.subscribe(callback)          # every final outcome (and retries)

Everything is validated with `bot.actions.parse_actions` first (ActionInvalid names each bad
field); nothing invalid reaches the store. A list is stored in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, overload

from bot.actions import FINAL_STATUSES, parse_actions
from bot.outcomes import Subscriber
from bot.queue import Queue, SubmitResult

# A final status reached in another process (`opsbot worker`) is not on our bus: look again
# this often while waiting.
_RECHECK_S = 0.25


class Intake:
    def __init__(self, queue: Queue) -> None:
        self.queue = queue

    @overload
    async def submit(self, action: dict[str, Any], *, actor: str = ...) -> str: ...

    @overload
    async def submit(self, action: list[Any], *, actor: str = ...) -> list[str]: ...

    async def submit(self, action: Any, *, actor: str = "api") -> str | list[str]:
        """Validate and store one action (-> its id) or a list (-> ids, in order).

        An idempotency key seen before returns the first action's id (see `submit_results`)."""
        results = await self.submit_results(action, actor=actor)
        ids = [r.id for r in results]
        return ids if isinstance(action, list) else ids[0]

    async def submit_results(self, action: Any, *, actor: str = "api") -> list[SubmitResult]:
        """Like `submit`, with status, duplicate flag and (for duplicates) the first result."""
        return await self.queue.submit(parse_actions(action), actor=actor)

    async def wait(self, action_id: str, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        """The action's full view once it reaches a final status; TimeoutError otherwise."""
        future = self.queue.bus.watch(action_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                view = await self.queue.get(action_id)
                if view["status"] in FINAL_STATUSES:
                    return view
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(
                        f"action {action_id} still {view['status']} after {timeout:g} s"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(future), min(remaining, _RECHECK_S))
        finally:
            self.queue.bus.unwatch(action_id, future)
            future.cancel()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """`callback(view)` after commit for every final outcome and retry; returns unsubscribe."""
        return self.queue.subscribe(callback)
