"""Leases: a claim holds an action for a while; the holder renews it, a clean stop releases it,
and the reaper puts back the actions of a holder that died (at-least-once delivery).

Transactions for the writer thread; bot.queue.Queue wraps them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from bot.actions import Status
from bot.outcome_record import record_tx
from bot.outcomes import Outcome
from bot.store.tables import ActionRow

A = ActionRow.__table__  # type: ignore[attr-defined]
_RUNNING = Status.RUNNING.value


def renew_tx(owner: str, ids: list[str], expires: float, conn: Connection) -> None:
    """Extend `owner`'s leases on these running actions to `expires`."""
    stmt = (
        update(A)
        .where(A.c.id.in_(ids), A.c.lease_owner == owner, A.c.status == _RUNNING)
        .values(lease_expires_at=expires)
    )
    conn.execute(stmt)


def release_outcomes(owner: str, ids: list[str], now: float) -> list[Outcome]:
    """Clean stop: outcomes that put claimed actions back without spending their attempt."""
    return [Outcome(i, "release", now, now, owner) for i in ids]


_REAPABLE = select(
    A.c.id,
    A.c.status,
    A.c.attempts,
    A.c.max_attempts,
    A.c.platform,
    A.c.type,
    A.c.priority,
    A.c.run_id,
    A.c.step_name,
    A.c.notify,
    A.c.callback_url,
    A.c.requested_by,
    A.c.source,
    A.c.idempotency_key,
    A.c.lease_owner,
    A.c.started_at,
).where(A.c.status == _RUNNING, A.c.lease_expires_at < bindparam("now"))


def reap_tx(now: float, conn: Connection) -> list[dict[str, Any]]:
    """Expired leases: back to queued (at-least-once), or dead-lettered when exhausted."""
    outcomes = []
    for row in conn.execute(_REAPABLE, {"now": now}):
        exhausted = row.attempts >= row.max_attempts
        outcomes.append(
            Outcome(
                row.id,
                "dead" if exhausted else "retry",
                row.started_at or now,
                now,
                worker=row.lease_owner or "reaper",
                error="lease expired",
                error_kind="lease_expired",
                retry_at=now,
            )
        )
    return record_tx(outcomes, now, conn, actor="reaper")
