"""`/ops`: the runbook commands of `bot.commands` over Slack.

Ack first (Slack wants it within 3 s), then run the command and answer through the command's
`response_url`: ephemeral for the person who asked; commands that change state are limited to
OPS_ADMINS and also announced in the channel (who did what). Every command is audited
(bot.command_audit), refusals of non-admins included.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.app.async_app import AsyncApp

from bot import command_audit, commands
from bot.ops import OpsError
from bot.render import redact
from bot.slack_app import FrontDoor
from handlers import blocks
from handlers.approvals import member_of

log = logging.getLogger("opsbot.slack")
Respond = Callable[..., Awaitable[Any]]


def register(app: AsyncApp, door: FrontDoor) -> None:
    @app.command("/ops")
    async def ops_command(ack: Callable[[], Awaitable[None]], command: dict[str, Any],
                          respond: Respond) -> None:  # fmt: skip
        await ack()
        await answer(door, command, respond)


def usage(command: commands.Command) -> str:
    return " ".join([command.slack or command.name, *(a.usage for a in command.args)])


def help_blocks(problem: str | None = None, only: commands.Command | None = None) -> list[Any]:
    table = [only] if only is not None else list(commands.slack_words().values())
    rows = [(usage(c), c.help) for c in table]
    if only is None:
        rows.append(("help", "This list"))
    return blocks.ops_help(rows, problem)


async def answer(door: FrontDoor, command: dict[str, Any], respond: Respond) -> None:
    """Run one `/ops ...` and reply; every failure becomes a message to the person, not a 500."""
    words = str(command.get("text") or "").split()
    user = str(command.get("user_id"))
    if not words or words[0].lower() == "help":
        await _reply(respond, "opsbot commands", help_blocks())
        return
    try:
        cmd, args = commands.parse(words)
    except commands.UsageError as exc:
        await _reply(respond, str(exc), help_blocks(str(exc), exc.command))
        return
    actor = door.actor_prefix + user
    if cmd.changes_state and not await member_of(door, user, door.settings.admins):
        refused = PermissionError("refused: not in OPS_ADMINS")
        await command_audit.record(door.ops, cmd, args, actor, refused)  # who tried, too
        text = f":lock: `/ops {usage(cmd)}` changes opsbot; only OPS_ADMINS may run it."
        await _reply(respond, text, [blocks.mrkdwn(text)])
        return
    try:
        result = await commands.run(cmd, door.ops, args, actor)
    except OpsError as exc:
        text = f":warning: {redact(str(exc), door.settings)}"
        await _reply(respond, text, [blocks.mrkdwn(text)])
        return
    _claim_run(door, cmd, result, command)
    rendered = redact(cmd.view(result), door.settings)  # the CLI's redaction, same wording
    await _reply(respond, rendered[:200], blocks.ops_answer(f"/ops {' '.join(words)}", rendered))
    if cmd.changes_state:
        summary = rendered.splitlines()[0] if rendered else "done"
        await respond(response_type="in_channel", replace_original=False,
                      text=blocks.announcement(actor, " ".join(words), summary))  # fmt: skip


def _claim_run(door: FrontDoor, cmd: commands.Command, result: Any,
               command: dict[str, Any]) -> None:  # fmt: skip
    """A run started by `/ops run` keeps its progress message in the channel it came from."""
    channel = command.get("channel_id")
    started = isinstance(result, dict) and result.get("id") and not result.get("duplicate")
    if door.runs is not None and cmd.name == "workflow run" and channel and started:
        door.runs.claim(str(result["id"]), str(channel))


async def _reply(respond: Respond, text: str, body: list[Any]) -> None:
    await respond(text=text, blocks=body, response_type="ephemeral", replace_original=False)
