"""LIFO compensation of a run's completed steps, each as a queued action.

Order: the steps that succeeded, last completed first (finish time, then submission order).
One compensation at a time, each an action in the same queue (rate limits, breakers and retries
apply), keyed `run:<run>:undo<generation>:<step>` so a restarted runner finds it again:
- a step with a custom `compensate` action gets that action (its data may read the step's result);
- a step marked `compensate: none` is irreversible: named in the outcome, never attempted;
- any other step gets an action of type "compensate" on the platform that served it; the worker
  runs it with `run_compensation(executor, claimed.data)` (below), which calls the executor's
  `compensate` or reports the operation as irreversible. `WithCompensation(executor)` exposes
  that as the executor's "compensate" operation, so the worker needs no special case.
The first compensation that fails for good stops the rollback: the run ends in rollback_failed
with the steps rolled back, the ones not rolled back and why. retry-rollback starts a new
generation that skips what was already undone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from bot.actions import ActionInvalid, ActionSpec, parse_action
from bot.routing import Priority
from bot.workflows.definitions import ActionTemplate
from bot.workflows.journal import UNDO, StepAction, undo_key
from bot.workflows.state import Steps
from bot.workflows.templates import TemplateError, render
from executors.base import JSON, CheckResult, Executor, NotReversible, Operation

COMPENSATE = "compensate"  # the action type the worker hands to run_compensation


async def run_compensation(executor: Executor, data: JSON) -> JSON:
    """The worker's call for a claimed action of type "compensate" (data from `_default_spec`)."""
    action_type = str(data["type"])
    if not executor.reversible(action_type):
        reason = f"{executor.platform}.{action_type} cannot be undone"
        return {"irreversible": True, "reason": reason}
    try:
        undone = await executor.compensate(
            action_type, data.get("data") or {}, data.get("result") or {}
        )
    except NotReversible as exc:
        return {"irreversible": True, "reason": str(exc)}
    return {"undone": undone}


class WithCompensation:
    """An executor that also offers the "compensate" operation (run_compensation on itself).

    Wrapping every executor once where they are built (runtime / executors/registry.py) is the
    whole worker-side integration: the worker looks the type up in `operations` as usual.
    """

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.platform = inner.platform
        self.keyed_operations: frozenset[str] = getattr(inner, "keyed_operations", frozenset())

    @property
    def operations(self) -> Mapping[str, Operation]:
        return {**self.inner.operations, COMPENSATE: partial(run_compensation, self.inner)}

    def reversible(self, action_type: str) -> bool:
        return self.inner.reversible(action_type)

    async def compensate(self, action_type: str, data: JSON, result: JSON) -> JSON:
        return await self.inner.compensate(action_type, data, result)

    async def check(self) -> CheckResult:
        return await self.inner.check()

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Plan:
    """What to do next: wait for a compensation, submit one, or end (done / failed)."""

    outcome: Literal["wait", "submit", "done", "failed"]
    step: str | None = None
    spec: ActionSpec | None = None
    rolled_back: list[str] = field(default_factory=list)
    not_rolled_back: list[str] = field(default_factory=list)
    irreversible: list[dict[str, str]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "rolled_back": self.rolled_back,
            "not_rolled_back": self.not_rolled_back,
            "irreversible": self.irreversible,
            "errors": self.errors,
        }


def completion_order(steps: Steps) -> list[StepAction]:
    """Succeeded step actions, last completed first (LIFO)."""
    done = [a for a in steps.actions.values() if a.succeeded]
    return sorted(done, key=lambda a: (a.finished_at or 0.0, a.seq), reverse=True)


def plan(
    steps: Steps,
    undo: list[StepAction],
    run: dict[str, Any],
    generation: int,
    fallbacks: dict[tuple[str, str], tuple[str, str]],
) -> Plan:
    """Walk the completed steps in LIFO order and decide the next move."""
    out = Plan("done")
    order = completion_order(steps)
    for index, action in enumerate(order):
        name = action.step_name
        step = steps.workflow.step(name)
        if step.irreversible:
            out.irreversible.append({"step": name, "reason": "marked compensate: none"})
            continue
        mine = [u for u in undo if u.step_name == UNDO + name]
        earlier = next((u for u in mine if u.succeeded), None)
        if earlier is not None:
            _note_done(out, name, earlier)
            continue
        current = next(
            (u for u in mine if u.idempotency_key == undo_key(run["id"], generation, name)), None
        )
        if current is not None and not current.final:
            out.outcome, out.step = "wait", name
            return out
        if current is not None:  # failed for good in this generation
            return _failed(out, order[index:], name, current.error or current.status)
        try:
            out.spec = _spec(steps, action, run, generation, fallbacks)
        except (TemplateError, ActionInvalid) as exc:
            return _failed(out, order[index:], name, f"compensation not built: {exc}")
        out.outcome, out.step = "submit", name
        return out
    return out


def _note_done(out: Plan, name: str, undo: StepAction) -> None:
    result = undo.result if isinstance(undo.result, dict) else {}
    if result.get("irreversible"):
        out.irreversible.append({"step": name, "reason": str(result.get("reason", ""))})
    else:
        out.rolled_back.append(name)


def _failed(out: Plan, left: list[StepAction], name: str, why: str) -> Plan:
    out.outcome, out.step = "failed", name
    out.errors[name] = why
    out.not_rolled_back = [a.step_name for a in left]
    return out


def _spec(
    steps: Steps,
    action: StepAction,
    run: dict[str, Any],
    generation: int,
    fallbacks: dict[tuple[str, str], tuple[str, str]],
) -> ActionSpec:
    name = action.step_name
    step = steps.workflow.step(name)
    key = undo_key(run["id"], generation, name)
    reason = f"rollback of step {name} (run {run['id']})"
    if isinstance(step.compensate, ActionTemplate):
        data = render(step.compensate.data, steps.context(run))
        raw = {**step.compensate.to_dict(), "data": data, "idempotency_key": key,
               "source": "workflow", "reason": reason}  # fmt: skip
        return parse_action(raw)
    platform, action_type = action.platform, action.type
    if action.served_by and action.served_by != action.platform:
        # A fallback served it: undo on the platform that really holds the object.
        platform, action_type = fallbacks.get(
            (action.platform, action.type), (platform, action_type)
        )
    data = {"step": name, "action_id": action.id, "type": action_type,
            "data": action.data, "result": action.result}  # fmt: skip
    return ActionSpec(
        type=COMPENSATE, platform=platform, data=data, priority=Priority.HIGH,
        idempotency_key=key, source="workflow", reason=reason,
    )  # fmt: skip
