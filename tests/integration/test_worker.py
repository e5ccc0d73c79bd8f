"""The worker pool against a real SQLite queue and echo actions: outcomes in the store."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.actions import parse_actions
from bot.config import Settings
from bot.flow.breaker import OPEN, Breakers, reset_circuit
from bot.flow.fallback import FallbackChain
from bot.flow.ratelimit import RateLimiters
from bot.flow.retry import RetryPolicy
from bot.queue import Queue
from bot.routing import PLATFORMS
from bot.runtime import Runtime
from bot.store.engine import Store
from bot.store.tables import AttemptRow
from bot.worker import WorkerPool
from executors.base import JSON, CheckResult, Executor, Operation, RetryableError, Throttle
from executors.echo import EchoExecutor
from executors.registry import build_executors

FINAL = {"succeeded", "dead_lettered"}


class FakeTrello:
    """A tiny trello-like executor: remembers the cards it was asked to create."""

    platform = "trello"

    def __init__(self) -> None:
        self.cards: list[JSON] = []

    @property
    def operations(self) -> Mapping[str, Operation]:
        return {"create_card": self.create_card}

    async def create_card(self, data: JSON) -> JSON:
        self.cards.append(data)
        return {"id": f"card{len(self.cards)}"}

    def reversible(self, action_type: str) -> bool:
        return False

    async def compensate(self, action_type: str, data: JSON, result: JSON) -> JSON:
        return {}

    async def check(self) -> CheckResult:
        return CheckResult("trello", True, "fake")

    async def aclose(self) -> None:
        return None


class ThrottledSlack(FakeTrello):
    """send_notification waits on the given throttle (the Slack limiter: 1 request per second)."""

    platform = "slack"

    def __init__(self, throttle: Throttle) -> None:
        super().__init__()
        self.throttle = throttle

    @property
    def operations(self) -> Mapping[str, Operation]:
        return {"send_notification": self.send}

    async def send(self, data: JSON) -> JSON:
        await self.throttle()
        return {"ok": True}


class Harness:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self.queue = Queue(store, settings)
        self.breakers = Breakers(PLATFORMS, clock=time.time)
        self.limiters = RateLimiters(settings.rate_limits)
        self.trello = FakeTrello()
        self.executors: dict[str, Executor] = {
            "echo": EchoExecutor(self.limiters.throttle("echo")),
            "trello": self.trello,
        }
        self.pool = self.make_pool()

    def make_pool(self) -> WorkerPool:
        return WorkerPool(
            self.queue, self.executors, self.limiters, self.breakers,
            RetryPolicy.from_settings(self.settings), FallbackChain(self.settings.fallbacks),
            self.settings, store=self.store,
        )  # fmt: skip

    async def submit(self, *actions: dict[str, Any]) -> list[str]:
        results = await self.queue.submit(parse_actions(list(actions)))
        return [r.id for r in results]

    async def attempts(self, action_id: str) -> list[dict[str, Any]]:
        """The attempts table rows of one action, in order."""
        table = AttemptRow.__table__  # type: ignore[attr-defined]
        stmt = select(table).where(table.c.action_id == action_id).order_by(table.c.number)
        return await self.store.read(lambda c: [dict(r) for r in c.execute(stmt).mappings()])

    async def wait_for(self, ids: list[str], statuses: set[str], limit: float = 10.0) -> list[dict]:
        """Poll the store (bounded) until every action has one of `statuses`."""
        async with asyncio.timeout(limit):
            while True:
                views = [await self.queue.get(i) for i in ids]
                if all(v["status"] in statuses for v in views):
                    return views
                await asyncio.sleep(0.02)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "opsbot_database_url": f"sqlite:///{tmp_path / 'queue.db'}",
        "retry_initial_delay": 0.01,
        "retry_max_delay": 0.05,
        "opsbot_lease_seconds": 5.0,
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    settings = make_settings(tmp_path)
    store = Store(settings.opsbot_database_url)
    yield Harness(store, settings)
    store.close()


def echo(**data: Any) -> dict[str, Any]:
    return {"type": "echo", "data": data}


async def test_priorities_respected(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, queue_workers=1)
    store = Store(settings.opsbot_database_url)
    h = Harness(store, settings)
    record = tmp_path / "order.jsonl"
    ids = await h.submit(
        *(
            {"type": "echo", "priority": p, "data": {"p": p, "record": str(record)}}
            for p in ("low", "normal", "high", "critical", "normal")
        )
    )
    await h.pool.start()
    try:
        await h.wait_for(ids, {"succeeded"})
    finally:
        await h.pool.stop(1.0)
        store.close()
    order = [json.loads(line)["p"] for line in record.read_text().splitlines()]
    assert order == ["critical", "high", "normal", "normal", "low"]


async def test_retries_then_success(harness: Harness) -> None:
    (action_id,) = await harness.submit(echo(fail="retryable", fail_times=2, key="r1"))
    await harness.pool.start()
    try:
        (view,) = await harness.wait_for([action_id], FINAL)
    finally:
        await harness.pool.stop(1.0)
    assert view["status"] == "succeeded"
    attempts = await harness.attempts(action_id)
    assert [a["outcome"] for a in attempts] == ["failed", "failed", "succeeded"]
    assert attempts[0]["error_kind"] == "RetryableError"


async def test_429_waits_at_least_retry_after(harness: Harness) -> None:
    ids = await harness.submit(echo(fail="rate_limited", fail_times=1, key="rl", retry_after=0.3))
    await harness.pool.start()
    try:
        (view,) = await harness.wait_for(ids, FINAL)
    finally:
        await harness.pool.stop(1.0)
    first, second = await harness.attempts(ids[0])
    assert (first["error_kind"], first["retry_after"], view["status"]) == (
        "RateLimited",
        0.3,
        "succeeded",
    )
    assert second["started_at"] - first["finished_at"] >= 0.3


async def test_permanent_failure_and_exhausted_retries_are_dead_lettered(
    harness: Harness,
) -> None:
    ids = await harness.submit(echo(fail="permanent"), echo(fail="retryable", key="always"))
    await harness.pool.start()
    try:
        permanent, exhausted = await harness.wait_for(ids, FINAL)
    finally:
        await harness.pool.stop(1.0)
    assert permanent["status"] == "dead_lettered"
    assert [a["error_kind"] for a in await harness.attempts(ids[0])] == ["PermanentError"]
    assert exhausted["status"] == "dead_lettered"
    tries = await harness.attempts(ids[1])
    assert len(tries) == 4  # 1 try + MAX_RETRY_ATTEMPTS=3 retries
    assert all(a["error"] and a["outcome"] == "failed" for a in tries)


async def test_open_breaker_holds_actions_without_spending_attempts(harness: Harness) -> None:
    failing = await harness.submit(
        *(echo(fail="retryable", fail_times=5, key="burst") for _ in range(5))
    )
    await harness.pool.start()
    try:
        await asyncio.wait_for(_until(lambda: harness.breakers.get("echo").state == OPEN), 10)
        (held,) = await harness.submit(echo(n="held"))
        await asyncio.sleep(0.5)  # several claim rounds while the circuit is open
        view = await harness.queue.get(held)
        assert view["status"] == "queued"
        assert not await harness.attempts(held)
        await harness.store.write(lambda c: reset_circuit(c, "echo", _now(), "test"))
        views = await harness.wait_for([held, *failing], FINAL, limit=10)
    finally:
        await harness.pool.stop(1.0)
    assert all(v["status"] == "succeeded" for v in views)
    assert len(await harness.attempts(held)) == 1


async def test_fallback_serves_create_task_while_notion_is_unavailable(
    harness: Harness,
) -> None:
    ids = await harness.submit(
        {"type": "create_task", "data": {"title": "Fix login", "description": "500s"}}
    )
    await harness.pool.start()
    try:
        (view,) = await harness.wait_for(ids, FINAL)
    finally:
        await harness.pool.stop(1.0)
    assert view["status"] == "succeeded"
    assert view["served_by"] == "trello"
    assert view["fallback_used"]
    assert harness.trello.cards == [{"name": "Fix login", "desc": "500s"}]


async def test_fallback_when_circuit_open(harness: Harness) -> None:
    class BrokenNotion(FakeTrello):
        platform = "notion"

        @property
        def operations(self) -> Mapping[str, Operation]:
            return {"create_task": self.fail, "update_task": self.fail}

        async def fail(self, data: JSON) -> JSON:
            raise RetryableError("503 from notion", status=503)

    harness.executors["notion"] = BrokenNotion()
    notion = harness.breakers.get("notion")
    for _ in range(5):
        notion.record_failure(RetryableError("503"))
    ids = await harness.submit(
        {"type": "create_task", "data": {"title": "T"}},
        {"type": "update_task", "data": {"page_id": "p1"}},
    )
    await harness.pool.start()
    try:
        (task,) = await harness.wait_for(ids[:1], FINAL)
        await asyncio.sleep(0.3)
        update = await harness.queue.get(ids[1])
    finally:
        await harness.pool.stop(1.0)
    assert (task["status"], task["served_by"], task["fallback_used"]) == (
        "succeeded",
        "trello",
        True,
    )
    assert update["status"] == "queued"  # waits for notion, no attempt spent
    assert harness.trello.cards == [{"name": "T"}]


async def test_clean_stop_releases_unfinished_actions(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, queue_workers=2)
    store = Store(settings.opsbot_database_url)
    h = Harness(store, settings)
    quick, *slow = await h.submit(echo(n=0), *(echo(delay=30, n=i) for i in range(1, 5)))
    await h.pool.start()
    await h.wait_for([quick], FINAL)
    await asyncio.wait_for(_until(lambda: h.pool.executed >= 1), 5)
    await h.pool.stop(0.2)
    views = [await h.queue.get(i) for i in slow]
    store.close()
    assert [v["status"] for v in views] == ["queued"] * 4
    assert all(v["lease_owner"] is None for v in views)


async def test_platform_disabled_here_is_left_queued_for_another_process(
    harness: Harness,
) -> None:
    ids = await harness.submit(
        {"type": "send_notification", "data": {"text": "hi"}}, echo(n="after")
    )
    await harness.pool.start()
    try:
        await harness.wait_for(ids[1:], FINAL)
        await asyncio.sleep(0.3)  # a few claim rounds
        view = await harness.queue.get(ids[0])
    finally:
        await harness.pool.stop(1.0)
    assert view["status"] == "queued"
    assert not await harness.attempts(ids[0])


async def test_rate_limit_holds_across_retries(harness: Harness) -> None:
    limiters = RateLimiters({"echo": (5, 0.5)})
    limiter = limiters.get("echo")
    assert limiter is not None
    grants: list[float] = []

    async def throttle() -> None:
        await limiter.acquire()
        grants.append(time.monotonic())  # the limiter's own clock

    harness.limiters = limiters
    harness.executors["echo"] = EchoExecutor(throttle)
    harness.breakers = Breakers(PLATFORMS, threshold=100)  # failures here are on purpose
    harness.pool = harness.make_pool()
    ids = await harness.submit(
        *(echo(fail="retryable", fail_times=1, key=f"k{i}") for i in range(8)),
        *(echo(n=i) for i in range(8)),
    )
    await harness.pool.start()
    try:
        views = await harness.wait_for(ids, FINAL, limit=20)
    finally:
        await harness.pool.stop(1.0)
    assert all(v["status"] == "succeeded" for v in views)
    assert len(grants) == 24  # 16 first attempts + 8 retries, each one acquired
    assert max(sum(1 for t in grants if start <= t < start + 0.5) for start in grants) <= 5


async def test_run_until_drained_ignores_platforms_served_elsewhere(harness: Harness) -> None:
    ids = await harness.submit(
        *(echo(n=i) for i in range(20)), {"type": "send_notification", "data": {"text": "x"}}
    )
    await asyncio.wait_for(harness.pool.run_until_drained(), 10)
    views = [await harness.queue.get(i) for i in ids]
    assert [v["status"] for v in views] == ["succeeded"] * 20 + ["queued"]


async def test_claim_batch_grows_for_fast_actions_only(harness: Harness) -> None:
    slow = await harness.submit(*(echo(delay=0.15, n=i) for i in range(30)))
    await harness.pool.start()
    try:
        await harness.wait_for(slow, FINAL)
        assert harness.pool.prefetch == harness.pool.min_prefetch  # nothing hoarded
        fast = await harness.submit(*(echo(n=i) for i in range(900)))
        await harness.wait_for(fast[-1:], FINAL)
        assert harness.pool.prefetch > harness.pool.min_prefetch
    finally:
        await harness.pool.stop(1.0)


async def test_slow_rate_limited_platform_does_not_hold_up_others(harness: Harness) -> None:
    harness.executors["slack"] = ThrottledSlack(harness.limiters.throttle("slack"))  # 1/s
    slack = await harness.submit(
        *({"type": "send_notification", "data": {"text": str(i)}} for i in range(12))
    )  # high priority: claimed first
    cards = await harness.submit(
        *({"type": "create_card", "data": {"name": str(i)}} for i in range(20))
    )
    await harness.pool.start()
    try:
        await harness.wait_for(cards, FINAL, limit=10)
        unfinished = [v for v in [await harness.queue.get(i) for i in slack]
                      if v["status"] not in FINAL]  # fmt: skip
    finally:
        await harness.pool.stop(0.1)  # the Slack backlog is released, not waited for
    assert len(unfinished) >= 8  # the cards did not wait for Slack's 1/s


def test_registry_always_has_echo_and_names_disabled_platforms(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    executors, disabled = build_executors(settings, RateLimiters(settings.rate_limits).throttle)
    assert "echo" in executors
    assert set(executors) | set(disabled) >= {"echo", *PLATFORMS} - {"echo"}
    assert all(reason for reason in disabled.values())


async def test_runtime_runs_actions_and_stops_services(tmp_path: Path) -> None:
    class Service:
        def __init__(self) -> None:
            self.events: list[str] = []

        async def start(self) -> None:
            self.events.append("start")

        async def stop(self) -> None:
            self.events.append("stop")

    service = Service()
    runtime = Runtime(make_settings(tmp_path))
    runtime.services.append(service)
    finals: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with runtime:
        runtime.queue.subscribe(lambda view: finals.put_nowait(view) if view["final"] else None)
        results = await runtime.queue.submit(parse_actions([echo(n=1)]))
        view = await asyncio.wait_for(finals.get(), 10)
        assert (view["id"], view["status"]) == (results[0].id, "succeeded")
        runtime.request_stop()
        await runtime.run_forever()
    assert service.events == ["start", "stop"]


async def test_runtime_runs_rollback_steps_of_any_platform(tmp_path: Path) -> None:
    """A workflow rollback submits "compensate" actions; the runtime's executors run them."""
    from bot.actions import ActionSpec
    from bot.routing import Priority
    from bot.workflows.rollback import COMPENSATE

    record = tmp_path / "effects.jsonl"
    runtime = Runtime(make_settings(tmp_path))
    async with runtime:
        (done,) = await runtime.queue.submit(parse_actions([echo(record=str(record))]))
        await runtime.intake.wait(done.id, 10)
        undo = ActionSpec(
            type=COMPENSATE, platform="echo", priority=Priority.HIGH,
            data={"type": "echo", "data": {"record": str(record)}, "result": {}},
        )  # fmt: skip
        (submitted,) = await runtime.queue.submit([undo])
        view = await runtime.intake.wait(submitted.id, 10)
    assert view["status"] == "succeeded", view.get("error")
    assert [line for line in record.read_text().splitlines() if "undo" in line]


