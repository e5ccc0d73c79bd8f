"""The command table's audit, alert and maintenance entries (bot.commands merges them).
`opsbot backup` / `opsbot restore` work on the database file itself and live in the CLI only."""

from __future__ import annotations

from bot import render_maint as views
from bot.command_spec import Arg, Command, cmd
from bot.ops import maint

MAINT_COMMANDS: tuple[Command, ...] = (
    cmd("alerts", "Alert history, newest first (--active: only those still active)",
        lambda ctx, a, actor: maint.alerts(ctx, a.get("n") or 50, bool(a.get("active"))),
        views.view_alerts, Arg("active", "flag", "only active alerts"),
        Arg("n", "count", "how many"), slack="alerts"),
    cmd("audit", "Audit trail, newest first: --action ID, --since 1h, --actor U... (repeatable)",
        lambda ctx, a, actor: maint.audit(ctx, a.get("action"), a.get("since"),
                                          a.get("actors"), a.get("limit") or 100),
        views.view_audit),
    cmd("maintenance prune",
        "Delete audit rows past OPSBOT_AUDIT_RETENTION_DAYS and finished actions, attempts and "
        "resolved alerts past OPSBOT_HISTORY_RETENTION_DAYS",
        lambda ctx, a, actor: maint.prune(ctx, actor), views.view_pruned, changes=True),
    cmd("report", "The daily maintenance report: health, success rate, queue, breakers, "
        "errors in 24 h, database disk use",
        lambda ctx, a, actor: maint.report(ctx), views.view_report, slack="report"),
)  # fmt: skip
