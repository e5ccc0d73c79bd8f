"""Load workflow definitions from OPSBOT_WORKFLOWS: one file or a directory of them.

Default: ./workflows.yml, else ./workflows/ (every *.yml, *.yaml, *.json in it). A file holds
either one workflow (a mapping with `name` and `steps`) or several keyed by name, as in the
seed's config/workflows.json:

    invoice-processing:
      transactional: true
      timeout: 60            # seconds for the whole run (or timeout_ms: 60000)
      inputs: [invoice_id, amount]
      idempotency_key: "invoice-{{ input.invoice_id }}"
      steps:
        - name: create_invoice_file
          action: {type: upload_file, data: {name: "Invoice-{{ input.invoice_id }}.pdf", ...}}
        - name: log_to_sheet
          depends_on: create_invoice_file        # one name or a list
          action:
            type: append_row
            data: {values: [["{{ steps.create_invoice_file.result.web_view_link }}"]]}
          retry: {max_retries: 5}
          continue_on_error: false
          compensate: none                       # or an action; default: the executor's undo

Everything wrong in every file is collected, then raised at once as WorkflowInvalid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from bot.workflows.definitions import IRREVERSIBLE, ActionTemplate, Retry, Step, Workflow
from bot.workflows.validate import Problem, WorkflowInvalid, validate

SUFFIXES = (".yml", ".yaml", ".json")
WORKFLOW_FIELDS = (
    "name", "description", "enabled", "transactional", "timeout", "timeout_ms", "inputs",
    "idempotency_key", "steps",
)  # fmt: skip
STEP_FIELDS = (
    "name", "action", "depends_on", "requires_approval", "continue_on_error", "retry",
    "compensate",
)  # fmt: skip
ACTION_FIELDS = ("type", "platform", "data", "priority")
_NOOP = ActionTemplate(type="echo")


def default_path(cwd: Path) -> Path | None:
    for candidate in (cwd / "workflows.yml", cwd / "workflows"):
        if candidate.exists():
            return candidate
    return None


def load_workflows(configured: str | None, cwd: Path | None = None) -> dict[str, Workflow]:
    """The workflows named by OPSBOT_WORKFLOWS (or the defaults). Raises WorkflowInvalid."""
    base = cwd or Path.cwd()
    path = Path(configured) if configured else default_path(base)
    if path is None:
        return {}
    if not path.is_absolute():
        path = base / path
    if not path.exists():
        raise WorkflowInvalid([Problem(str(path), "OPSBOT_WORKFLOWS: no such file or directory")])
    return load_path(path)


def load_path(path: Path) -> dict[str, Workflow]:
    files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES) if path.is_dir() else [path]
    found: dict[str, Workflow] = {}
    problems: list[Problem] = []
    for file in files:
        workflows, file_problems = loads(file.read_text(encoding="utf-8"), str(file))
        problems += file_problems
        for workflow in workflows:
            if workflow.name in found:
                problems.append(
                    Problem(
                        f"{file}: {workflow.name}",
                        f"duplicate workflow name (also in {found[workflow.name].source})",
                    )
                )
            found[workflow.name] = workflow
    if problems:
        raise WorkflowInvalid(problems)
    return found


def loads(text: str, source: str) -> tuple[list[Workflow], list[Problem]]:
    """Parse and validate one document (YAML is a superset of JSON; .json files go to json)."""
    try:
        raw = json.loads(text) if source.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        return [], [Problem(source, f"cannot parse: {exc}")]
    if isinstance(raw, dict) and "steps" in raw:
        raw = {raw.get("name", ""): raw}
    if not isinstance(raw, dict):
        return [], [Problem(source, "expected a workflow, or a mapping of name -> workflow")]
    workflows, problems = [], []
    for name, body in raw.items():
        workflow, found = parse_workflow(str(name), body, source)
        problems += found
        if workflow is not None:
            problems += validate(workflow)
            workflows.append(workflow)
    return workflows, problems


def parse_workflow(name: str, body: Any, source: str) -> tuple[Workflow | None, list[Problem]]:
    """One definition; `source` ("" for none, e.g. an artifact) prefixes problem locations."""
    at = f"{source}: {name}" if source else name
    if not isinstance(body, dict):
        return None, [Problem(at, "expected a mapping (enabled, transactional, timeout, steps)")]
    problems = _unknown(body, WORKFLOW_FIELDS, at)
    if "name" in body and body["name"] != name:
        problems.append(Problem(f"{at}.name", f"got {body['name']!r} under the key {name!r}"))
    steps_raw = body.get("steps", [])
    if not isinstance(steps_raw, list):
        problems.append(Problem(f"{at}.steps", "expected a list of steps"))
        steps_raw = []
    steps = []
    for i, raw_step in enumerate(steps_raw):
        step, found = _parse_step(raw_step, f"{at}.steps[{i}]")
        problems += found
        # A placeholder keeps later steps' indexes (and this name, for dependents) aligned with
        # the file; its own problem is already listed.
        steps.append(step or Step(str(raw_step) if isinstance(raw_step, str) else f"#{i}", _NOOP))
    inputs = body.get("inputs", [])
    if not (isinstance(inputs, list) and all(isinstance(x, str) for x in inputs)):
        problems.append(Problem(f"{at}.inputs", f"got {inputs!r}, expected a list of names"))
        inputs = []
    workflow = Workflow(
        name=name,
        steps=tuple(steps),
        description=_typed(body, "description", str, "", at, problems),
        enabled=_typed(body, "enabled", bool, True, at, problems),
        transactional=_typed(body, "transactional", bool, False, at, problems),
        timeout=_timeout(body, at, problems),
        inputs=tuple(inputs),
        idempotency_key=_typed(body, "idempotency_key", str, None, at, problems),
        source=source,
    )
    return workflow, problems


def _parse_step(raw: Any, at: str) -> tuple[Step | None, list[Problem]]:
    if isinstance(raw, str):
        return None, [Problem(f"{at} ({raw})", "a step needs a mapping with name and action")]
    if not isinstance(raw, dict):
        return None, [Problem(at, f"got {raw!r}, expected a mapping with name and action")]
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        return None, [Problem(at, f"name: got {name!r}, expected a non-empty string")]
    at = f"{at} ({name})"
    problems = _unknown(raw, STEP_FIELDS, at)
    action = _parse_action(raw.get("action"), f"{at}.action", problems)
    deps = raw.get("depends_on", [])
    deps = [deps] if isinstance(deps, str) else deps
    if not (isinstance(deps, list) and all(isinstance(d, str) for d in deps)):
        problems.append(Problem(f"{at}.depends_on", f"got {deps!r}, expected a name or a list"))
        deps = []
    compensate = raw.get("compensate")
    if isinstance(compensate, dict):
        compensate = _parse_action(compensate, f"{at}.compensate", problems)
    elif compensate is False:
        compensate = IRREVERSIBLE
    step = Step(
        name=name,
        action=action or _NOOP,  # its problems are listed; the name stays known to dependents
        depends_on=tuple(deps),
        requires_approval=_typed(raw, "requires_approval", bool, False, at, problems),
        continue_on_error=_typed(raw, "continue_on_error", bool, False, at, problems),
        retry=_retry(raw.get("retry"), at, problems),
        compensate=compensate,
    )
    return step, problems


def _parse_action(raw: Any, at: str, problems: list[Problem]) -> ActionTemplate | None:
    if not isinstance(raw, dict):
        problems.append(Problem(at, f"got {raw!r}, expected a mapping with type and data"))
        return None
    problems += _unknown(raw, ACTION_FIELDS, at)
    data = raw.get("data", {})
    if not isinstance(data, dict):
        problems.append(Problem(f"{at}.data", f"got {data!r}, expected a mapping"))
        data = {}
    return ActionTemplate(
        type=str(raw.get("type", "")),
        data=data,
        platform=raw.get("platform"),
        priority=raw.get("priority"),
    )


def _retry(raw: Any, at: str, problems: list[Problem]) -> Retry | None:
    if raw is None:
        return None
    value: Any = raw.get("max_retries") if isinstance(raw, dict) else raw
    if isinstance(raw, dict):
        problems += _unknown(raw, ("max_retries",), f"{at}.retry")
    return Retry(value)  # validate.py checks the range and the type


def _timeout(body: dict[str, Any], at: str, problems: list[Problem]) -> float:
    if "timeout_ms" in body:
        value, scale, key = body["timeout_ms"], 1000.0, "timeout_ms"
    else:
        value, scale, key = body.get("timeout", 300), 1.0, "timeout"
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(Problem(f"{at}.{key}", f"got {value!r}, expected a number of seconds"))
        return 300.0
    return float(value) / scale


def _typed(
    body: dict[str, Any], key: str, kind: type, default: Any, at: str, out: list[Problem]
) -> Any:
    value = body.get(key, default)
    if value is default or isinstance(value, kind):
        return value
    out.append(Problem(f"{at}.{key}", f"got {value!r}, expected {kind.__name__}"))
    return default


def _unknown(raw: dict[str, Any], known: tuple[str, ...], at: str) -> list[Problem]:
    return [
        Problem(f"{at}.{key}", f"unknown field (known: {', '.join(known)})")
        for key in raw
        if key not in known
    ]
