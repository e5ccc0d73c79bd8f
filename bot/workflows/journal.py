"""The run journal in the store: run rows, and the step actions that carry each step's result.

A step's journal entry IS its action row (run_id + step_name, idempotency key
`run:<run>:<step>`), so the queue's own commit of an outcome journals the step; the run row
tracks the run's status, deadline, skipped steps and rollback outcome. Compensations are action
rows too, with step_name `undo:<step>`. Every function takes a Connection (store.read/write).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from bot.actions import FINAL_STATUSES, Status
from bot.store.audit import audit_row, write_audit
from bot.store.tables import ActionRow, WorkflowRunRow

RUNS = WorkflowRunRow.__table__  # type: ignore[attr-defined]
ACTIONS = ActionRow.__table__  # type: ignore[attr-defined]
UNDO = "undo:"

# Run statuses. ACTIVE ones are driven by the runner; the rest are final (or wait for an operator).
RUNNING, SUCCEEDED, FAILED, TIMED_OUT = "running", "succeeded", "failed", "timed_out"
ROLLING_BACK, ROLLED_BACK, ROLLBACK_FAILED, RESOLVED = (
    "rolling_back", "rolled_back", "rollback_failed", "resolved",
)  # fmt: skip
ACTIVE = (RUNNING, ROLLING_BACK)
STATUSES = (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ROLLING_BACK, ROLLED_BACK, ROLLBACK_FAILED,
            RESOLVED)  # fmt: skip
FAILED_ACTION = frozenset(FINAL_STATUSES - {Status.SUCCEEDED})

_STEP_COLUMNS = (
    ACTIONS.c.id, ACTIONS.c.seq, ACTIONS.c.step_name, ACTIONS.c.type, ACTIONS.c.platform,
    ACTIONS.c.status, ACTIONS.c.data, ACTIONS.c.result, ACTIONS.c.error, ACTIONS.c.error_kind,
    ACTIONS.c.attempts, ACTIONS.c.created_at, ACTIONS.c.started_at, ACTIONS.c.finished_at,
    ACTIONS.c.served_by, ACTIONS.c.idempotency_key,
)  # fmt: skip


@dataclass(frozen=True)
class StepAction:
    """One action row of a run (a step, or a compensation when `step_name` starts with undo:)."""

    id: str
    seq: int
    step_name: str
    type: str
    platform: str
    status: str
    data: dict[str, Any]
    result: Any
    error: str | None
    error_kind: str | None
    attempts: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    served_by: str | None
    idempotency_key: str | None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == Status.SUCCEEDED.value

    @property
    def failed(self) -> bool:
        return self.status in FAILED_ACTION


def step_key(run_id: str, step: str) -> str:
    return f"run:{run_id}:{step}"


def undo_key(run_id: str, generation: int, step: str) -> str:
    return f"run:{run_id}:undo{generation}:{step}"


def load_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(RUNS).where(RUNS.c.id == run_id)).first()
    if row is None:
        return None
    run = dict(row._mapping)
    run["input"] = json.loads(run["input"] or "{}")
    run["skipped"] = json.loads(run["skipped"] or "{}")
    run["rollback"] = json.loads(run["rollback"]) if run["rollback"] else None
    return run


def run_by_key(conn: Connection, key: str) -> str | None:
    found = conn.execute(select(RUNS.c.id).where(RUNS.c.idempotency_key == key)).first()
    return str(found[0]) if found else None


def step_actions(conn: Connection, run_id: str) -> list[StepAction]:
    rows = conn.execute(
        select(*_STEP_COLUMNS).where(ACTIONS.c.run_id == run_id).order_by(ACTIONS.c.seq)
    )
    return [
        StepAction(
            **{
                **row._mapping,
                "data": json.loads(row.data or "{}"),
                "result": json.loads(row.result) if row.result else None,
            }
        )
        for row in rows
    ]


def list_runs(
    conn: Connection, *, limit: int = 20, status: str | None = None, name: str | None = None
) -> list[dict[str, Any]]:
    """Recent runs, newest first (the `opsbot workflow runs` listing)."""
    columns = (RUNS.c.id, RUNS.c.name, RUNS.c.version, RUNS.c.env, RUNS.c.status, RUNS.c.error,
               RUNS.c.created_at, RUNS.c.finished_at, RUNS.c.idempotency_key,
               RUNS.c.source)  # fmt: skip
    query = select(*columns).order_by(RUNS.c.created_at.desc()).limit(limit)
    if status is not None:
        query = query.where(RUNS.c.status == status)
    if name is not None:
        query = query.where(RUNS.c.name == name)
    return [dict(row._mapping) for row in conn.execute(query)]


def active_runs(conn: Connection) -> list[str]:
    return [r[0] for r in conn.execute(select(RUNS.c.id).where(RUNS.c.status.in_(ACTIVE)))]


def insert_run(conn: Connection, row: dict[str, Any], actor: str) -> None:
    conn.execute(insert(RUNS).values(**row))
    detail = {"workflow": row["name"], "version": row["version"]}
    audit = audit_row(row["created_at"], row["id"], None, row["status"], actor=actor,
                      entity="run", detail=detail)  # fmt: skip
    write_audit(conn, [audit])


def set_status(
    conn: Connection,
    run_id: str,
    expected: tuple[str, ...],
    status: str,
    now: float,
    *,
    actor: str = "system",
    **values: Any,
) -> bool:
    """Move the run from one of `expected` to `status` (guarded: a racing writer loses)."""
    for key in ("skipped", "rollback"):
        if key in values and not isinstance(values[key], str | None):
            values[key] = json.dumps(values[key], default=str)
    changed = conn.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.status.in_(expected))
        .values(status=status, updated_at=now, **values)
    ).rowcount
    if changed:
        old = expected[0] if len(expected) == 1 else None
        detail = {k: v for k, v in values.items() if k in ("error", "comment")} or None
        write_audit(
            conn, [audit_row(now, run_id, old, status, actor=actor, entity="run", detail=detail)]
        )
    return bool(changed)


def save_error(conn: Connection, run_id: str, error: str, now: float) -> None:
    """The first cause of a failing run, kept while its in-flight steps finish."""
    conn.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.error.is_(None))
        .values(error=error, updated_at=now)
    )


def save_skipped(conn: Connection, run_id: str, skipped: dict[str, str], now: float) -> None:
    conn.execute(
        update(RUNS).where(RUNS.c.id == run_id).values(skipped=json.dumps(skipped), updated_at=now)
    )


def cancel_waiting(conn: Connection, run_id: str, now: float, reason: str) -> list[str]:
    """Cancel the run's step actions that have not started (queued, retry wait, approval)."""
    waiting = (Status.QUEUED.value, Status.AWAITING_APPROVAL.value)
    found = conn.execute(
        select(ACTIONS.c.id, ACTIONS.c.status).where(
            ACTIONS.c.run_id == run_id, ACTIONS.c.status.in_(waiting)
        )
    ).all()
    ids = [row.id for row in found]
    if not ids:
        return []
    conn.execute(
        update(ACTIONS)
        .where(ACTIONS.c.id.in_(ids), ACTIONS.c.status.in_(waiting))
        .values(status=Status.CANCELLED.value, error=reason, finished_at=now)
    )
    cancelled = Status.CANCELLED.value
    write_audit(
        conn,
        [audit_row(now, row.id, row.status, cancelled, actor="workflow", detail=reason)
         for row in found],
    )  # fmt: skip
    return ids
