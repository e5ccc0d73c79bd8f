"""The ONE command table: every runbook command, shared by the CLI, Slack `/ops` and HTTP.

A `Command` names its arguments, help text, whether it changes state (and so needs an admin in
Slack and an announcement), the ops function it runs and the view that renders its result.
`parse(words)` turns `/ops dlq replay all` style words into a command and its arguments, raising
`UsageError` with that command's help when they do not fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot import ops, render
from bot.command_audit import audited
from bot.command_spec import Arg, ArgKind, Command, Runner, UsageError
from bot.command_spec import cmd as _c
from bot.commands_maint import MAINT_COMMANDS
from bot.commands_workflows import WORKFLOW_COMMANDS
from bot.ops import platforms, records

__all__ = ["COMMANDS", "Arg", "ArgKind", "Command", "Runner", "UsageError", "parse", "run"]

PLATFORM = Arg("platform", "platform", "one platform (all when left out)")
STUCK_ONLY = Arg("stuck_only", "flag", "only stuck actions (see queue stuck)")


CORE_COMMANDS: tuple[Command, ...] = (
    _c(
        "status",
        "Overall health: queue, running, pauses, circuits, dead letters, success rate",
        lambda ctx, a, actor: ops.status(ctx),
        render.view_status,
        slack="status",
    ),
    _c(
        "queue status",
        "Queue depth per priority, oldest and average wait, worker utilisation",
        lambda ctx, a, actor: ops.queue_status(ctx),
        render.view_queue,
        slack="queue",
    ),
    _c(
        "queue stuck",
        "Actions running, or due and unclaimed, for longer than OPSBOT_STUCK_AFTER seconds",
        lambda ctx, a, actor: ops.stuck(ctx),
        render.view_stuck,
        slack="stuck",
    ),
    _c(
        "circuit status",
        "Circuit breaker state of every platform (or one)",
        lambda ctx, a, actor: ops.circuits(ctx, a.get("platform")),
        render.view_circuits,
        PLATFORM,
        slack="circuits",
    ),
    _c(
        "circuit reset",
        "Close a platform's circuit (only once the platform is healthy)",
        lambda ctx, a, actor: ops.circuit_reset(ctx, a["platform"], actor),
        render.view_reset,
        Arg("platform", "platform", "the platform whose circuit to close", required=True),
        changes=True,
        slack="reset",
    ),
    _c(
        "errors",
        "The last N failed attempts (default 10)",
        lambda ctx, a, actor: ops.recent_errors(ctx, a.get("n") or 10),
        render.view_errors,
        Arg("n", "count", "how many errors"),
        slack="errors",
    ),
    _c(
        "approvals",
        "Actions waiting for a decision, overdue ones marked",
        lambda ctx, a, actor: ops.approvals(ctx),
        render.view_approvals,
        slack="approvals",
    ),
    _c(
        "pause",
        "Stop running actions of one platform (all when left out); they stay queued",
        lambda ctx, a, actor: ops.pause(ctx, a.get("platform"), actor),
        render.view_pause,
        PLATFORM,
        changes=True,
        slack="pause",
    ),
    _c(
        "resume",
        "Resume one platform (every paused one when left out)",
        lambda ctx, a, actor: ops.resume(ctx, a.get("platform"), actor),
        render.view_resume,
        PLATFORM,
        changes=True,
        slack="resume",
    ),
    _c(
        "clear",
        "Cancel queued and stuck actions (--stuck-only: stuck ones only), audited",
        lambda ctx, a, actor: ops.clear(ctx, bool(a.get("stuck_only")), actor),
        render.view_clear,
        STUCK_ONLY,
        changes=True,
        slack="clear",
    ),
    _c(
        "action show",
        "One action in full: fields, data, result, attempts and errors",
        lambda ctx, a, actor: records.action_show(ctx, a["id"]),
        render.view_action,
        Arg("id", "id", "the action id", required=True),
        slack="action",
    ),
    _c(
        "dlq list",
        "Dead letters: actions that exhausted retries or failed for good",
        lambda ctx, a, actor: records.dlq_list(ctx),
        render.view_dlq,
        slack="dlq",
    ),
    _c(
        "dlq replay",
        "Queue dead letters again (same idempotency key): ids, or all",
        lambda ctx, a, actor: records.dlq_replay(ctx, a.get("ids"), actor),
        render.view_replay,
        Arg("ids", "ids", "dead-letter ids, or all", required=True),
        changes=True,
        slack="dlq replay",
    ),
    _c(
        "dlq purge",
        "Delete dead letters for good: ids, or all when none are given",
        lambda ctx, a, actor: records.dlq_purge(ctx, a.get("ids"), actor),
        render.view_purge,
        Arg("ids", "ids", "dead-letter ids (all when left out)"),
        changes=True,
        slack="dlq purge",
    ),
    _c(
        "submit",
        "Submit actions from a JSON file or stdin ('-'): one action or a list",
        lambda ctx, a, actor: records.submit(ctx, a["raw"], actor),
        render.view_submit,
        Arg("raw", "json", "one action or a JSON list", required=True),
        changes=True,
    ),
    _c(
        "check",
        "Test credentials and reachability: one cheap read-only call per platform",
        lambda ctx, a, actor: platforms.check(ctx, a.get("platform")),
        render.view_check,
        PLATFORM,
    ),
)

# Every entry records one audit row per run (actor, words, ok/error; bot.command_audit), so the
# doors that call `command.run` directly (the CLI) are audited exactly like `run` below.
COMMANDS: dict[str, Command] = {
    c.name: audited(c) for c in (*CORE_COMMANDS, *WORKFLOW_COMMANDS, *MAINT_COMMANDS)
}


def slack_words() -> dict[str, Command]:
    """`/ops <word>` -> command, for the Slack front door and its help text."""
    return {c.slack: c for c in COMMANDS.values() if c.slack}


def parse(words: Sequence[str]) -> tuple[Command, dict[str, Any]]:
    """Slack-style words (`reset notion`, `dlq replay all`, `clear --stuck-only`) -> command."""
    if not words:
        raise UsageError("no command given")
    command = _lookup(words)
    rest = list(words[len(command.slack.split()) if command.slack else 1 :])
    return command, _bind(command, rest)


def _lookup(words: Sequence[str]) -> Command:
    table = slack_words()
    for length in (2, 1):
        key = " ".join(words[:length]).lower()
        if key in table:
            return table[key]
    group = sorted(w for w in table if w.startswith(words[0].lower() + " "))
    if group:  # `/ops schedule` alone: name the group's commands
        raise UsageError(f"{words[0]}: expected one of {', '.join(group)}")
    known = ", ".join(sorted(table))
    raise UsageError(f"unknown command {words[0]!r}: expected one of {known}, help")


def _bind(command: Command, rest: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for arg in command.args:
        if arg.kind == "flag":
            flag = "--" + arg.name.replace("_", "-")
            values[arg.name] = flag in rest
            rest = [w for w in rest if w != flag]
        elif arg.kind == "ids":
            if arg.required and not rest:
                raise UsageError(f"{command.usage}: give ids, or all", command)
            values[arg.name] = None if rest in ([], ["all"], ["--all"]) else rest
            rest = []
        elif arg.kind == "pairs":
            values[arg.name] = _pairs(command, rest)
            rest = []
        elif arg.kind == "text":
            if arg.required and not rest:
                raise UsageError(f"{command.usage}: {arg.name.upper()} is required", command)
            values[arg.name] = " ".join(rest)
            rest = []
        elif rest:
            values[arg.name] = _convert(command, arg, rest.pop(0))
        elif arg.required:
            raise UsageError(f"{command.usage}: {arg.name.upper()} is required", command)
    if rest:
        raise UsageError(f"{command.usage}: unexpected {' '.join(rest)!r}", command)
    return values


def _pairs(command: Command, words: list[str]) -> dict[str, str]:
    """`k=v` words -> {k: v}; the value may hold further '=' signs."""
    bad = [w for w in words if "=" not in w or w.startswith("=")]
    if bad:
        raise UsageError(f"{command.usage}: expected KEY=VALUE, got {' '.join(bad)!r}", command)
    return dict(w.split("=", 1) for w in words)


def _convert(command: Command, arg: Arg, word: str) -> Any:
    if arg.kind == "count":
        if not word.isdigit() or int(word) < 1:
            raise UsageError(f"{command.usage}: {arg.name.upper()} must be a number >= 1", command)
        return int(word)
    return word


async def run(command: Command, ctx: ops.OpsContext, args: Mapping[str, Any], actor: str) -> Any:
    """Run a command's ops function (audited: see COMMANDS); front doors check
    `changes_state` permissions first."""
    return await command.run(ctx, args, actor)


def help_text(command: Command | None = None, prefix: str = "/ops") -> str:
    """One command's usage and help, or the list of every Slack command."""
    if command is not None:
        return f"{prefix} {command.usage}: {command.help}"
    return "\n".join(help_text(c, prefix) for c in slack_words().values())
