"""One audit row per operator command, whatever the door (CLI, Slack `/ops`), read-only included.

`audited(command)` wraps a command of the table (bot.commands) so that running it records who
ran it, the command words and the outcome: entity "command", entity_id the command's name,
to_status "ok" or "error", detail {"words": ..., "error": ...}. The words never carry secrets:
JSON documents and KEY=VALUE inputs are summarised (their size, their keys), and the whole line
goes through the CLI's redaction. State changes keep their own rows (written by the ops layer in
the same transaction); this row says who asked for what, and whether it worked.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from bot.command_spec import Command
from bot.ops.context import OpsContext
from bot.render import redact
from bot.store.audit import audit_row, write_audit

log = logging.getLogger(__name__)
MAX_TEXT = 300


def audited(command: Command) -> Command:
    inner = command.run

    async def run(ctx: OpsContext, args: Mapping[str, Any], actor: str) -> Any:
        try:
            result = await inner(ctx, args, actor)
        except Exception as exc:
            await record(ctx, command, args, actor, exc)
            raise
        await record(ctx, command, args, actor, None)
        return result

    return dataclasses.replace(command, run=run)


async def record(
    ctx: OpsContext, command: Command, args: Mapping[str, Any], actor: str,
    error: BaseException | None,
) -> None:  # fmt: skip
    """Write the command's row; a failure to write is logged, never the command's failure."""
    settings = ctx.settings
    detail: dict[str, Any] = {"words": redact(words(command, args), settings)}
    if error is not None:
        detail["error"] = redact(f"{type(error).__name__}: {error}", settings)[:MAX_TEXT]
    row = audit_row(ctx.clock(), command.name, None, "error" if error else "ok", actor=actor,
                    entity="command", detail=detail)  # fmt: skip
    try:
        await ctx.store.write(lambda conn: write_audit(conn, [row]))
    except Exception as exc:  # one line; after a failed command (a locked database) only DEBUG:
        level = logging.DEBUG if error is not None else logging.WARNING  # its error says it
        first = str(exc).splitlines()[0] if str(exc) else ""
        log.log(level, "auditing %r failed: %s: %s", command.name, type(exc).__name__, first)


def words(command: Command, args: Mapping[str, Any]) -> str:
    """`dlq replay act_1 act_2`, `workflow run deploy input=<keys: env, ref>`, ..."""
    kinds = {arg.name: arg.kind for arg in command.args}
    shown = [command.name]
    for name, value in args.items():
        if value is None or value is False or value == [] or value == {}:
            continue
        shown.append(_word(name, kinds.get(name), value))
    return " ".join(shown)[:MAX_TEXT]


def _word(name: str, kind: str | None, value: Any) -> str:
    flag = "--" + name.replace("_", "-")
    if value is True:
        return flag
    if kind == "json":
        size = len(value) if isinstance(value, list) else 1
        return f"{name}=<JSON, {size} item{'s' if size != 1 else ''}>"
    if isinstance(value, Mapping):  # KEY=VALUE inputs: the values may be anything
        return f"{name}=<keys: {', '.join(sorted(map(str, value)))}>"
    if isinstance(value, list | tuple):
        return " ".join(map(str, value))
    return str(value) if kind in ("platform", "id", "count", "text") else f"{flag} {value}"
