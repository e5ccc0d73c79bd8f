"""Wiring the scheduler into a process: the configured schedules plus the maintenance jobs
(`build_scheduler`), and the runtime Service that builds and runs it (`SchedulerService`)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from bot.config import Settings
from bot.scheduler import Scheduler
from bot.store.engine import Store


def build_scheduler(
    store: Store,
    queue: Any,
    settings: Settings,
    *,
    runner: Any = None,
    post: Callable[[str, str], Awaitable[Any]] | None = None,
    clock: Callable[[], float] = time.time,
    ops_ctx: Any = None,
) -> Scheduler:
    """The configured schedules (OPSBOT_SCHEDULES) plus the maintenance jobs: pruning
    (OPSBOT_PRUNE_CRON) and, when OPSBOT_REPORT_CHANNEL is set, the daily report posted
    through `post(channel, text)`. Raises ScheduleInvalid for a bad file."""
    from bot import maintenance
    from bot.ops.context import OpsContext
    from bot.schedules.config import builtin_schedules, load_schedules

    report_cron = settings.opsbot_report_cron if settings.opsbot_report_channel else None
    schedules = {
        **builtin_schedules(settings.opsbot_prune_cron, report_cron),
        **load_schedules(settings.opsbot_schedules, catch_up=settings.opsbot_schedule_catch_up),
    }
    ctx = ops_ctx or OpsContext(store=store, settings=settings, queue=queue, clock=clock)
    return Scheduler(store, queue, settings, schedules, runner=runner,
                     jobs=maintenance.jobs(ctx, post), clock=clock)  # fmt: skip


class SchedulerService:
    """The scheduler as a runtime Service, built at start from the runtime's store and queue:
    `runtime.services.append(SchedulerService(runtime, runner=lambda: <runner>, post=<post>))`.
    `runner` returns the runtime's WorkflowRunner (for workflow targets); `post(channel, text)`
    posts the daily report (OPSBOT_REPORT_CHANNEL)."""

    def __init__(
        self,
        runtime: Any,
        *,
        runner: Callable[[], Any] | None = None,
        post: Callable[[str, str], Awaitable[Any]] | None = None,
    ) -> None:
        self.runtime, self.runner, self.post = runtime, runner, post
        self.scheduler: Scheduler | None = None

    async def start(self) -> None:

        rt = self.runtime
        runner = self.runner() if self.runner is not None else None
        ctx = rt.ops_context()
        ctx.runner = runner
        self.scheduler = build_scheduler(rt.store, rt.queue, rt.settings, runner=runner,
                                         post=self.post, clock=rt.clock, ops_ctx=ctx)  # fmt: skip
        ctx.scheduler = rt.scheduler = self.scheduler
        await self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
