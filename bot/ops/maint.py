"""Operator history and upkeep: audit queries, alert history, retention pruning and the daily
report (issue 6 points 5 and 6). Backup and restore work on the file itself (bot.backup)."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from bot import maintenance
from bot.alerts import list_alerts
from bot.ops.context import BadInput, OpsContext
from bot.store.tables import AuditRow

AUDIT = AuditRow.__table__  # type: ignore[attr-defined]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")


def since_to_time(since: str, now: float) -> float:
    """`90m`, `1h`, `2d`, `1w` before now, or an ISO 8601 time."""
    match = _DURATION.match(since.strip().lower())
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        return datetime.fromisoformat(since).timestamp()
    except ValueError as exc:
        raise BadInput(f"--since: got {since!r}, expected 30m, 1h, 2d, 1w or an ISO time") from exc


async def audit(
    ctx: OpsContext, action: str | None = None, since: str | None = None,
    actors: list[str] | None = None, limit: int = 100,
) -> list[dict[str, Any]]:  # fmt: skip
    """Audit rows, newest first: of one action (or run, schedule ...), since a time, by actors."""
    if limit < 1:
        raise BadInput(f"--limit must be at least 1, got {limit}")
    after = since_to_time(since, ctx.clock()) if since else None

    def query(conn: Connection) -> list[dict[str, Any]]:
        stmt = select(AUDIT).order_by(AUDIT.c.at.desc(), AUDIT.c.id.desc()).limit(limit)
        if action:
            stmt = stmt.where(AUDIT.c.entity_id == action)
        if after is not None:
            stmt = stmt.where(AUDIT.c.at >= after)
        if actors:
            stmt = stmt.where(AUDIT.c.actor.in_(actors))
        return [_audit_view(dict(r)) for r in conn.execute(stmt).mappings()]

    return await ctx.store.read(query)


def _audit_view(row: dict[str, Any]) -> dict[str, Any]:
    detail = row.get("detail")
    if detail:
        with contextlib.suppress(ValueError):  # free text detail stays text
            row["detail"] = json.loads(detail)
    return row


async def alerts(
    ctx: OpsContext, limit: int = 50, active_only: bool = False
) -> list[dict[str, Any]]:
    rows = await ctx.store.read(lambda c: list_alerts(c, limit, active_only))
    for row in rows:
        row.pop("refs", None)  # Slack message references: internal
    return rows


async def prune(ctx: OpsContext, actor: str) -> dict[str, Any]:
    return await maintenance.prune_now(ctx, actor)


async def report(ctx: OpsContext) -> dict[str, Any]:
    return await maintenance.report(ctx)
