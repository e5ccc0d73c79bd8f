"""Approval transitions (writer thread): awaiting_approval -> queued | rejected by a decision,
-> expired by the approval timeout. Guarded UPDATEs make the first decision win, also across
processes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from bot.actions import FINAL_STATUSES, Status
from bot.store.audit import audit_row, write_audit
from bot.store.tables import ActionRow

A = ActionRow.__table__  # type: ignore[attr-defined]
_AWAITING = Status.AWAITING_APPROVAL.value


def decide_tx(
    action_id: str, approved: bool, actor: str, reason: str | None, now: float, conn: Connection
) -> bool | None:
    """None: no such action; False: already decided (or never awaiting); True: decided now."""
    row = conn.execute(select(A.c.status, A.c.available_at).where(A.c.id == action_id)).first()
    if row is None:
        return None
    if row.status != _AWAITING:
        return False
    if approved:
        values: dict[str, Any] = {
            "status": Status.QUEUED.value,
            "queued_at": now,
            "available_at": max(now, row.available_at or 0.0),
        }
    else:
        values = {
            "status": Status.REJECTED.value,
            "finished_at": now,
            "error": f"rejected by {actor}" + (f": {reason}" if reason else ""),
        }
    stmt = update(A).where(A.c.id == action_id, A.c.status == _AWAITING).values(**values)
    if conn.execute(stmt).rowcount != 1:
        return False  # another process decided between our read and our write
    detail = {"reason": reason} if reason else None
    write_audit(
        conn,
        [
            audit_row(
                now,
                action_id,
                _AWAITING,
                values["status"],
                actor=actor,
                entity="action",
                detail=detail,
            )
        ],
    )
    return True


_EXPIRY_COLUMNS = (
    A.c.id, A.c.type, A.c.platform, A.c.priority, A.c.attempts, A.c.run_id, A.c.step_name,
    A.c.notify, A.c.callback_url, A.c.requested_by, A.c.source, A.c.idempotency_key,
    A.c.created_at,
)  # fmt: skip


def expire_approvals_tx(cutoff: float, now: float, conn: Connection) -> list[dict[str, Any]]:
    """Expire actions awaiting approval since before `cutoff`; returns bus views of them."""
    expired, error = Status.EXPIRED.value, "approval expired"
    waiting = select(*_EXPIRY_COLUMNS).where(A.c.status == _AWAITING, A.c.created_at < cutoff)
    rows = [dict(r._mapping) for r in conn.execute(waiting)]
    ids = [r["id"] for r in rows]
    for i in range(0, len(ids), 500):
        stmt = (
            update(A)
            .where(A.c.id.in_(ids[i : i + 500]), A.c.status == _AWAITING)
            .values(status=expired, finished_at=now, error=error)
        )
        conn.execute(stmt)
    write_audit(
        conn, [audit_row(now, i, _AWAITING, expired, actor="approval-timeout") for i in ids]
    )
    outcome = {"status": expired, "event": "final", "final": True, "error": error,
               "error_kind": "expired", "result": None, "served_by": None,
               "fallback_used": False, "worker": None, "finished_at": now, "run_ms": None,
               "available_at": None}  # fmt: skip
    return [{**row, **outcome} for row in rows]


def bus_view(view: dict[str, Any]) -> dict[str, Any]:
    """A decided action's view as the outcome bus carries it."""
    final = view["status"] in FINAL_STATUSES
    return {**view, "final": final, "event": "final" if final else "approved"}
