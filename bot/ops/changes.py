"""Runbook operations that change state: pause, resume, clear, circuit reset.

Each change is one transaction on the store's writer that also writes its audit rows, so the log
always says who paused, resumed, cleared or reset what, and when.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from bot.actions import Status
from bot.flow.breaker import reset_circuit
from bot.ops.context import ALL, A, OpsContext, P, check_platform
from bot.queue import stuck as find_stuck
from bot.store.audit import audit_row, write_audit

# Statuses `clear` cancels besides stuck running actions.
CLEARABLE = (Status.QUEUED.value, Status.RETRY_SCHEDULED.value)


async def pause(
    ctx: OpsContext, platform: str | None, actor: str, reason: str | None = None
) -> dict[str, Any]:
    """Stop claiming actions of `platform` (all when None). Paused actions stay queued."""
    key = check_platform(platform) if platform else ALL
    now = ctx.clock()

    def tx(conn: Connection) -> dict[str, Any]:
        row = conn.execute(select(P).where(P.c.platform == key)).first()
        if row is not None:
            return {"platform": key, "changed": False, "paused_at": row.paused_at}
        conn.execute(insert(P).values(platform=key, paused_at=now, actor=actor, reason=reason))
        write_audit(conn, [_pause_audit(now, key, "active", "paused", actor, reason)])
        return {"platform": key, "changed": True, "paused_at": now}

    return await ctx.store.write(tx)


async def resume(ctx: OpsContext, platform: str | None, actor: str) -> dict[str, Any]:
    """Lift the pause of `platform`; with None lift every pause (the runbook's resume:all)."""
    key = check_platform(platform) if platform else None
    now = ctx.clock()

    def tx(conn: Connection) -> dict[str, Any]:
        paused = [r[0] for r in conn.execute(select(P.c.platform))]
        lifted = [p for p in paused if key is None or p == key]
        if lifted:
            conn.execute(delete(P).where(P.c.platform.in_(lifted)))
            write_audit(conn, [_pause_audit(now, p, "paused", "active", actor) for p in lifted])
        return {
            "platform": key or ALL,
            "resumed": sorted(lifted),
            "still_paused": sorted(set(paused) - set(lifted)),
        }

    return await ctx.store.write(tx)


def _pause_audit(
    at: float, key: str, from_: str, to: str, actor: str, reason: str | None = None
) -> dict[str, Any]:
    return audit_row(at, key, from_, to, actor=actor, entity="queue", detail=reason)


async def clear(ctx: OpsContext, stuck_only: bool, actor: str) -> dict[str, Any]:
    """Cancel stuck actions and, unless `stuck_only`, every waiting one. Audited."""
    now = ctx.clock()
    after = ctx.settings.opsbot_stuck_after
    reason = f"cleared by {actor}" + (" (stuck)" if stuck_only else "")

    def tx(conn: Connection) -> dict[str, Any]:
        targets = {r["id"]: r["status"] for r in find_stuck(conn, now, after)}
        if not stuck_only:
            waiting = conn.execute(select(A.c.id, A.c.status).where(A.c.status.in_(CLEARABLE)))
            targets.update({row.id: row.status for row in waiting})
        cleared = _cancel(conn, list(targets.items()), now, reason)
        audits = [
            audit_row(now, i, s, Status.CANCELLED.value, actor=actor, detail=reason)
            for i, s in cleared
        ]
        write_audit(conn, audits)
        return {"cleared": len(cleared), "ids": [i for i, _ in cleared], "stuck_only": stuck_only}

    return await ctx.store.write(tx)


def _cancel(
    conn: Connection, targets: list[tuple[str, str]], now: float, reason: str
) -> list[tuple[str, str]]:
    """Conditional per-row UPDATE: a row a worker changed meanwhile is left alone."""
    statement = (
        update(A)
        .where(A.c.id == bindparam("b_id"), A.c.status == bindparam("b_from"))
        .values(
            status=Status.CANCELLED.value,
            finished_at=now,
            error=reason,
            error_kind="cancelled",
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    done = []
    for action_id, from_status in targets:
        if conn.execute(statement, {"b_id": action_id, "b_from": from_status}).rowcount:
            done.append((action_id, from_status))
    return done


async def circuit_reset(ctx: OpsContext, platform: str, actor: str) -> dict[str, Any]:
    """Close `platform`'s circuit; a running opsbot adopts the row at its next breaker sync."""
    name = check_platform(platform)
    now = ctx.clock()
    return await ctx.store.write(lambda conn: reset_circuit(conn, name, now, actor))
