"""The durable DAG runner: each step becomes an action in the queue; the store is the truth.

The engine (engine.py) makes each run's next move. This module decides when: on every outcome
the queue publishes for a run's actions, on a periodic sweep (deadlines; outcomes recorded by
another process), and once for every active run at start, which is how a restarted process
resumes a run without re-running its finished steps. It also starts runs (a run idempotency key
returns the existing run), shows them, and carries the operator's commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError

from bot.config import Settings
from bot.store.engine import Store
from bot.workflows import journal as j
from bot.workflows.definitions import Workflow
from bot.workflows.engine import RunEngine
from bot.workflows.state import run_view, split
from bot.workflows.templates import TemplateError, refs_in, render
from bot.workflows.versions import register

log = logging.getLogger(__name__)

FINAL = (j.SUCCEEDED, j.FAILED, j.TIMED_OUT, j.ROLLED_BACK, j.ROLLBACK_FAILED, j.RESOLVED)


class RunNotFound(KeyError):
    pass


class RunRefused(ValueError):
    """Unknown or disabled workflow, missing input, or an operation the run's state forbids."""


class WorkflowRunner(RunEngine):
    """Starts runs, drives them (engine.py) on queue outcomes and a periodic sweep, shows them,
    and carries the operator's commands (rollback, retry-rollback, resolve)."""

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
        super().__init__(store, queue, settings, clock)
        self.workflows, self.sweep_interval = workflows, sweep_interval
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: Callable[[], None] | None = None

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
        callback_url: str | None = None,
    ) -> dict[str, Any]:
        """Start a run (or return the run that has this idempotency key, `duplicate: True`).
        `callback_url` is told the outcome when the run finishes (bot.run_callbacks)."""
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
            "callback_url": callback_url,
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
            self._tell(found, j.RUNNING)
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

    async def runs(
        self, *, limit: int = 20, status: str | None = None, name: str | None = None
    ) -> list[dict[str, Any]]:
        return await self.store.read(
            lambda c: j.list_runs(c, limit=limit, status=status, name=name)
        )

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
            retrying = allowed == (j.ROLLBACK_FAILED,)
            raise RunRefused(f"run {run_id} {_why_not_rollback(run['status'], retrying)}")
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
        if not comment.strip():
            raise RunRefused("resolve needs a comment saying what was done")
        run = await self._run(run_id)
        allowed = (j.ROLLBACK_FAILED, j.FAILED, j.TIMED_OUT)
        if run["status"] not in allowed:
            raise RunRefused(f"run {run_id} {_why_not_resolve(run['status'])}")
        await self._set(run_id, allowed, j.RESOLVED, actor=actor, comment=comment)
        return await self.state(run_id)

    async def _run(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] | None = await self.store.read(lambda c: j.load_run(c, run_id))
        if run is None:
            raise RunNotFound(run_id)
        return run


_WAIT = "is still running: wait for it to finish (see its status), then"
_NO_ROLLBACK = {
    j.RUNNING: f"{_WAIT} roll it back",
    j.ROLLING_BACK: "is already rolling back (see its status)",
    j.ROLLED_BACK: "is already rolled back",
    j.RESOLVED: "was resolved by hand: there is nothing left to roll back",
    j.ROLLBACK_FAILED: "is rollback_failed: use retry-rollback to retry its compensations",
    j.SUCCEEDED: "succeeded: roll it back only by force (rollback:force RUN, or --force)",
}
_NO_RETRY_ROLLBACK = {
    j.FAILED: "failed and was not rolled back yet: use rollback",
    j.TIMED_OUT: "timed out and was not rolled back yet: use rollback",
}


def _why_not_rollback(status: str, retrying: bool) -> str:
    """Why a run in `status` cannot be (re)rolled back, and what to do instead."""
    if retrying and status in _NO_RETRY_ROLLBACK:
        return _NO_RETRY_ROLLBACK[status]
    return _NO_ROLLBACK.get(status, f"is {status}: cannot roll back")


def _why_not_resolve(status: str) -> str:
    if status == j.RUNNING:
        return f"{_WAIT} resolve it if it failed"
    if status == j.ROLLING_BACK:
        return "is rolling back: wait for the rollback to end (see its status)"
    return f"is {status}: resolve closes only a failed, timed_out or rollback_failed run"


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
