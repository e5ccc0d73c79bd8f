"""Operator alerts: de-duplicated by condition, kept in the store, delivered to every sink.

An alert is identified by its condition key ("circuit:notion", "failures:notion.create_task").
`fire(key, ...)` opens it (one message) or, while it is still active, updates the same row and
message; `resolve(key)` closes it and sends the "resolved" follow-up. The `alerts` table is the
truth, so a restarted process (or the CLI) sees the same active alerts and never re-announces them.

Sending never fails or blocks the caller: the store write happens inline (so history is
consistent) but delivery runs in background tasks, one after another per key so an update never
overtakes the message it edits. A sink that fails is logged, never re-alerted: no loops.

Failure thresholds (seed "OperatorAlerting"): `record_failure(operation)` counts consecutive
failures per operation and fires once the threshold is reached; `record_success` resets the count
and resolves the alert.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, insert, select, update

from bot.alert_sinks import AlertNotice, Event, Sink
from bot.store.engine import Store
from bot.store.tables import AlertRow

log = logging.getLogger("opsbot.alerts")

_ALERTS = AlertRow.__table__  # type: ignore[attr-defined]
SEND_TIMEOUT = 15.0
UPDATE_EVERY = 60.0  # at most one in-place update per alert per minute (Slack allows ~1/s)


class Alerter:
    def __init__(
        self,
        store: Store,
        sinks: list[Sink],
        *,
        threshold: int = 3,
        clock: Callable[[], float] = time.time,
        metrics: Any = None,
    ) -> None:
        self.store = store
        self.sinks = sinks
        self.threshold = threshold
        self.clock = clock
        self.metrics = metrics
        self.failures: dict[str, int] = {}
        # Keys active in the store, so the common "nothing to resolve" costs no write.
        self._active: set[str] | None = None
        self._updated_at: dict[str, float] = {}
        self._refs: dict[str, dict[str, str]] = {}
        self._chains: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- conditions -----------------------------------------------------------------------------

    async def fire(
        self,
        key: str,
        title: str,
        text: str = "",
        *,
        severity: str = "high",
        avoid: frozenset[str] = frozenset(),
        auto_resolve_after: float | None = None,
    ) -> Event | None:
        """Open the alert for `key`, or update it while active. Returns the event, None on error."""
        now = self.clock()
        detail = {"avoid": sorted(avoid), "auto_resolve_after": auto_resolve_after}
        try:
            row, event = await self.store.write(
                lambda conn: _open_or_update(conn, key, severity, title, text, now, detail)
            )
        except Exception:
            log.exception("alert %s could not be recorded", key)
            return None
        if self._active is not None:
            self._active.add(key)
        if event == "updated" and now - self._updated_at.get(key, 0.0) < UPDATE_EVERY:
            return event  # recorded; the next update or the resolve shows the new count
        self._updated_at[key] = now
        self._deliver(event, row, avoid)
        return event

    async def resolve(self, key: str, text: str | None = None) -> bool:
        """Close the active alert for `key` (if any) and announce it. Never raises."""
        now = self.clock()
        try:
            if key not in await self._active_keys():
                return False
            row = await self.store.write(lambda conn: _resolve(conn, key, now, text))
        except Exception:
            log.exception("alert %s could not be resolved", key)
            return False
        if self._active is not None:
            self._active.discard(key)
        self._updated_at.pop(key, None)
        if row is None:
            return False
        avoid = frozenset(_detail(row).get("avoid") or ())
        self._deliver("resolved", row, avoid)
        return True

    async def record_failure(
        self, operation: str, error: str = "", *, avoid: frozenset[str] = frozenset()
    ) -> None:
        count = self.failures.get(operation, 0) + 1
        self.failures[operation] = count
        if count >= self.threshold:
            await self.fire(
                f"failures:{operation}",
                f"{operation}: {count} consecutive failures",
                f"last error: {error}" if error else "",
                avoid=avoid,
            )

    async def record_success(self, operation: str) -> None:
        if self.failures.pop(operation, 0) >= self.threshold:
            await self.resolve(f"failures:{operation}", f"{operation} succeeded again")

    # -- queries --------------------------------------------------------------------------------

    async def history(self, limit: int = 50) -> list[dict[str, Any]]:
        return await self.store.read(lambda conn: list_alerts(conn, limit))

    async def active(self) -> list[dict[str, Any]]:
        rows = await self.store.read(lambda conn: list_alerts(conn, 1000, active_only=True))
        self._active = {row["key"] for row in rows}  # refresh: another process may have changed it
        return rows

    async def _active_keys(self) -> set[str]:
        if self._active is None:
            await self.active()
        assert self._active is not None
        return self._active

    async def resolve_quiet(self) -> list[str]:
        """Resolve event alerts (dead letter, expiry) that have been quiet for their period."""
        now = self.clock()
        resolved = []
        for row in await self.active():
            after = _detail(row).get("auto_resolve_after")
            quiet = after is not None and now - row["updated_at"] >= after
            if quiet and await self.resolve(row["key"], "no new occurrences"):
                resolved.append(row["key"])
        return resolved

    # -- delivery -------------------------------------------------------------------------------

    def _deliver(self, event: Event, row: dict[str, Any], avoid: frozenset[str]) -> None:
        key = row["key"]
        self._refs.setdefault(key, json.loads(row.get("refs") or "{}"))
        previous = self._chains.get(key)
        task = asyncio.create_task(self._send_all(event, row, avoid, previous))
        self._chains[key] = task
        self._tasks.add(task)
        task.add_done_callback(self._done)
        if self.metrics is not None:
            self.metrics.alerts.labels(event).inc()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        for key, chained in list(self._chains.items()):
            if chained is task:
                del self._chains[key]

    async def _send_all(
        self,
        event: Event,
        row: dict[str, Any],
        avoid: frozenset[str],
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        key = row["key"]
        refs = self._refs.setdefault(key, {})
        changed = False
        for sink in self.sinks:
            if sink.name in avoid or (event == "updated" and not sink.updates):
                continue
            notice = _notice(event, row, refs.get(sink.name))
            try:
                ref = await asyncio.wait_for(sink.send(notice), SEND_TIMEOUT)
            except Exception as exc:  # includes timeouts; logged only, never re-alerted
                log.warning("alert %s: %s sink failed: %s", key, sink.name, exc)
                continue
            if ref is not None and refs.get(sink.name) != ref:
                refs[sink.name] = ref
                changed = True
        if changed:
            await self._save_refs(row["id"], refs)
        if event == "resolved":
            self._refs.pop(key, None)

    async def _save_refs(self, row_id: int, refs: dict[str, str]) -> None:
        body = json.dumps(refs)
        try:
            await self.store.write(
                lambda conn: conn.execute(
                    update(_ALERTS).where(_ALERTS.c.id == row_id).values(refs=body)
                )
            )
        except Exception:
            log.exception("alert refs could not be saved")

    async def flush(self, limit: float = 30.0) -> None:
        """Wait (at most `limit` seconds) for pending deliveries: tests, shutdown."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=limit)

    async def aclose(self) -> None:
        await self.flush(limit=5.0)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))


