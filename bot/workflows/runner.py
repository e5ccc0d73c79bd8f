"""The durable DAG runner: each step becomes an action in the queue; the store is the truth.

`advance(run_id)` reads the run row and its actions and makes the next move: submit the steps
whose dependencies are done (in parallel), fail the run (cancelling what has not started, waiting
for what is running), finish it, or, for a failed transactional run, drive the LIFO rollback
(rollback.py). It runs on every outcome the queue publishes for the run's actions, and on a
periodic sweep (deadlines; outcomes recorded by another process), and once for every active run
at start, which is how a restarted process resumes: steps are submitted with the idempotency key
`run:<run>:<step>`, so a step submitted before a crash is found again, never run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Coroutine, Mapping
from functools import partial
from typing import Any

from sqlalchemy.exc import IntegrityError

from bot.actions import ActionInvalid, parse_action
from bot.config import Settings
from bot.store.engine import Store
from bot.workflows import journal as j
from bot.workflows.definitions import Step, Workflow
from bot.workflows.rollback import plan
from bot.workflows.state import Steps, run_view, split
from bot.workflows.templates import TemplateError, refs_in, render
from bot.workflows.versions import load_version, register

log = logging.getLogger(__name__)

FINAL = (j.SUCCEEDED, j.FAILED, j.TIMED_OUT, j.ROLLED_BACK, j.ROLLBACK_FAILED, j.RESOLVED)
_TIMED_OUT = "timed out after"
_MAX_PASSES = 50  # re-reads per advance when a pass changed something (bounded, never a spin)


class RunNotFound(KeyError):
    pass


class RunRefused(ValueError):
    """Unknown or disabled workflow, missing input, or an operation the run's state forbids."""


