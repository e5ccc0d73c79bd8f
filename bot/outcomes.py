"""In-process signals around the queue: the outcome bus (producers) and the work signal (workers).

The queue publishes a small view of every action whose outcome was recorded, after the commit,
so a producer in the same process gets its results without polling. The work signal wakes the
worker pool: at once when this process submits, and within one poll interval when another
process commits (the CLI submitting while `opsbot run` is up), via SQLite's `PRAGMA
data_version`, which changes whenever another connection commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, insert, or_, select, update

from bot.actions import Status
from bot.store.audit import audit_row
from bot.store.prepared import Prepared, PreparedIn
from bot.store.tables import ActionRow, AttemptRow, AuditRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What a worker reports about one claimed action (re-exported by bot.queue).

    kind: "succeeded"; "retry" (runs again at `retry_at`); "dead" (dead letter); "release"
    (back to queued without spending the attempt: circuit open, shutdown).
    """

    action_id: str
    kind: Literal["succeeded", "retry", "dead", "release"]
    started_at: float
    finished_at: float
    worker: str
    result: dict[str, Any] | None = None
    served_by: str | None = None
    fallback_used: bool = False
    error: str | None = None
    error_kind: str | None = None
    status_code: int | None = None
    retry_after: float | None = None
    retry_at: float | None = None


Subscriber = Callable[[dict[str, Any]], Awaitable[None] | None]


class OutcomeBus:
    """Fan-out of outcome views to subscribers and to per-action waiters."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def watch(self, action_id: str) -> asyncio.Future[dict[str, Any]]:
        """A future resolved with the action's view when it reaches a final status."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(action_id, []).append(future)
        return future

    def unwatch(self, action_id: str, future: asyncio.Future[dict[str, Any]]) -> None:
        futures = self._waiters.get(action_id, [])
        with contextlib.suppress(ValueError):
            futures.remove(future)
        if not futures:
            self._waiters.pop(action_id, None)

    def publish(self, views: list[dict[str, Any]]) -> None:
        """Deliver views (call on the event loop, after the commit)."""
        for view in views:
            if view.get("final"):
                for future in self._waiters.pop(view["id"], []):
                    if not future.done():
                        future.set_result(view)
            for callback in list(self._subscribers):
                self._call(callback, view)

    def _call(self, callback: Subscriber, view: dict[str, Any]) -> None:
        try:
            result = callback(view)
        except Exception:
            log.exception("outcome subscriber failed")
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(_guarded(result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for futures in self._waiters.values():
            for future in futures:
                future.cancel()
        self._waiters.clear()


async def _guarded(awaitable: Awaitable[None]) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("outcome subscriber failed")


class WorkSignal:
    """Wakes workers: an in-process event plus a cheap cross-process change check.

    `sqlite_path` enables `PRAGMA data_version` polling on one dedicated connection (on its own
    thread, off the event loop). Without it (PostgreSQL) a waiter simply wakes every poll
    interval and the caller claims.
    """

    def __init__(self, sqlite_path: str | None, poll_interval: float) -> None:
        self._event: asyncio.Event | None = None
        self._poll = poll_interval
        self._path = sqlite_path
        self._conn: sqlite3.Connection | None = None
        self._seen: int | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsbot-db-watch")

    def _get_event(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    def set(self) -> None:
        """Work arrived in this process (call on the event loop)."""
        self._get_event().set()

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109 (a poll loop, not one await)
        """Return when work may be available, or after `timeout` seconds."""
        event = self._get_event()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        while not event.is_set():
            if await self._changed_elsewhere():
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, self._poll))
            if self._path is None:
                break  # no cheap change check (PostgreSQL): let the caller claim and see
        event.clear()

    async def _changed_elsewhere(self) -> bool:
        if self._path is None:
            return False
        loop = asyncio.get_running_loop()
        version = await loop.run_in_executor(self._thread, self._data_version)
        # The first look counts as a change: a commit made before it must not be missed.
        changed = version != self._seen
        self._seen = version
        return changed

    def _data_version(self) -> int:
        if self._conn is None:
            self._conn = sqlite3.connect(self._path or "", timeout=10, check_same_thread=False)
        row = self._conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    async def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._thread, _close)
        self._thread.shutdown(wait=False)  # idle now: nothing left to wait for


# -- recording outcomes: the write side of the worker's reports (runs on the writer thread) --

A = ActionRow.__table__  # type: ignore[attr-defined]
_ATTEMPTS = AttemptRow.__table__  # type: ignore[attr-defined]
_AUDIT_KEYS = ("at", "entity", "entity_id", "from_status", "to_status", "actor", "detail")
AUDIT_INSERT = Prepared(insert(AuditRow.__table__), _AUDIT_KEYS)  # type: ignore[attr-defined]
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
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
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
        "b_result": _encode(o.result) if o.result is not None else None,
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
