"""The scheduler's durable state: one row per schedule (paused, last fire time handled) and the
firing history (last HISTORY_KEEP per schedule). Functions take a Connection: call them inside
`store.write` / `store.read`. Shared by every process, so a pause given through the CLI holds
in the running bot and a firing recorded by one process is not redone by another."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from sqlalchemy import Connection, and_, delete, select, update

from bot.actions import FINAL_STATUSES
from bot.store.audit import audit_row, write_audit
from bot.store.tables import ActionRow, ScheduleFiringRow, ScheduleStateRow, WorkflowRunRow

STATE = ScheduleStateRow.__table__  # type: ignore[attr-defined]
FIRINGS = ScheduleFiringRow.__table__  # type: ignore[attr-defined]
ACTIONS = ActionRow.__table__  # type: ignore[attr-defined]
RUNS = WorkflowRunRow.__table__  # type: ignore[attr-defined]
HISTORY_KEEP = 100
_ACTIVE_RUN = ("running", "rolling_back")
_FINAL_ACTION = tuple(s.value for s in FINAL_STATUSES)


def ensure_state(conn: Connection, name: str, now: float) -> dict[str, Any]:
    row = conn.execute(select(STATE).where(STATE.c.name == name)).mappings().first()
    if row is not None:
        return dict(row)
    _insert_ignore(conn, STATE, {"name": name, "first_seen_at": now, "updated_at": now})
    return dict(conn.execute(select(STATE).where(STATE.c.name == name)).mappings().one())


def all_states(conn: Connection) -> dict[str, dict[str, Any]]:
    return {r["name"]: dict(r) for r in conn.execute(select(STATE)).mappings()}


def set_last_fire(conn: Connection, name: str, fire_at: float, now: float) -> None:
    """Move the cron anchor forward only (two processes may handle the same tick)."""
    conn.execute(
        update(STATE)
        .where(STATE.c.name == name)
        .where((STATE.c.last_fire_at.is_(None)) | (STATE.c.last_fire_at < fire_at))
        .values(last_fire_at=fire_at, updated_at=now)
    )


def set_paused(conn: Connection, name: str, paused: bool, actor: str, now: float) -> bool:
    """Pause or resume; resuming moves the anchor to now, so paused time is not caught up."""
    state = ensure_state(conn, name, now)
    if bool(state["paused"]) == paused:
        return False
    values: dict[str, Any] = {"paused": paused, "paused_by": actor if paused else None,
                              "updated_at": now}  # fmt: skip
    if not paused:
        values["last_fire_at"] = now
    conn.execute(update(STATE).where(STATE.c.name == name).values(**values))
    to = "paused" if paused else "active"
    write_audit(conn, [audit_row(now, name, None, to, actor=actor, entity="schedule")])
    return True


def record_firing(conn: Connection, row: dict[str, Any]) -> bool:
    """Insert one firing; False when (schedule, fire time, kind) is already recorded."""
    if not _insert_ignore(conn, FIRINGS, _encoded(row)):
        return False
    _trim(conn, row["schedule"])
    return True


def finish_firing(conn: Connection, schedule: str, fire_at: float, kind: str,
                  outcome: str, detail: Any) -> None:  # fmt: skip
    conn.execute(
        update(FIRINGS)
        .where(FIRINGS.c.schedule == schedule, FIRINGS.c.fire_at == fire_at, FIRINGS.c.kind == kind)
        .values(outcome=outcome, detail=_json(detail))
    )


def _trim(conn: Connection, schedule: str) -> None:
    keep = (
        select(FIRINGS.c.id).where(FIRINGS.c.schedule == schedule)
        .order_by(FIRINGS.c.fire_at.desc(), FIRINGS.c.id.desc()).limit(HISTORY_KEEP)
    )  # fmt: skip
    conn.execute(
        delete(FIRINGS).where(and_(FIRINGS.c.schedule == schedule, FIRINGS.c.id.not_in(keep)))
    )


def history(conn: Connection, schedule: str, limit: int = HISTORY_KEEP) -> list[dict[str, Any]]:
    query = (
        select(FIRINGS).where(FIRINGS.c.schedule == schedule)
        .order_by(FIRINGS.c.fire_at.desc(), FIRINGS.c.id.desc()).limit(limit)
    )  # fmt: skip
    return [_decoded(dict(r)) for r in conn.execute(query).mappings()]


def active_target(conn: Connection, schedule: str, exclude_fire_at: float) -> str | None:
    """The run or action of this schedule's latest enqueued firing, if still active."""
    row = conn.execute(
        select(FIRINGS.c.target_kind, FIRINGS.c.target_id)
        .where(FIRINGS.c.schedule == schedule, FIRINGS.c.outcome == "enqueued",
               FIRINGS.c.target_id.is_not(None), FIRINGS.c.fire_at != exclude_fire_at)
        .order_by(FIRINGS.c.recorded_at.desc(), FIRINGS.c.id.desc()).limit(1)
    ).first()  # fmt: skip
    if row is None:
        return None
    kind, target_id = row
    if kind == "workflow":
        status = conn.execute(select(RUNS.c.status).where(RUNS.c.id == target_id)).scalar()
        return target_id if status in _ACTIVE_RUN else None
    status = conn.execute(select(ACTIONS.c.status).where(ACTIONS.c.id == target_id)).scalar()
    return target_id if status is not None and status not in _FINAL_ACTION else None


def _insert_ignore(conn: Connection, table: Any, values: dict[str, Any]) -> bool:
    """INSERT unless the row exists (another process won): ON CONFLICT DO NOTHING, no savepoint."""
    from sqlalchemy.dialects import postgresql, sqlite

    module: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    result = conn.execute(module.insert(table).values(**values).on_conflict_do_nothing())
    return bool(result.rowcount)


def _json(detail: Any) -> str | None:
    return None if detail is None else json.dumps(detail, default=str)


def _encoded(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "detail": _json(row.get("detail"))}


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("id", None)
    with contextlib.suppress(ValueError):
        row["detail"] = json.loads(row["detail"]) if row.get("detail") else None
    return row


def get_firing(conn: Connection, schedule: str, fire_at: float, kind: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(FIRINGS).where(FIRINGS.c.schedule == schedule, FIRINGS.c.fire_at == fire_at,
                              FIRINGS.c.kind == kind)
    ).mappings().first()  # fmt: skip
    return _decoded(dict(row)) if row is not None else None
