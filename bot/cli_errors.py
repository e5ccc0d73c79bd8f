"""How the CLI reports failures: one line on stderr per problem, and the exit code.

0 success, 2 bad input (invalid action or JSON, unknown platform, bad arguments or settings),
1 failure (database unreadable or locked, queue full, no such action, anything unexpected).
Every line goes through render.redact, so secrets never reach the terminal.
"""

from __future__ import annotations

import json
from typing import NoReturn

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from bot import render
from bot.actions import ActionInvalid
from bot.config import Settings
from bot.ops.context import BadInput, OpsError

BAD_INPUT, FAILURE = 2, 1


class CliFailure(Exception):
    """A failure the CLI itself detects, with its exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def fail(exc: BaseException, settings: Settings | None, source: str | None = None) -> NoReturn:
    """Print `exc` as one line per problem on stderr and exit with its code."""
    code, lines = describe(exc, settings, source)
    for line in lines:
        typer.echo(render.redact(f"opsbot: {line}", settings), err=True)
    raise typer.Exit(code)


def describe(
    exc: BaseException, settings: Settings | None, source: str | None = None
) -> tuple[int, list[str]]:
    if isinstance(exc, CliFailure):
        return exc.code, [str(exc)]
    if isinstance(exc, ActionInvalid):
        return BAD_INPUT, _problem_lines(exc)
    if isinstance(exc, json.JSONDecodeError):
        return BAD_INPUT, [_json_error_line(exc, source or "input")]
    if isinstance(exc, OSError) and source is not None:
        return BAD_INPUT, [f"cannot read {source}: {exc.strerror or exc}"]
    if isinstance(exc, BadInput):
        return BAD_INPUT, [str(exc)]
    if isinstance(exc, OpsError):
        return FAILURE, [str(exc)]
    if isinstance(exc, ValidationError):
        return BAD_INPUT, [_settings_line(exc)]
    if isinstance(exc, SQLAlchemyError):
        return FAILURE, [_database_error_line(exc, settings)]
    return FAILURE, [_unexpected(exc)]


def _settings_line(exc: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']} (got {e.get('input')!r})"
        for e in exc.errors()
    ]
    return "bad configuration: " + "; ".join(problems)


def _unexpected(exc: BaseException) -> str:
    message = str(exc).splitlines()[0] if str(exc) else ""
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


def usage_error_line(exc: Exception) -> tuple[str, int]:
    """Click's usage errors (unknown command, missing argument) as one line, exit 2."""
    if hasattr(exc, "format_message"):
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        line = exc.format_message() + hint
        return render.redact(line), int(getattr(exc, "exit_code", BAD_INPUT))
    return render.redact(_unexpected(exc)), FAILURE


def _problem_lines(exc: ActionInvalid) -> list[str]:
    """An ActionInvalid as one line per problem: field, value, expectation."""
    where = f"action #{exc.index}: " if exc.index is not None else ""
    return [f"invalid action: {where}{problem}" for problem in exc.problems]


def _json_error_line(exc: json.JSONDecodeError, source: str) -> str:
    return f"bad JSON in {source}: {exc.msg} at line {exc.lineno} column {exc.colno}"


def _database_error_line(exc: Exception, settings: Settings | None) -> str:
    """SQLAlchemy's text carries SQL and a docs link; people need the driver's reason."""
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    url = settings.opsbot_database_url if settings else "the database"
    return render.redact(f"database error ({url}): {reason}", settings)
