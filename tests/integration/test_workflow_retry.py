"""A step's `retry` override is part of the step's submit: the action row carries it from the
insert on (no worker can claim it with the default budget, no crash can lose it), and a step
failing retryably is dead-lettered after exactly its own number of attempts (attempts table)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.queue import Queue
from bot.store.engine import Store
from bot.store.tables import ActionRow, AttemptRow
from bot.workflows.loader import loads
from bot.workflows.runner import WorkflowRunner
from tests.integration.test_workflow_runner import Bot

A = ActionRow.__table__  # type: ignore[attr-defined]
T = AttemptRow.__table__  # type: ignore[attr-defined]

# Two identical steps failing retryably, in parallel; only `strict` overrides the budget.
DEFINITION = """
flaky:
  timeout: 30
  steps:
    - name: strict
      retry: {max_retries: 0}
      continue_on_error: true
      action: {type: echo, data: {fail: retryable, key: strict}}
    - name: lenient
      continue_on_error: true
      action: {type: echo, data: {fail: retryable, key: lenient}}
"""


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"retry_initial_delay": 0.01, "retry_max_delay": 0.02, "max_retry_attempts": 2}


def flaky() -> Any:
    [workflow], problems = loads(DEFINITION, "flaky.yml")
    assert problems == []
    return workflow


def steps(store: Store, run_id: str) -> dict[str, tuple[str, int, int]]:
    """step -> (status, max_attempts, attempts recorded in the attempts table)."""
    attempts = select(func.count()).select_from(T).where(T.c.action_id == A.c.id).scalar_subquery()
    query = select(A.c.step_name, A.c.status, A.c.max_attempts, attempts).where(
        A.c.run_id == run_id
    )
    return {r[0]: (r[1], r[2], r[3]) for r in store.read_sync(lambda c: c.execute(query).all())}


class Crash(Exception):
    pass


class CrashAfterSubmit(Queue):
    """The process dies right after a submit commits: nothing else of that move is written."""

    async def submit(self, specs: list[Any], **kwargs: Any) -> Any:
        await super().submit(specs, **kwargs)
        raise Crash


async def test_the_override_survives_a_crash_right_after_the_submit(settings: Settings) -> None:
    store = Store(settings.opsbot_database_url)
    queue = CrashAfterSubmit(store, settings)
    try:
        runner = WorkflowRunner(store, queue, {"flaky": flaky()}, settings)
        with pytest.raises(Crash):
            await runner.start_run("flaky", {})
        [run_id] = store.read_sync(lambda c: c.execute(select(A.c.run_id)).scalars().all())
        assert steps(store, run_id) == {"strict": ("queued", 1, 0)}  # never claimable with 3
    finally:
        await queue.close()
        store.close()


async def test_max_retries_0_dead_letters_after_exactly_one_attempt(settings: Settings) -> None:
    async with Bot(settings, {"flaky": flaky()}, time.time) as bot:
        run = await bot.runner.start_run("flaky", {})
        view = await bot.runner.wait(run["id"], 15)
        assert view["status"] == "succeeded", view  # both steps may fail (continue_on_error)
        assert steps(bot.store, run["id"]) == {
            "strict": ("dead_lettered", 1, 1),
            "lenient": ("dead_lettered", 3, 3),  # the default: 1 + MAX_RETRY_ATTEMPTS
        }
