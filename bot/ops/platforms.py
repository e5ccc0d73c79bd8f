"""Platform health for operators: which platforms are enabled, and `check` (auth + reachability).

Executors come from executors/registry.py, exactly as the runtime builds them; each check is the
executor's one cheap read-only call, bounded by a timeout so a stalled platform cannot hang the
command.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.config import Settings
from bot.health_store import save_checks
from bot.ops.context import OpsContext, check_platform
from executors.base import Executor, no_throttle
from executors.registry import build_executors

CHECK_TIMEOUT_S = 15.0
log = logging.getLogger(__name__)


@asynccontextmanager
async def built_executors(
    settings: Settings,
) -> AsyncIterator[tuple[dict[str, Executor], dict[str, str]]]:
    """The registry's executors (unthrottled: one call each), closed on the way out."""
    executors, disabled = build_executors(settings, lambda _platform: no_throttle)
    try:
        yield executors, disabled
    finally:
        for executor in executors.values():
            await executor.aclose()


async def disabled_platforms(settings: Settings) -> dict[str, str] | None:
    """platform -> why it is disabled (missing credentials ...), for `status`; None if unknown."""
    try:
        async with built_executors(settings) as (_executors, disabled):
            return dict(disabled)
    except Exception as exc:  # status must still answer when one platform's setup is broken
        log.warning("cannot tell which platforms are enabled: %s: %s", type(exc).__name__, exc)
        return None


async def check(ctx: OpsContext, platform: str | None = None) -> list[dict[str, Any]]:
    """Run each enabled platform's check() (or one platform's); disabled ones say why."""
    wanted = check_platform(platform) if platform else None
    async with built_executors(ctx.settings) as (executors, disabled):
        names = [wanted] if wanted else [*executors, *disabled]
        results = list(await asyncio.gather(*(_check_one(n, executors, disabled) for n in names)))
    now = ctx.clock()
    try:  # kept for `opsbot status` and the report; the answer stands even if this fails
        await ctx.store.write(lambda conn: save_checks(conn, results, now, "check"))
    except Exception as exc:
        log.warning("saving the check results failed: %s: %s", type(exc).__name__, exc)
    return results


async def _check_one(
    name: str, executors: dict[str, Executor], disabled: dict[str, str]
) -> dict[str, Any]:
    ok, detail, latency = await _checked(name, executors, disabled)
    row = {"platform": name, "enabled": name not in disabled, "ok": ok, "detail": detail}
    return {**row, "latency_ms": latency}


async def _checked(
    name: str, executors: dict[str, Executor], disabled: dict[str, str]
) -> tuple[bool, str, float | None]:
    if name in disabled:
        return False, f"disabled: {disabled[name]}", None
    try:
        result = await asyncio.wait_for(executors[name].check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return False, f"no answer within {CHECK_TIMEOUT_S:.0f}s", None
    except Exception as exc:  # a check must report, never crash the command
        return False, f"{type(exc).__name__}: {exc}", None
    return result.ok, result.detail, result.latency_ms
