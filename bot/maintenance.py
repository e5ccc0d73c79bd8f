"""Retention pruning and the daily maintenance report (issue 6 point 6, the runbook's report).

`prune` deletes what the retention settings say is old: audit rows (OPSBOT_AUDIT_RETENTION_DAYS,
default 90), finished actions with their attempts, the success-rate history
(OPSBOT_HISTORY_RETENTION_DAYS, default 30) and resolved alerts as old. Dead letters keep their
own expiry (OPSBOT_DLQ_TTL_DAYS) and workflow step actions are kept while their run is kept, so
`opsbot workflow status` never loses steps. `report` gathers health (judged on the platform
checks kept in the store by the running processes and `opsbot check`), the 24 h success rate,
queue depth, breakers, the 24 h errors and the database's disk use; `post_report` sends its text
through a callable the runtime passes (the Slack poster). Both run as scheduler jobs
(`maintenance-prune`, `maintenance-report`) and from the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from sqlalchemy import Connection, delete, func, select

from bot import ops
from bot.health import Health
from bot.ops.context import A, OpsContext, T
from bot.store.audit import audit_row, write_audit
from bot.store.tables import AlertRow, AuditRow

AUDIT = AuditRow.__table__  # type: ignore[attr-defined]
ALERTS = AlertRow.__table__  # type: ignore[attr-defined]
DAY = 86_400.0
FINISHED = ("succeeded", "rejected", "expired", "cancelled")  # dead letters expire on their own
CHUNK = 500
Post = Callable[[str, str], Awaitable[Any]]  # (channel, text)


def prune(conn: Connection, *, now: float, audit_days: float, history_days: float,
          actor: str = "maintenance") -> dict[str, Any]:  # fmt: skip
    """Delete rows past retention in one transaction; returns the counts (and audits them)."""
    cutoff = now - history_days * DAY
    ids = list(
        conn.execute(
            select(A.c.id).where(A.c.status.in_(FINISHED), A.c.finished_at < cutoff,
                                 A.c.run_id.is_(None))
        ).scalars()
    )  # fmt: skip
    counts = {"actions": 0, "attempts": 0}
    for chunk in _chunks(ids):
        counts["attempts"] += conn.execute(delete(T).where(T.c.action_id.in_(chunk))).rowcount
        counts["actions"] += conn.execute(delete(A).where(A.c.id.in_(chunk))).rowcount
    counts["alerts"] = conn.execute(
        delete(ALERTS).where(ALERTS.c.status == "resolved", ALERTS.c.resolved_at < cutoff)
    ).rowcount
    old_audit = delete(AUDIT).where(AUDIT.c.at < now - audit_days * DAY)
    counts["audit"] = conn.execute(old_audit).rowcount
    result = {"deleted": counts, "audit_days": audit_days, "history_days": history_days}
    write_audit(conn, [audit_row(now, None, None, "pruned", actor=actor, entity="ops",
                                 detail=result)])  # fmt: skip
    return result


async def prune_now(ctx: OpsContext, actor: str = "maintenance") -> dict[str, Any]:
    s = ctx.settings
    now = ctx.clock()
    return await ctx.store.write(
        lambda c: prune(c, now=now, audit_days=s.opsbot_audit_retention_days,
                        history_days=s.opsbot_history_retention_days, actor=actor)
    )  # fmt: skip


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]


async def report(ctx: OpsContext) -> dict[str, Any]:
    """The daily maintenance report as data (`opsbot report --json`)."""
    now = ctx.clock()
    interval = ctx.settings.opsbot_health_interval
    health = await Health(ctx.store, interval=interval, clock=ctx.clock).snapshot()
    day = await ctx.store.read(lambda c: _last_day(c, now))
    return {
        "at": now,
        "health": {"status": health["status"], "reasons": health.get("reasons", [])},
        "checks": _checks(health.get("platforms") or {}, now),
        "success_rate_24h": day["rate"],
        "queue": await ops.queue_status(ctx),
        "circuits": await ops.circuits(ctx),
        "errors_24h": day["errors"],
        "database": database_usage(ctx),
    }


def _checks(platforms: dict[str, dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """The stored platform checks the health was judged on, with their age."""
    return [{**r, "age_s": round(max(0.0, now - r["checked_at"]), 1)}
            for _, r in sorted(platforms.items())]  # fmt: skip


def _last_day(conn: Connection, now: float) -> dict[str, Any]:
    since = now - DAY
    outcomes: dict[str, int] = dict(
        conn.execute(  # type: ignore[arg-type]
            select(T.c.outcome, func.count()).where(T.c.finished_at >= since)
            .group_by(T.c.outcome)
        ).all()
    )  # fmt: skip
    ok, total = int(outcomes.get("succeeded", 0)), sum(map(int, outcomes.values()))
    by = conn.execute(
        select(T.c.platform, T.c.error_kind, func.count())
        .where(T.c.finished_at >= since, T.c.outcome != "succeeded")
        .group_by(T.c.platform, T.c.error_kind).order_by(func.count().desc())
    ).all()  # fmt: skip
    return {
        "rate": {"succeeded": ok, "attempts": total,
                 "rate": round(ok / total, 4) if total else None},
        "errors": {"total": total - ok,
                   "by": [{"platform": p, "kind": k, "count": int(n)} for p, k, n in by]},
    }  # fmt: skip


def database_usage(ctx: OpsContext) -> dict[str, Any]:
    """Bytes on disk of the SQLite file and its WAL/SHM files (None for other databases)."""
    path = ctx.settings.database_path
    if path is None:
        return {"path": None, "bytes": None, "files": {}}
    files = {str(p): os.path.getsize(p) for p in (path, path.with_name(path.name + "-wal"),
                                                   path.with_name(path.name + "-shm"))
             if p.exists()}  # fmt: skip
    return {"path": str(path), "bytes": sum(files.values()), "files": files}


async def post_report(ctx: OpsContext, post: Post | None) -> dict[str, Any]:
    """Build the report and post its text to OPSBOT_REPORT_CHANNEL (when both are set)."""
    from bot.render_maint import view_report

    data = await report(ctx)
    channel = ctx.settings.opsbot_report_channel
    if post is None or not channel:
        return {"posted": False, "why": "no report channel or no poster", "report": data}
    await post(channel, view_report(data))
    return {"posted": True, "channel": channel, "status": data["health"]["status"]}


def jobs(ctx: OpsContext, post: Post | None) -> dict[str, Callable[[float], Awaitable[Any]]]:
    """The scheduler's maintenance jobs (`job: prune`, `job: report`)."""

    async def prune_job(_now: float) -> dict[str, Any]:
        return await prune_now(ctx)

    async def report_job(_now: float) -> dict[str, Any]:
        return await post_report(ctx, post)

    return {"prune": prune_job, "report": report_job}
