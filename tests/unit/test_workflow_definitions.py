"""Definitions: the builder, the loader (YAML/JSON, file/dir) and every validation error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.sandbox.content import EXAMPLE_WORKFLOWS
from bot.workflows.definitions import IRREVERSIBLE, ActionTemplate, Workflow
from bot.workflows.loader import load_path, load_workflows, loads
from bot.workflows.validate import WorkflowInvalid, check, validate

EXAMPLES = EXAMPLE_WORKFLOWS


def messages(text: str, source: str = "w.yml") -> list[str]:
    _, problems = loads(text, source)
    return [str(p) for p in problems]


def test_builder_matches_the_seed_add_step() -> None:
    wf = (
        Workflow("invoice-processing", transactional=True, timeout=60)
        .add_step("create_file", {"type": "upload_file", "data": {"name": "a", "content": "b"}})
        .add_step(
            "update_sheet",
            ActionTemplate("append_row", {"values": [["{{ steps.create_file.result.id }}"]]}),
            depends_on="create_file",
            retry=5,
        )
        .add_step(
            "send_notification",
            {"type": "send_notification", "data": {"text": "done"}},
            depends_on=["update_sheet"],
            continue_on_error=True,
            compensate=IRREVERSIBLE,
        )
    )
    assert check(wf) is wf
    assert [s.name for s in wf.steps] == ["create_file", "update_sheet", "send_notification"]
    assert wf.step("update_sheet").retry is not None
    assert wf.step("send_notification").irreversible


def test_builder_and_file_give_the_same_canonical_definition() -> None:
    text = """
name: w
transactional: true
timeout_ms: 30000
steps:
  - name: a
    action: {type: echo, data: {x: 1}}
  - name: b
    depends_on: a
    action: {type: echo, data: {y: "{{ steps.a.result.echo.x }}"}}
"""
    [from_file], problems = loads(text, "w.yml")
    assert problems == []
    built = (
        Workflow("w", transactional=True, timeout=30)
        .add_step("a", {"type": "echo", "data": {"x": 1}})
        .add_step(
            "b", {"type": "echo", "data": {"y": "{{ steps.a.result.echo.x }}"}}, depends_on="a"
        )
    )
    assert from_file.to_dict() == built.to_dict()


def test_examples_validate_against_the_routing_table() -> None:
    found = load_path(EXAMPLES)
    assert set(found) == {"invoice-processing", "bug-report", "meeting-request"}
    assert found["invoice-processing"].transactional
    assert not found["meeting-request"].transactional


def test_seed_style_mapping_and_json(tmp_path: Path) -> None:
    doc = {
        "one": {"steps": [{"name": "s", "action": {"type": "echo"}}]},
        "two": {"enabled": False, "steps": [{"name": "s", "action": {"type": "echo"}}]},
    }
    (tmp_path / "a.json").write_text(json.dumps(doc))
    (tmp_path / "b.yaml").write_text("name: three\nsteps: [{name: s, action: {type: echo}}]\n")
    (tmp_path / "notes.txt").write_text("ignored")
    found = load_workflows(str(tmp_path))
    assert sorted(found) == ["one", "three", "two"]
    assert found["two"].enabled is False


def test_default_locations(tmp_path: Path) -> None:
    assert load_workflows(None, cwd=tmp_path) == {}
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "x.yml").write_text(
        "name: x\nsteps: [{name: s, action: {type: echo}}]"
    )
    assert list(load_workflows(None, cwd=tmp_path)) == ["x"]
    (tmp_path / "workflows.yml").write_text("name: y\nsteps: [{name: s, action: {type: echo}}]")
    assert list(load_workflows(None, cwd=tmp_path)) == ["y"]
    with pytest.raises(WorkflowInvalid, match="no such file"):
        load_workflows("missing.yml", cwd=tmp_path)


def test_every_listed_error_with_its_location() -> None:
    text = """
name: bad
steps:
  - name: a
    depends_on: [c, ghost]
    action: {type: create_task, data: {}}
  - name: b
    depends_on: a
    action: {type: launch_rocket, data: {}}
  - name: c
    depends_on: b
    action:
      type: send_notification
      data: {text: "{{ steps.d.result.ts }} {{ steps.unknown.result }}"}
    retry: {max_retries: -1}
  - name: d
    action: {type: append_row, data: {values: "{{ input.rows }}"}}