class WorkflowRunner:
    def __init__(
        self,
        store: Store,
        queue: Any,  # bot.queue.Queue: submit(...) and subscribe(...)
        workflows: Mapping[str, Workflow],
        settings: Settings,
        clock: Callable[[], float] = time.time,
        *,
        sweep_interval: float = 1.0,
    ) -> None:
        self.store, self.queue, self.workflows = store, queue, workflows
        self.settings, self.clock, self.sweep_interval = settings, clock, sweep_interval
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._definitions: dict[tuple[str, int], Workflow] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._changed = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen to outcomes, resume every active run, then sweep periodically."""
        self._unsubscribe = self.queue.subscribe(self._on_outcome)
        await self.sweep()
        self._spawn(self._sweep_loop())

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_outcome(self, view: dict[str, Any]) -> None:
        if view.get("run_id"):
            self._spawn(self.advance(str(view["run_id"])))
        elif view.get("final"):  # some views (approval expiry) do not name the run
            self._spawn(self.sweep())

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except Exception:  # a bad pass must not end the loop; the next one retries
                log.exception("workflow sweep failed")

    async def sweep(self) -> None:
        for run_id in await self.store.read(j.active_runs):
            await self.advance(run_id)

    # -- starting runs -------------------------------------------------------------------------

    async def start_run(
        self,
        name: str,
        inputs: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        actor: str = "api",
        source: str | None = None,
    ) -> dict[str, Any]:
        """Start a run (or return the run that has this idempotency key, `duplicate: True`)."""
        workflow = self._workflow(name)
        values = dict(inputs or {})
        missing = sorted(_required_inputs(workflow) - set(values))
        if missing:
            raise RunRefused(f"workflow {name}: missing input(s): {', '.join(missing)}")
        key = idempotency_key
        if key is None and workflow.idempotency_key:
            key = str(render(workflow.idempotency_key, {"input": values, "run": {"name": name}}))
        now = self.clock()
        run_id = f"run_{int(now * 1000):011x}{os.urandom(4).hex()}"
        row = {
            "id": run_id, "name": name,
            "env": self.settings.opsbot_env, "status": j.RUNNING,
            "transactional": workflow.transactional, "input": _dumps(values),
            "idempotency_key": key, "requested_by": actor, "source": source, "created_at": now,
            "started_at": now, "deadline_at": now + workflow.timeout, "updated_at": now,
        }  # fmt: skip

        def create(conn: Any) -> tuple[str, bool]:
            existing = j.run_by_key(conn, key) if key else None
            if existing:
                return existing, True
            j.insert_run(conn, {**row, "version": register(conn, workflow, now).version}, actor)
            return run_id, False

        try:
            found, duplicate = await self.store.write(create)
        except IntegrityError:  # another process created the same key a moment ago
            found, duplicate = await self.store.write(create)
        if not duplicate:
            await self.advance(found)
        return {**await self.state(found), "duplicate": duplicate}

    def _workflow(self, name: str) -> Workflow:
        workflow = self.workflows.get(name)
        if workflow is None:
            known = ", ".join(sorted(self.workflows)) or "none loaded"
            raise RunRefused(f"unknown workflow {name!r} (known: {known})")
        if not workflow.enabled:
            raise RunRefused(f"workflow {name} is disabled")
        return workflow

    # -- views -------------------------------------------------------------------------------

    async def state(self, run_id: str) -> dict[str, Any]:
        run, actions = await self.store.read(
            lambda c: (j.load_run(c, run_id), j.step_actions(c, run_id))
        )
        if run is None:
            raise RunNotFound(run_id)
        workflow = await self._definition(run["name"], run["version"])
        steps, undo = split(workflow, actions, run["skipped"])
        return run_view(run, steps, undo, self.clock())

    async def wait(
        self,
        run_id: str,
        timeout: float,  # noqa: ASYNC109 - same shape as Intake.wait(id, timeout)
        poll: float = 0.5,
    ) -> dict[str, Any]:
        """The run's view once it is final (or waits on an operator). TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            view = await self.state(run_id)
            if view["status"] in FINAL:
                return view
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"run {run_id} still {view['status']} after {timeout}s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, poll))

    async def _definition(self, name: str, version: int) -> Workflow:
        key = (name, version)
        if key not in self._definitions:
            self._definitions[key] = await self.store.read(lambda c: load_version(c, name, version))
        return self._definitions[key]

    # -- driving a run -------------------------------------------------------------------------

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
            [result] = await self.queue.submit(
                [spec], actor=f"workflow:{run['name']}", run_id=run["id"], step_name=step.name
            )
            if step.retry is not None and not result.duplicate:
                await self.store.write(
                    partial(
                        j.set_max_attempts, ids=[result.id], max_attempts=1 + step.retry.max_retries
                    )
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
        return await self.store.write(
            lambda c: j.set_status(c, run_id, expected, status, now, actor=actor, **values)
        )

    # -- operator commands ---------------------------------------------------------------------

    async def rollback(self, run_id: str, actor: str, *, force: bool = False) -> dict[str, Any]:
        """Roll back a failed run; a succeeded one only with force (`rollback:force`)."""
        allowed = (j.FAILED, j.TIMED_OUT, j.SUCCEEDED) if force else (j.FAILED, j.TIMED_OUT)
        return await self._restart_rollback(run_id, allowed, actor, force)

    async def retry_rollback(self, run_id: str, actor: str) -> dict[str, Any]:
        return await self._restart_rollback(run_id, (j.ROLLBACK_FAILED,), actor, False)

    async def _restart_rollback(
        self, run_id: str, allowed: tuple[str, ...], actor: str, force: bool
    ) -> dict[str, Any]:
        run = await self._run(run_id)
        if run["status"] not in allowed:
            hint = " (use force)" if run["status"] == j.SUCCEEDED else ""
            raise RunRefused(f"run {run_id} is {run['status']}: cannot roll back{hint}")
        changed = await self._set(
            run_id, allowed, j.ROLLING_BACK, actor=actor, finished_at=None,
            rollback_generation=run["rollback_generation"] + 1,
        )  # fmt: skip
        if not changed:
            raise RunRefused(f"run {run_id} changed state meanwhile; look again")
        await self.advance(run_id)
        return await self.state(run_id)

    async def resolve(self, run_id: str, actor: str, comment: str) -> dict[str, Any]:
        """An operator closes a run that needs attention, saying what was done."""
        run = await self._run(run_id)
        allowed = (j.ROLLBACK_FAILED, j.FAILED, j.TIMED_OUT)
        if run["status"] not in allowed or not comment.strip():
            raise RunRefused(
                f"run {run_id} is {run['status']}: resolve needs a failed run and a comment"
            )
        await self._set(run_id, allowed, j.RESOLVED, actor=actor, comment=comment)
        return await self.state(run_id)

    async def _run(self, run_id: str) -> dict[str, Any]:
        run = await self.store.read(lambda c: j.load_run(c, run_id))
        if run is None:
            raise RunNotFound(run_id)
        return run


def _failure(steps: Steps, fatal: list[str], run: dict[str, Any], now: float) -> str:
    if not fatal:
        return f"{_TIMED_OUT} {run['deadline_at'] - run['started_at']:g}s"
    name = fatal[0]
    action = steps.actions.get(name)
    why = (action.error or action.status) if action else steps.skipped.get(name, "")
    return f"step {name} failed: {why}"


def _required_inputs(workflow: Workflow) -> set[str]:
    """Input names referenced without a default (by steps or the idempotency key)."""
    sources: list[Any] = [s.action.data for s in workflow.steps]
    sources.append(workflow.idempotency_key or "")
    return {
        str(ref.path[0])
        for source in sources
        for _, ref in refs_in(source)
        if not isinstance(ref, TemplateError) and ref.root == "input" and ref.path
        and not ref.has_default
    }  # fmt: skip


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)
