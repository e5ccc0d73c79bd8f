"""Dead letters: actions that exhausted their retries or failed permanently.

They stay in the actions table (status dead_lettered) with their error history in `attempts`,
so listing, replaying and purging are plain queries. Replay puts an action back as it was
submitted: same id, same idempotency key, attempts reset. Purge and TTL expiry delete the row
and its attempts; the audit log keeps the trace. Functions take a Connection (run them through
`store.write` / `store.read`); after a replay in a running process call `queue.wake()`.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, delete, select, update

from bot.actions import Status
from bot.store.audit import audit_row, write_audit
from bot.store.tables import ActionRow, AttemptRow

A = ActionRow.__table__  # type: ignore[attr-defined]
T = AttemptRow.__table__  # type: ignore[attr-defined]
DEAD = Status.DEAD_LETTERED.value
_CHUNK = 500  # ids per IN list (SQLite's bound-parameter limit is far above)

_LIST_COLUMNS = (
    A.c.id,
    A.c.type,
    A.c.platform,
    A.c.priority,
    A.c.idempotency_key,
    A.c.error,
    A.c.error_kind,
    A.c.attempts,
    A.c.created_at,
    A.c.finished_at,
    A.c.worker,
    A.c.data,
    A.c.run_id,
    A.c.step_name,
    A.c.requested_by,
    A.c.source,
)


def list_dead(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    """Newest dead letters first, each with its error history (one entry per attempt)."""
    stmt = (
        select(*_LIST_COLUMNS)
        .where(A.c.status == DEAD)
        .order_by(A.c.finished_at.desc(), A.c.seq.desc())
        .limit(limit)
    )
    items = [dict(row._mapping) for row in conn.execute(stmt)]
    history = _errors(conn, [item["id"] for item in items])
    for item in items:
        item["data"] = json.loads(item["data"]) if item["data"] else {}
        item["errors"] = history.get(item["id"], [])
    return items


def _errors(conn: Connection, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    columns = (
        T.c.action_id,
        T.c.number,
        T.c.platform,
        T.c.worker,
        T.c.started_at,
        T.c.finished_at,
        T.c.outcome,
        T.c.error_kind,
        T.c.error,
        T.c.status_code,
    )
    for chunk in _chunks(ids):
        stmt = select(*columns).where(T.c.action_id.in_(chunk)).order_by(T.c.id)
        for row in conn.execute(stmt):
            entry = dict(row._mapping)
            found.setdefault(entry.pop("action_id"), []).append(entry)
    return found


def replay(conn: Connection, ids: list[str] | None, now: float, actor: str) -> int:
    """Put dead letters (these ids, or all) back in the queue. Returns how many."""
    targets = _dead_ids(conn, ids)
    count = 0
    for chunk in _chunks(targets):
        stmt = (
            update(A)
            .where(A.c.id.in_(chunk), A.c.status == DEAD)
            .values(
                status=Status.QUEUED.value,
                attempts=0,
                available_at=now,
                queued_at=now,
                finished_at=None,
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        count += conn.execute(stmt).rowcount
    write_audit(
        conn,
        [
            audit_row(now, i, DEAD, Status.QUEUED.value, actor=actor, detail="replay")
            for i in targets
        ],
    )
    return count


def purge(conn: Connection, ids: list[str] | None, now: float, actor: str) -> int:
    """Delete dead letters (these ids, or all) and their attempts. Returns how many."""
    return _delete(conn, _dead_ids(conn, ids), now, actor, to_status=None)


def expire(conn: Connection, now: float, ttl_s: float) -> int:
    """Delete dead letters older than `ttl_s` seconds (OPSBOT_DLQ_TTL_DAYS). Returns how many."""
    stmt = select(A.c.id).where(A.c.status == DEAD, A.c.finished_at < now - ttl_s)
    ids = list(conn.execute(stmt).scalars())
    return _delete(conn, ids, now, "dlq-ttl", to_status=Status.EXPIRED.value)


def _delete(conn: Connection, ids: list[str], now: float, actor: str, to_status: str | None) -> int:
    count = 0
    for chunk in _chunks(ids):
        conn.execute(delete(T).where(T.c.action_id.in_(chunk)))
        count += conn.execute(delete(A).where(A.c.id.in_(chunk), A.c.status == DEAD)).rowcount
    detail = "purged" if to_status is None else "expired"
    write_audit(conn, [audit_row(now, i, DEAD, to_status, actor=actor, detail=detail) for i in ids])
    return count


def _dead_ids(conn: Connection, ids: list[str] | None) -> list[str]:
    if ids is None:
        return list(conn.execute(select(A.c.id).where(A.c.status == DEAD)).scalars())
    found: list[str] = []
    for chunk in _chunks(ids):
        stmt = select(A.c.id).where(A.c.id.in_(chunk), A.c.status == DEAD)
        found += conn.execute(stmt).scalars()
    return found


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]
