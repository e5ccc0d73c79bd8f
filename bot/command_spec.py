"""What a command of the table is: its arguments, help, runner and view (bot.commands).

Split from bot.commands so the command groups (bot.commands_workflows, bot.commands_maint)
define their entries without importing the table itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bot.ops.context import OpsContext

ArgKind = Literal["platform", "id", "ids", "count", "flag", "json", "pairs", "text"]
Runner = Callable[[OpsContext, Mapping[str, Any], str], Awaitable[Any]]


@dataclass(frozen=True)
class Arg:
    name: str
    kind: ArgKind
    help: str
    required: bool = False

    @property
    def usage(self) -> str:
        shown = {
            "flag": f"[--{self.name.replace('_', '-')}]",
            "ids": "ID...|all",
            "pairs": "KEY=VALUE...",
            "text": f"{self.name.upper()}...",
        }.get(self.kind, self.name.upper())
        return shown if self.required or self.kind == "flag" else f"[{shown}]"


@dataclass(frozen=True)
class Command:
    name: str  # as typed after `opsbot` ("queue status")
    help: str
    run: Runner
    view: Callable[[Any], str]
    args: tuple[Arg, ...] = ()
    changes_state: bool = False  # Slack: admins only, announced in the channel; always audited
    slack: str | None = None  # the word after `/ops`, when Slack offers it

    @property
    def usage(self) -> str:
        return " ".join([self.slack or self.name, *(a.usage for a in self.args)])


class UsageError(ValueError):
    """Words that do not make a command; `command` is set when the command itself was known."""

    def __init__(self, message: str, command: Command | None = None) -> None:
        super().__init__(message)
        self.command = command


def cmd(
    name: str,
    help_: str,
    run: Runner,
    view: Callable[[Any], str],
    *args: Arg,
    changes: bool = False,
    slack: str | None = None,
) -> Command:
    return Command(name, help_, run, view, tuple(args), changes, slack)
