"""`opsbot`: the command line over the ops service (issue 2 point 7).

Short commands open the store, run one entry of the command table (bot.commands), print a table
for people or JSON with `--json`, close the store and exit: 0 success, 2 bad input, 1 failure.
Every error is one line on stderr (bot.cli_errors), never a traceback. `worker` and `run` hand
over to the runtime.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from typing import Annotated, Any

import typer

from bot import render
from bot.cli_errors import CliFailure, fail, usage_error_line
from bot.commands import COMMANDS, Command
from bot.config import Settings, load_settings
from bot.logs import configure_logging
from bot.ops.context import OpsContext

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
PlatformArg = Annotated[str | None, typer.Argument(help="One platform; all when left out.")]

app = typer.Typer(
    name="opsbot",
    help="opsbot: durable, rate-limited actions across Notion, Trello, Slack, Drive and Sheets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
queue_app = typer.Typer(help="Queue depth and stuck actions.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters: list, replay, purge.", no_args_is_help=True)
circuit_app = typer.Typer(help="Circuit breakers: status and reset.", no_args_is_help=True)
action_app = typer.Typer(help="One action in full.", no_args_is_help=True)
app.add_typer(queue_app, name="queue")
app.add_typer(dlq_app, name="dlq")
app.add_typer(circuit_app, name="circuit")
app.add_typer(action_app, name="action")


@app.callback()
def _options(ctx: typer.Context, json_: JsonOpt = False) -> None:
    ctx.obj = {"json": json_}


def actor() -> str:
    """`cli:<login>`: who ran the command, for the audit rows."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return "cli:unknown"


def _settings() -> Settings:
    return load_settings()


def run_command(
    ctx: typer.Context, name: str, args: dict[str, Any], json_: bool, *, echo: bool = True
) -> Any:
    """Run one command of the table and print its result; errors become one line + exit code."""
    command = COMMANDS[name]
    want_json = json_ or bool((ctx.find_root().obj or {}).get("json"))
    settings: Settings | None = None
    try:
        settings = _settings()
        result = asyncio.run(_call(settings, command, args))
    except Exception as exc:
        fail(exc, settings)
    if echo:
        text = render.to_json(result) if want_json else command.view(result)
        typer.echo(render.redact(text, settings))
    return result


async def _call(settings: Settings, command: Command, args: dict[str, Any]) -> Any:
    from bot.queue import Queue
    from bot.store.engine import Store

    store = await asyncio.to_thread(Store, settings.opsbot_database_url)
    queue = Queue(store, settings)
    try:
        disabled = None
        if command.name == "status":
            from bot.ops.platforms import disabled_platforms

            disabled = await disabled_platforms(settings)
        ctx = OpsContext(store=store, settings=settings, queue=queue, disabled=disabled)
        return await command.run(ctx, args, actor())
    finally:
        await queue.close()
        await asyncio.to_thread(store.close)


@app.command("submit", help=COMMANDS["submit"].help)
def submit(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Argument(help="JSON file with one action or a list; '-' = stdin")
    ] = "-",
    json_: JsonOpt = False,
) -> None:
    run_command(ctx, "submit", {"raw": read_json(file)}, json_)


def read_json(file: str) -> Any:
    """A JSON document from FILE or stdin ('-'); unreadable or bad JSON: one line, exit 2."""
    source = "stdin" if file == "-" else file
    try:
        text = sys.stdin.read() if file == "-" else open(file, encoding="utf-8").read()  # noqa: SIM115
        return json.loads(text)
    except Exception as exc:
        fail(exc, None, source=source)


@app.command("status", help=COMMANDS["status"].help)
def status(ctx: typer.Context, json_: JsonOpt = False) -> None:
    run_command(ctx, "status", {}, json_)


@queue_app.command("status", help=COMMANDS["queue status"].help)
def queue_status(ctx: typer.Context, json_: JsonOpt = False) -> None:
    run_command(ctx, "queue status", {}, json_)


@queue_app.command("stuck", help=COMMANDS["queue stuck"].help)
def queue_stuck(ctx: typer.Context, json_: JsonOpt = False) -> None:
    run_command(ctx, "queue stuck", {}, json_)


@action_app.command("show", help=COMMANDS["action show"].help)
def action_show(
    ctx: typer.Context, id: Annotated[str, typer.Argument(help="Action id")], json_: JsonOpt = False
) -> None:
    run_command(ctx, "action show", {"id": id}, json_)


@dlq_app.command("list", help=COMMANDS["dlq list"].help)
def dlq_list(ctx: typer.Context, json_: JsonOpt = False) -> None:
    run_command(ctx, "dlq list", {}, json_)


IdsArg = Annotated[list[str] | None, typer.Argument(help="Dead-letter ids")]
AllOpt = Annotated[bool, typer.Option("--all", help="Every dead letter")]


def _ids(ids: list[str] | None, all_: bool) -> list[str] | None:
    if all_ == bool(ids):
        fail(CliFailure(2, "give dead-letter ids or --all (not both)"), None)
    return None if all_ else list(ids or [])


