"""Views of the audit, alerts, maintenance, report, backup and restore commands."""

from __future__ import annotations

import json
from typing import Any

from bot.render_checks import view_checks
from bot.render_text import pairs, seconds, table, when


def view_audit(rows: list[dict[str, Any]]) -> str:
    return table(
        ["at", "entity", "id", "from", "to", "actor", "detail"],
        [
            (
                when(r["at"]),
                r["entity"],
                r["entity_id"],
                r["from_status"],
                r["to_status"],
                r["actor"],
                _text(r["detail"]),
            )
            for r in rows
        ],
        empty="(no audit rows match)",
    )


def view_alerts(rows: list[dict[str, Any]]) -> str:
    return table(
        ["opened", "status", "severity", "key", "count", "title", "resolved"],
        [
            (
                when(r["opened_at"]),
                r["status"],
                r["severity"],
                r["key"],
                r["count"],
                r["title"],
                when(r.get("resolved_at")),
            )
            for r in rows
        ],
        empty="(no alerts)",
    )


def view_pruned(r: dict[str, Any]) -> str:
    d = r["deleted"]
    return (
        f"pruned {d['audit']} audit rows (> {r['audit_days']:g} days), {d['actions']} finished "
        f"actions with {d['attempts']} attempts and {d['alerts']} resolved alerts "
        f"(> {r['history_days']:g} days)"
    )


def view_report(r: dict[str, Any]) -> str:
    """The daily maintenance report (also the text posted to the report channel)."""
    rate = r["success_rate_24h"]
    shown = "-" if rate["rate"] is None else f"{rate['rate'] * 100:.1f}%"
    q, db, errors = r["queue"], r["database"], r["errors_24h"]
    not_closed = [f"{c['platform']} {c['state']}" for c in r["circuits"] if c["state"] != "closed"]
    top = ", ".join(f"{e['platform']} {e['kind'] or '?'} {e['count']}" for e in errors["by"][:5])
    lines = [
        f"opsbot daily report, {when(r['at'])}",
        pairs([
            ("health", r["health"]["status"] + _reasons(r["health"].get("reasons"))),
            ("success rate 24h", f"{shown} of {rate['attempts']} attempts"),
            ("queue depth", f"{q['total_queued']} queued, {q['running']} running, oldest wait "
                            f"{seconds(q['oldest_wait_s'])}"),
            ("breakers", ", ".join(not_closed) or "all closed"),
            ("errors 24h", f"{errors['total']}" + (f" ({top})" if top else "")),
            ("database", _bytes(db["bytes"]) + (f" ({db['path']})" if db["path"] else "")),
        ]),
    ]  # fmt: skip
    if "checks" in r:
        lines += ["", view_checks(r["checks"])]
    return "\n".join(lines)


def view_posted(r: dict[str, Any]) -> str:
    if r.get("posted"):
        return f"report posted to {r['channel']} (health {r['status']})"
    return view_report(r["report"])


def view_backup(r: dict[str, Any]) -> str:
    return (
        f"backup written to {r['file']}: {_bytes(r['bytes'])}, {r['actions']} actions, schema "
        f"v{r['schema_version']}, integrity ok ({seconds(r['seconds'])})"
    )


def view_restore(r: dict[str, Any]) -> str:
    kept = f"; previous database kept as {r['previous_kept_as']}" if r["previous_kept_as"] else ""
    return (
        f"restored {r['restored']} from {r['from']} ({r['actions']} actions, schema "
        f"v{r['schema_version']}){kept}"
    )


def _reasons(reasons: list[str] | None) -> str:
    return f" ({'; '.join(reasons)})" if reasons else ""


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _text(detail: Any) -> str | None:
    return detail if isinstance(detail, str) or detail is None else json.dumps(detail, default=str)
