"""Workflow definitions: what a workflow is, and a Python builder for it (the seed's `addStep`).

A definition is plain data. Files (loader.py) and code (`Workflow(...).add_step(...)`) produce the
same frozen objects, `to_dict()` gives their canonical form (what versions.py hashes and what a
run pins), and validate.py checks them. Step data may hold templates (templates.py) that refer to
the run's input and to the results of earlier steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

# A step's `compensate` set to this means "cannot be undone": named, never attempted, in rollbacks.
IRREVERSIBLE = "none"


@dataclass(frozen=True)
class ActionTemplate:
    """The action a step (or a custom compensation) submits; `data` may hold templates."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    platform: str | None = None
    priority: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "data": self.data}
        if self.platform is not None:
            out["platform"] = self.platform
        if self.priority is not None:
            out["priority"] = self.priority
        return out


@dataclass(frozen=True)
class Retry:
    """Per-step override of the queue's retry budget: `max_retries` retries after the first try."""

    max_retries: int

    def to_dict(self) -> dict[str, Any]:
        return {"max_retries": self.max_retries}


@dataclass(frozen=True)
class Step:
    name: str
    action: ActionTemplate
    depends_on: tuple[str, ...] = ()
    requires_approval: bool = False
    continue_on_error: bool = False
    retry: Retry | None = None
    # None: the executor's own compensation; an ActionTemplate: a custom undo action (its data may
    # refer to `steps.<this step>.result`); IRREVERSIBLE: the step cannot be undone.
    compensate: ActionTemplate | str | None = None

    @property
    def irreversible(self) -> bool:
        return self.compensate == IRREVERSIBLE

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "action": self.action.to_dict()}
        if self.depends_on:
            out["depends_on"] = list(self.depends_on)
        if self.requires_approval:
            out["requires_approval"] = True
        if self.continue_on_error:
            out["continue_on_error"] = True
        if self.retry is not None:
            out["retry"] = self.retry.to_dict()
        if isinstance(self.compensate, ActionTemplate):
            out["compensate"] = self.compensate.to_dict()
        elif self.compensate is not None:
            out["compensate"] = self.compensate
        return out


@dataclass(frozen=True)
class Workflow:
    """A named DAG of steps. Build one in code with `add_step`, or load it from a file."""

    name: str
    steps: tuple[Step, ...] = ()
    description: str = ""
    enabled: bool = True
    transactional: bool = False
    timeout: float = 300.0  # seconds for the whole run
    inputs: tuple[str, ...] = ()  # declared input names; empty means "not declared"
    idempotency_key: str | None = None  # template over `input`, e.g. "invoice-{{ input.id }}"
    source: str = "<code>"  # where it was defined (file path), for error locations

    def add_step(
        self,
        name: str,
        action: ActionTemplate | dict[str, Any],
        *,
        depends_on: str | list[str] | tuple[str, ...] = (),
        requires_approval: bool = False,
        continue_on_error: bool = False,
        retry: Retry | int | None = None,
        compensate: ActionTemplate | dict[str, Any] | str | None = None,
    ) -> Workflow:
        """A copy with one more step (definitions are immutable, so chain the calls)."""
        step = Step(
            name=name,
            action=action if isinstance(action, ActionTemplate) else action_from_dict(action),
            depends_on=(depends_on,) if isinstance(depends_on, str) else tuple(depends_on),
            requires_approval=requires_approval,
            continue_on_error=continue_on_error,
            retry=Retry(retry) if isinstance(retry, int) else retry,
            compensate=action_from_dict(compensate) if isinstance(compensate, dict) else compensate,
        )
        return replace(self, steps=(*self.steps, step))

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"workflow {self.name!r} has no step {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """The canonical content (no `source`): hashed for versions, pinned by runs."""
        out: dict[str, Any] = {
            "name": self.name,
            "enabled": self.enabled,
            "transactional": self.transactional,
            "timeout": self.timeout,
            "steps": [s.to_dict() for s in self.steps],
        }
        if self.description:
            out["description"] = self.description
        if self.inputs:
            out["inputs"] = list(self.inputs)
        if self.idempotency_key is not None:
            out["idempotency_key"] = self.idempotency_key
        return out


def action_from_dict(raw: dict[str, Any]) -> ActionTemplate:
    """Best-effort conversion for the builder; validate.py reports what is wrong with it."""
    return ActionTemplate(
        type=str(raw.get("type", "")),
        data=dict(raw.get("data") or {}),
        platform=raw.get("platform"),
        priority=raw.get("priority"),
    )


def ancestors(workflow: Workflow, name: str) -> set[str]:
    """Every step `name` transitively depends on (unknown names and cycles tolerated)."""
    by_name = {s.name: s for s in workflow.steps}
    seen: set[str] = set()
    todo = list(by_name[name].depends_on) if name in by_name else []
    while todo:
        current = todo.pop()
        if current in seen or current not in by_name:
            continue
        seen.add(current)
        todo.extend(by_name[current].depends_on)
    return seen
