"""The in-process producer API: submit, wait for the outcome, subscribe."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.actions import ActionInvalid
from bot.intake import Intake
from bot.queue import Outcome, Queue
from bot.store.engine import Store
from tests.conftest import FakeClock


async def finish(queue: Queue, clock: FakeClock, kind: str = "succeeded") -> None:
    claimed = await queue.claim("w", 100)
    await queue.record(
        [Outcome(c.id, kind, clock(), clock(), "w", result=c.data, error=None) for c in claimed]  # type: ignore[arg-type]
    )


async def test_submit_one_and_many(queue: Queue) -> None:
    intake = Intake(queue)
    one = await intake.submit({"type": "echo", "data": {"a": 1}}, actor="agent")
    many = await intake.submit([{"type": "echo"}, {"type": "echo"}])
    assert isinstance(one, str) and one.startswith("act_")
    assert len(many) == 2 and len({one, *many}) == 3
    assert (await queue.get(one))["history"][0]["actor"] == "agent"


async def test_invalid_never_reaches_the_store(queue: Queue, store: Store) -> None:
    intake = Intake(queue)
    with pytest.raises(ActionInvalid):
        await intake.submit([{"type": "echo"}, {"type": "bogus"}])
    assert await queue.claim("w", 10) == []


async def test_wait_returns_the_final_view(queue: Queue, clock: FakeClock) -> None:
    intake = Intake(queue)
    action_id = await intake.submit({"type": "echo", "data": {"v": 7}})
    waiter = asyncio.create_task(intake.wait(action_id, timeout=10))
    await asyncio.sleep(0)
    await finish(queue, clock)
    view = await asyncio.wait_for(waiter, 5)
    assert view["status"] == "succeeded" and view["result"] == {"v": 7}
    assert view["attempt_history"][0]["outcome"] == "succeeded"


async def test_wait_on_an_already_final_action(queue: Queue, clock: FakeClock) -> None:
    intake = Intake(queue)
    action_id = await intake.submit({"type": "echo"})
    await finish(queue, clock, "dead")
    assert (await intake.wait(action_id, timeout=1))["status"] == "dead_lettered"


async def test_wait_times_out(queue: Queue) -> None:
    intake = Intake(queue)
    action_id = await intake.submit({"type": "echo"})
    with pytest.raises(TimeoutError, match="still queued"):
        await intake.wait(action_id, timeout=0.05)


async def test_wait_sees_an_outcome_recorded_by_another_process(
    queue: Queue, settings: Any, clock: FakeClock
) -> None:
    intake = Intake(queue)
    action_id = await intake.submit({"type": "echo"})
    other = Queue(Store(settings.opsbot_database_url), settings, clock=clock)
    waiter = asyncio.create_task(intake.wait(action_id, timeout=10))
    await asyncio.sleep(0)
    await finish(other, clock)  # not on this process's bus
    assert (await asyncio.wait_for(waiter, 5))["status"] == "succeeded"
    await other.close()
    other.store.close()


async def test_subscribers_get_outcomes_sync_and_async(queue: Queue, clock: FakeClock) -> None:
    intake = Intake(queue)
    plain: list[str] = []
    done = asyncio.Event()
    seen_async: list[str] = []

    async def on_outcome(view: dict[str, Any]) -> None:
        seen_async.append(view["status"])
        done.set()

    intake.subscribe(lambda view: plain.append(view["status"]))
    unsubscribe = intake.subscribe(on_outcome)
    await intake.submit({"type": "echo"})
    await finish(queue, clock)
    await asyncio.wait_for(done.wait(), 5)
    assert plain == ["succeeded"] and seen_async == ["succeeded"]
    unsubscribe()
    await intake.submit({"type": "echo"})
    await finish(queue, clock)
    assert plain == ["succeeded", "succeeded"] and seen_async == ["succeeded"]


async def test_duplicate_submit_returns_the_first_id(queue: Queue) -> None:
    intake = Intake(queue)
    first = await intake.submit({"type": "echo", "idempotency_key": "k1"})
    again = await intake.submit_results({"type": "echo", "idempotency_key": "k1"})
    assert again[0].id == first and again[0].duplicate
