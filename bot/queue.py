"""The durable action queue: submit, claim with a lease, record outcomes, approvals, views.

Every write is one transaction on the store's writer thread, built from SQLAlchemy Core
statements prepared once, in batches (executemany, `WHERE seq IN (...)`): no ORM object per row.
The SQL is portable (SQLite and PostgreSQL); cross-process safety comes from guarded updates
(`... WHERE status = 'queued'`) and the unique index on `idempotency_key`, not from locks.
Delivery is at-least-once: a claim holds a lease; an expired lease puts the action back.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.actions import FINAL_STATUSES, ActionSpec, Status
from bot.config import Settings
from bot.outcomes import (
    AUDIT_INSERT,
    Outcome,
    OutcomeBus,
    Subscriber,
    WorkSignal,
    reap_tx,
    record_tx,
)
from bot.routing import ROUTES, Priority
from bot.store.audit import audit_row, write_audit
from bot.store.engine import Store
from bot.store.prepared import Prepared, PreparedIn
from bot.store.tables import ActionRow, AttemptRow, AuditRow, PauseRow

__all__ = [
    "ActionNotFound",
    "Claimed",
    "Outcome",
    "Queue",
    "QueueFull",
    "SubmitResult",
    "depth_by_priority",
    "stuck",
]

A = ActionRow.__table__  # type: ignore[attr-defined]
_ATTEMPTS = AttemptRow.__table__  # type: ignore[attr-defined]
_AUDIT = AuditRow.__table__  # type: ignore[attr-defined]
_PAUSES = PauseRow.__table__  # type: ignore[attr-defined]
ACTIVE_STATUSES = tuple(s.value for s in Status if s not in FINAL_STATUSES)
_RECOUNT_EVERY_S = 1.0  # another process may submit too: trust the in-process count this long
_SUBMIT_TRIES = 3  # a concurrent duplicate from another process surfaces as IntegrityError


class QueueFull(Exception):
    def __init__(self, waiting: int, incoming: int, max_size: int) -> None:
        self.waiting, self.incoming, self.max_size = waiting, incoming, max_size
        extra = f"; refused {incoming} new actions" if incoming > 1 else ""
        super().__init__(
            f"queue full: {waiting} of QUEUE_MAX_SIZE={max_size} actions waiting{extra}"
        )


class ActionNotFound(KeyError):
    def __str__(self) -> str:
        return f"no action {self.args[0]!r}"


@dataclass(frozen=True)
class SubmitResult:
    id: str
    status: str
    duplicate: bool
    result: dict[str, Any] | None


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
_NEXT_DUE = select(func.min(A.c.available_at)).where(
    A.c.status == Status.QUEUED.value, A.c.available_at > bindparam("now")
)
_ROW_KEYS = (
    "id", "type", "platform", "priority", "priority_rank", "status", "data", "idempotency_key",
    "requires_approval", "approval_reason", "requested_by", "source", "reason", "notify",
    "callback_url", "attempts", "max_attempts", "created_at", "queued_at", "available_at",
    "run_id", "step_name",
)  # fmt: skip
_INSERT = Prepared(insert(A), _ROW_KEYS)
_RECEIVED_AUDIT = audit_row(0.0, None, Status.RECEIVED.value, None)


class Queue:
    def __init__(self, store: Store, settings: Settings, clock: Callable[[], float] = time.time):
        self.store = store
        self.settings = settings
        self.clock = clock
        self.bus = OutcomeBus()
        sqlite_path = settings.database_path if store.is_sqlite else None
        self.signal = WorkSignal(
            str(sqlite_path) if sqlite_path else None, settings.opsbot_poll_interval
        )
        self._active: int | None = None  # non-final actions, as last counted (+ our submits)
        self._counted_at = 0.0
        self._next_due: float | None = None

    # -- producers -------------------------------------------------------------------------

    async def submit(
        self,
        specs: list[ActionSpec],
        *,
        actor: str = "api",
        run_id: str | None = None,
        step_name: str | None = None,
    ) -> list[SubmitResult]:
        """Store validated actions in one transaction; returns after the commit."""
        fn = partial(self._submit_tx, specs, actor, run_id, step_name, self.clock())
        for attempt in range(_SUBMIT_TRIES):
            try:
                results = await self.store.write(fn)
                break
            except IntegrityError:
                if attempt == _SUBMIT_TRIES - 1:
                    raise
        if any(not r.duplicate for r in results):
            for when in {self._available(s) for s in specs}:
                self._note_due(when)
            self.signal.set()
        return results

    def submit_sync(
        self,
        specs: list[ActionSpec],
        *,
        actor: str = "cli",
        run_id: str | None = None,
        step_name: str | None = None,
    ) -> list[SubmitResult]:
        fn = partial(self._submit_tx, specs, actor, run_id, step_name, self.clock())
        for attempt in range(_SUBMIT_TRIES):
            try:
                return self.store.write_sync(fn)
            except IntegrityError:
                if attempt == _SUBMIT_TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _submit_tx(
        self,
        specs: list[ActionSpec],
        actor: str,
        run_id: str | None,
        step_name: str | None,
        now: float,
        conn: Connection,
    ) -> list[SubmitResult]:
        known = _existing(conn, specs) if any(s.idempotency_key or s.id for s in specs) else {}
        results: list[SubmitResult] = []
        rows: list[dict[str, Any]] = []
        audits: list[dict[str, Any]] = []
        static: dict[tuple[str, str, bool], dict[str, Any]] = {}  # per (type, priority, flag)
        for spec in specs:
            keys = _dedupe_keys(spec)
            first = next((known[k] for k in keys if k in known), None) if keys else None
            if first is not None:
                results.append(replace(first, duplicate=True))
                continue
            shape = (spec.type, spec.priority, spec.requires_approval)
            shared = static.get(shape) or static.setdefault(
                shape, self._static(spec, now, run_id, step_name)
            )
            row = _row(shared, spec, now)
            rows.append(row)
            audits.append({**_RECEIVED_AUDIT, "at": now, "entity_id": row["id"], "actor": actor,
                           "to_status": row["status"]})  # fmt: skip
            result = SubmitResult(row["id"], row["status"], False, None)
            results.append(result)
            if keys:
                known.update(dict.fromkeys(keys, result))
        if rows:
            self._reserve(conn, len(rows))
            _INSERT.many(conn, rows)
            AUDIT_INSERT.many(conn, audits)
            self._active = (self._active or 0) + len(rows)
        return results

    def _static(
        self, spec: ActionSpec, now: float, run_id: str | None, step_name: str | None
    ) -> dict[str, Any]:
        """The columns shared by every action of this type, priority and approval flag."""
        route = ROUTES[spec.type]
        needs_approval = spec.requires_approval or bool(route.approval_reason)
        status = Status.AWAITING_APPROVAL if needs_approval else Status.QUEUED
        return {
            "type": spec.type,
            "platform": spec.platform,
            "priority": spec.priority.value,
            "priority_rank": spec.priority.rank,
            "status": status.value,
            "requires_approval": needs_approval,
            "approval_reason": route.approval_reason or ("requested" if needs_approval else None),
            "attempts": 0,
            "max_attempts": 1 + self.settings.max_retry_attempts,
            "created_at": now,
            "queued_at": now if status is Status.QUEUED else None,
            "run_id": run_id,
            "step_name": step_name,
        }

    @staticmethod
    def _available(spec: ActionSpec) -> float:
        return spec.not_before.timestamp() if spec.not_before else 0.0

    def _reserve(self, conn: Connection, incoming: int) -> None:
        """Refuse the whole batch if it does not fit. Counts exactly only when it may matter."""
        limit = self.settings.queue_max_size
        stale = time.monotonic() - self._counted_at > _RECOUNT_EVERY_S
        if self._active is None or stale or self._active + incoming > limit:
            self._active = count_active(conn)
            self._counted_at = time.monotonic()
        if self._active + incoming > limit:
            raise QueueFull(self._active, incoming, limit)

    # -- workers ---------------------------------------------------------------------------

    async def claim(
        self,
        owner: str,
        limit: int,
        *,
        exclude: frozenset[str] = frozenset(),
        only_one: frozenset[str] = frozenset(),
    ) -> list[Claimed]:
        """Due queued actions in run order, now running under `owner`'s lease."""
        now = self.clock()
        return await self.store.write(partial(self._claim_tx, owner, limit, exclude, only_one, now))

    def _claim_tx(
        self,
        owner: str,
        limit: int,
        exclude: frozenset[str],
        only_one: frozenset[str],
        now: float,
        conn: Connection,
    ) -> list[Claimed]:
        skip = set(conn.execute(select(_PAUSES.c.platform)).scalars()) | exclude
        if "*" in skip or limit <= 0:
            return []
        probes = set(only_one) - skip
        if probes:  # half-open platforms: one probe at a time, none while one is running
            busy = select(A.c.platform).where(
                A.c.status == Status.RUNNING.value, A.c.platform.in_(probes)
            )
            probes -= set(conn.execute(busy.distinct()).scalars())
        candidates = _due(conn, now, limit, skip | set(only_one), None)
        for platform in sorted(probes):
            candidates += _due(conn, now, 1, None, platform)
        seqs = [seq for _, seq in sorted(candidates)[:limit]]
        rows = []
        if seqs:
            params = {
                "owner": owner,
                "now": now,
                "expires": now + self.settings.opsbot_lease_seconds,
            }
            returned = _CLAIM_UPDATE.rows(conn, seqs, params)
            rows = sorted(returned, key=lambda r: (r[6], r[1]))  # RETURNING has no order
            queued, running = Status.QUEUED.value, Status.RUNNING.value
            AUDIT_INSERT.many(
                conn, [audit_row(now, r[0], queued, running, actor=owner) for r in rows]
            )
        if len(rows) < limit:
            self._next_due = conn.execute(_NEXT_DUE, {"now": now}).scalar()
        return [_claimed(r) for r in rows]

    async def record(self, outcomes: list[Outcome]) -> None:
        """Record many outcomes in one transaction, then notify subscribers and waiters."""
        if not outcomes:
            return
        views = await self.store.write(partial(record_tx, outcomes, self.clock()))
        self._after_change(views)

    async def renew(self, owner: str, ids: list[str]) -> None:
        now = self.clock()
        stmt = (
            update(A)
            .where(A.c.id.in_(ids), A.c.lease_owner == owner, A.c.status == Status.RUNNING.value)
            .values(lease_expires_at=now + self.settings.opsbot_lease_seconds)
        )
        if ids:
            await self.store.write(lambda conn: conn.execute(stmt))

    async def release(self, owner: str, ids: list[str]) -> None:
        """Clean stop: put claimed actions back without spending their attempt."""
        now = self.clock()
        outcomes = [Outcome(i, "release", now, now, owner) for i in ids]
        await self.record(outcomes)

    async def reap_expired(self) -> int:
        """Expired leases go back to the queue (or to the dead letters when exhausted)."""
        views = await self.store.write(partial(reap_tx, self.clock()))
        self._after_change(views)
        return len(views)

    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 (contract)
        """Return when work may be claimable: in-process submit, another process's commit,
        a retry or delayed action falling due, or `timeout` seconds."""
        if self._next_due is not None:
            until_due = self._next_due - self.clock()
            if until_due <= 0:
                self._next_due = None  # the next claim looks it up again
                return
            timeout = min(timeout, until_due)
        await self.signal.wait(timeout)

    def wake(self) -> None:
        """Tell waiting workers that work may have appeared (e.g. after a DLQ replay)."""
        self._next_due = None
        self.signal.set()

    def _note_due(self, when: float) -> None:
        if when > self.clock() and (self._next_due is None or when < self._next_due):
            self._next_due = when

    def _after_change(self, views: list[dict[str, Any]]) -> None:
        finals = sum(1 for v in views if v["final"])
        if self._active is not None:
            self._active -= finals
        for view in views:
            if view["status"] == Status.QUEUED.value:
                due = view.get("available_at") or 0.0
                self._note_due(due)
                if due <= self.clock():
                    self.signal.set()
        self.bus.publish([v for v in views if v["event"] in ("final", "retry")])

    # -- approvals ---------------------------------------------------------------------------

    async def decide(
        self, action_id: str, approved: bool, actor: str, reason: str | None = None
    ) -> dict[str, Any]:
        """awaiting_approval -> queued | rejected. The first decision wins; later ones change
        nothing and get `changed: False` with the current view."""
        now = self.clock()
        changed = await self.store.write(
            partial(decide_tx, action_id, approved, actor, reason, now)
        )
        if changed is None:
            raise ActionNotFound(action_id)
        view = await self.get(action_id)
        if changed:
            self._after_change([_bus_view(view)])
        return {**view, "changed": changed}

    async def expire_approvals(self, older_than: float) -> list[str]:
        """Expire actions awaiting approval for longer than `older_than` seconds (a Unix time
        above 1e9 is taken as the cutoff itself). Returns their ids."""
        now = self.clock()
        cutoff = older_than if older_than > 1e9 else now - older_than
        views = await self.store.write(partial(expire_approvals_tx, cutoff, now))
        self._after_change(views)
        return [v["id"] for v in views]

    # -- views -----------------------------------------------------------------------------

    async def get(self, action_id: str) -> dict[str, Any]:
        view = await self.store.read(partial(action_view, action_id))
        if view is None:
            raise ActionNotFound(action_id)
        return view

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Outcome bus: `callback(view)` after commit for every final status and retry."""
        return self.bus.subscribe(callback)

    async def close(self) -> None:
        """Finish subscriber tasks and close the change watcher (the Store is the caller's)."""
        await self.bus.close()
        await self.signal.close()


_NODE = os.urandom(4).hex()  # this process
_COUNTER = itertools.count()


def new_action_id() -> str:
    """Short, unique, roughly time-sortable: act_ + ms time + process tag + counter (hex)."""
    return f"act_{int(time.time() * 1000):011x}{_NODE}{next(_COUNTER) & 0xFFFFFF:06x}"


def _row(shared: dict[str, Any], spec: ActionSpec, now: float) -> dict[str, Any]:
    """One actions row: the batch's shared columns plus this action's own."""
    return {
        **shared,
        "id": spec.id or new_action_id(),
        "data": _dumps(spec.data),
        "idempotency_key": spec.idempotency_key,
        "requested_by": spec.requested_by,
        "source": spec.source,
        "reason": spec.reason,
        "notify": spec.notify,
        "callback_url": spec.callback_url,
        "available_at": max(now, spec.not_before.timestamp()) if spec.not_before else now,
    }


def _dedupe_keys(spec: ActionSpec) -> list[tuple[str, str]]:
    """What makes a submit a repeat: its idempotency key, or an id the producer chose."""
    if not (spec.idempotency_key or spec.id):
        return []
    return [(tag, v) for tag, v in (("key", spec.idempotency_key), ("id", spec.id)) if v]


def _existing(conn: Connection, specs: list[ActionSpec]) -> dict[tuple[str, str], SubmitResult]:
    keys = [s.idempotency_key for s in specs if s.idempotency_key]
    ids = [s.id for s in specs if s.id]
    found: dict[tuple[str, str], SubmitResult] = {}
    cols = (A.c.id, A.c.idempotency_key, A.c.status, A.c.result)
    for column, values, tag in ((A.c.idempotency_key, keys, "key"), (A.c.id, ids, "id")):
        for i in range(0, len(values), 500):
            chunk = values[i : i + 500]
            for row in conn.execute(select(*cols).where(column.in_(chunk))):
                result = SubmitResult(row.id, row.status, True, _loads(row.result))
                found[(tag, row.idempotency_key if tag == "key" else row.id)] = result
    return found


def _due(
    conn: Connection, now: float, limit: int, skip: set[str] | None, platform: str | None
) -> list[tuple[int, int]]:
    stmt = _DUE
    if skip:
        stmt = stmt.where(A.c.platform.not_in(skip))
    if platform is not None:
        stmt = stmt.where(A.c.platform == platform)
    stmt = stmt.order_by(A.c.priority_rank, A.c.seq).limit(limit)
    return [(r[0], r[1]) for r in conn.execute(stmt, {"now": now})]


def _claimed(r: tuple[Any, ...]) -> Claimed:
    # r follows _CLAIM_COLUMNS (index 6, priority_rank, is only for ordering)
    return Claimed(
        r[0], r[1], r[2], r[3], _loads(r[4]) or {}, r[5], r[7], r[8], r[9] or 0.0,
        r[10], r[11], r[12], bool(r[13]), r[14], r[15], r[16], r[17],
    )  # fmt: skip


def _bus_view(view: dict[str, Any]) -> dict[str, Any]:
    final = view["status"] in FINAL_STATUSES
    return {**view, "final": final, "event": "final" if final else "approved"}


_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


# -- approvals (writer thread) ---------------------------------------------------------------

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


# -- views (any thread; take a connection) ----------------------------------------------------


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
    view["data"] = _loads(view["data"]) or {}
    view["result"] = _loads(view["result"])
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
