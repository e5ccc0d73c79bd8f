"""Semantic checks of a workflow definition; every problem is reported with its location.

Checks: step names (present, unique), `depends_on` naming known steps, cycles, action types and
platforms against the routing table (bot/routing.py), required parameters (a templated value
counts as present: it is only known at run time), template syntax, references to steps that are
not ancestors, inputs not declared (when the workflow declares its inputs), retry overrides and
custom compensations. Structural problems of files (wrong types, unknown fields) come from
loader.py in the same `Problem` form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.actions import ActionInvalid, parse_action
from bot.workflows.definitions import IRREVERSIBLE, ActionTemplate, Step, Workflow, ancestors
from bot.workflows.templates import Ref, TemplateError, refs_in

MAX_RETRIES = 20  # a sane ceiling for a per-step override


@dataclass(frozen=True)
class Problem:
    location: str  # e.g. "workflows.yml: invoice-processing.steps[1] (log_to_sheet).depends_on"
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class WorkflowInvalid(ValueError):
    """One or more definitions are invalid; `problems` lists every one with its location."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def validate(workflow: Workflow) -> list[Problem]:
    """Every problem of one definition (empty when valid)."""
    where = f"{workflow.source}: {workflow.name}" if workflow.source else workflow.name
    problems: list[Problem] = []
    if not workflow.name.strip():
        problems.append(Problem(where, "a workflow needs a name"))
    if workflow.timeout <= 0:
        problems.append(Problem(f"{where}.timeout", f"got {workflow.timeout}, expected > 0"))
    if not workflow.steps:
        problems.append(Problem(f"{where}.steps", "a workflow needs at least one step"))
    problems += _check_names(workflow, where)
    problems += _check_cycles(workflow, where)
    for i, step in enumerate(workflow.steps):
        problems += _check_step(workflow, step, f"{where}.steps[{i}] ({step.name})")
    if workflow.idempotency_key is not None:
        problems += _check_refs(
            workflow, None, workflow.idempotency_key, f"{where}.idempotency_key", set()
        )
    return problems


def check(workflow: Workflow) -> Workflow:
    """Validate or raise WorkflowInvalid (the builder's last call)."""
    problems = validate(workflow)
    if problems:
        raise WorkflowInvalid(problems)
    return workflow


def _check_names(workflow: Workflow, where: str) -> list[Problem]:
    problems, seen = [], set()
    names = {s.name for s in workflow.steps}
    for i, step in enumerate(workflow.steps):
        at = f"{where}.steps[{i}]"
        if not step.name.strip():
            problems.append(Problem(at, "a step needs a name"))
        elif step.name in seen:
            problems.append(Problem(f"{at} ({step.name})", "duplicate step name"))
        seen.add(step.name)
        for j, dep in enumerate(step.depends_on):
            if dep not in names:
                problems.append(
                    Problem(
                        f"{at} ({step.name}).depends_on[{j}]",
                        f"unknown step {dep!r} (steps: {', '.join(sorted(names))})",
                    )
                )
            elif dep == step.name:
                problems.append(Problem(f"{at} ({step.name}).depends_on[{j}]", "depends on itself"))
    return problems


def _check_cycles(workflow: Workflow, where: str) -> list[Problem]:
    """Report each cycle once, as the path that closes it (a -> b -> a)."""
    graph = {s.name: [d for d in s.depends_on if d != s.name] for s in workflow.steps}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, []):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep in graph and dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])
    return [Problem(f"{where}.steps", "cycle: " + " -> ".join(c)) for c in cycles]


def _check_step(workflow: Workflow, step: Step, at: str) -> list[Problem]:
    problems = _check_action(step.action, f"{at}.action", step.requires_approval)
    allowed = ancestors(workflow, step.name)
    problems += _check_refs(workflow, step, step.action.data, f"{at}.action.data", allowed)
    if step.retry is not None and not (
        isinstance(step.retry.max_retries, int)
        and not isinstance(step.retry.max_retries, bool)
        and 0 <= step.retry.max_retries <= MAX_RETRIES
    ):
        problems.append(
            Problem(
                f"{at}.retry.max_retries",
                f"got {step.retry.max_retries!r}, expected a whole number 0..{MAX_RETRIES}",
            )
        )
    if isinstance(step.compensate, ActionTemplate):
        problems += _check_action(step.compensate, f"{at}.compensate", False)
        problems += _check_refs(
            workflow, step, step.compensate.data, f"{at}.compensate.data", {*allowed, step.name}
        )
    elif step.compensate not in (None, IRREVERSIBLE):
        problems.append(
            Problem(
                f"{at}.compensate",
                f"got {step.compensate!r}, expected an action or {IRREVERSIBLE!r}",
            )
        )
    return problems


def _check_action(action: ActionTemplate, at: str, requires_approval: bool) -> list[Problem]:
    """The routing table's checks (type, platform, priority, required data) via parse_action."""
    raw: dict[str, Any] = {**action.to_dict(), "requires_approval": requires_approval}
    try:
        parse_action(raw)
    except ActionInvalid as exc:
        return [Problem(f"{at}.{p.field}", _expected(p.value, p.expected)) for p in exc.problems]
    return []


def _expected(value: Any, expected: str) -> str:
    if value is None and expected.startswith("a value (required by"):
        return "missing required parameter " + expected[len("a value ") :]
    return f"got {value!r}, expected {expected}"


def _check_refs(
    workflow: Workflow, step: Step | None, data: Any, at: str, allowed: set[str]
) -> list[Problem]:
    problems = []
    for where, found in refs_in(data):
        location = f"{at}.{where}" if where else at
        if isinstance(found, TemplateError):
            problems.append(Problem(location, str(found)))
            continue
        message = _ref_problem(workflow, step, found, allowed)
        if message:
            problems.append(Problem(location, message))
    return problems


def _ref_problem(workflow: Workflow, step: Step | None, ref: Ref, allowed: set[str]) -> str:
    shown = f"{{{{ {ref.text} }}}}"
    if ref.root == "input":
        name = ref.path[0] if ref.path else None
        if workflow.inputs and name not in workflow.inputs and not ref.has_default:
            return f"{shown}: input {name!r} is not declared (inputs: {', '.join(workflow.inputs)})"
        return ""
    if ref.root == "run":
        fields = ("id", "name", "version", "started_at", "started_at_iso")
        return "" if ref.path[:1] and ref.path[0] in fields else f"{shown}: run has {fields}"
    target = ref.step
    if step is None:
        return f"{shown}: only input and run can be used here"
    if target not in {s.name for s in workflow.steps}:
        return f"{shown}: unknown step {target!r}"
    if target not in allowed:
        return (
            f"{shown}: step {target!r} is not an ancestor of {step.name!r} "
            "(add it to depends_on, directly or through another step)"
        )
    return ""
