"""The latest platform checks as text (`opsbot status`, `/ops status`, `opsbot report`)."""

from __future__ import annotations

from typing import Any

from bot.render_text import seconds, table


def view_checks(rows: list[dict[str, Any]]) -> str:
    """One line per platform: ok or failing, how long ago, latency, what the check said."""
    return "platform checks:\n" + table(
        ["platform", "ok", "checked", "latency", "detail"],
        [
            (r["platform"], "ok" if r["ok"] else "FAILING", f"{seconds(r.get('age_s'))} ago",
             "-" if r.get("latency_ms") is None else f"{r['latency_ms']:.0f} ms",
             r.get("detail") or "")
            for r in rows
        ],
        empty="(none yet: run `opsbot check`, or start opsbot)",
    )  # fmt: skip
