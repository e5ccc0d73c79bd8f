"""Views of the read-only health commands: status, queue, stuck, circuits, errors, check."""

from __future__ import annotations

from typing import Any

from bot.render_checks import view_checks
from bot.render_text import pairs, seconds, table, when


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


def view_check(rows: list[dict[str, Any]]) -> str:
    body = [
        (r["platform"], "ok" if r["ok"] else "FAIL", seconds(_ms(r.get("latency_ms"))), r["detail"])
        for r in rows
    ]
    return table(["platform", "check", "latency", "detail"], body)


def _ms(value: float | None) -> float | None:
    return None if value is None else value / 1000
