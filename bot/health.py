"""Health for `/health`, `opsbot status` and the alerts (issue 6 point 4).

Platform checks (each executor's cheap `check()`) run every OPSBOT_HEALTH_INTERVAL seconds in the
background and are cached, so a probe from a load balancer never waits for five platforms. The
latest result per platform is also kept in the store (bot.health_store), so other processes and
doors see it; a snapshot takes the newer of its own and the stored check per platform, and only
checks younger than 3 intervals (at least 15 minutes) judge the overall status. The
store-backed part (database reachable, queue depth, breakers, pauses) is read at request time in
a reader thread.

Overall status:
- unhealthy: the database cannot be read, or every checked platform is failing (runbook
  "All Platforms Failing"), or every enabled platform's circuit is open;
- degraded: some platform failing or disabled-by-error, a circuit not closed, a pause in force,
  or the queue deeper than the alert threshold;
- healthy otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Connection, text

from bot.health_store import load_checks, save_checks
from bot.store.engine import Store

log = logging.getLogger(__name__)

Checks = Callable[[], Awaitable[list[dict[str, Any]]]]
AuthListener = Callable[[str, str], Awaitable[None]]  # (platform, detail)
QUEUE_DEGRADED = 100
STALE_MIN = 900.0


class Health:
    def __init__(
        self,
        store: Store,
        checks: Checks | None = None,
        *,
        interval: float = 300.0,
        clock: Callable[[], float] = time.time,
        on_auth_failure: AuthListener | None = None,
        on_auth_ok: AuthListener | None = None,
    ) -> None:
        self.store = store
        self.checks = checks
        self.interval = interval
        self.clock = clock
        self.on_auth_failure = on_auth_failure
        self.on_auth_ok = on_auth_ok
        self.platforms: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    async def run_checks(self) -> dict[str, dict[str, Any]]:
        """Run every platform check once and cache the results."""
        if self.checks is None:
            return self.platforms
        now = self.clock()
        results = await self.checks()
        try:
            await self.store.write(lambda conn: save_checks(conn, results, now, "health"))
        except Exception:  # the checks still feed this process's /health and alerts
            log.warning("health: saving the platform checks failed", exc_info=True)
        for result in results:
            self.platforms[result["platform"]] = {**result, "checked_at": now}
            detail = str(result.get("detail") or "")
            if self._is_auth_failure(result) and self.on_auth_failure is not None:
                await self.on_auth_failure(result["platform"], detail)
            elif result.get("ok") and self.on_auth_ok is not None:
                await self.on_auth_ok(result["platform"], detail)
        return self.platforms

    @staticmethod
    def _is_auth_failure(result: dict[str, Any]) -> bool:
        detail = str(result.get("detail") or "").lower()
        return not result.get("ok") and ("autherror" in detail or "401" in detail)

    async def snapshot(self) -> dict[str, Any]:
        """The /health document."""
        now = self.clock()
        try:
            state = await self.store.read(lambda conn: _store_state(conn, now))
        except Exception as exc:
            log.warning("health: database unreadable: %s", exc)
            return {
                "status": "unhealthy",
                "database": {"ok": False, "detail": type(exc).__name__},
                "platforms": self.platforms,
            }
        platforms = self._latest(state["checks"])
        fresh = {p: r for p, r in platforms.items() if now - r["checked_at"] <= self.stale_after}
        status, reasons = _judge(state, fresh)
        return {
            "status": status,
            "reasons": reasons,
            "checked_at": now,
            "database": {"ok": True},
            "queue": {"queued": state["queued"], "running": state["running"]},
            "circuits": state["circuits"],
            "paused": state["paused"],
            "platforms": platforms,
        }

    def _latest(self, stored: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """This process's checks and the stored ones (any process, `opsbot check`): the newer
        of the two per platform."""
        latest = {row["platform"]: row for row in stored}
        for platform, result in self.platforms.items():
            if result["checked_at"] >= latest.get(platform, {}).get("checked_at", float("-inf")):
                latest[platform] = result
        return latest

    @property
    def stale_after(self) -> float:
        """A check older than this no longer judges health (its process may be gone)."""
        return max(STALE_MIN, 3 * self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._periodic(), name="health-checks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _periodic(self) -> None:
        while True:
            try:
                await self.run_checks()
            except Exception:  # a failing check run must not end the loop
                log.exception("health checks failed")
            await asyncio.sleep(self.interval)


def _store_state(conn: Connection, now: float) -> dict[str, Any]:
    counts: dict[str, int] = dict(
        conn.execute(
            text(
                "SELECT status, COUNT(*) FROM actions WHERE status IN ('queued', 'running') "
                "GROUP BY status"
            )
        ).all()
    )
    circuits: dict[str, str] = dict(
        conn.execute(text("SELECT platform, state FROM circuits")).all()
    )
    paused = [row[0] for row in conn.execute(text("SELECT platform FROM pauses"))]
    return {
        "queued": int(counts.get("queued", 0)),
        "running": int(counts.get("running", 0)),
        "circuits": circuits,
        "paused": paused,
        "checks": load_checks(conn, now),
    }


def _judge(state: dict[str, Any], platforms: dict[str, dict[str, Any]]) -> tuple[str, list[str]]:
    reasons: list[str] = []
    enabled = {
        p: r for p, r in platforms.items() if not str(r.get("detail", "")).startswith("disabled")
    }
    failing = sorted(p for p, r in enabled.items() if not r.get("ok"))
    open_circuits = sorted(p for p, s in state["circuits"].items() if s == "open")
    if enabled and len(failing) == len(enabled):
        return "unhealthy", [f"every platform check is failing: {', '.join(failing)}"]
    if enabled and set(enabled) <= set(open_circuits):
        return "unhealthy", ["every enabled platform's circuit is open"]
    reasons += [f"{p}: check failing" for p in failing]
    reasons += [f"{p}: circuit {s}" for p, s in sorted(state["circuits"].items()) if s != "closed"]
    reasons += [f"paused: {p}" for p in state["paused"]]
    if state["queued"] > QUEUE_DEGRADED:
        reasons.append(f"queue depth {state['queued']} over {QUEUE_DEGRADED}")
    return ("degraded" if reasons else "healthy"), reasons
