"""/metrics over a real store and queue, parsed with prometheus-client's own parser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.actions import parse_actions
from bot.config import Settings
from bot.health import Health
from bot.metrics import Metrics
from bot.ops import OpsContext
from bot.queue import Outcome
from bot.store.engine import Store
from bot.web import WebDeps, WebService
from tests.conftest import FakeClock

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def metrics_url(
    settings: Settings, store: Store, queue: Any, clock: FakeClock
) -> AsyncIterator[tuple[str, Metrics]]:
    metrics = Metrics()
    metrics.add_store_collector(store, clock)
    unsubscribe = metrics.bind_queue(queue)
    deps = WebDeps(
        settings=settings, queue=queue, metrics=metrics,
        ops=OpsContext(store=store, settings=settings, queue=queue, clock=clock),
        health=Health(store, clock=clock).snapshot,
    )  # fmt: skip
    service = WebService(deps, host="127.0.0.1", port=0)
    await service.start()
    yield f"http://127.0.0.1:{service.port}/metrics", metrics
    unsubscribe()
    await service.stop()


async def scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def submit(queue: Any, *actions: dict[str, Any]) -> list[str]:
    return [r.id for r in await queue.submit(parse_actions(list(actions)))]


async def test_queue_state_is_read_from_the_store_at_scrape_time(
    metrics_url: tuple[str, Metrics], queue: Any, store: Store, clock: FakeClock
) -> None:
    url, _ = metrics_url
    await submit(queue, *[{"type": "echo"}] * 3, {"type": "echo", "priority": "critical"})
    await submit(queue, {"type": "echo", "requires_approval": True})
    await store.write(
        lambda c: c.exec_driver_sql(
            "INSERT INTO circuits (platform, state, consecutive_failures, half_open_successes,"
            " updated_at) VALUES ('notion', 'open', 5, 0, 0)"
        )
    )
    clock.advance(42)
    samples = await scrape(url)
    assert value(samples, "opsbot_queue_depth", priority="normal") == 3
    assert value(samples, "opsbot_queue_depth", priority="critical") == 1
    assert value(samples, "opsbot_queue_depth", priority="low") == 0
    assert value(samples, "opsbot_queue_oldest_wait_seconds", priority="normal") == 42
    assert value(samples, "opsbot_approvals_pending") == 1
    assert value(samples, "opsbot_circuit_state", platform="notion") == 2


async def test_worker_helpers_show_up_as_counters_and_histograms(
    metrics_url: tuple[str, Metrics],
) -> None:
    url, metrics = metrics_url
    metrics.observe_attempt("notion", "create_task", "succeeded", 0.2)
    metrics.observe_attempt("notion", "create_task", "RateLimited", 0.03)
    metrics.observe_429("notion")
    metrics.observe_fallback("notion", "trello")
    metrics.observe_decision("approved", 120)
    metrics.observe_workflow_run("succeeded")
    samples = await scrape(url)
    hist = "opsbot_attempt_duration_seconds"
    assert value(samples, f"{hist}_count", platform="notion", type="create_task") == 2
    assert value(samples, f"{hist}_bucket", platform="notion", type="create_task", le="0.05") == 1
    assert value(samples, "opsbot_rate_limited_responses_total", platform="notion") == 1
    assert value(samples, "opsbot_fallbacks_total", platform="notion", to="trello") == 1
    assert value(samples, "opsbot_approval_decision_seconds_count", decision="approved") == 1
    assert value(samples, "opsbot_workflow_runs_total", outcome="succeeded") == 1


async def test_outcomes_recorded_in_the_store_are_counted(
    metrics_url: tuple[str, Metrics], queue: Any, clock: FakeClock
) -> None:
    url, _ = metrics_url
    ids = await submit(queue, {"type": "echo"}, {"type": "echo"}, {"type": "echo"})
    claimed = await queue.claim("w", 10)
    assert {c.id for c in claimed} == set(ids)
    now = clock()
    await queue.record(
        [
            Outcome(ids[0], "succeeded", now, now + 0.1, "w", result={}),
            Outcome(ids[1], "dead", now, now + 0.1, "w", error="boom", error_kind="PermanentError"),
            Outcome(ids[2], "retry", now, now + 0.1, "w", error="503", retry_at=now + 5),
        ]
    )
    samples = await scrape(url)
    labels = {"platform": "echo", "type": "echo"}
    assert value(samples, "opsbot_actions_total", outcome="succeeded", **labels) == 1
    assert value(samples, "opsbot_actions_total", outcome="dead_lettered", **labels) == 1
    assert value(samples, "opsbot_dead_letters_total", platform="echo") == 1
    assert value(samples, "opsbot_retries_total", platform="echo") == 1
    attempts = "opsbot_attempts_total"
    assert value(samples, attempts, outcome="succeeded", **labels) == 1
    assert value(samples, attempts, outcome="PermanentError", **labels) == 1
    assert value(samples, attempts, outcome="failed", **labels) == 1
    assert value(samples, "opsbot_attempt_duration_seconds_count", **labels) == 3


def test_each_runtime_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()  # would raise "Duplicated timeseries" if shared
    first.observe_retry("notion")
    assert b'opsbot_retries_total{platform="notion"} 1.0' in first.render()
    assert b"opsbot_retries_total{" not in second.render()


async def test_a_scrape_still_answers_when_the_store_is_broken(
    metrics_url: tuple[str, Metrics], store: Store
) -> None:
    url, metrics = metrics_url
    metrics.observe_retry("trello")
    await store.write(lambda c: c.exec_driver_sql("DROP TABLE circuits"))  # the snapshot fails
    samples = await scrape(url)
    assert value(samples, "opsbot_retries_total", platform="trello") == 1
    assert value(samples, "opsbot_queue_depth", priority="normal") is None


async def test_rate_limiter_counters_are_read_from_the_live_limiters(
    metrics_url: tuple[str, Metrics], settings: Settings
) -> None:
    from bot.flow.ratelimit import RateLimiters

    url, metrics = metrics_url
    limiters = RateLimiters.from_settings(settings)
    limiter = limiters.get("notion")
    assert limiter is not None
    for _ in range(3):
        await limiter.acquire()
    limiters.penalise("notion", 30)
    metrics.add_limiter_collector(limiters)
    samples = await scrape(url)
    assert value(samples, "opsbot_rate_limit_grants_total", platform="notion") == 3
    assert value(samples, "opsbot_rate_limit_waits_total", platform="notion") == 0
    blocked = value(samples, "opsbot_rate_limit_blocked_seconds", platform="notion")
    assert blocked is not None and 29 < blocked <= 30


async def test_runs_finished_by_any_process_are_counted_from_the_audit_trail(
    metrics_url: tuple[str, Metrics], store: Store, clock: FakeClock
) -> None:
    # Another process (an `opsbot worker` advancing a run) leaves only its audit rows behind.
    from bot.store.audit import audit_row, write_audit

    url, _ = metrics_url
    await scrape(url)  # the ledger starts at the tables' current ends
    now = clock()
    rows = [
        audit_row(now, "run_a", "running", "succeeded", entity="run"),
        audit_row(now, "run_b", "running", "rolling_back", entity="run"),
        audit_row(now, "run_b", "rolling_back", "rolled_back", entity="run"),
        audit_row(now, "act_1", "running", "succeeded"),  # an action: not a run
    ]
    await store.write(lambda c: write_audit(c, rows))
    samples = await scrape(url)
    runs = "opsbot_workflow_runs_total"
    assert value(samples, runs, outcome="succeeded") == 1
    assert value(samples, runs, outcome="rolled_back") == 1
    assert value(samples, runs, outcome="rolling_back") is None