def _open_or_update(
    conn: Connection,
    key: str,
    severity: str,
    title: str,
    text: str,
    now: float,
    detail: dict[str, Any],
) -> tuple[dict[str, Any], Event]:
    row = (
        conn.execute(select(_ALERTS).where(_ALERTS.c.key == key, _ALERTS.c.status == "active"))
        .mappings()
        .first()
    )
    if row is not None:
        values = {"count": row["count"] + 1, "updated_at": now, "title": title, "text": text}
        conn.execute(update(_ALERTS).where(_ALERTS.c.id == row["id"]).values(**values))
        return {**row, **values}, "updated"
    values = {
        "key": key,
        "status": "active",
        "severity": severity,
        "title": title,
        "text": text,
        "count": 1,
        "opened_at": now,
        "updated_at": now,
        "refs": "{}",
        "detail": json.dumps(detail),
    }
    row_id = conn.execute(insert(_ALERTS).values(**values)).inserted_primary_key[0]  # type: ignore[index]
    return {"id": row_id, "resolved_at": None, **values}, "opened"


def _resolve(conn: Connection, key: str, now: float, text: str | None) -> dict[str, Any] | None:
    row = (
        conn.execute(select(_ALERTS).where(_ALERTS.c.key == key, _ALERTS.c.status == "active"))
        .mappings()
        .first()
    )
    if row is None:
        return None
    values: dict[str, Any] = {"status": "resolved", "resolved_at": now, "updated_at": now}
    if text:
        values["text"] = text
    conn.execute(update(_ALERTS).where(_ALERTS.c.id == row["id"]).values(**values))
    return {**row, **values}


def list_alerts(conn: Connection, limit: int, active_only: bool = False) -> list[dict[str, Any]]:
    """Newest first; used by `opsbot alerts` and the HTTP/Slack views."""
    query = select(_ALERTS).order_by(_ALERTS.c.opened_at.desc(), _ALERTS.c.id.desc()).limit(limit)
    if active_only:
        query = query.where(_ALERTS.c.status == "active")
    return [dict(row) for row in conn.execute(query).mappings()]


def _notice(event: Event, row: dict[str, Any], ref: str | None) -> AlertNotice:
    return AlertNotice(
        event=event,
        key=row["key"],
        severity=row["severity"],
        title=row["title"],
        text=row["text"] or "",
        count=row["count"],
        opened_at=row["opened_at"],
        updated_at=row["updated_at"],
        resolved_at=row.get("resolved_at"),
        ref=ref,
    )


def _detail(row: dict[str, Any]) -> dict[str, Any]:
    try:
        detail = json.loads(row.get("detail") or "{}")
    except ValueError:
        return {}
    return detail if isinstance(detail, dict) else {}
