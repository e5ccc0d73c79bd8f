"""Read-only views of the queue (any thread; each takes a connection): one action with its
history, stuck actions, depth per priority, and the QUEUE_MAX_SIZE count."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from bot.actions import FINAL_STATUSES, Status
from bot.routing import Priority
from bot.store.codec import loads
from bot.store.tables import ActionRow, AttemptRow, AuditRow

A = ActionRow.__table__  # type: ignore[attr-defined]
_ATTEMPTS = AttemptRow.__table__  # type: ignore[attr-defined]
_AUDIT = AuditRow.__table__  # type: ignore[attr-defined]
ACTIVE_STATUSES = tuple(s.value for s in Status if s not in FINAL_STATUSES)
_AWAITING = Status.AWAITING_APPROVAL.value


def count_active(conn: Connection) -> int:
    """Non-final actions (the QUEUE_MAX_SIZE measure)."""
    stmt = select(func.count()).select_from(A).where(A.c.status.in_(ACTIVE_STATUSES))
    return int(conn.execute(stmt).scalar() or 0)


def action_view(action_id: str, conn: Connection) -> dict[str, Any] | None:
    """Everything about one action: its row (the seed's execution-log fields), every attempt
    with its error, and its audit history."""
    row = conn.execute(select(A).where(A.c.id == action_id)).first()
    if row is None:
        return None
    view = dict(row._mapping)
    view["data"] = loads(view["data"]) or {}
    view["result"] = loads(view["result"])
    view["final"] = view["status"] in FINAL_STATUSES
    view["retries"] = max(0, view["attempts"] - 1)
    stamp = view["finished_at"] or view["created_at"]
    view["timestamp"] = datetime.fromtimestamp(stamp, UTC).isoformat()
    attempts = select(_ATTEMPTS).where(_ATTEMPTS.c.action_id == action_id)
    view["attempt_history"] = [
        dict(r._mapping) for r in conn.execute(attempts.order_by(_ATTEMPTS.c.id))
    ]
    audit = select(
        _AUDIT.c.at, _AUDIT.c.from_status, _AUDIT.c.to_status, _AUDIT.c.actor, _AUDIT.c.detail
    ).where(_AUDIT.c.entity == "action", _AUDIT.c.entity_id == action_id)
    view["history"] = [dict(r._mapping) for r in conn.execute(audit.order_by(_AUDIT.c.id))]
    return view


_STUCK_COLUMNS = (
    A.c.id,
    A.c.type,
    A.c.platform,
    A.c.priority,
    A.c.status,
    A.c.attempts,
    A.c.worker,
    A.c.lease_owner,
    A.c.started_at,
    A.c.available_at,
)


def stuck(conn: Connection, now: float, after_s: float) -> list[dict[str, Any]]:
    """Actions running for longer than `after_s` ("running"), and due actions that have waited
    for longer than that without being claimed ("waiting"). Longest first."""
    cutoff = now - after_s
    running = select(*_STUCK_COLUMNS).where(
        A.c.status == Status.RUNNING.value, A.c.started_at < cutoff
    )
    waiting = select(*_STUCK_COLUMNS).where(
        A.c.status == Status.QUEUED.value, A.c.available_at < cutoff
    )
    found = []
    for kind, stmt, since in (
        ("running", running, "started_at"),
        ("waiting", waiting, "available_at"),
    ):
        for row in conn.execute(stmt):
            item = dict(row._mapping)
            found.append({**item, "stuck": kind, "for_s": now - (item[since] or now)})
    return sorted(found, key=lambda item: -item["for_s"])


def depth_by_priority(conn: Connection, now: float) -> dict[str, Any]:
    """Queue depth per priority (due, queued actions), oldest and average wait of those, and
    how many are running, awaiting approval, or scheduled for later."""
    due = (
        select(A.c.priority, func.count(), func.min(A.c.available_at), func.sum(A.c.available_at))
        .where(A.c.status == Status.QUEUED.value, A.c.available_at <= now)
        .group_by(A.c.priority)
    )
    depth = {p.value: 0 for p in Priority}
    total, oldest, wait_sum = 0, None, 0.0
    for priority, count, first, summed in conn.execute(due):
        depth[priority] = int(count)
        total += int(count)
        oldest = first if oldest is None else min(oldest, first)
        wait_sum += now * count - float(summed)
    by_status = select(A.c.status, func.count()).where(A.c.status.in_(ACTIVE_STATUSES))
    counts: dict[str, int] = dict(conn.execute(by_status.group_by(A.c.status)).all())
    later = select(func.count()).where(A.c.status == Status.QUEUED.value, A.c.available_at > now)
    return {
        "depth": depth,
        "due": total,
        "oldest_wait_s": (now - oldest) if oldest is not None else 0.0,
        "avg_wait_s": wait_sum / total if total else 0.0,
        "running": int(counts.get(Status.RUNNING.value, 0)),
        "awaiting_approval": int(counts.get(_AWAITING, 0)),
        "scheduled": int(conn.execute(later).scalar() or 0),
    }
