"""The audit writer: every status change is one row (entity, from, to, actor, time).

Callers collect rows while they change state and write them in the same transaction, in one
executemany, so a batch of 500 transitions costs one statement.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, insert, literal_column, null

from bot.store.prepared import Prepared
from bot.store.tables import AuditRow

_AUDIT = AuditRow.__table__  # type: ignore[attr-defined]


def audit_row(
    at: float,
    entity_id: str | None,
    from_status: str | None,
    to_status: str | None,
    *,
    actor: str = "system",
    entity: str = "action",
    detail: Any = None,
) -> dict[str, Any]:
    if detail is not None and not isinstance(detail, str):
        detail = json.dumps(detail, default=str)
    return {
        "at": at,
        "entity": entity,
        "entity_id": entity_id,
        "from_status": from_status,
        "to_status": to_status,
        "actor": actor,
        "detail": detail,
    }


def write_audit(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(_AUDIT), rows)


_AUDIT_KEYS = ("at", "entity", "entity_id", "from_status", "to_status", "actor", "detail")
# The hot paths' audit writer (submit, claim, record): prepared SQL, one executemany.
AUDIT_INSERT = Prepared(insert(_AUDIT), _AUDIT_KEYS)


def action_transition_insert(from_status: str) -> Prepared:
    """An audit INSERT for actions leaving `from_status` (a Status value, not user input),
    binding only (at, entity_id, to_status, actor): the fixed columns are SQL literals, which
    makes the per-row insert cheaper on the submit and claim paths."""
    fixed = {
        "entity": literal_column("'action'"),
        "from_status": literal_column(f"'{from_status}'"),
        "detail": null(),
    }
    return Prepared(insert(_AUDIT).values(**fixed), ("at", "entity_id", "to_status", "actor"))
