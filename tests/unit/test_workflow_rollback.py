"""The rollback planner (pure) and the worker-side compensation call."""

from __future__ import annotations

from typing import Any

from bot.workflows.definitions import IRREVERSIBLE, Workflow
from bot.workflows.journal import StepAction, undo_key
from bot.workflows.rollback import COMPENSATE, WithCompensation, plan, run_compensation
from bot.workflows.state import split
from executors.base import JSON, NotReversible
from executors.echo import EchoExecutor

RUN = {"id": "r1", "name": "w", "version": 1, "started_at": 0.0, "input": {}}


def act(
    step: str, status: str = "succeeded", finished: float | None = 1.0, **kw: Any
) -> StepAction:
    values: dict[str, Any] = {
        "id": f"a-{step}", "seq": int((finished or 9) * 10), "step_name": step, "type": "echo",
        "platform": "echo", "status": status, "data": {"x": step}, "result": {"id": step},
        "error": None, "error_kind": None, "attempts": 1, "created_at": 0.0, "started_at": 0.0,
        "finished_at": finished, "served_by": "echo", "idempotency_key": None,
    }  # fmt: skip
    values.update(kw)
    return StepAction(**values)


def wf() -> Workflow:
    return (
        Workflow("w", transactional=True)
        .add_step("a", {"type": "echo"})
        .add_step("b", {"type": "echo"})
        .add_step("c", {"type": "echo"}, depends_on=["a", "b"])
    )


def test_lifo_by_completion_time_not_definition_order() -> None:
    # b finished before a (parallel branches): undo a first, then b; c failed: nothing to undo.
    actions = [act("a", finished=3.0), act("b", finished=2.0), act("c", "dead_lettered", 4.0)]
    steps, undo = split(wf(), actions, {})
    first = plan(steps, undo, RUN, 0, {})
    assert (first.outcome, first.step) == ("submit", "a")
    assert first.spec is not None and first.spec.type == COMPENSATE
    assert first.spec.idempotency_key == undo_key("r1", 0, "a")
    assert first.spec.data["result"] == {"id": "a"}
    done_a = act("undo:a", finished=5.0, idempotency_key=undo_key("r1", 0, "a"), result={})
    steps, undo = split(wf(), [*actions, done_a], {})
    second = plan(steps, undo, RUN, 0, {})
    assert (second.outcome, second.step, second.rolled_back) == ("submit", "b", ["a"])


def test_waits_for_a_running_compensation_and_stops_at_a_failed_one() -> None:
    actions = [act("a", finished=1.0), act("b", finished=2.0)]
    running = act("undo:b", "running", None, idempotency_key=undo_key("r1", 0, "b"))
    steps, undo = split(wf(), [*actions, running], {})
    assert plan(steps, undo, RUN, 0, {}).outcome == "wait"
    dead = act("undo:b", "dead_lettered", 3.0, idempotency_key=undo_key("r1", 0, "b"),
               error="boom")  # fmt: skip
    steps, undo = split(wf(), [*actions, dead], {})
    failed = plan(steps, undo, RUN, 0, {})
    assert failed.outcome == "failed"
    assert failed.summary() == {
        "rolled_back": [], "not_rolled_back": ["b", "a"], "irreversible": [],
        "errors": {"b": "boom"},
    }  # fmt: skip
    # retry-rollback: a new generation submits b's compensation again
    retried = plan(steps, undo, RUN, 1, {})
    assert (retried.outcome, retried.step) == ("submit", "b")


def test_irreversible_by_definition_and_by_executor_answer() -> None:
    definition = (
        Workflow("w")
        .add_step("a", {"type": "echo"}, compensate=IRREVERSIBLE)
        .add_step("b", {"type": "echo"})
    )
    actions = [
        act("a", finished=1.0),
        act("b", finished=2.0),
        act("undo:b", finished=3.0, idempotency_key=undo_key("r1", 0, "b"),
            result={"irreversible": True, "reason": "echo.echo cannot be undone"}),
    ]  # fmt: skip
    steps, undo = split(definition, actions, {})
    done = plan(steps, undo, RUN, 0, {})
    assert done.outcome == "done"
    assert [i["step"] for i in done.irreversible] == ["b", "a"]


def test_compensation_goes_to_the_platform_that_served_a_fallback() -> None:
    definition = Workflow("w").add_step("t", {"type": "create_task", "data": {"title": "x"}})
    served = act("t", type="create_task", platform="notion", served_by="trello")
    steps, undo = split(definition, [served], {})
    fallbacks = {("notion", "create_task"): ("trello", "create_card")}
    step = plan(steps, undo, RUN, 0, fallbacks)
    assert step.spec is not None
    assert (step.spec.platform, step.spec.data["type"]) == ("trello", "create_card")


def test_custom_compensation_reads_the_step_result() -> None:
    definition = Workflow("w").add_step(
        "card", {"type": "create_card", "data": {"name": "n"}},
        compensate={"type": "archive_card", "data": {"card_id": "{{ steps.card.result.id }}"}},
    )  # fmt: skip
    steps, undo = split(definition, [act("card", type="create_card", platform="trello")], {})
    step = plan(steps, undo, RUN, 0, {})
    assert step.spec is not None
    assert (step.spec.type, step.spec.data) == ("archive_card", {"card_id": "card"})


class OneWay(EchoExecutor):
    def reversible(self, action_type: str) -> bool:
        return False


class Refuses(EchoExecutor):
    async def compensate(self, action_type: str, data: JSON, result: JSON) -> JSON:
        raise NotReversible("gone for good", platform="echo")


async def test_run_compensation() -> None:
    data = {"type": "echo", "data": {"x": 1}, "result": {"echo": {"x": 1}}}
    assert await run_compensation(EchoExecutor(), data) == {
        "undone": {"undone": {"echo": {"x": 1}}}
    }
    assert (await run_compensation(OneWay(), data))["irreversible"] is True
    assert await run_compensation(Refuses(), data) == {
        "irreversible": True,
        "reason": "gone for good",
    }
    wrapped = WithCompensation(EchoExecutor())
    assert set(wrapped.operations) == {"echo", COMPENSATE}
    assert (await wrapped.operations[COMPENSATE](data))["undone"]
