"""The runbook operations (issue 2 point 6) as plain async functions returning plain data.

Slack `/ops`, the `opsbot` CLI and the HTTP API call these same functions through the command
table in bot.commands. Each takes an `OpsContext`. Reads go through `store.read`; every change is
one `store.write` transaction that also writes its audit rows. Mistakes a person can fix raise
`BadInput` (the CLI exits 2); an unknown action id raises `NotFound`.
"""

from bot.ops.changes import circuit_reset, clear, pause, resume
from bot.ops.context import BadInput, NotFound, OpsContext, OpsError, check_platform
from bot.ops.records import action_show, dlq_list, dlq_purge, dlq_replay, submit
from bot.ops.views import approvals, circuits, queue_status, recent_errors, status, stuck

__all__ = [
    "BadInput",
    "NotFound",
    "OpsContext",
    "OpsError",
    "action_show",
    "approvals",
    "check_platform",
    "circuit_reset",
    "circuits",
    "clear",
    "dlq_list",
    "dlq_purge",
    "dlq_replay",
    "pause",
    "queue_status",
    "recent_errors",
    "resume",
    "status",
    "stuck",
    "submit",
]
