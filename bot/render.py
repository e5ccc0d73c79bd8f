"""Turning ops results into text for people (tables) and JSON for scripts.

The one place for user-facing wording of the CLI: every command's view, every error line, and
secret redaction (settings' secret values and URL passwords never reach the screen).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.config import Settings
from bot.logs import REDACTED, Redactor, secrets_of

_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]+:)[^@\s]+@")


def redact(text: str, settings: Settings | None = None) -> str:
    """Hide URL passwords, token shapes and the value of every secret setting (bot.logs rules)."""
    text = _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)
    return Redactor(secrets_of(settings) if settings is not None else [])(text)


def to_json(result: Any) -> str:
    return json.dumps(result, indent=2, default=str, sort_keys=False)


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def seconds(value: float | None) -> str:
    """A duration for people: 850ms, 12.5s, 3m20s, 2h05m."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "(none)") -> str:
    """A plain fixed-width table; cells are cut at 90 characters to keep lines readable."""
    cells = [[_cell(v) for v in row] for row in rows]
    if not cells:
        return empty
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [_line(headers, widths), _line(["-" * w for w in widths], widths)]
    lines += [_line(r, widths) for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = "-" if value is None or value == "" else str(value).replace("\n", " ")
    return text if len(text) <= 90 else text[:87] + "..."


def _line(values: Sequence[str], widths: list[int]) -> str:
    return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()


def pairs(items: Iterable[tuple[str, Any]]) -> str:
    """`key: value` lines, keys aligned."""
    rows = [(k, _cell(v)) for k, v in items]
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def view_status(r: dict[str, Any]) -> str:
    rate = r["success_rate_15m"]
    shown_rate = "-" if rate["rate"] is None else f"{rate['rate'] * 100:.1f}%"
    lines = [
        pairs(
            [
                ("queued", r["queued"]),
                ("retry scheduled", r["retry_scheduled"]),
                ("running", f"{r['running']} (workers: {r['workers']})"),
                ("awaiting approval", r["awaiting_approval"]),
                ("dead letters", r["dead_letters"]),
                ("success rate 15m", f"{shown_rate} of {rate['attempts']} attempts"),
                ("paused", ", ".join(r["paused"]) or "nothing"),
            ]
        ),
        "",
        "circuits not closed:",
        view_circuits(r["circuits_not_closed"], empty="(all closed)"),
    ]
    if r["platforms"] is not None:
        rows = [
            (p["platform"], "yes" if p["enabled"] else "no", p["reason"]) for p in r["platforms"]
        ]
        lines += ["", table(["platform", "enabled", "reason"], rows)]
    if "checks" in r:
        from bot.render_checks import view_checks  # imports this module

        lines += ["", view_checks(r["checks"])]
    return "\n".join(lines)


def view_queue(r: dict[str, Any]) -> str:
    util = r["worker_utilization"]
    by = r["by_priority"]
    return pairs(
        [
            ("total queued", f"{r['total_queued']} ({r['due']} due, {r['delayed']} delayed)"),
            ("by priority", ", ".join(f"{p} {n}" for p, n in by.items())),
            ("oldest wait", seconds(r["oldest_wait_s"])),
            ("average wait", seconds(r["avg_wait_s"])),
            ("running", r["running"]),
            (
                "utilisation",
                "-" if util is None else f"{util * 100:.0f}% of {r['workers']} workers",
            ),
        ]
    )


def view_stuck(rows: list[dict[str, Any]]) -> str:
    body = [
        (
            r["id"],
            r["type"],
            r["platform"],
            r["stuck"],
            seconds(r["for_s"]),
            r["worker"],
            r["attempts"],
        )
        for r in rows
    ]
    headers = ["id", "type", "platform", "stuck", "for", "worker", "attempts"]
    return table(headers, body, empty="no stuck actions")


def view_circuits(rows: list[dict[str, Any]], empty: str = "(none)") -> str:
    body = [
        (
            r["platform"],
            r["state"].upper(),
            r["failure_count"],
            when(r["opened_at"]),
            when(r["will_reset_at"]),
            r["last_error"],
        )
        for r in rows
    ]
    headers = ["platform", "state", "failures", "opened", "half-open at", "last error"]
    return table(headers, body, empty=empty)


def view_errors(rows: list[dict[str, Any]]) -> str:
    body = [
        (
            when(r["finished_at"]),
            r["action_id"],
            r["type"],
            r["number"],
            r["error_kind"],
            r["status_code"],
            r["error"],
        )
        for r in rows
    ]
    headers = ["time", "action", "type", "attempt", "kind", "status", "error"]
    return table(headers, body, empty="no recent errors")


def view_approvals(rows: list[dict[str, Any]]) -> str:
    body = [
        (
            r["id"],
            r["type"],
            r["priority"],
            r["requested_by"],
            seconds(r["waiting_s"]),
            "yes" if r["overdue"] else "no",
            r["approval_reason"] or r["reason"],
        )
        for r in rows
    ]
    headers = ["id", "type", "priority", "requested by", "waiting", "overdue", "why"]
    return table(headers, body, empty="no pending approvals")


def view_pause(r: dict[str, Any]) -> str:
    what = _platform_words(r["platform"])
    if not r["changed"]:
        return f"{what} already paused since {when(r['paused_at'])}"
    return f"paused {what}; their actions stay queued until resumed"


def view_resume(r: dict[str, Any]) -> str:
    text = (
        "resumed " + ", ".join(_platform_words(p) for p in r["resumed"])
        if r["resumed"]
        else f"{_platform_words(r['platform'])} was not paused"
    )
    if r["still_paused"]:
        text += "; still paused: " + ", ".join(_platform_words(p) for p in r["still_paused"])
    return text


def _platform_words(key: str) -> str:
    return "all platforms" if key == "*" else key


def view_clear(r: dict[str, Any]) -> str:
    what = "stuck actions" if r["stuck_only"] else "actions (queued and stuck)"
    return f"cancelled {r['cleared']} {what}"


def view_reset(r: dict[str, Any]) -> str:
    return f"circuit {r['platform']}: {r['from'].upper()} -> {r['to'].upper()}"


def view_dlq(rows: list[dict[str, Any]]) -> str:
    body = [
        (
            r.get("id"),
            r.get("type"),
            r.get("platform"),
            r.get("attempts"),
            when(r.get("finished_at")),
            r.get("error_kind"),
            r.get("error"),
        )
        for r in rows
    ]
    headers = ["id", "type", "platform", "attempts", "failed at", "kind", "error"]
    return table(headers, body, empty="no dead letters")


def view_replay(r: dict[str, Any]) -> str:
    return f"replayed {r['replayed']} dead letter(s): queued again with their idempotency keys"


def view_purge(r: dict[str, Any]) -> str:
    return f"purged {r['purged']} dead letter(s)"


_ACTION_FIELDS = (
    "id",
    "type",
    "platform",
    "status",
    "priority",
    "attempts",
    "max_attempts",
    "requested_by",
    "source",
    "reason",
    "idempotency_key",
    "served_by",
    "fallback_used",
    "worker",
    "error_kind",
    "error",
)
_ACTION_MS = ("queue_wait_ms", "run_ms")
_ACTION_TIMES = ("created_at", "queued_at", "available_at", "started_at", "finished_at")


def view_action(v: dict[str, Any]) -> str:
    fields = [(k, v.get(k)) for k in _ACTION_FIELDS if k in v]
    fields += [(k, seconds(v[k] / 1000) if v.get(k) is not None else None) for k in _ACTION_MS]
    fields += [(k, when(v.get(k))) for k in _ACTION_TIMES if k in v]
    parts = [pairs(fields), "", "data: " + json.dumps(v.get("data"), default=str)]
    if v.get("result") is not None:
        parts.append("result: " + json.dumps(v["result"], default=str))
    attempts = [
        (
            a.get("number"),
            a.get("platform"),
            a.get("worker"),
            when(a.get("started_at")),
            a.get("outcome"),
            a.get("error_kind"),
            a.get("error"),
        )
        for a in v.get("attempt_history") or []
    ]
    headers = ["#", "platform", "worker", "started", "outcome", "kind", "error"]
    history = [
        (
            when(h.get("at")),
            h.get("from_status"),
            h.get("to_status"),
            h.get("actor"),
            h.get("detail"),
        )
        for h in v.get("history") or []
    ]
    parts += ["", "attempts:", table(headers, attempts)]
    parts += ["", "history:", table(["time", "from", "to", "actor", "detail"], history)]
    return "\n".join(parts)


def view_submit(rows: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{r['id']}  {r['status']}"
        + ("  (duplicate: the first action's id)" if r["duplicate"] else "")
        for r in rows
    )


def view_check(rows: list[dict[str, Any]]) -> str:
    body = [
        (r["platform"], "ok" if r["ok"] else "FAIL", seconds(_ms(r.get("latency_ms"))), r["detail"])
        for r in rows
    ]
    return table(["platform", "check", "latency", "detail"], body)


def _ms(value: float | None) -> float | None:
    return None if value is None else value / 1000
