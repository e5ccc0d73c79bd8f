"""`opsbot workflow ...` and `opsbot schedule ...` (registered on bot.cli's app on import)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from bot.cli import JsonOpt, app, read_json, run_command
from bot.cli_errors import CliFailure, fail

workflow_app = typer.Typer(
    help="Workflows: list, show, run, status, runs, rollback, resolve, versions, promotion. "
    "`run` journals the run and queues its first steps; the running opsbot (`opsbot run`, with "
    "the workflow runner) executes them and drives the later steps.",
    no_args_is_help=True,
)
schedule_app = typer.Typer(
    help="Schedules (OPSBOT_SCHEDULES): list, pause, resume, run now, history. Firings only "
    "enqueue; the running opsbot fires them on time.",
    no_args_is_help=True,
)
app.add_typer(workflow_app, name="workflow")
app.add_typer(schedule_app, name="schedule")

Name = Annotated[str, typer.Argument(help="Workflow name")]
RunId = Annotated[str, typer.Argument(help="Run id")]
ScheduleName = Annotated[str, typer.Argument(help="Schedule name")]
InputOpt = Annotated[list[str] | None, typer.Option("--input", "-i", help="KEY=VALUE (repeat)")]
InputJsonOpt = Annotated[str | None, typer.Option("--input-json", help="inputs as a JSON object")]


def _inputs(pairs: list[str] | None, raw: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if raw:
        try:
            loaded = json.loads(raw)
        except json.JSONDecodeError as exc:
            fail(exc, None, source="--input-json")
        if not isinstance(loaded, dict):
            fail(CliFailure(2, "--input-json: expected a JSON object"), None)
        values.update(loaded)
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(CliFailure(2, f"--input: expected KEY=VALUE, got {pair!r}"), None)
        values[key] = value
    return values


@workflow_app.command("list", help="Workflows loaded from OPSBOT_WORKFLOWS.")
def wf_list(ctx: typer.Context, json_: JsonOpt = False) -> None:
    run_command(ctx, "workflow list", {}, json_)


@workflow_app.command("show", help="One workflow's definition and content hash.")
def wf_show(ctx: typer.Context, name: Name, json_: JsonOpt = False) -> None:
    run_command(ctx, "workflow show", {"name": name}, json_)


@workflow_app.command("run")
def wf_run(
    ctx: typer.Context,
    name: Name,
    input_: InputOpt = None,
    input_json: InputJsonOpt = None,
    key: Annotated[str | None, typer.Option("--key", help="idempotency key of the run")] = None,
    json_: JsonOpt = False,
) -> None:
    """Start a run and print its id and state. The run is journaled and its first steps are
    queued at once (durable); they execute when opsbot is running (`opsbot run`, which drives the
    later steps too). Follow it with `opsbot workflow status RUN`."""
    args = {"name": name, "input": _inputs(input_, input_json), "key": key}
    run_command(ctx, "workflow run", args, json_)


@workflow_app.command("status", help="A run's state: status, steps, results and errors.")
def wf_status(ctx: typer.Context, run_id: RunId, json_: JsonOpt = False) -> None:
    run_command(ctx, "workflow status", {"run_id": run_id}, json_)


@workflow_app.command("runs", help="Recent runs, newest first.")
def wf_runs(
    ctx: typer.Context,
    workflow: Annotated[str | None, typer.Option("--workflow", "-w", help="only this one")] = None,
    status: Annotated[str | None, typer.Option("--status", help="e.g. failed")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 20,
    json_: JsonOpt = False,
) -> None:
    run_command(ctx, "workflow runs", {"name": workflow, "status": status, "limit": limit}, json_)


@workflow_app.command("rollback", help="Roll back a failed run (--force: a succeeded one).")
def wf_rollback(
    ctx: typer.Context, run_id: RunId,
    force: Annotated[bool, typer.Option("--force", help="roll back a succeeded run")] = False,
    json_: JsonOpt = False,
) -> None:  # fmt: skip
    run_command(ctx, "workflow rollback", {"run_id": run_id, "force": force}, json_)


@workflow_app.command("rollback:force", help="Roll back a run even if it succeeded (= --force).")
def wf_rollback_force(ctx: typer.Context, run_id: RunId, json_: JsonOpt = False) -> None:
    run_command(ctx, "workflow rollback:force", {"run_id": run_id}, json_)


@workflow_app.command("retry-rollback", help="Retry the compensations of a rollback_failed run.")
def wf_retry_rollback(ctx: typer.Context, run_id: RunId, json_: JsonOpt = False) -> None:
    run_command(ctx, "workflow retry-rollback", {"run_id": run_id}, json_)


@workflow_app.command("resolve", help="Close a failed run by hand, saying what was done.")
def wf_resolve(
    ctx: typer.Context, run_id: RunId,
    comment: Annotated[str, typer.Option("--comment", "-m", help="what was done")],
    json_: JsonOpt = False,
) -> None:  # fmt: skip
    run_command(ctx, "workflow resolve", {"run_id": run_id, "comment": comment}, json_)


Version = Annotated[int | None, typer.Option("--version", min=1, help="default: latest")]


@workflow_app.command("export", help="Print (or write) a self-contained artifact of a workflow.")
def wf_export(
    ctx: typer.Context, name: Name, version: Version = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="write to FILE")] = None,
    json_: JsonOpt = False,
) -> None:  # fmt: skip
    if output is None:
        run_command(ctx, "workflow export", {"name": name, "version": version}, True)
        return
    artifact = run_command(ctx, "workflow export", {"name": name, "version": version}, json_,
                           echo=False)  # fmt: skip
    try:
        with open(output, "w", encoding="utf-8") as out:
            json.dump(artifact, out, indent=2, default=str)
    except OSError as exc:
        fail(CliFailure(1, f"cannot write {output}: {exc.strerror or exc}"), None)
    typer.echo(f"exported {name} v{artifact['version']} to {output}")


@workflow_app.command("import", help="Validate an exported artifact here and store its version.")
def wf_import(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="artifact JSON file; '-' = stdin")],
    json_: JsonOpt = False,
) -> None:
    run_command(ctx, "workflow import", {"raw": read_json(file)}, json_)


@workflow_app.command("promote", help="Record a promotion (dev -> staging -> prod).")
def wf_promote(
    ctx: typer.Context, name: Name,
    to: Annotated[str, typer.Option("--to", help="dev | staging | prod")],
    force: Annotated[bool, typer.Option("--force", help="without a prior success")] = False,
    version: Version = None, json_: JsonOpt = False,
) -> None:  # fmt: skip
    args = {"name": name, "to": to, "force": force, "version": version}
    run_command(ctx, "workflow promote", args, json_)


@workflow_app.command("versions", help="Every version: hash, runs per environment, promotions.")
def wf_versions(ctx: typer.Context, name: Name, json_: JsonOpt = False) -> None:
    run_command(ctx, "workflow versions", {"name": name}, json_)


@schedule_app.command("list", help="Schedules with their next and last firing.")
def sc_list(ctx: typer.Context, json_: JsonOpt = False) -> None:
    run_command(ctx, "schedule list", {}, json_)


@schedule_app.command("pause", help="Pause a schedule (every opsbot process honours it).")
def sc_pause(ctx: typer.Context, name: ScheduleName, json_: JsonOpt = False) -> None:
    run_command(ctx, "schedule pause", {"name": name}, json_)


@schedule_app.command("resume", help="Resume a schedule (paused time is not caught up).")
def sc_resume(ctx: typer.Context, name: ScheduleName, json_: JsonOpt = False) -> None:
    run_command(ctx, "schedule resume", {"name": name}, json_)


@schedule_app.command("run", help="Fire a schedule now: enqueue its target (overlap applies).")
def sc_run(ctx: typer.Context, name: ScheduleName, json_: JsonOpt = False) -> None:
    firing = run_command(ctx, "schedule run", {"name": name}, json_)
    if firing.get("outcome") == "failed":
        raise typer.Exit(1)


@schedule_app.command("history", help="A schedule's last firings (up to 100 are kept).")
def sc_history(
    ctx: typer.Context, name: ScheduleName,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100)] = 20, json_: JsonOpt = False,
) -> None:  # fmt: skip
    run_command(ctx, "schedule history", {"name": name, "limit": limit}, json_)
