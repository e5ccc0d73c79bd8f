"""The record transaction: apply worker outcomes to the store (runs on the writer thread).

One transaction per batch of outcomes: read the current state of every action once, then one
executemany per statement (settle, release, attempts, audit) over prepared SQL on the DBAPI
cursor. A guarded UPDATE applies an outcome only to an action still in the expected state.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, insert, or_, select, update

from bot.actions import Status
from bot.outcomes import Outcome
from bot.store.audit import AUDIT_INSERT, audit_row
from bot.store.codec import dumps
from bot.store.prepared import Prepared, PreparedIn
from bot.store.tables import ActionRow, AttemptRow

A = ActionRow.__table__  # type: ignore[attr-defined]
_ATTEMPTS = AttemptRow.__table__  # type: ignore[attr-defined]
_ATTEMPT_KEYS = (
    "action_id", "number", "platform", "worker", "started_at", "finished_at", "outcome",
    "error_kind", "error", "status_code", "retry_after",
)  # fmt: skip
_ATTEMPT_INSERT = Prepared(insert(_ATTEMPTS), _ATTEMPT_KEYS)
_RUNNING, _QUEUED = Status.RUNNING.value, Status.QUEUED.value

_CURRENT_COLUMNS = (
    A.c.id, A.c.status, A.c.attempts, A.c.platform, A.c.type, A.c.priority, A.c.run_id,
    A.c.step_name, A.c.notify, A.c.callback_url, A.c.requested_by, A.c.source,
    A.c.idempotency_key,
)  # fmt: skip
_CURRENT_KEYS = tuple(c.name for c in _CURRENT_COLUMNS)
_CURRENT = PreparedIn(lambda ids: select(*_CURRENT_COLUMNS).where(A.c.id.in_(ids)))
_SETTLE = Prepared(
    update(A)
    .where(A.c.id == bindparam("b_id"), or_(A.c.status == _RUNNING, A.c.status == _QUEUED))
    .values(
        status=bindparam("b_status"),
        result=bindparam("b_result"),
        error=bindparam("b_error"),
        error_kind=bindparam("b_error_kind"),
        served_by=bindparam("b_served_by"),
        fallback_used=bindparam("b_fallback"),
        finished_at=bindparam("b_finished"),
        run_ms=bindparam("b_run_ms"),
        worker=bindparam("b_worker"),
        available_at=bindparam("b_available"),
        lease_owner=None,
        lease_expires_at=None,
    )
)
_RELEASE = Prepared(
    update(A)
    .where(A.c.id == bindparam("b_id"), A.c.status == _RUNNING)
    .values(
        status=_QUEUED,
        attempts=A.c.attempts - 1,
        available_at=bindparam("b_available"),
        lease_owner=None,
        lease_expires_at=None,
    )
)
_TARGET = {
    "succeeded": Status.SUCCEEDED.value,
    "dead": Status.DEAD_LETTERED.value,
    "retry": _QUEUED,
    "release": _QUEUED,
}
_EVENT = {"succeeded": "final", "dead": "final", "retry": "retry", "release": "released"}


def record_tx(
    outcomes: list[Outcome], now: float, conn: Connection, actor: str | None = None
) -> list[dict[str, Any]]:
    """Apply worker outcomes in one transaction. Returns one view per applied outcome.

    An outcome applies only to an action still in the state it expects (running; a success or
    a dead letter also to one whose lease was reaped but not yet claimed again), so a late
    report after a reap never runs an action twice nor rewrites a finished one.
    """
    current = _current(conn, [o.action_id for o in outcomes])
    settle, release, attempts, audits, views = [], [], [], [], []
    for o in outcomes:
        row = current.get(o.action_id)
        if row is None or not _applies(o.kind, row["status"]):
            continue
        target = _TARGET[o.kind]
        if o.kind == "release":
            release.append({"b_id": o.action_id, "b_available": now})
            audits.append(
                audit_row(
                    now,
                    o.action_id,
                    row["status"],
                    target,
                    actor=actor or o.worker,
                    detail="released",
                )
            )
        else:
            settle.append(_settle_params(o, target, now))
            attempts.append(_attempt(o, row))
            audits += _audits(o, row["status"], target, now, actor or o.worker)
        row["status"] = target
        views.append(_view(row, o, _EVENT[o.kind]))
    _SETTLE.many(conn, settle)
    _RELEASE.many(conn, release)
    _ATTEMPT_INSERT.many(conn, attempts)
    AUDIT_INSERT.many(conn, audits)
    return views


def _current(conn: Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), 500):
        for row in _CURRENT.rows(conn, ids[i : i + 500]):
            found[row[0]] = dict(zip(_CURRENT_KEYS, row, strict=True))
    return found


def _applies(kind: str, status: str) -> bool:
    if kind in ("succeeded", "dead"):
        return status in (_RUNNING, _QUEUED)
    return status == _RUNNING


def _settle_params(o: Outcome, target: str, now: float) -> dict[str, Any]:
    final = target != _QUEUED
    return {
        "b_id": o.action_id,
        "b_status": target,
        "b_result": dumps(o.result) if o.result is not None else None,
        "b_error": o.error,
        "b_error_kind": o.error_kind,
        "b_served_by": o.served_by,
        "b_fallback": o.fallback_used,
        "b_finished": o.finished_at if final else None,
        "b_run_ms": max(0.0, (o.finished_at - o.started_at) * 1000.0),
        "b_worker": o.worker,
        "b_available": (o.retry_at or now) if not final else o.finished_at,
    }


def _attempt(o: Outcome, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "action_id": o.action_id,
        "number": row["attempts"],
        "platform": o.served_by or row["platform"],
        "worker": o.worker,
        "started_at": o.started_at,
        "finished_at": o.finished_at,
        "outcome": "succeeded" if o.kind == "succeeded" else "failed",
        "error_kind": o.error_kind,
        "error": o.error,
        "status_code": o.status_code,
        "retry_after": o.retry_after,
    }


def _audits(o: Outcome, before: str, target: str, now: float, actor: str) -> list[dict[str, Any]]:
    if o.kind != "retry":
        error = {"error": o.error} if o.error else None
        return [audit_row(now, o.action_id, before, target, actor=actor, detail=error)]
    scheduled = Status.RETRY_SCHEDULED.value
    detail: dict[str, Any] = {"error": o.error, "retry_at": o.retry_at}
    return [
        audit_row(now, o.action_id, before, scheduled, actor=actor, detail=detail),
        audit_row(now, o.action_id, scheduled, _QUEUED, actor=actor),
    ]


def _view(row: dict[str, Any], o: Outcome, event: str) -> dict[str, Any]:
    return {
        **row,
        "event": event,
        "final": event == "final",
        "result": o.result,
        "error": o.error,
        "error_kind": o.error_kind,
        "served_by": o.served_by,
        "fallback_used": o.fallback_used,
        "worker": o.worker,
        "finished_at": o.finished_at,
        "run_ms": max(0.0, (o.finished_at - o.started_at) * 1000.0),
        "available_at": o.retry_at if o.kind == "retry" else None,
    }
