"""The command table's workflow and schedule entries (bot.commands merges them)."""

from __future__ import annotations

from bot import render_workflows as views
from bot.command_spec import Arg, Command, cmd
from bot.ops import schedules, workflows

RUN = Arg("run_id", "id", "the workflow run id", required=True)
NAME = Arg("name", "id", "the workflow name", required=True)
SCHEDULE = Arg("name", "id", "the schedule name", required=True)
RUN_HELP = (
    "Start a workflow run with KEY=VALUE inputs: the run is journaled and its first steps queued "
    "at once; the running opsbot (`opsbot run`) executes them and drives the rest"
)

WORKFLOW_COMMANDS: tuple[Command, ...] = (
    cmd("workflow list", "Workflows loaded from OPSBOT_WORKFLOWS",
        lambda ctx, a, actor: workflows.listing(ctx), views.view_workflows, slack="workflows"),
    cmd("workflow show", "One workflow's definition and content hash",
        lambda ctx, a, actor: workflows.show(ctx, a["name"]), views.view_workflow, NAME),
    cmd("workflow run", RUN_HELP,
        lambda ctx, a, actor: workflows.run(ctx, a["name"], dict(a.get("input") or {}), actor,
                                            a.get("key")),
        views.view_run, NAME, Arg("input", "pairs", "input values"), slack="run"),
    cmd("workflow status", "A run's state: status, completed/current/remaining steps, errors",
        lambda ctx, a, actor: workflows.status(ctx, a["run_id"]), views.view_run, RUN,
        slack="workflow"),
    cmd("workflow runs", "Recent runs, newest first (of one workflow when named)",
        lambda ctx, a, actor: workflows.runs(ctx, a.get("name"), a.get("status"),
                                             a.get("limit") or workflows.RUNS_LIMIT),
        views.view_runs, Arg("name", "id", "only runs of this workflow"), slack="runs"),
    cmd("workflow rollback", "Roll back a failed run (--force: a succeeded one too), LIFO",
        lambda ctx, a, actor: workflows.rollback(ctx, a["run_id"], actor, bool(a.get("force"))),
        views.view_run, RUN, Arg("force", "flag", "roll back a succeeded run"), changes=True,
        slack="rollback"),
    cmd("workflow rollback:force", "Roll back a run even if it succeeded (= rollback --force)",
        lambda ctx, a, actor: workflows.rollback(ctx, a["run_id"], actor, True),
        views.view_run, RUN, changes=True, slack="rollback:force"),
    cmd("workflow retry-rollback", "Retry the compensations of a run in rollback_failed",
        lambda ctx, a, actor: workflows.retry_rollback(ctx, a["run_id"], actor),
        views.view_run, RUN, changes=True, slack="retry-rollback"),
    cmd("workflow resolve", "Close a failed run by hand, saying what was done",
        lambda ctx, a, actor: workflows.resolve(ctx, a["run_id"], actor, a["comment"]),
        views.view_run, RUN, Arg("comment", "text", "what was done", required=True),
        changes=True, slack="resolve"),
    cmd("workflow export", "A self-contained artifact: definition, version, checksum, env",
        lambda ctx, a, actor: workflows.export(ctx, a["name"], a.get("version")),
        views.view_artifact, NAME),
    cmd("workflow import", "Validate an exported artifact against this installation, store it",
        lambda ctx, a, actor: workflows.import_(ctx, a["raw"]), views.view_imported,
        Arg("raw", "json", "the artifact", required=True), changes=True),
    cmd("workflow promote",
        "Record a promotion to ENV (dev -> staging -> prod); refused without a successful run "
        "in the previous environment unless --force",
        lambda ctx, a, actor: workflows.promote(ctx, a["name"], a["to"], actor,
                                                force=bool(a.get("force")),
                                                version=a.get("version")),
        views.view_promoted, NAME, Arg("to", "id", "target environment", required=True),
        Arg("force", "flag", "promote without a successful run before"), changes=True),
    cmd("workflow versions", "Every version of a workflow: hash, runs per env, promotions",
        lambda ctx, a, actor: workflows.history(ctx, a["name"]), views.view_versions, NAME),
    cmd("schedule list", "Schedules: cron, time zone, target, paused, next and last firing",
        lambda ctx, a, actor: schedules.listing(ctx), views.view_schedules,
        slack="schedule list"),
    cmd("schedule pause", "Stop a schedule's firings (every process) until resumed",
        lambda ctx, a, actor: schedules.pause(ctx, a["name"], actor),
        views.view_schedule_change, SCHEDULE, changes=True, slack="schedule pause"),
    cmd("schedule resume", "Resume a schedule; firings missed while paused are not caught up",
        lambda ctx, a, actor: schedules.resume(ctx, a["name"], actor),
        views.view_schedule_change, SCHEDULE, changes=True, slack="schedule resume"),
    cmd("schedule run", "Fire a schedule now (its overlap policy applies); enqueues only",
        lambda ctx, a, actor: schedules.run_now(ctx, a["name"], actor), views.view_firing,
        SCHEDULE, changes=True, slack="schedule run"),
    cmd("schedule history", "A schedule's last firings: time, outcome, run or action id",
        lambda ctx, a, actor: schedules.history(ctx, a["name"], a.get("limit") or 20),
        views.view_firings, SCHEDULE, slack="schedule history"),
)  # fmt: skip
