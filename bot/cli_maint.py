"""`opsbot alerts|audit|report|maintenance prune|backup|restore` (registered on bot.cli's app)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bot import render
from bot.cli import JsonOpt, actor, app, run_command
from bot.cli_errors import fail
from bot.config import Settings, load_settings
from bot.render_maint import view_backup, view_restore

maintenance_app = typer.Typer(help="Retention pruning.", no_args_is_help=True)
app.add_typer(maintenance_app, name="maintenance")


@app.command("alerts", help="Alert history, newest first.")
def alerts(
    ctx: typer.Context,
    active: Annotated[bool, typer.Option("--active", help="only alerts still active")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    json_: JsonOpt = False,
) -> None:
    run_command(ctx, "alerts", {"active": active, "n": limit}, json_)


@app.command("audit")
def audit(
    ctx: typer.Context,
    action: Annotated[str | None, typer.Option("--action", help="an action (or run) id")] = None,
    since: Annotated[str | None, typer.Option("--since", help="30m, 1h, 2d or ISO")] = None,
    actor: Annotated[list[str] | None, typer.Option("--actor", help="repeatable")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 100,
    json_: JsonOpt = False,
) -> None:
    """The audit trail, newest first: every state change, decision and operator command."""
    args = {"action": action, "since": since, "actors": actor, "limit": limit}
    run_command(ctx, "audit", args, json_)


@app.command("report", help="The daily maintenance report (health, success rate, queue, ...).")
def report(ctx: typer.Context, json_: JsonOpt = False) -> None:
    run_command(ctx, "report", {}, json_)


@maintenance_app.command("prune", help="Delete rows past the retention settings, now.")
def prune(ctx: typer.Context, json_: JsonOpt = False) -> None:
    run_command(ctx, "maintenance prune", {}, json_)


File = Annotated[str, typer.Argument(help="backup file")]


@app.command("backup")
def backup(
    ctx: typer.Context, file: File,
    force: Annotated[bool, typer.Option("--force", help="overwrite FILE")] = False,
    json_: JsonOpt = False,
) -> None:  # fmt: skip
    """Consistent snapshot of the database while opsbot runs (SQLite online backup), checked."""
    from bot.backup import backup as take

    words = f"backup {file}" + (" --force" if force else "")
    _file_command(ctx, lambda s: take(s, file, force), view_backup, json_, words)


@app.command("restore")
def restore(ctx: typer.Context, file: File, json_: JsonOpt = False) -> None:
    """Put a backup in place (opsbot must be stopped). The backup is checked first and the
    current database kept as <db>.before-restore-<time>."""
    from bot.backup import restore as put_back

    _file_command(ctx, lambda s: put_back(s, file), view_restore, json_, f"restore {file}")


def _file_command(ctx: typer.Context, call: Any, view: Any, json_: bool, words: str) -> None:
    """Backup and restore work on the file, without opening the store (no schema changes);
    each is audited (actor, words, ok/error) like the commands of the table."""
    from bot.backup import audit_file_command

    want_json = json_ or bool((ctx.find_root().obj or {}).get("json"))
    settings: Settings | None = None
    try:
        settings = load_settings()
        result = call(settings)
    except Exception as exc:
        if settings is not None:
            error = render.redact(f"{type(exc).__name__}: {exc}", settings)
            audit_file_command(settings, words, actor(), error)
        fail(exc, settings)
    audit_file_command(settings, words, actor(), None)
    typer.echo(render.redact(render.to_json(result) if want_json else view(result), settings))
