"""The run progress message (pure builders) and the /ops usage hint in manifest.yml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot import commands
from handlers.run_blocks import run_progress, run_text, step_links

ROOT = Path(__file__).resolve().parents[2]


def step(name: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "status": status, "result": None, "error": None, **extra}


def view(status: str, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": "run_1", "workflow": "invoice", "status": status, "steps": steps,
            "compensations": [], "error": None, "comment": None, "duration_s": 1.5,
            **extra}  # fmt: skip


def test_each_step_shows_its_state_and_links() -> None:
    drive = {"id": "f1", "web_view_link": "https://drive.example/f1"}
    body = str(run_progress(view("running", [
        step("upload", "succeeded", result=drive),
        step("log", "running"),
        step("notify", "pending"),
    ])))  # fmt: skip
    assert "Workflow invoice" in body and "`run_1`" in body and "*running*" in body
    assert "`upload` succeeded  <https://drive.example/f1|open>" in body
    assert "`log` running" in body and "`notify` pending" in body


def test_rollback_states_and_escaped_errors() -> None:
    undo = [{"step": "s1", "status": "succeeded"}, {"step": "s2", "status": "dead_lettered"}]
    body = str(run_progress(view("rollback_failed", [
        step("s1", "succeeded"), step("s2", "succeeded"),
        step("s3", "failed", error="boom <@U1|x>"), step("s4", "skipped"),
    ], compensations=undo, error="step s3 failed")))  # fmt: skip
    assert "`s1` rolled back" in body and "`s2` rollback failed" in body
    assert "`s3` failed  _boom &lt;@U1|x&gt;_" in body and "`s4` skipped" in body
    assert "error: step s3 failed" in body
    assert run_text(view("rolled_back", [])) == "Workflow invoice run run_1: rolled back"


def test_links_found_one_level_down_once() -> None:
    result = {"url": "https://a.example", "echo": {"permalink": "https://b.example",
                                                   "url": "https://a.example"}}  # fmt: skip
    assert step_links(result) == ["https://a.example", "https://b.example"]
    assert step_links({"url": "javascript:alert(1)"}) == [] and step_links("x") == []


def test_manifest_usage_hint_lists_every_ops_word() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    [ops] = manifest["features"]["slash_commands"]
    hint = ops["usage_hint"]
    assert len(hint) <= 1000  # Slack's limit for a usage hint
    for word in commands.slack_words():
        assert word.split()[-1] in hint, word


def test_many_steps_split_into_sections_without_cutting_lines() -> None:
    link = {"url": "https://example.test/" + "x" * 80}
    steps = [step(f"step{i:03}", "succeeded", result=link) for i in range(120)]
    sections = [b for b in run_progress(view("succeeded", steps)) if b["type"] == "section"]
    texts = [s["text"]["text"] for s in sections[1:]]  # the first is the status line
    assert len(texts) > 1 and all(len(t) <= 2900 for t in texts)
    assert all(line.endswith("|open>") for t in texts for line in t.splitlines())
    assert sum(len(t.splitlines()) for t in texts) == 120
