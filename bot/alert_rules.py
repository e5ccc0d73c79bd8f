"""The alert rules of the Slack issue (point 5) and the runbook, over one Alerter.

Event rules come from the queue's outcome bus (`on_outcome`, cheap and synchronous: it only
enqueues, so the queue is never slowed by alerting): an action dead-lettered, an approval
expired, an authentication failure, consecutive failures per operation (success resets).
State rules are evaluated periodically from the store (`evaluate`): circuit opened / closed,
success rate under 90% over 15 minutes, queue depth over 100 for 10 minutes, and the quiet-period
resolution of event alerts. Reading the store makes them work across processes too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from bot.alerts import Alerter
from bot.metrics import is_retry

log = logging.getLogger("opsbot.alerts")

AUTH_KINDS = frozenset({"AuthError"})


@dataclass(frozen=True)
class Thresholds:
    success_rate: float = 0.90
    success_window: float = 900.0  # 15 minutes
    success_min_sample: int = 10  # fewer finished actions than this say nothing about a rate
    queue_depth: int = 100
    queue_for: float = 600.0  # 10 minutes
    event_quiet: float = 900.0  # event alerts resolve after this long without a new one
    interval: float = 30.0  # how often `evaluate` runs


class AlertRules:
    def __init__(
        self,
        alerter: Alerter,
        thresholds: Thresholds = Thresholds(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.alerter = alerter
        self.store = alerter.store
        self.t = thresholds
        self.clock = clock
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._circuits: dict[str, str] = {}
        self._deep_since: float | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- outcome bus ----------------------------------------------------------------------------

    def on_outcome(self, view: dict[str, Any]) -> None:
        """Subscriber for `Queue.subscribe`: enqueue only."""
        self._inbox.put_nowait(view)

    async def handle(self, view: dict[str, Any]) -> None:
        status = view.get("status")
        platform = str(view.get("platform") or "")
        operation = f"{platform}.{view.get('type')}"
        error = str(view.get("error") or "")
        avoid = _avoid(platform)
        if status == "succeeded":
            await self.alerter.record_success(operation)
            await self.alerter.resolve(f"auth:{platform}", f"{platform} accepted our credentials")
            await self.alerter.resolve(f"dead_letter:{operation}", f"{operation} succeeded again")
        elif status == "dead_lettered" or is_retry(view):
            await self.alerter.record_failure(operation, error, avoid=avoid)
        if status == "dead_lettered":
            await self.alerter.fire(
                f"dead_letter:{operation}",
                f"{operation}: action dead-lettered",
                f"action {view.get('id')}: {error}",
                avoid=avoid,
                auto_resolve_after=self.t.event_quiet,
            )
        if status == "expired":
            await self.alerter.fire(
                "approval_expired",
                "Approval expired",
                f"action {view.get('id')}{f' ({operation})' if platform else ''} "
                "expired without a decision",
                severity="medium",
                auto_resolve_after=self.t.event_quiet,
            )
        if view.get("error_kind") in AUTH_KINDS:
            await self.auth_failure(platform, error)

    async def auth_failure(self, platform: str, error: str) -> None:
        """Also called by health checks when a platform refuses our credentials."""
        await self.alerter.fire(
            f"auth:{platform}",
            f"{platform}: authentication failure",
            error,
            severity="critical",
            avoid=_avoid(platform),
        )

    async def auth_ok(self, platform: str, _detail: str = "") -> None:
        """Health checks passed: a standing auth alert for the platform is resolved."""
        await self.alerter.resolve(f"auth:{platform}", f"{platform} accepted our credentials")

    # -- state rules ----------------------------------------------------------------------------

    async def evaluate(self) -> None:
        now = self.clock()
        since = now - self.t.success_window
        state = await self.store.read(lambda conn: _state(conn, since))
        await self._circuit_rules(state["circuits"])
        await self._success_rule(state["succeeded"], state["dead"])
        await self._depth_rule(state["depth"], now)
        await self.alerter.resolve_quiet()

    async def _circuit_rules(self, circuits: dict[str, tuple[str, str | None]]) -> None:
        for platform, (state, last_error) in circuits.items():
            before = self._circuits.get(platform)  # None at start: settle what the store says
            self._circuits[platform] = state
            key = f"circuit:{platform}"
            if state == "open" and before != "open":
                await self.alerter.fire(
                    key,
                    f"Circuit opened: {platform}",
                    f"last error: {last_error or 'unknown'}",
                    severity="high",
                    avoid=_avoid(platform),
                )
            elif state == "closed" and before != "closed":
                await self.alerter.resolve(key, f"Circuit closed: {platform}")

    async def _success_rule(self, succeeded: int, dead: int) -> None:
        total = succeeded + dead
        if total >= self.t.success_min_sample and succeeded / total < self.t.success_rate:
            await self.alerter.fire(
                "success_rate",
                f"Success rate {succeeded / total:.0%} over the last 15 minutes",
                f"{succeeded} succeeded, {dead} dead-lettered "
                f"(threshold {self.t.success_rate:.0%})",
            )
        elif total == 0 or succeeded / total >= self.t.success_rate:
            await self.alerter.resolve("success_rate", "Success rate back to normal")

    async def _depth_rule(self, depth: int, now: float) -> None:
        if depth <= self.t.queue_depth:
            self._deep_since = None
            await self.alerter.resolve("queue_depth", f"Queue depth back to {depth}")
            return
        self._deep_since = self._deep_since if self._deep_since is not None else now
        if now - self._deep_since >= self.t.queue_for:
            minutes = (now - self._deep_since) / 60
            await self.alerter.fire(
                "queue_depth",
                f"Queue depth {depth} (over {self.t.queue_depth})",
                f"over the threshold for {minutes:.0f} minutes",
            )

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._consume(), name="alerts-bus"),
            asyncio.create_task(self._periodic(), name="alerts-evaluate"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def drain(self) -> None:
        """Handle everything already received (tests)."""
        while not self._inbox.empty():
            await self.handle(self._inbox.get_nowait())

    async def _consume(self) -> None:
        while True:
            view = await self._inbox.get()
            try:
                await self.handle(view)
            except Exception:  # alerting must never stop the bus consumer
                log.exception("alert rule failed for an outcome")

    async def _periodic(self) -> None:
        while True:
            try:
                await self.evaluate()
            except Exception:
                log.exception("alert evaluation failed")
            await asyncio.sleep(self.t.interval)


def _avoid(platform: str) -> frozenset[str]:
    # An alert about Slack must not be sent through Slack: it goes to the other sinks and the log.
    return frozenset({"slack"}) if platform == "slack" else frozenset()


def _state(conn: Connection, since: float) -> dict[str, Any]:
    finished: dict[str, int] = dict(
        conn.execute(
            text(
                "SELECT status, COUNT(*) FROM actions WHERE finished_at >= :since "
                "AND status IN ('succeeded', 'dead_lettered') GROUP BY status"
            ),
            {"since": since},
        ).all()
    )
    depth = conn.execute(text("SELECT COUNT(*) FROM actions WHERE status = 'queued'")).scalar()
    circuits = {
        platform: (state, error)
        for platform, state, error in conn.execute(
            text("SELECT platform, state, last_error FROM circuits")
        )
    }
    return {
        "succeeded": int(finished.get("succeeded", 0)),
        "dead": int(finished.get("dead_lettered", 0)),
        "depth": int(depth or 0),
        "circuits": circuits,
    }
