"""The latest platform check per platform, kept in the store (`platform_checks`).

Health checks run in whichever process has executors (`opsbot run`, `opsbot worker`) and in
`opsbot check`; keeping the latest result of each platform in the store lets every other door
(`opsbot status`, `/ops status`, `opsbot report`, `/health` of another process) show it, with its
age, instead of only the process that ran it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from bot.store.tables import PlatformCheckRow

CHECKS = PlatformCheckRow.__table__  # type: ignore[attr-defined]


def save_checks(
    conn: Connection, results: Iterable[dict[str, Any]], now: float, source: str
) -> None:
    """Replace each checked platform's row with this result (one transaction)."""
    rows = [
        {"platform": r["platform"], "checked_at": now, "ok": bool(r.get("ok")),
         "detail": str(r.get("detail") or "")[:500], "latency_ms": r.get("latency_ms"),
         "source": source}
        for r in results
    ]  # fmt: skip
    if rows:
        conn.execute(delete(CHECKS).where(CHECKS.c.platform.in_([r["platform"] for r in rows])))
        conn.execute(insert(CHECKS), rows)


def load_checks(conn: Connection, now: float) -> list[dict[str, Any]]:
    """Every platform's latest check, by platform, with its age in seconds."""
    rows = conn.execute(select(CHECKS).order_by(CHECKS.c.platform)).mappings()
    return [{**row, "age_s": round(max(0.0, now - row["checked_at"]), 1)} for row in rows]
