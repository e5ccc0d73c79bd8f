"""Schedule operations (`opsbot schedule ...`, `/ops schedule ...`) over bot.scheduler.

The live runtime passes its Scheduler in the OpsContext; the CLI builds one over the same store
(pause and resume are rows every process reads at its next firing; `run` enqueues at once).
"""

from __future__ import annotations

from typing import Any

from bot.ops.context import BadInput, NotFound, OpsContext


def scheduler(ctx: OpsContext) -> Any:
    if ctx.scheduler is None:
        from bot.ops.workflows import runner
        from bot.schedules.config import ScheduleInvalid
        from bot.schedules.service import build_scheduler

        try:
            ctx.scheduler = build_scheduler(ctx.store, ctx.queue, ctx.settings, clock=ctx.clock,
                                            ops_ctx=ctx)  # fmt: skip
        except ScheduleInvalid as exc:
            raise BadInput(f"schedules: {exc}") from exc
        if any(s.workflow for s in ctx.scheduler.schedules.values()):
            ctx.scheduler.runner = runner(ctx)
    return ctx.scheduler


async def _named(ctx: OpsContext, name: str) -> Any:
    from bot.scheduler import ScheduleNotFound

    sched = scheduler(ctx)
    try:
        sched.get(name)
    except ScheduleNotFound as exc:
        known = ", ".join(sorted(sched.schedules)) or "none configured (OPSBOT_SCHEDULES)"
        raise NotFound(f"{exc} (known: {known})") from exc
    return sched


async def listing(ctx: OpsContext) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await scheduler(ctx).listing()
    return result


async def pause(ctx: OpsContext, name: str, actor: str) -> dict[str, Any]:
    result: dict[str, Any] = await (await _named(ctx, name)).set_paused(name, True, actor)
    return result


async def resume(ctx: OpsContext, name: str, actor: str) -> dict[str, Any]:
    result: dict[str, Any] = await (await _named(ctx, name)).set_paused(name, False, actor)
    return result


async def run_now(ctx: OpsContext, name: str, actor: str) -> dict[str, Any]:
    result: dict[str, Any] = await (await _named(ctx, name)).run_now(name, actor)
    return result


async def history(ctx: OpsContext, name: str, limit: int = 20) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await (await _named(ctx, name)).history(name, limit)
    return result
