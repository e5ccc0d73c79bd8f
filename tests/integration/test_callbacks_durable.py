"""Outcome callbacks survive stops and crashes: what became final while no dispatcher ran is
told when one starts, what was told is not told again after a restart, and a receiver that
refuses for good is given up once and recorded (bot.callbacks, bot.callback_ledger)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot import callback_ledger as ledger
from bot.actions import parse_action
from bot.app import compose
from bot.callbacks import CallbackDispatcher
from bot.config import Settings
from bot.outcomes import Outcome
from bot.queue import Queue
from bot.runtime import Runtime
from bot.store.engine import Store
from bot.workflows.service import WorkflowService
from tests.integration.test_web import Receiver, receiver_url  # noqa: F401 - the fixture

SECRET = "durable-callback-secret"


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "workflows.yml").write_text(
        "name: one-step\nsteps:\n  - name: only\n    action: {type: echo, data: {n: 1}}\n"
    )
    return {
        "opsbot_api_token": SecretStr("durable-api-token"),
        "opsbot_callback_secret": SecretStr(SECRET),
        "opsbot_workflows": str(tmp_path / "workflows.yml"),
        "opsbot_http_port": 0,
    }


async def finish_action(queue: Queue, url: str, kind: str = "succeeded") -> str:
    """An echo action with a callback_url made final by a queue no dispatcher listens to."""
    (submitted,) = await queue.submit([parse_action({"type": "echo", "callback_url": url})])
    (claimed,) = await queue.claim("other-process", 1)
    now = queue.clock()
    await queue.record([Outcome(claimed.id, kind, now, now, "other-process",  # type: ignore[arg-type]
                                result={"ok": True}, error="400 no")])  # fmt: skip
    return submitted.id


async def dispatch_once(queue: Queue, **kwargs: Any) -> CallbackDispatcher:
    """A dispatcher started (recovery sweep included), flushed and stopped: one process life."""
    dispatcher = CallbackDispatcher(queue, SECRET, **kwargs)
    dispatcher.start()
    await dispatcher.flush(10)
    await dispatcher.stop()
    return dispatcher


async def deliveries(store: Store) -> list[dict[str, Any]]:
    return await store.read(ledger.rows)


async def test_an_outcome_nobody_told_is_told_once_a_dispatcher_starts_and_never_again(
    store: Store,
    settings: Settings,
    receiver_url: Any,  # noqa: F811 - the imported fixture
) -> None:
    receiver = Receiver(SECRET)
    url = await receiver_url(receiver)
    queue = Queue(store, settings)
    action_id = await finish_action(queue, url)
    assert receiver.calls == 0
    await dispatch_once(queue)
    (told,) = receiver.received
    assert (told["id"], told["status"], told["result"]) == (action_id, "succeeded", {"ok": True})
    (row,) = await deliveries(store)
    assert (row["subject_id"], row["state"], row["attempts"]) == (action_id, "delivered", 1)
    await dispatch_once(queue)  # a restart
    assert receiver.calls == 1
    await queue.close()


async def test_a_refusing_receiver_is_given_up_and_not_retried_after_a_restart(
    store: Store,
    settings: Settings,
    receiver_url: Any,  # noqa: F811 - the imported fixture
) -> None:
    receiver = Receiver("another-secret")  # our signature is refused: 401, for good
    url = await receiver_url(receiver)
    queue = Queue(store, settings)
    action_id = await finish_action(queue, url, kind="dead")
    await dispatch_once(queue)
    assert receiver.calls == 1
    (row,) = await deliveries(store)
    assert (row["subject_id"], row["status"]) == (action_id, "dead_lettered")
    assert (row["state"], row["last_result"], row["done_at"] is not None) == (
        "gave_up",
        "401",
        True,
    )
    await dispatch_once(queue)
    assert receiver.calls == 1
    await queue.close()


async def test_a_claim_whose_owner_died_is_taken_over_after_its_lease(store: Store) -> None:
    key = ("action", "act_x", "succeeded", 5.0)
    first = await store.write(lambda c: ledger.claim(c, [key], "dead-owner", 100.0, 60.0))
    assert first == {key: 0}
    await store.write(lambda c: ledger.record(c, key, "dead-owner", {"attempts": 3}))
    early = await store.write(lambda c: ledger.claim(c, [key], "heir", 150.0, 60.0))
    late = await store.write(lambda c: ledger.claim(c, [key], "heir", 161.0, 60.0))
    assert (early, late) == ({}, {key: 3})  # the heir goes on from attempt 4
    (row,) = await deliveries(store)
    assert (row["owner"], row["lease_expires_at"]) == ("heir", 221.0)


async def test_a_run_finished_with_no_dispatcher_is_told_after_a_restart_once(
    settings: Settings,
    receiver_url: Any,  # noqa: F811 - the imported fixture
) -> None:
    receiver = Receiver(SECRET)
    url = await receiver_url(receiver)
    bare = Runtime(settings)  # workflows only: no surface, so no callbacks
    bare.services.append(WorkflowService(bare))
    async with bare:
        assert bare.runner is not None
        run = await bare.runner.start_run("one-step", callback_url=url)
        assert (await bare.runner.wait(run["id"], 10))["status"] == "succeeded"
    assert receiver.calls == 0
    for _ in range(2):  # `opsbot run`, stopped, started again
        runtime = Runtime(settings)
        compose(runtime)
        async with runtime:
            await asyncio.wait_for(receiver.got.wait(), 10)
            callbacks = runtime_callbacks(runtime)
            await callbacks.flush(10)
    (told,) = receiver.received
    assert (told["kind"], told["id"], told["status"]) == ("workflow_run", run["id"], "succeeded")
    assert told["delivery_attempt"] == 1


def runtime_callbacks(runtime: Runtime) -> CallbackDispatcher:
    from bot.surface import Surface

    (surface,) = [s for s in runtime.services if isinstance(s, Surface)]
    assert surface.callbacks is not None
    return surface.callbacks
