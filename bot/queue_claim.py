"""Claims (writer thread): due queued actions in run order (critical > high > normal > low,
FIFO within a priority) become running under a worker's lease, in one guarded UPDATE.

`... WHERE seq IN (...) AND status = 'queued'` makes a claim safe across processes without
locks: an action another process claimed first is simply not returned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update

from bot.actions import Status
from bot.store.audit import action_transition_insert
from bot.store.codec import loads
from bot.store.prepared import Prepared, PreparedIn
from bot.store.tables import ActionRow, PauseRow

A = ActionRow.__table__  # type: ignore[attr-defined]
_PAUSES = PauseRow.__table__  # type: ignore[attr-defined]
_CLAIM_AUDIT = action_transition_insert(Status.QUEUED.value)


@dataclass(frozen=True)
class Claimed:
    id: str
    seq: int
    type: str
    platform: str
    data: dict[str, Any]
    priority: str
    attempt: int  # 1-based number of THIS attempt
    max_attempts: int
    queued_at: float
    idempotency_key: str | None
    run_id: str | None
    step_name: str | None
    notify: bool
    callback_url: str | None
    requested_by: str | None
    source: str | None
    reason: str | None


_CLAIM_COLUMNS = (
    A.c.id,
    A.c.seq,
    A.c.type,
    A.c.platform,
    A.c.data,
    A.c.priority,
    A.c.priority_rank,
    A.c.attempts,
    A.c.max_attempts,
    A.c.queued_at,
    A.c.idempotency_key,
    A.c.run_id,
    A.c.step_name,
    A.c.notify,
    A.c.callback_url,
    A.c.requested_by,
    A.c.source,
    A.c.reason,
)
_CLAIM_UPDATE = PreparedIn(
    lambda seqs: (
        update(A)
        .where(A.c.seq.in_(seqs), A.c.status == Status.QUEUED.value)
        .values(
            status=Status.RUNNING.value,
            attempts=A.c.attempts + 1,
            lease_owner=bindparam("owner"),
            lease_expires_at=bindparam("expires"),
            worker=bindparam("owner"),
            started_at=bindparam("now"),
            queue_wait_ms=(bindparam("now") - A.c.available_at) * 1000.0,
        )
        .returning(*_CLAIM_COLUMNS)
    )
)
_DUE = select(A.c.priority_rank, A.c.seq).where(
    A.c.status == Status.QUEUED.value, A.c.available_at <= bindparam("now")
)
_NEXT_DUE = Prepared(
    select(func.min(A.c.available_at)).where(
        A.c.status == Status.QUEUED.value, A.c.available_at > bindparam("now")
    )
)
_PAUSED = Prepared(select(_PAUSES.c.platform))
# Due actions in run order, all platforms or all but some (the claim's common case, on the
# DBAPI cursor: SQLAlchemy's per-execution overhead was a large part of an idle claim).
_RUN_ORDER = (A.c.priority_rank, A.c.seq)
_DUE_ANY = Prepared(_DUE.order_by(*_RUN_ORDER).limit(bindparam("limit")))
_DUE_SKIPPING = PreparedIn(
    lambda skip: (
        _DUE.where(A.c.platform.not_in(skip)).order_by(*_RUN_ORDER).limit(bindparam("limit"))
    )
)


def claim_tx(
    owner: str,
    limit: int,
    exclude: frozenset[str],
    only_one: frozenset[str],
    now: float,
    lease_s: float,
    note_next_due: Callable[[float | None], None],
    conn: Connection,
) -> list[Claimed]:
    """Claim up to `limit` due actions for `owner`. Platforms in `exclude` (and paused ones)
    are skipped; those in `only_one` (half-open circuits) get one probe, none while one runs.
    When fewer than `limit` were due, `note_next_due` gets the next due time (or None)."""
    skip = {row[0] for row in _PAUSED.rows(conn, {})} | exclude
    if "*" in skip or limit <= 0:
        return []
    probes = set(only_one) - skip
    if probes:  # half-open platforms: one probe at a time, none while one is running
        busy = select(A.c.platform).where(
            A.c.status == Status.RUNNING.value, A.c.platform.in_(probes)
        )
        probes -= set(conn.execute(busy.distinct()).scalars())
    candidates = _due(conn, now, limit, skip | only_one)
    for platform in sorted(probes):
        candidates += _due_on(conn, now, platform)
    seqs = [seq for _, seq in sorted(candidates)[:limit]]
    rows = []
    if seqs:
        params = {
            "owner": owner,
            "now": now,
            "expires": now + lease_s,
        }
        returned = _CLAIM_UPDATE.rows(conn, seqs, params)
        rows = sorted(returned, key=lambda r: (r[6], r[1]))  # RETURNING has no order
        running = Status.RUNNING.value
        _CLAIM_AUDIT.many_tuples(conn, [(now, r[0], running, owner) for r in rows])
    if len(rows) < limit:
        note_next_due(_NEXT_DUE.rows(conn, {"now": now})[0][0])
    return [_claimed(r) for r in rows]


def _due(conn: Connection, now: float, limit: int, skip: set[str]) -> list[tuple[int, int]]:
    params = {"now": now, "limit": limit}
    if skip:
        return _DUE_SKIPPING.rows(conn, sorted(skip), params)
    return _DUE_ANY.rows(conn, params)


def _due_on(conn: Connection, now: float, platform: str) -> list[tuple[int, int]]:
    """The first due action of one platform (a half-open circuit's probe)."""
    stmt = _DUE.where(A.c.platform == platform).order_by(*_RUN_ORDER).limit(1)
    return [(r[0], r[1]) for r in conn.execute(stmt, {"now": now})]


def _claimed(r: tuple[Any, ...]) -> Claimed:
    # r follows _CLAIM_COLUMNS (index 6, priority_rank, is only for ordering)
    return Claimed(
        r[0], r[1], r[2], r[3], loads(r[4]) or {}, r[5], r[7], r[8], r[9] or 0.0,
        r[10], r[11], r[12], bool(r[13]), r[14], r[15], r[16], r[17],
    )  # fmt: skip
