"""The engine of the runner: one move at a time for one run, from what the store says.

`advance(run_id)` reads the run row and its actions and makes the next move: submit the steps
whose dependencies are done (in parallel), fail the run (cancelling what has not started, waiting
for what is running), finish it, or, for a failed transactional run, drive the LIFO rollback
(rollback.py). Nothing is kept in memory between moves except caches, so any process can pick a
run up: steps are submitted with the idempotency key `run:<run>:<step>`, and a step submitted
before a crash is found again, never submitted twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bot.actions import ActionInvalid, parse_action
from bot.config import Settings
from bot.store.engine import Store
from bot.workflows import journal as j
from bot.workflows.definitions import Step, Workflow
from bot.workflows.rollback import plan
from bot.workflows.state import Steps, split
from bot.workflows.templates import TemplateError, render
from bot.workflows.versions import load_version

log = logging.getLogger(__name__)

_TIMED_OUT = "timed out after"
_MAX_PASSES = 50  # re-reads per advance when a pass changed something (bounded, never a spin)


class RunEngine:
    def __init__(
        self,
        store: Store,
        queue: Any,  # bot.queue.Queue: submit(...) and subscribe(...)
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.queue, self.settings, self.clock = store, queue, settings, clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._definitions: dict[tuple[str, int], Workflow] = {}
        self._changed = asyncio.Event()  # set after every advance (waiters re-read)
        self._watchers: list[Callable[[str, str], None]] = []

    def watch(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        """`callback(run_id, status)` after each run status this process writes (a new run
        included); the write is conditional, so each transition is told once. Returns the
        unsubscribe. Callbacks must be quick and not raise (Slack progress, metrics)."""
        self._watchers.append(callback)
        return lambda: self._watchers.remove(callback)

    def _tell(self, run_id: str, status: str) -> None:
        for callback in list(self._watchers):
            try:
                callback(run_id, status)
            except Exception:  # an observer's bug must not stop the run
                log.exception("run watcher failed for %s", run_id)

    async def _definition(self, name: str, version: int) -> Workflow:
        key = (name, version)
        if key not in self._definitions:
            self._definitions[key] = await self.store.read(lambda c: load_version(c, name, version))
        return self._definitions[key]

    async def advance(self, run_id: str) -> None:
        lock = self._locks.setdefault(run_id, asyncio.Lock())
        async with lock:
            for _ in range(_MAX_PASSES):
                if not await self._advance_once(run_id):
                    break
        self._changed.set()

    async def _advance_once(self, run_id: str) -> bool:
        """One move. True when it changed something worth an immediate re-read."""
        run, actions = await self.store.read(
            lambda c: (j.load_run(c, run_id), j.step_actions(c, run_id))
        )
        if run is None or run["status"] not in j.ACTIVE:
            return False
        workflow = await self._definition(run["name"], run["version"])
        steps, undo = split(workflow, actions, run["skipped"])
        if run["status"] == j.RUNNING:
            return await self._drive(run, steps)
        return await self._roll_back(run, steps, undo)

    async def _drive(self, run: dict[str, Any], steps: Steps) -> bool:
        now, run_id = self.clock(), run["id"]
        fatal = steps.fatal()
        timed_out = now >= run["deadline_at"]
        if fatal or timed_out or run["error"]:
            # The first cause is kept: the steps cancelled because of it fail too, later.
            error = run["error"] or _failure(steps, fatal, run, now)
            if await self.store.write(lambda c: j.cancel_waiting(c, run_id, now, error)):
                await self.store.write(lambda c: j.save_error(c, run_id, error, now))
                return True
            if steps.in_flight():
                return False  # a running step may still succeed: it must be known before undo
            if run["transactional"]:
                return await self._set(run_id, (j.RUNNING,), j.ROLLING_BACK, error=error)
            status = j.TIMED_OUT if error.startswith(_TIMED_OUT) else j.FAILED
            return await self._set(run_id, (j.RUNNING,), status, error=error, finished_at=now)
        if steps.all_settled():
            return await self._set(run_id, (j.RUNNING,), j.SUCCEEDED, finished_at=now)
        ready = steps.ready()
        return bool(ready) and await self._submit(run, steps, ready)

    async def _submit(self, run: dict[str, Any], steps: Steps, ready: list[Step]) -> bool:
        context = steps.context(run)
        skipped = dict(run["skipped"])
        again = False
        for step in ready:
            try:
                spec = parse_action({
                    **step.action.to_dict(), "data": render(step.action.data, context),
                    "requires_approval": step.requires_approval, "source": "workflow",
                    "idempotency_key": j.step_key(run["id"], step.name),
                    "requested_by": run["requested_by"],
                    "reason": f"workflow {run['name']} run {run['id']} step {step.name}",
                })  # fmt: skip
            except (TemplateError, ActionInvalid) as exc:
                skipped[step.name] = f"not submitted: {exc}"
                continue
            if step.retry is not None:  # stored by the same insert: no window with the default
                spec = replace(spec, max_attempts=1 + step.retry.max_retries)
            [result] = await self.queue.submit(
                [spec], actor=f"workflow:{run['name']}", run_id=run["id"], step_name=step.name
            )
            again = again or result.duplicate
        if skipped != run["skipped"]:
            await self.store.write(lambda c: j.save_skipped(c, run["id"], skipped, self.clock()))
            again = True
        return again

    async def _roll_back(self, run: dict[str, Any], steps: Steps, undo: list[j.StepAction]) -> bool:
        decision = plan(steps, undo, run, run["rollback_generation"], self.settings.fallbacks)
        if decision.outcome == "wait":
            return False
        if decision.outcome == "submit" and decision.spec is not None:
            [result] = await self.queue.submit(
                [decision.spec], actor="workflow:rollback", run_id=run["id"],
                step_name=j.UNDO + str(decision.step),
            )  # fmt: skip
            return bool(result.duplicate)
        status = j.ROLLED_BACK if decision.outcome == "done" else j.ROLLBACK_FAILED
        return await self._set(
            run["id"], (j.ROLLING_BACK,), status, rollback=decision.summary(),
            finished_at=self.clock(),
        )  # fmt: skip

    async def _set(
        self, run_id: str, expected: tuple[str, ...], status: str, **values: Any
    ) -> bool:
        now, actor = self.clock(), values.pop("actor", "system")
        changed: bool = await self.store.write(
            lambda c: j.set_status(c, run_id, expected, status, now, actor=actor, **values)
        )
        if changed:
            self._tell(run_id, status)
        return changed


def _failure(steps: Steps, fatal: list[str], run: dict[str, Any], now: float) -> str:
    if not fatal:
        return f"{_TIMED_OUT} {run['deadline_at'] - run['started_at']:g}s"
    name = fatal[0]
    action = steps.actions.get(name)
    why = (action.error or action.status) if action else steps.skipped.get(name, "")
    return f"step {name} failed: {why}"
