"""The command table's word parser (Slack `/ops ...`): commands, arguments, usage errors."""

from __future__ import annotations

import pytest

from bot.commands import COMMANDS, UsageError, help_text, parse, slack_words


@pytest.mark.parametrize(
    ("words", "name", "args"),
    [
        (["status"], "status", {}),
        (["queue"], "queue status", {}),
        (["stuck"], "queue stuck", {}),
        (["circuits"], "circuit status", {}),
        (["errors", "5"], "errors", {"n": 5}),
        (["pause"], "pause", {}),
        (["pause", "notion"], "pause", {"platform": "notion"}),
        (["clear", "--stuck-only"], "clear", {"stuck_only": True}),
        (["clear"], "clear", {"stuck_only": False}),
        (["reset", "trello"], "circuit reset", {"platform": "trello"}),
        (["action", "act_1"], "action show", {"id": "act_1"}),
        (["dlq"], "dlq list", {}),
        (["dlq", "replay", "all"], "dlq replay", {"ids": None}),
        (["dlq", "replay", "a", "b"], "dlq replay", {"ids": ["a", "b"]}),
        (["dlq", "purge"], "dlq purge", {"ids": None}),
        (
            ["run", "notify", "who=ann", "n=a=b"],
            "workflow run",
            {"name": "notify", "input": {"who": "ann", "n": "a=b"}},
        ),
        (["run", "notify"], "workflow run", {"name": "notify", "input": {}}),
        (["workflow", "run_1"], "workflow status", {"run_id": "run_1"}),
        (["rollback", "run_1"], "workflow rollback", {"run_id": "run_1", "force": False}),
        (["rollback", "run_1", "--force"], "workflow rollback", {"run_id": "run_1", "force": True}),
        (["rollback:force", "run_1"], "workflow rollback:force", {"run_id": "run_1"}),
        (
            ["resolve", "run_1", "fixed", "by", "hand"],
            "workflow resolve",
            {"run_id": "run_1", "comment": "fixed by hand"},
        ),
        (["schedule", "list"], "schedule list", {}),
        (["schedule", "pause", "nightly"], "schedule pause", {"name": "nightly"}),
        (["schedule", "run", "nightly"], "schedule run", {"name": "nightly"}),
        (["alerts", "--active"], "alerts", {"active": True}),
    ],
)
def test_parse(words: list[str], name: str, args: dict[str, object]) -> None:
    command, values = parse(words)
    assert command.name == name
    assert values == args


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["frob"], "unknown command 'frob'"),
        (["reset"], "PLATFORM is required"),
        (["errors", "x"], "N must be a number"),
        (["status", "extra"], "unexpected 'extra'"),
        (["dlq", "replay"], "give ids, or all"),
        (["run", "notify", "novalue"], "expected KEY=VALUE"),
        (["schedule"], "expected one of schedule history, schedule list"),
        (["rollback"], "RUN_ID is required"),
        (["rollback:force"], "RUN_ID is required"),
        (["rollback:force", "run_1", "--force"], "unexpected '--force'"),
        (["resolve", "run_1"], "COMMENT is required"),
    ],
)
def test_usage_errors(words: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse(words)


def test_state_changing_commands_and_help() -> None:
    changing = {c.slack for c in slack_words().values() if c.changes_state}
    assert changing == {
        "pause",
        "resume",
        "clear",
        "reset",
        "dlq replay",
        "dlq purge",
        "rollback",
        "rollback:force",
        "retry-rollback",
        "resolve",
        "schedule pause",
        "schedule resume",
        "schedule run",
    }
    text = help_text()
    assert "/ops reset PLATFORM:" in text and "/ops clear [--stuck-only]" in text
    assert "submit" not in text  # CLI only
    assert COMMANDS["submit"].changes_state
