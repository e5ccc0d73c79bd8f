"""Turning ops results into text for people (tables) and JSON for scripts.

The one place for user-facing wording of the CLI: every command's view, every error line, and
secret redaction (settings' secret values and URL passwords never reach the screen). This module
holds the views of the action, approval, control and dead-letter commands and re-exports the
rest, so `bot.render` stays the one import: text building blocks from bot/render_text.py, health
views (status, queue, stuck, circuits, errors, check) from bot/render_status.py.
"""

from __future__ import annotations

import json
from typing import Any

from bot.render_status import (
    view_check,
    view_circuits,
    view_errors,
    view_queue,
    view_status,
    view_stuck,
)
from bot.render_text import pairs, redact, seconds, table, to_json, when

__all__ = [
    "pairs", "redact", "seconds", "table", "to_json", "view_action", "view_approvals",
    "view_check", "view_circuits", "view_clear", "view_dlq", "view_errors", "view_pause",
    "view_purge", "view_queue", "view_replay", "view_reset", "view_resume", "view_status",
    "view_stuck", "view_submit", "when",
]  # fmt: skip


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
