"""The scheduler: cron firings that only enqueue (a workflow run or an action), exactly once.

A runtime service (`start()` / `stop()`): APScheduler's AsyncIOScheduler wakes it at each cron
time; what is due is decided by `tick(now)` from the durable state (bot.schedules.state), so the
wake-up only needs to be roughly right and time is injectable in tests. Each firing enqueues with
the idempotency key `schedule:<name>:<fire time ISO>`, so a restart or a second process never
runs the same firing twice (the queue and the runner return the existing action/run). Overlap:
by default a firing is skipped, and recorded as skipped, while the schedule's previous run or
action is still active. Firings missed while opsbot was down follow the schedule's catch-up
policy (once: only the latest; all: each, oldest first; skip: none). The maintenance jobs
(`job: prune|report`) run in-process; their firing row is claimed before they run.
The CLI uses the same class without start(): list, pause, resume, run now, history.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC
from functools import partial
from typing import Any

from bot.actions import parse_action
from bot.config import Settings
from bot.schedules import state as st
from bot.schedules.config import CATCH_UP_WINDOW, Schedule, fire_iso
from bot.store.engine import Store

log = logging.getLogger(__name__)

Job = Callable[[float], Awaitable[dict[str, Any]]]
MAX_CATCH_UP = 100  # catch_up: all never enqueues more than this many missed firings at once


class ScheduleNotFound(KeyError):
    def __str__(self) -> str:
        return f"no schedule named {self.args[0]!r}"


class Scheduler:
    def __init__(
        self,
        store: Store,
        queue: Any,  # bot.queue.Queue
        settings: Settings,
        schedules: Mapping[str, Schedule],
        *,
        runner: Any = None,  # bot.workflows.runner.WorkflowRunner, for workflow targets
        jobs: Mapping[str, Job] | None = None,
        clock: Callable[[], float] = time.time,
        grace: float = 60.0,  # a firing later than this after its time counts as missed
    ) -> None:
        self.store, self.queue, self.settings = store, queue, settings
        self.schedules = dict(schedules)
        self.runner, self.jobs, self.clock, self.grace = runner, dict(jobs or {}), clock, grace
        self._lock = asyncio.Lock()
        self._aps: Any = None

    # -- service -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Catch up on what was missed, then let APScheduler wake `tick` at each cron time."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        await self.tick()
        self._aps = AsyncIOScheduler(timezone=UTC, event_loop=asyncio.get_running_loop())
        for schedule in self.schedules.values():
            if schedule.enabled:
                self._aps.add_job(
                    self._on_cron, schedule.trigger(), id=schedule.name, coalesce=True,
                    max_instances=1, misfire_grace_time=None,
                )  # fmt: skip
        self._aps.start()

    async def stop(self) -> None:
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None
        async with self._lock:  # let a tick in progress finish its firing and record it
            pass

    async def _on_cron(self) -> None:
        try:
            await self.tick()
        except Exception:  # the next wake-up retries what is still due
            log.exception("scheduler tick failed")

    # -- firing --------------------------------------------------------------------------------

    async def tick(self, now: float | None = None) -> list[dict[str, Any]]:
        """Fire every schedule whose cron time has come since it last fired. Returns firings."""
        async with self._lock:
            now = self.clock() if now is None else now
            names = list(self.schedules)
            states = await self.store.write(
                lambda c: {n: st.ensure_state(c, n, now) for n in names}
            )
            fired: list[dict[str, Any]] = []
            for schedule in self.schedules.values():
                state = states[schedule.name]
                if schedule.enabled and not state["paused"]:
                    fired += await self._tick_one(schedule, state, now)
            return fired

    async def _tick_one(
        self, schedule: Schedule, state: dict[str, Any], now: float
    ) -> list[dict[str, Any]]:
        anchor = max(state["last_fire_at"] or state["first_seen_at"], now - CATCH_UP_WINDOW)
        due = schedule.fire_times(anchor, now)
        if not due:
            return []
        on_time = [t for t in due if t >= now - self.grace]
        missed = [t for t in due if t < now - self.grace]
        chosen = {"once": missed[-1:] if not on_time else [],
                  "all": missed[-MAX_CATCH_UP:], "skip": []}[schedule.catch_up]  # fmt: skip
        out = []
        dropped = [t for t in missed if t not in chosen]
        if dropped:
            out.append(await self._record_missed(schedule, dropped, now))
        for fire_at in chosen:
            out.append(await self._fire(schedule, fire_at, "catch_up", now))
        for fire_at in on_time:
            out.append(await self._fire(schedule, fire_at, "cron", now))
        await self.store.write(partial(st.set_last_fire, name=schedule.name, fire_at=due[-1],
                                       now=now))  # fmt: skip
        return out

    async def run_now(self, name: str, actor: str) -> dict[str, Any]:
        """Fire a schedule now (paused or not), with its overlap policy; the cron is unchanged."""
        schedule = self.get(name)
        now = self.clock()
        async with self._lock:
            return await self._fire(schedule, now, "manual", now, actor=actor)

    async def _fire(
        self, schedule: Schedule, fire_at: float, kind: str, now: float, *, actor: str = ""
    ) -> dict[str, Any]:
        actor = actor or f"schedule:{schedule.name}"
        base = {"schedule": schedule.name, "fire_at": fire_at, "kind": kind,
                "target_kind": schedule.target_kind, "recorded_at": now}  # fmt: skip
        done = await self.store.read(partial(st.get_firing, **_ident(base)))
        if done is not None:  # recorded before a restart (or by another process)
            return {**done, "already": True}
        if schedule.job is not None:
            return await self._run_job(schedule, base)
        if schedule.overlap == "skip":
            active = await self.store.read(partial(st.active_target, schedule=schedule.name,
                                                   exclude_fire_at=fire_at))  # fmt: skip
            if active is not None:
                why = f"previous {schedule.target_kind} {active} still active"
                return await self._record({**base, "outcome": "skipped", "detail": why})
        key = _key(schedule.name, fire_at, kind)
        try:
            target_id, duplicate = await self._enqueue(schedule, key, actor)
        except Exception as exc:  # queue full, workflow unknown: recorded, visible in history
            log.warning("schedule %s: firing failed: %s", schedule.name, exc)
            return await self._record({**base, "outcome": "failed", "detail": _line(exc)})
        detail = {"idempotency_key": key, "duplicate": duplicate}
        return await self._record(
            {**base, "outcome": "enqueued", "target_id": target_id, "detail": detail}
        )

    async def _enqueue(self, schedule: Schedule, key: str, actor: str) -> tuple[str, bool]:
        if schedule.workflow is not None:
            run = await self._workflow_runner().start_run(
                schedule.workflow, dict(schedule.input), idempotency_key=key, actor=actor,
                source="schedule",
            )  # fmt: skip
            return str(run["id"]), bool(run.get("duplicate"))
        raw = {**(schedule.action or {}), "idempotency_key": key, "source": "schedule",
               "requested_by": actor}  # fmt: skip
        [result] = await self.queue.submit([parse_action(raw)], actor=actor)
        return result.id, result.duplicate

    def _workflow_runner(self) -> Any:
        """The runtime's runner; else one used only to start runs (a running runner drives
        them on: `opsbot run`, or the next process that starts one)."""
        if self.runner is None:
            from bot.workflows.loader import load_workflows
            from bot.workflows.runner import WorkflowRunner

            workflows = load_workflows(self.settings.opsbot_workflows)
            self.runner = WorkflowRunner(self.store, self.queue, workflows, self.settings,
                                         self.clock)  # fmt: skip
        return self.runner

    async def _run_job(self, schedule: Schedule, base: dict[str, Any]) -> dict[str, Any]:
        row = {**base, "outcome": "running"}
        if not await self.store.write(lambda c: st.record_firing(c, row)):
            return {**row, "outcome": "duplicate"}  # another process claimed this firing
        job = self.jobs.get(str(schedule.job))
        try:
            if job is None:
                raise RuntimeError(f"job {schedule.job!r} is not available in this process")
            outcome, detail = "done", await job(base["recorded_at"])
        except Exception as exc:  # a failed job is history, not a crash of the scheduler
            log.exception("schedule %s: job %s failed", schedule.name, schedule.job)
            outcome, detail = "failed", {"error": _line(exc)}
        await self.store.write(
            partial(st.finish_firing, **_ident(base), outcome=outcome, detail=detail)
        )
        return {**row, "outcome": outcome, "detail": detail}

    async def _record(self, row: dict[str, Any]) -> dict[str, Any]:
        recorded = await self.store.write(lambda c: st.record_firing(c, row))
        return {**row, "recorded": recorded}

    async def _record_missed(
        self, schedule: Schedule, dropped: list[float], now: float
    ) -> dict[str, Any]:
        detail = {"missed": len(dropped), "first": fire_iso(dropped[0]), "policy":
                  schedule.catch_up}  # fmt: skip
        return await self._record({
            "schedule": schedule.name, "fire_at": dropped[-1], "kind": "catch_up",
            "target_kind": schedule.target_kind, "recorded_at": now, "outcome": "missed",
            "detail": detail,
        })  # fmt: skip

    # -- operator views and commands -----------------------------------------------------------

    def get(self, name: str) -> Schedule:
        if name not in self.schedules:
            raise ScheduleNotFound(name)
        return self.schedules[name]

    async def listing(self) -> list[dict[str, Any]]:
        now = self.clock()
        states = await self.store.read(st.all_states)
        lasts = await self.store.read(lambda c: {n: st.history(c, n, 1) for n in self.schedules})
        return [_listing(s, states.get(s.name), lasts[s.name], now)
                for s in self.schedules.values()]  # fmt: skip

    async def set_paused(self, name: str, paused: bool, actor: str) -> dict[str, Any]:
        self.get(name)
        now = self.clock()
        changed = await self.store.write(
            partial(st.set_paused, name=name, paused=paused, actor=actor, now=now)
        )
        return {"schedule": name, "paused": paused, "changed": changed}

    async def history(self, name: str, limit: int = st.HISTORY_KEEP) -> list[dict[str, Any]]:
        self.get(name)
        return await self.store.read(partial(st.history, schedule=name, limit=limit))


def _key(name: str, fire_at: float, kind: str) -> str:
    manual = "manual:" if kind == "manual" else ""
    return f"schedule:{name}:{manual}{fire_iso(fire_at)}"


def _ident(row: dict[str, Any]) -> dict[str, Any]:
    return {"schedule": row["schedule"], "fire_at": row["fire_at"], "kind": row["kind"]}


def _line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _listing(
    s: Schedule, state: dict[str, Any] | None, last: list[dict[str, Any]], now: float
) -> dict[str, Any]:
    paused = bool(state and state["paused"])
    return {
        "name": s.name, "schedule": s.cron, "timezone": s.timezone, "target_kind": s.target_kind,
        "target": s.target, "enabled": s.enabled, "paused": paused,
        "paused_by": state["paused_by"] if state else None, "overlap": s.overlap,
        "catch_up": s.catch_up,
        "next_fire_at": s.next_fire(now) if s.enabled and not paused else None,
        "last": last[0] if last else None,
    }  # fmt: skip