@dlq_app.command("replay", help=COMMANDS["dlq replay"].help)
def dlq_replay(
    ctx: typer.Context, ids: IdsArg = None, all_: AllOpt = False, json_: JsonOpt = False
) -> None:
    run_command(ctx, "dlq replay", {"ids": _ids(ids, all_)}, json_)


@dlq_app.command("purge", help=COMMANDS["dlq purge"].help)
def dlq_purge(
    ctx: typer.Context, ids: IdsArg = None, all_: AllOpt = False, json_: JsonOpt = False
) -> None:
    # `dlq purge` alone purges everything, as the runbook's one-word command does.
    run_command(ctx, "dlq purge", {"ids": _ids(ids, all_) if ids or all_ else None}, json_)


@app.command("pause", help=COMMANDS["pause"].help)
def pause(ctx: typer.Context, platform: PlatformArg = None, json_: JsonOpt = False) -> None:
    run_command(ctx, "pause", {"platform": platform}, json_)


@app.command("resume", help=COMMANDS["resume"].help)
def resume(ctx: typer.Context, platform: PlatformArg = None, json_: JsonOpt = False) -> None:
    run_command(ctx, "resume", {"platform": platform}, json_)


@app.command("clear", help=COMMANDS["clear"].help)
def clear(
    ctx: typer.Context,
    stuck_only: Annotated[bool, typer.Option("--stuck-only", help="Only stuck actions")] = False,
    json_: JsonOpt = False,
) -> None:
    run_command(ctx, "clear", {"stuck_only": stuck_only}, json_)


@circuit_app.command("status", help=COMMANDS["circuit status"].help)
def circuit_status(
    ctx: typer.Context, platform: PlatformArg = None, json_: JsonOpt = False
) -> None:
    run_command(ctx, "circuit status", {"platform": platform}, json_)


@circuit_app.command("reset", help=COMMANDS["circuit reset"].help)
def circuit_reset(
    ctx: typer.Context,
    platform: Annotated[str, typer.Argument(help="The platform whose circuit to close")],
    json_: JsonOpt = False,
) -> None:
    run_command(ctx, "circuit reset", {"platform": platform}, json_)


@app.command("errors", help=COMMANDS["errors"].help)
def errors(ctx: typer.Context, n: Annotated[int, typer.Argument(min=1)] = 10,
           json_: JsonOpt = False) -> None:  # fmt: skip
    run_command(ctx, "errors", {"n": n}, json_)


@app.command("approvals", help=COMMANDS["approvals"].help)
def approvals(ctx: typer.Context, json_: JsonOpt = False) -> None:
    run_command(ctx, "approvals", {}, json_)


@app.command("check", help=COMMANDS["check"].help)
def check(ctx: typer.Context, platform: PlatformArg = None, json_: JsonOpt = False) -> None:
    results = run_command(ctx, "check", {"platform": platform}, json_)
    # "Is everything reachable?": an enabled platform failing (or the one asked for) exits 1.
    if any(not r["ok"] and (platform or r["enabled"]) for r in results):
        raise typer.Exit(1)


@app.command("worker")
def worker(
    drain: Annotated[
        bool, typer.Option("--drain", help="Exit once nothing is left to run")
    ] = False,
) -> None:
    """Run the workers alone, without Slack (until SIGINT/SIGTERM, or drained)."""
    _serve(drain=drain)


@app.command("run")
def run(
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox",
            help="Run against built-in local stand-ins of every platform (the default when "
            "SLACK_BOT_TOKEN and SLACK_APP_TOKEN are not both set)",
        ),
    ] = False,
) -> None:
    """Run opsbot: Slack front door, workers, scheduler and HTTP API, until SIGINT/SIGTERM.
    Without Slack tokens it starts the sandbox: the same bot against local stand-ins, with a
    page to watch it."""
    _serve(drain=False, everything=True, sandbox=sandbox)


def _serve(drain: bool, everything: bool = False, sandbox: bool = False) -> None:
    from bot.runtime import run_all, run_worker

    settings: Settings | None = None
    try:
        settings = _settings()
        configure_logging(settings)
        if everything and (sandbox or not _has_slack_tokens(settings)):
            from bot.sandbox import run_sandbox

            code = asyncio.run(run_sandbox())
        elif everything:
            code = run_all(settings)
        else:
            code = run_worker(settings, drain)
    except Exception as exc:
        fail(exc, settings)
    raise typer.Exit(code)


def _has_slack_tokens(settings: Settings) -> bool:
    return settings.slack_bot_token is not None and settings.slack_app_token is not None


# The other command groups register themselves on `app` (kept in their own modules for size).
from bot import cli_maint, cli_workflows  # noqa: E402,F401


def main(argv: list[str] | None = None) -> None:
    """Console entry point: usage errors become one line too (exit 2)."""
    command = typer.main.get_command(app)
    try:
        code = command.main(argv, prog_name="opsbot", standalone_mode=False)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # click usage errors, and anything the commands did not catch
        if type(exc).__name__ == "NoArgsIsHelpError":  # `opsbot`, `opsbot queue`: the help
            print(exc.format_message(), file=sys.stderr)  # type: ignore[attr-defined]
            code = 2
        else:
            line, code = usage_error_line(exc)
            print(f"opsbot: {line}", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)