async def _until(condition: Any) -> None:
    while not condition():  # noqa: ASYNC110 - polls in-memory state, bounded by the caller
        await asyncio.sleep(0.01)


def _now() -> float:
    return time.time()


async def test_keyed_operations_receive_the_action_key(harness: Harness) -> None:
    """An executor that deduplicates gets the action's idempotency key, else the action id."""

    class KeyedTrello(FakeTrello):
        keyed_operations = frozenset({"create_card"})

    harness.trello = KeyedTrello()
    harness.executors["trello"] = harness.trello
    harness.pool = harness.make_pool()
    ids = await harness.submit(
        {"type": "create_card", "data": {"name": "a"}, "idempotency_key": "bug-7"},
        {"type": "create_card", "data": {"name": "b"}},
    )
    await harness.pool.start()
    try:
        await harness.wait_for(ids, {"succeeded"})
    finally:
        await harness.pool.stop(1.0)
    keys = {card["name"]: card["idempotency_key"] for card in harness.trello.cards}
    assert keys == {"a": "bug-7", "b": ids[1]}


async def test_rate_limit_waits_do_not_count_against_the_attempt_timeout(
    harness: Harness,
) -> None:
    # Three actions at 1 request per 0.4 s: the last waits ~0.8 s for its grant, more than the
    # 0.3 s attempt timeout, and still succeeds at its first attempt.
    harness.limiters = RateLimiters({"echo": (1, 0.4)})
    harness.executors["echo"] = EchoExecutor(harness.limiters.throttle("echo"))
    pool = WorkerPool(
        harness.queue, harness.executors, harness.limiters, harness.breakers,
        RetryPolicy.from_settings(harness.settings), FallbackChain(harness.settings.fallbacks),
        harness.settings, store=harness.store, attempt_timeout=0.3,
    )  # fmt: skip
    ids = await harness.submit(*(echo(n=i) for i in range(3)))
    await pool.start()
    try:
        views = await harness.wait_for(ids, FINAL, limit=10)
    finally:
        await pool.stop(1.0)
    assert [v["status"] for v in views] == ["succeeded"] * 3
    assert [len(await harness.attempts(i)) for i in ids] == [1, 1, 1]


async def test_a_slow_platform_never_takes_the_only_general_worker(tmp_path: Path) -> None:
    # QUEUE_WORKERS=1: Slack (1/s) runs in its own lane, so the one general worker serves echo.
    settings = make_settings(tmp_path, queue_workers=1)
    store = Store(settings.opsbot_database_url)
    harness = Harness(store, settings)
    harness.executors["slack"] = ThrottledSlack(harness.limiters.throttle("slack"))
    harness.pool = harness.make_pool()
    await harness.submit(
        *({"type": "send_notification", "data": {"text": str(i)}} for i in range(6))
    )
    echoes = await harness.submit(*(echo(n=i) for i in range(30)))
    await harness.pool.start()
    try:
        views = await harness.wait_for(echoes, FINAL, limit=4)  # Slack's 6 need > 5 s
    finally:
        await harness.pool.stop(0.1)
        store.close()
    assert all(v["status"] == "succeeded" for v in views)
    assert harness.pool.workers > settings.queue_workers  # lanes have workers of their own
