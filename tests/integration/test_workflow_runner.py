"""The workflow runner on a real SQLite store, the real queue and worker pool, echo actions.

Outcomes are checked in the store (run rows, action rows) and in the echo platform's record
file (one JSON line per execution and per undo), so "executed once" and "undone in LIFO order"
are facts about side effects, not about calls on mocks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.flow.breaker import Breakers
from bot.flow.fallback import FallbackChain
from bot.flow.ratelimit import RateLimiters
from bot.flow.retry import RetryPolicy
from bot.queue import Queue
from bot.routing import PLATFORMS
from bot.store.engine import Store
from bot.worker import WorkerPool
from bot.workflows.definitions import IRREVERSIBLE, Workflow
from bot.workflows.rollback import WithCompensation
from bot.workflows.runner import RunRefused, WorkflowRunner
from executors.echo import EchoExecutor


class Bot:
    """Store + queue + worker pool + runner, as the runtime wires them."""

    def __init__(self, settings: Settings, workflows: dict[str, Workflow], clock: Any) -> None:
        self.store = Store(settings.opsbot_database_url)
        self.queue = Queue(self.store, settings)
        limiters = RateLimiters(settings.rate_limits)
        echo = WithCompensation(EchoExecutor(limiters.throttle("echo")))
        self.pool = WorkerPool(
            self.queue, {"echo": echo}, limiters,
            Breakers(PLATFORMS, clock=time.time), RetryPolicy.from_settings(settings),
            FallbackChain(settings.fallbacks), settings, store=self.store,
        )  # fmt: skip
        self.runner = WorkflowRunner(
            self.store, self.queue, workflows, settings, clock, sweep_interval=0.05
        )
        self.closed = False

    async def __aenter__(self) -> Bot:
        await self.pool.start()
        await self.runner.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.closed:
            return
        self.closed = True
        await self.runner.stop()
        await self.pool.stop(1.0)
        await self.queue.close()
        self.store.close()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"retry_initial_delay": 0.01, "retry_max_delay": 0.02, "max_retry_attempts": 1}


@pytest.fixture
def record(tmp_path: Path) -> Path:
    return tmp_path / "effects.jsonl"


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def echo(record: Path, step: str, **extra: Any) -> dict[str, Any]:
    return {"type": "echo", "data": {"step": step, "record": str(record), **extra}}


def chain(record: Path, *, fail_at: str | None = None, **options: Any) -> Workflow:
    wf = Workflow("chain", transactional=True, timeout=30, **options)
    wf = wf.add_step("s1", echo(record, "s1", n=1))
    wf = wf.add_step("s2", echo(record, "s2", prev="{{ steps.s1.result.echo.n }}"), depends_on="s1")
    extra = {"fail": "permanent"} if fail_at == "s3" else {}
    return wf.add_step("s3", echo(record, "s3", **extra), depends_on="s2")


@pytest.fixture
async def bot_for(settings: Settings, clock: Any) -> AsyncIterator[Any]:
    bots: list[Bot] = []

    async def make(*workflows: Workflow, real_clock: bool = True) -> Bot:
        bot = Bot(settings, {w.name: w for w in workflows}, time.time if real_clock else clock)
        bots.append(await bot.__aenter__())
        return bot

    yield make
    for bot in bots:
        await bot.__aexit__()


async def test_steps_run_in_order_with_results_flowing(bot_for: Any, record: Path) -> None:
    bot = await bot_for(chain(record))
    started = await bot.runner.start_run("chain", {}, actor="ann")
    view = await bot.runner.wait(started["id"], 10)
    assert view["status"] == "succeeded", view
    assert view["completed"] == ["s1", "s2", "s3"] and view["remaining"] == []
    assert [e["step"] for e in lines(record)] == ["s1", "s2", "s3"]
    assert lines(record)[1]["prev"] == 1  # the whole-value template kept the int
    assert view["steps"][1]["result"]["echo"]["prev"] == 1
    assert view["version"] == 1 and view["duration_s"] >= 0


async def test_failure_at_step_3_rolls_back_2_then_1(bot_for: Any, record: Path) -> None:
    bot = await bot_for(chain(record, fail_at="s3"))
    view = await bot.runner.wait((await bot.runner.start_run("chain"))["id"], 10)
    assert view["status"] == "rolled_back", view
    assert view["error"].startswith("step s3 failed: ")
    assert view["rollback"]["rolled_back"] == ["s2", "s1"]
    undone = [e["undo"]["step"] for e in lines(record) if "undo" in e]
    assert undone == ["s2", "s1"]


async def test_failing_compensation_gives_rollback_failed(bot_for: Any, record: Path) -> None:
    wf = (
        Workflow("t", transactional=True)
        .add_step("s1", echo(record, "s1", fail_compensation=True))
        .add_step("s2", echo(record, "s2"), depends_on="s1")
        .add_step("s3", echo(record, "s3", fail="permanent"), depends_on="s2")
    )
    bot = await bot_for(wf)
    run_id = (await bot.runner.start_run("t"))["id"]
    view = await bot.runner.wait(run_id, 10)
    assert view["status"] == "rollback_failed", view
    outcome = view["rollback"]
    assert outcome["rolled_back"] == ["s2"]
    assert outcome["not_rolled_back"] == ["s1"]
    assert "compensation failed on purpose" in outcome["errors"]["s1"]
    again = await bot.runner.retry_rollback(run_id, actor="ops")
    again = await bot.runner.wait(run_id, 10)
    assert again["status"] == "rollback_failed" and again["rollback"]["rolled_back"] == ["s2"]
    assert [e["undo"]["step"] for e in lines(record) if "undo" in e] == ["s2"]  # s2 undone once
    resolved = await bot.runner.resolve(run_id, "ops", "deleted s1 by hand")
    assert (resolved["status"], resolved["comment"]) == ("resolved", "deleted s1 by hand")


async def test_irreversible_steps_are_named(bot_for: Any, record: Path) -> None:
    wf = (
        Workflow("i", transactional=True)
        .add_step("s1", echo(record, "s1"))
        .add_step("s2", echo(record, "s2"), depends_on="s1", compensate=IRREVERSIBLE)
        .add_step("s3", echo(record, "s3", fail="permanent"), depends_on="s2")
    )
    bot = await bot_for(wf)
    view = await bot.runner.wait((await bot.runner.start_run("i"))["id"], 10)
    assert view["status"] == "rolled_back"
    assert view["rollback"]["irreversible"] == [{"step": "s2", "reason": "marked compensate: none"}]
    assert view["rollback"]["rolled_back"] == ["s1"]


async def test_parallel_branches_overlap(bot_for: Any, record: Path) -> None:
    wf = (
        Workflow("p")
        .add_step("a", echo(record, "a"))
        .add_step("b", echo(record, "b", delay=0.3), depends_on="a")
        .add_step("c", echo(record, "c", delay=0.3), depends_on="a")
        .add_step(
            "d", echo(record, "d", got="{{ steps.b.result.echo.step }}"), depends_on=["b", "c"]
        )
    )
    bot = await bot_for(wf)
    view = await bot.runner.wait((await bot.runner.start_run("p"))["id"], 10)
    assert view["status"] == "succeeded", view
    b, c = view["steps"][1], view["steps"][2]
    assert b["started_at"] < c["finished_at"] and c["started_at"] < b["finished_at"]
    assert lines(record)[-1]["step"] == "d"


async def test_continue_on_error_does_not_fail_the_run(bot_for: Any, record: Path) -> None:
    wf = (
        Workflow("g")
        .add_step("task", echo(record, "task"))
        .add_step(
            "notify",
            echo(record, "notify", fail="permanent"),
            depends_on="task",
            continue_on_error=True,
        )
        .add_step("log", echo(record, "log"), depends_on="notify")
    )
    bot = await bot_for(wf)
    view = await bot.runner.wait((await bot.runner.start_run("g"))["id"], 10)
    assert view["status"] == "succeeded", view
    assert view["failed"] == ["notify"] and view["completed"] == ["task", "log"]
    assert view["steps"][1]["error"]


async def test_run_idempotency_key_returns_the_existing_run(bot_for: Any, record: Path) -> None:
    wf = Workflow("m", idempotency_key="meeting-{{ input.date }}", inputs=("date",)).add_step(
        "s", echo(record, "s")
    )
    bot = await bot_for(wf)
    first = await bot.runner.start_run("m", {"date": "2025-10-17"})
    done = await bot.runner.wait(first["id"], 10)
    again = await bot.runner.start_run("m", {"date": "2025-10-17"})
    assert again["duplicate"] is True and again["id"] == first["id"]
    assert again["result"] == done["result"] and again["status"] == "succeeded"
    assert len(lines(record)) == 1
    with pytest.raises(RunRefused, match="missing input"):
        await bot.runner.start_run("m", {})


async def test_restart_resumes_without_rerunning_finished_steps(bot_for: Any, record: Path) -> None:
    wf = (
        Workflow("r")
        .add_step("s1", echo(record, "s1"))
        .add_step("s2", echo(record, "s2"), depends_on="s1", requires_approval=True)
        .add_step("s3", echo(record, "s3"), depends_on="s2")
    )
    first = await bot_for(wf)
    run_id = (await first.runner.start_run("r"))["id"]
    approval = await _wait_for_step(first, run_id, "s2", "awaiting_approval")
    await first.__aexit__()  # the process goes away with s2 waiting for a human
    second = await bot_for(wf)
    await second.queue.decide(approval, True, actor="ann")
    view = await second.runner.wait(run_id, 10)
    assert view["status"] == "succeeded", view
    assert [e["step"] for e in lines(record)] == ["s1", "s2", "s3"]  # each executed once


async def _wait_for_step(bot: Bot, run_id: str, step: str, status: str) -> str:
    for _ in range(200):
        view = await bot.runner.state(run_id)
        item = next(s for s in view["steps"] if s["name"] == step)
        if item["status"] == status:
            return str(item["action_id"])
        await asyncio.sleep(0.02)
    raise AssertionError(f"{step} never reached {status}")


async def test_timeout_cancels_waiting_steps(bot_for: Any, record: Path, clock: Any) -> None:
    wf = (
        Workflow("slow", timeout=60)
        .add_step("s1", echo(record, "s1"))
        .add_step("s2", echo(record, "s2"), depends_on="s1", requires_approval=True)
    )
    bot = await bot_for(wf, real_clock=False)
    run_id = (await bot.runner.start_run("slow"))["id"]
    await _wait_for_step(bot, run_id, "s2", "awaiting_approval")
    clock.advance(61)
    await bot.runner.sweep()
    view = await bot.runner.state(run_id)
    assert view["status"] == "timed_out" and view["error"] == "timed out after 60s"
    assert view["steps"][1]["status"] == "failed"  # cancelled
    assert [e["step"] for e in lines(record)] == ["s1"]


async def test_forced_rollback_of_a_finished_run(bot_for: Any, record: Path) -> None:
    bot = await bot_for(chain(record))
    run_id = (await bot.runner.start_run("chain"))["id"]
    await bot.runner.wait(run_id, 10)
    with pytest.raises(RunRefused, match="only by force"):
        await bot.runner.rollback(run_id, "ops")
    await bot.runner.rollback(run_id, "ops", force=True)
    view = await bot.runner.wait(run_id, 10)
    assert view["status"] == "rolled_back"
    assert view["rollback"]["rolled_back"] == ["s3", "s2", "s1"]


async def test_template_error_at_run_time_fails_the_step(bot_for: Any, record: Path) -> None:
    wf = (
        Workflow("x")
        .add_step("s1", echo(record, "s1"))
        .add_step("s2", echo(record, "s2", v="{{ steps.s1.result.nope }}"), depends_on="s1")
    )
    bot = await bot_for(wf)
    view = await bot.runner.wait((await bot.runner.start_run("x"))["id"], 10)
    assert view["status"] == "failed"
    assert "steps.s1.result has no key 'nope'" in view["error"]
    assert view["steps"][1]["status"] == "skipped"


async def test_a_run_keeps_the_version_it_started_with(bot_for: Any, record: Path) -> None:
    v1 = (
        Workflow("v")
        .add_step("s1", echo(record, "s1"))
        .add_step("s2", echo(record, "s2"), depends_on="s1", requires_approval=True)
    )
    bot = await bot_for(v1)
    run_id = (await bot.runner.start_run("v"))["id"]
    approval = await _wait_for_step(bot, run_id, "s2", "awaiting_approval")
    v2 = v1.add_step("s3", echo(record, "s3"), depends_on="s2")  # the file was edited
    bot.runner.workflows = {"v": v2}
    await bot.queue.decide(approval, True, actor="ann")
    view = await bot.runner.wait(run_id, 10)
    assert (view["status"], view["version"], view["completed"]) == ("succeeded", 1, ["s1", "s2"])
    newer = (await bot.runner.start_run("v"))["id"]
    assert (await bot.runner.state(newer))["version"] == 2
