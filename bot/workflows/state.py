"""Pure views of a run: each step's state from its journal, what can start, the run's view.

Nothing here touches the store or the clock: the runner reads the run row and its actions,
then asks these functions what is true and what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.workflows.definitions import Step, Workflow
from bot.workflows.journal import UNDO, StepAction


@dataclass(frozen=True)
class Steps:
    """The steps of one run, by state. `actions` maps step name -> its action (if submitted)."""

    workflow: Workflow
    actions: dict[str, StepAction]
    skipped: dict[str, str]  # step -> why it never became an action

    def status(self, step: Step) -> str:
        action = self.actions.get(step.name)
        if action is not None:
            return "failed" if action.failed else action.status
        return "skipped" if step.name in self.skipped else "pending"

    def settled(self, step: Step) -> bool:
        """Finished one way or the other (its dependents may look at it)."""
        action = self.actions.get(step.name)
        return step.name in self.skipped or (action is not None and action.final)

    def ok_for_dependents(self, step: Step) -> bool:
        action = self.actions.get(step.name)
        if action is not None and action.succeeded:
            return True
        return step.continue_on_error and self.settled(step)

    def fatal(self) -> list[str]:
        """Steps whose failure fails the run (continue_on_error ones never do)."""
        return [
            s.name
            for s in self.workflow.steps
            if not s.continue_on_error and self.settled(s) and not self._succeeded(s)
        ]

    def in_flight(self) -> list[str]:
        return [
            name
            for name, action in self.actions.items()
            if not action.final and name in self._names()
        ]

    def ready(self) -> list[Step]:
        """Not started, every dependency done (succeeded, or failed with continue_on_error)."""
        return [
            s
            for s in self.workflow.steps
            if s.name not in self.actions
            and s.name not in self.skipped
            and all(self.ok_for_dependents(self.workflow.step(d)) for d in s.depends_on)
        ]

    def all_settled(self) -> bool:
        return all(self.settled(s) for s in self.workflow.steps)

    def results(self) -> dict[str, Any]:
        return {n: a.result for n, a in self.actions.items() if a.succeeded}

    def context(self, run: dict[str, Any]) -> dict[str, Any]:
        """What templates can see: input, steps.<name>.result of succeeded steps, run."""
        return {
            "input": run["input"],
            "steps": {name: {"result": result} for name, result in self.results().items()},
            "run": {
                "id": run["id"],
                "name": run["name"],
                "version": run["version"],
                "started_at": run["started_at"],
                # A readable time for sheets and messages (templates run no code to format one).
                "started_at_iso": _iso(run["started_at"]),
            },
        }

    def _succeeded(self, step: Step) -> bool:
        action = self.actions.get(step.name)
        return action is not None and action.succeeded

    def _names(self) -> set[str]:
        return {s.name for s in self.workflow.steps}


def split(
    workflow: Workflow, actions: list[StepAction], skipped: dict[str, str]
) -> tuple[Steps, list[StepAction]]:
    """(steps, compensations) from a run's action rows."""
    steps = {a.step_name: a for a in actions if not a.step_name.startswith(UNDO)}
    undo = [a for a in actions if a.step_name.startswith(UNDO)]
    return Steps(workflow, steps, skipped), undo


def run_view(
    run: dict[str, Any], steps: Steps, undo: list[StepAction], now: float
) -> dict[str, Any]:
    """The run's state: status, completed/current/remaining steps, each step's outcome, timings."""
    items = [_step_view(s, steps) for s in steps.workflow.steps]
    finished = run["finished_at"]
    return {
        "id": run["id"],
        "workflow": run["name"],
        "version": run["version"],
        "env": run["env"],
        "status": run["status"],
        "transactional": run["transactional"],
        "idempotency_key": run["idempotency_key"],
        "source": run["source"],  # slack | cli | http | schedule | hook
        "requested_by": run["requested_by"],
        "input": run["input"],
        "error": run["error"],
        "completed": [i["name"] for i in items if i["status"] == "succeeded"],
        "current": [i["name"] for i in items if i["status"] in _CURRENT],
        "remaining": [i["name"] for i in items if i["status"] == "pending"],
        "failed": [i["name"] for i in items if i["status"] in ("failed", "skipped")],
        "steps": items,
        "result": steps.results(),
        "rollback": run["rollback"],
        "compensations": [_undo_view(a) for a in undo],
        "comment": run["comment"],
        "created_at": run["created_at"],
        "started_at": run["started_at"],
        "finished_at": finished,
        "deadline_at": run["deadline_at"],
        "duration_s": round((finished or now) - run["started_at"], 3),
    }


_CURRENT = ("queued", "running", "awaiting_approval", "retry_scheduled")


def _step_view(step: Step, steps: Steps) -> dict[str, Any]:
    action = steps.actions.get(step.name)
    view: dict[str, Any] = {
        "name": step.name,
        "status": steps.status(step),
        "depends_on": list(step.depends_on),
        "action_id": action.id if action else None,
        "result": action.result if action and action.succeeded else None,
        "error": (action.error if action else None) or steps.skipped.get(step.name),
        "attempts": action.attempts if action else 0,
        "started_at": action.started_at if action else None,
        "finished_at": action.finished_at if action else None,
    }
    if action and action.started_at and action.finished_at:
        view["duration_s"] = round(action.finished_at - action.started_at, 3)
    return view


def _undo_view(action: StepAction) -> dict[str, Any]:
    return {
        "step": action.step_name[len(UNDO) :],
        "action_id": action.id,
        "status": action.status,
        "result": action.result,
        "error": action.error,
        "finished_at": action.finished_at,
    }


def _iso(epoch: float | None) -> str | None:
    """UTC ISO 8601 to the second, e.g. 2026-11-22T07:17:27+00:00."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).replace(microsecond=0).isoformat()