"""
    found = messages(text)
    assert (
        "w.yml: bad.steps[0] (a).depends_on[1]: unknown step 'ghost' (steps: a, b, c, d)" in found
    )
    assert "w.yml: bad.steps: cycle: a -> c -> b -> a" in found
    assert any(
        m.startswith("w.yml: bad.steps[1] (b).action.type: got 'launch_rocket'") for m in found
    )
    assert (
        "w.yml: bad.steps[0] (a).action.data.title: "
        "missing required parameter (required by create_task)"
    ) in found
    assert any(
        m.startswith(
            "w.yml: bad.steps[2] (c).action.data.text: {{ steps.d.result.ts }}: step 'd'"
            " is not an ancestor of 'c'"
        )
        for m in found
    )
    assert (
        "w.yml: bad.steps[2] (c).action.data.text: "
        "{{ steps.unknown.result }}: unknown step 'unknown'" in found
    )
    assert any(m.startswith("w.yml: bad.steps[2] (c).retry.max_retries: got -1") for m in found)
    # The templated `values` of d counts as present: no missing-parameter error for it.
    assert not any("(d)" in m for m in found)
    assert len(found) == 7, found


def test_structural_errors() -> None:
    text = """
name: s
timeout: soon
transactional: "yes"
colour: blue
steps:
  - create_file
  - name: x
    action: {type: echo, data: {}, extra: 1}
    depends_on: 5
    compensate: maybe
  - name: x
    action: {type: echo, platform: slack}
"""
    found = messages(text)
    expected = [
        "w.yml: s.colour: unknown field",
        "w.yml: s.steps[0] (create_file): a step needs a mapping with name and action",
        "w.yml: s.steps[1] (x).action.extra: unknown field",
        "w.yml: s.steps[1] (x).depends_on: got 5, expected a name or a list",
        "w.yml: s.transactional: got 'yes', expected bool",
        "w.yml: s.timeout: got 'soon', expected a number of seconds",
        "w.yml: s.steps[1] (x).compensate: got 'maybe'",
        "w.yml: s.steps[2] (x): duplicate step name",
        "w.yml: s.steps[2] (x).action.platform: got 'slack', expected 'echo' for type 'echo'",
    ]
    for start in expected:
        assert any(m.startswith(start) for m in found), (start, found)


def test_input_references_checked_against_declared_inputs() -> None:
    text = """
name: i
inputs: [amount]
idempotency_key: "k-{{ input.id }}-{{ steps.a.result }}"
steps:
  - name: a
    action: {type: echo, data: {x: "{{ input.amount }}", y: "{{ input.other }}",
                                z: "{{ input.other | default(1) }}", r: "{{ run.id }}",
                                bad: "{{ run.secret }}", open: "{{ input.x"}}
"""
    found = messages(text)
    assert any(
        "(a).action.data.y: {{ input.other }}: input 'other' is not declared" in m for m in found
    )
    assert any("(a).action.data.bad: {{ run.secret }}" in m for m in found)
    assert any("(a).action.data.open: " in m and "without a closing" in m for m in found)
    assert any("i.idempotency_key: {{ input.id }}: input 'id' is not declared" in m for m in found)
    assert any("i.idempotency_key: {{ steps.a.result }}: only input and run" in m for m in found)
    assert len(found) == 5, found


def test_custom_compensation_may_read_its_own_step() -> None:
    wf = Workflow("c").add_step(
        "card",
        {"type": "create_card", "data": {"name": "n"}},
        compensate={"type": "archive_card", "data": {"card_id": "{{ steps.card.result.id }}"}},
    )
    assert validate(wf) == []
    bad = Workflow("c").add_step(
        "card", {"type": "create_card", "data": {"name": "n"}}, compensate={"type": "archive_card"}
    )
    assert [str(p) for p in validate(bad)] == [
        "<code>: c.steps[0] (card).compensate.data.card_id: "
        "missing required parameter (required by archive_card)"
    ]


def test_parse_errors_and_duplicates_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("name: dup\nsteps: [{name: s, action: {type: echo}}]")
    (tmp_path / "b.yml").write_text("name: dup\nsteps: [{name: s, action: {type: echo}}]")
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(WorkflowInvalid) as info:
        load_path(tmp_path)
    text = str(info.value)
    assert "b.yml: dup: duplicate workflow name (also in " in text
    assert "c.json: cannot parse" in text
