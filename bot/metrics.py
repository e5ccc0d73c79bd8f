"""Prometheus metrics: one CollectorRegistry per runtime (tests never collide).

Three kinds of numbers:
- the work of EVERY process sharing the database (actions by outcome, attempts and their
  durations, retries, fallbacks, 429s, dead letters): counted at scrape time from the attempts
  and audit rows written since the previous scrape (bot.metrics_ledger), so the workers of an
  `opsbot worker` process show on the one /metrics of `opsbot run`, with no port of their own;
- events counted in this process (approval decision times from the queue's decisions bus,
  workflow runs, callbacks, alerts) and the live rate limiters (`LimiterCollector`);
- state read from the store at scrape time (queue depth per priority, oldest wait, approvals
  pending, breaker state per platform): `StoreCollector`. The scrape runs in a thread
  (`render` is sync, the web handler calls it through `asyncio.to_thread`), never on the loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, text

from bot.metrics_ledger import Ledger
from bot.routing import Priority
from bot.store.engine import Store

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_DECISION_BUCKETS = (10, 30, 60, 300, 900, 1800, 3600, 7200, 86400)


class Metrics:
    """The metric objects of one runtime, and the helpers other modules call."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.actions = Counter(
            "opsbot_actions",
            "Actions finished, by outcome",
            ["platform", "type", "outcome"],
            registry=r,
        )
        self.attempts = Counter(
            "opsbot_attempts",
            "Executor attempts, by outcome",
            ["platform", "type", "outcome"],
            registry=r,
        )
        self.attempt_seconds = Histogram(
            "opsbot_attempt_duration_seconds",
            "Duration of one executor attempt",
            ["platform", "type"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "opsbot_retries", "Attempts rescheduled for retry", ["platform"], registry=r
        )
        self.fallbacks = Counter(
            "opsbot_fallbacks",
            "Actions served by a fallback platform",
            ["platform", "to"],
            registry=r,
        )
        self.dead_letters = Counter(
            "opsbot_dead_letters", "Actions dead-lettered", ["platform"], registry=r
        )
        self.rate_limited = Counter(
            "opsbot_rate_limited_responses",
            "HTTP 429 (or equivalent) answers from a platform",
            ["platform"],
            registry=r,
        )
        self.approval_decisions = Histogram(
            "opsbot_approval_decision_seconds",
            "Time from request to approval decision",
            ["decision"],
            buckets=_DECISION_BUCKETS,
            registry=r,
        )
        self.workflow_runs = Counter(
            "opsbot_workflow_runs", "Workflow runs finished, by outcome", ["outcome"], registry=r
        )
        self.callbacks = Counter(
            "opsbot_callbacks", "Outcome callbacks delivered or given up", ["outcome"], registry=r
        )
        self.alerts = Counter("opsbot_alerts", "Operator alerts by event", ["event"], registry=r)
        self.ledger: Ledger | None = None  # set by add_store_collector

    # -- helpers for the worker, flow control, approvals and workflows -------------------------

    def observe_attempt(self, platform: str, type_: str, outcome: str, seconds: float) -> None:
        """One executor attempt: outcome is succeeded | failed (or the error kind)."""
        self.attempts.labels(platform, type_, outcome).inc()
        self.attempt_seconds.labels(platform, type_).observe(max(0.0, seconds))

    def observe_action(self, platform: str, type_: str, outcome: str, n: int = 1) -> None:
        """Actions reached a final status (succeeded, dead_lettered, rejected, ...)."""
        self.actions.labels(platform, type_, outcome).inc(n)
        if outcome == "dead_lettered":
            self.dead_letters.labels(platform).inc(n)

    def observe_retry(self, platform: str, n: int = 1) -> None:
        self.retries.labels(platform).inc(n)

    def observe_fallback(self, platform: str, to_platform: str, n: int = 1) -> None:
        self.fallbacks.labels(platform, to_platform).inc(n)

    def observe_429(self, platform: str) -> None:
        self.rate_limited.labels(platform).inc()

    def observe_decision(self, decision: str, seconds: float) -> None:
        """approved | rejected | expired, with the time the request waited."""
        self.approval_decisions.labels(decision).observe(max(0.0, seconds))

    def observe_workflow_run(self, outcome: str, count: int = 1) -> None:
        self.workflow_runs.labels(outcome).inc(count)

    # -- wiring --------------------------------------------------------------------------------

    def bind_queue(self, queue: Any) -> Callable[[], None]:
        """Approval decision times from `queue.subscribe_decisions`; returns the unsubscribe.
        Outcomes are not counted from the bus but from the store (bot.metrics_ledger), so the
        work of every process shows here."""
        return queue.subscribe_decisions(self.on_decision)  # type: ignore[no-any-return]

    def on_decision(self, view: dict[str, Any]) -> None:
        """From `queue.subscribe_decisions` (every door: Slack, CLI, HTTP, the expiry): an
        approval (queued_at = decision time), a rejection or an expiry (finished_at); the wait
        is measured from the action's submission."""
        created, status = view.get("created_at"), str(view.get("status"))
        if view.get("event") == "approved":
            decision, decided = "approved", view.get("queued_at")
        elif status in ("rejected", "expired"):
            decision, decided = status, view.get("finished_at")
        else:
            return
        if created is not None and decided is not None:
            self.observe_decision(decision, float(decided) - float(created))

    def add_store_collector(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        """State gauges read at scrape time, and the attempt/outcome counters of every process
        (bot.metrics_ledger). Reads the store once: call it from a thread in a running loop."""
        self.registry.register(StoreCollector(store, clock))
        self.ledger = Ledger(store, self)

    def add_limiter_collector(self, limiters: Any) -> None:
        """Rate-limit grants, waits (count and seconds) and penalty blocks per platform, read
        from the live limiters at scrape time."""
        self.registry.register(LimiterCollector(limiters))

    def render(self) -> bytes:
        """The exposition text. Sync and may read the store: call it from a thread."""
        if self.ledger is not None:
            try:
                self.ledger.catch_up()
            except Exception:  # a scrape must answer even when the database is unwell
                log.warning("metrics: reading attempts and outcomes failed", exc_info=True)
        return generate_latest(self.registry)


def is_retry(view: dict[str, Any]) -> bool:
    """A bus view of a failed attempt that will run again (queued again, event "retry")."""
    return view.get("event") == "retry" or view.get("status") == "retry_scheduled"


class StoreCollector(Collector):
    """Queue depth, oldest wait, pending approvals and breaker states, read at scrape time."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        try:
            snap = self.store.read_sync(lambda conn: store_snapshot(conn, now))
        except Exception:  # a scrape must answer even when the database is unwell
            log.warning("metrics: store snapshot failed", exc_info=True)
            return
        depth = GaugeMetricFamily(
            "opsbot_queue_depth", "Actions waiting in the queue", labels=["priority"]
        )
        oldest = GaugeMetricFamily(
            "opsbot_queue_oldest_wait_seconds",
            "Wait of the oldest due queued action",
            labels=["priority"],
        )
        for priority in Priority:
            depth.add_metric([priority.value], snap["depth"].get(priority.value, 0))
            oldest.add_metric([priority.value], snap["oldest_wait"].get(priority.value, 0.0))
        yield depth
        yield oldest
        yield GaugeMetricFamily(
            "opsbot_approvals_pending", "Actions awaiting approval", value=snap["approvals"]
        )
        yield GaugeMetricFamily(
            "opsbot_actions_running", "Actions running now", value=snap["running"]
        )
        breaker = GaugeMetricFamily(
            "opsbot_circuit_state",
            "Circuit breaker: 0 closed, 1 half_open, 2 open",
            labels=["platform"],
        )
        for platform, state in snap["circuits"].items():
            breaker.add_metric([platform], BREAKER_STATES.get(state, 0))
        yield breaker


class LimiterCollector(Collector):
    """Reads `RateLimiters.stats()` (in-memory counters) at scrape time."""

    def __init__(self, limiters: Any) -> None:
        self.limiters = limiters

    def collect(self) -> Iterator[Metric]:
        granted = CounterMetricFamily(
            "opsbot_rate_limit_grants", "Requests let through by the limiter", labels=["platform"]
        )
        waited = CounterMetricFamily(
            "opsbot_rate_limit_waits",
            "Requests that had to wait for the limiter",
            labels=["platform"],
        )
        waited_seconds = CounterMetricFamily(
            "opsbot_rate_limit_wait_seconds",
            "Time spent waiting for the rate limiter",
            labels=["platform"],
        )
        blocked = GaugeMetricFamily(
            "opsbot_rate_limit_blocked_seconds", "Remaining pause after a 429", labels=["platform"]
        )
        for platform, stats in self.limiters.stats().items():
            granted.add_metric([platform], stats.granted)
            waited.add_metric([platform], stats.waited)
            waited_seconds.add_metric([platform], stats.waited_seconds)
            blocked.add_metric([platform], stats.blocked_for)
        yield from (granted, waited, waited_seconds, blocked)


def store_snapshot(conn: Connection, now: float) -> dict[str, Any]:
    """The state numbers, in three small queries (indexes on status)."""
    depth: dict[str, int] = {}
    oldest: dict[str, float] = {}
    rows = conn.execute(
        text(
            "SELECT priority, COUNT(*), MIN(CASE WHEN available_at <= :now "
            "THEN COALESCE(queued_at, created_at) END) FROM actions "
            "WHERE status = 'queued' GROUP BY priority"
        ),
        {"now": now},
    )
    for priority, count, first in rows:
        depth[priority] = int(count)
        oldest[priority] = max(0.0, now - first) if first is not None else 0.0
    counts: dict[str, int] = dict(
        conn.execute(
            text(
                "SELECT status, COUNT(*) FROM actions "
                "WHERE status IN ('awaiting_approval', 'running') GROUP BY status"
            )
        ).all()
    )
    circuits: dict[str, str] = dict(
        conn.execute(text("SELECT platform, state FROM circuits")).all()
    )
    return {
        "depth": depth,
        "oldest_wait": oldest,
        "approvals": int(counts.get("awaiting_approval", 0)),
        "running": int(counts.get("running", 0)),
        "circuits": circuits,
    }
