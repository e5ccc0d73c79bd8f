"""Read-only runbook views: status, queue status, stuck actions, circuits, errors, approvals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, func, select

from bot.actions import Status
from bot.flow.breaker import CLOSED, HALF_OPEN, OPEN, load_circuits
from bot.health_store import load_checks
from bot.ops.context import A, BadInput, OpsContext, P, T, check_platform
from bot.queue import depth_by_priority
from bot.queue import stuck as find_stuck
from bot.routing import PLATFORMS

SUCCESS_WINDOW_S = 900.0  # "success rate over 15 minutes" (issue 4 point 5)


async def status(ctx: OpsContext) -> dict[str, Any]:
    """The one-screen picture: queue, running, pauses, circuits, dead letters, success rate."""
    now = ctx.clock()
    counts, rate, paused, checks = await ctx.store.read(
        lambda conn: (
            _status_counts(conn), _success_rate(conn, now), _paused(conn), load_checks(conn, now)
        )
    )  # fmt: skip
    open_circuits = [c for c in await circuits(ctx) if c["state"] != "closed"]
    return {
        "queued": counts.get(Status.QUEUED.value, 0),
        "retry_scheduled": counts.get(Status.RETRY_SCHEDULED.value, 0),
        "running": counts.get(Status.RUNNING.value, 0),
        "awaiting_approval": counts.get(Status.AWAITING_APPROVAL.value, 0),
        "dead_letters": counts.get(Status.DEAD_LETTERED.value, 0),
        "by_status": counts,
        "paused": paused,
        "circuits_not_closed": open_circuits,
        "success_rate_15m": rate,
        "platforms": _platforms(ctx),
        "checks": checks,  # the latest check per platform, any process (bot.health_store)
        "workers": ctx.settings.queue_workers,
    }


def _status_counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(A.c.status, func.count()).group_by(A.c.status))
    return {row[0]: int(row[1]) for row in rows}


def _success_rate(conn: Connection, now: float) -> dict[str, Any]:
    """Attempts finished in the last 15 minutes: a failing retry counts against the rate."""
    rows = conn.execute(
        select(T.c.outcome, func.count())
        .where(T.c.finished_at >= now - SUCCESS_WINDOW_S)
        .group_by(T.c.outcome)
    )
    counts = {row[0]: int(row[1]) for row in rows}
    ok = counts.get("succeeded", 0)
    total = sum(counts.values())
    return {"succeeded": ok, "attempts": total, "rate": round(ok / total, 4) if total else None}


def _paused(conn: Connection) -> list[str]:
    return [row[0] for row in conn.execute(select(P.c.platform).order_by(P.c.platform))]


def _platforms(ctx: OpsContext) -> list[dict[str, Any]] | None:
    if ctx.disabled is None:
        return None
    return [
        {"platform": p, "enabled": p not in ctx.disabled, "reason": ctx.disabled.get(p)}
        for p in PLATFORMS
    ]


async def queue_status(ctx: OpsContext) -> dict[str, Any]:
    """Depth per priority, oldest and average wait of due actions, worker utilisation."""
    now = ctx.clock()
    depth = await ctx.store.read(lambda conn: depth_by_priority(conn, now))
    workers, busy, source = _utilisation(ctx, depth["running"])
    return {
        "total_queued": depth["due"] + depth["scheduled"],
        "due": depth["due"],
        "delayed": depth["scheduled"],
        "by_priority": depth["depth"],
        "oldest_wait_s": round(depth["oldest_wait_s"], 3),
        "avg_wait_s": round(depth["avg_wait_s"], 3),
        "running": depth["running"],
        "awaiting_approval": depth["awaiting_approval"],
        "workers": workers,
        "worker_utilization": round(busy / workers, 3),
        "utilization_source": source,
    }


def _utilisation(ctx: OpsContext, running: int) -> tuple[int, int, str]:
    """(workers, busy, where the figure comes from): the live pool when there is one."""
    if ctx.pool is not None:
        return int(ctx.pool.workers), int(ctx.pool.busy), "pool"
    return ctx.settings.queue_workers, running, "running/QUEUE_WORKERS"


async def stuck(ctx: OpsContext) -> list[dict[str, Any]]:
    """Running longer than OPSBOT_STUCK_AFTER, or due and unclaimed that long. Longest first."""
    now = ctx.clock()
    after = ctx.settings.opsbot_stuck_after
    return await ctx.store.read(lambda conn: find_stuck(conn, now, after))


async def circuits(ctx: OpsContext, platform: str | None = None) -> list[dict[str, Any]]:
    """Every platform's circuit: the live breakers when running in-process, else the table."""
    wanted = [check_platform(platform)] if platform else list(PLATFORMS)
    if ctx.breakers is not None:
        rows = {s["platform"]: s for s in ctx.breakers.snapshots()}
    else:
        rows = {r["platform"]: r for r in await ctx.store.read(load_circuits)}
    now = ctx.clock()
    return [
        _circuit_view(p, rows.get(p), now, ctx.settings.circuit_breaker_timeout) for p in wanted
    ]


def _circuit_view(
    platform: str, row: Mapping[str, Any] | None, now: float, open_seconds: float
) -> dict[str, Any]:
    if row is None:
        return {
            "platform": platform,
            "state": CLOSED,
            "failure_count": 0,
            "last_error": None,
            "opened_at": None,
            "will_reset_at": None,
        }
    state = str(row["state"])
    opened = row["opened_at"]
    reset_at = opened + open_seconds if state == OPEN and opened is not None else None
    if reset_at is not None and now >= reset_at:
        state = HALF_OPEN  # a worker will move it at its next look; the time is up already
    return {
        "platform": platform,
        "state": state,
        "failure_count": int(row["consecutive_failures"]),
        "last_error": row["last_error"],
        "opened_at": opened,
        "will_reset_at": reset_at,
    }


async def recent_errors(ctx: OpsContext, n: int = 10) -> list[dict[str, Any]]:
    """The last `n` failed attempts, newest first, with their action's type."""
    if n < 1:
        raise BadInput(f"N must be at least 1, got {n}")
    query = (
        select(
            T.c.action_id,
            A.c.type,
            T.c.platform,
            T.c.number,
            T.c.finished_at,
            T.c.error_kind,
            T.c.status_code,
            T.c.error,
        )
        .join(A, A.c.id == T.c.action_id)
        .where(T.c.outcome != "succeeded")
        .order_by(T.c.finished_at.desc(), T.c.id.desc())
        .limit(n)
    )
    return await ctx.store.read(lambda conn: [dict(r._mapping) for r in conn.execute(query)])


async def approvals(ctx: OpsContext) -> list[dict[str, Any]]:
    """Actions awaiting a decision, oldest first; `overdue` once past the approval timeout."""
    now = ctx.clock()
    timeout = ctx.settings.opsbot_approval_timeout
    query = (
        select(
            A.c.id,
            A.c.type,
            A.c.platform,
            A.c.priority,
            A.c.requested_by,
            A.c.reason,
            A.c.approval_reason,
            A.c.created_at,
        )
        .where(A.c.status == Status.AWAITING_APPROVAL.value)
        .order_by(A.c.seq)
    )
    rows = await ctx.store.read(lambda conn: [dict(r._mapping) for r in conn.execute(query)])
    for row in rows:
        row["waiting_s"] = round(now - row["created_at"], 1)
        row["overdue"] = row["waiting_s"] > timeout
    return rows
