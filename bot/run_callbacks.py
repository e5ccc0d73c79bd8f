"""Run callbacks: when a workflow run with a `callback_url` reaches a final status, POST its
outcome there, signed, retried, claimed and recovered like an action's (bot.callbacks).

The runner tells each status it writes once (`WorkflowRunner.watch`); a run that ends in
`rollback_failed` and is later resolved by an operator is told at both (each final status is
its own delivery). The dispatcher's sweep finds runs whose callback a crash lost. The payload is the
run's state without its input and step data (the agent that asked has them; the URL may not
be the only reader), plus a `kind: "workflow_run"` to tell it from an action's callback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from bot import callback_ledger as ledger
from bot.callbacks import CallbackDispatcher, Delivery
from bot.workflows.runner import FINAL, WorkflowRunner

log = logging.getLogger(__name__)

PAYLOAD_FIELDS = ("id", "workflow", "version", "env", "status", "error", "completed", "failed",
                  "remaining", "rollback", "comment", "started_at", "finished_at", "duration_s",
                  "result")  # fmt: skip
_KEY_COLUMNS = ("id", "status", "finished_at", "callback_url")


class RunCallbacks:
    def __init__(self, runner: WorkflowRunner, dispatcher: CallbackDispatcher) -> None:
        self.runner = runner
        self.dispatcher = dispatcher
        self._tasks: set[asyncio.Task[None]] = set()
        self._unwatch: Callable[[], None] | None = None

    def start(self) -> None:
        self.dispatcher.add_source("run", self._deliveries, frozenset(FINAL))
        self._unwatch = self.runner.watch(self._on_status)

    def _on_status(self, run_id: str, status: str) -> None:
        """Runner watcher (quick, synchronous): look the run up off the runner's path."""
        if status not in FINAL:
            return
        task = asyncio.create_task(self.dispatcher.tell("run", [run_id]), name=f"run-cb-{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliveries(self, ids: list[str], now: float) -> list[Delivery]:
        rows = await self.runner.store.read(
            partial(
                ledger.untold,
                kind="run",
                ids=ids,
                statuses=tuple(FINAL),
                now=now,
                columns=_KEY_COLUMNS,
            )
        )
        found = []
        for row in rows:
            try:
                state = await self.runner.state(row["id"])
            except Exception:
                log.exception("run callback for %s: reading the run failed", row["id"])
                continue
            # The key's status is the row's: the state read later may have moved on.
            payload = {"kind": "workflow_run", **{k: state.get(k) for k in PAYLOAD_FIELDS},
                       "status": row["status"]}  # fmt: skip
            found.append(Delivery(ledger.key_of("run", row), str(row["callback_url"]), payload))
        return found

    async def stop(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))


class RunCallbackService:
    """Runtime Service for `opsbot run`: starts after the surface (which owns the dispatcher)
    and the workflow service (which owns the runner)."""

    def __init__(self, runtime: Any, surface: Any) -> None:
        self.runtime, self.surface = runtime, surface
        self.callbacks: RunCallbacks | None = None

    async def start(self) -> None:
        runner, dispatcher = self.runtime.runner, self.surface.callbacks
        if runner is not None and dispatcher is not None:
            self.callbacks = RunCallbacks(runner, dispatcher)
            self.callbacks.start()

    async def stop(self) -> None:
        if self.callbacks is not None:
            await self.callbacks.stop()
