"""The latest platform checks are kept in the store and shown by status, /ops status and report."""

from __future__ import annotations

from typing import Any

from bot import ops
from bot.config import Settings
from bot.health import Health
from bot.maintenance import report
from bot.ops import OpsContext
from bot.ops.platforms import check
from bot.render import view_status
from bot.render_maint import view_report
from bot.store.engine import Store
from tests.conftest import FakeClock


async def two_platforms() -> list[dict[str, Any]]:
    return [
        {"platform": "notion", "ok": False, "detail": "AuthError: 401", "latency_ms": 12.0},
        {"platform": "trello", "ok": True, "detail": "member ok", "latency_ms": 30.0},
    ]


async def test_periodic_checks_show_in_status_and_report_with_their_age(
    settings: Settings, store: Store, queue: Any, clock: FakeClock
) -> None:
    await Health(store, two_platforms, clock=clock).run_checks()  # another process, say
    clock.advance(120)
    ctx = OpsContext(store=store, settings=settings, queue=queue, clock=clock)
    status = await ops.status(ctx)
    by = {c["platform"]: c for c in status["checks"]}
    assert by["notion"]["ok"] is False and by["notion"]["age_s"] == 120
    assert by["trello"]["latency_ms"] == 30.0 and by["trello"]["source"] == "health"
    text = view_status(status)
    assert "notion" in text and "FAILING" in text and "2m" in text
    daily = await report(ctx)
    assert daily["health"]["status"] == "degraded"
    assert "notion: check failing" in daily["health"]["reasons"]
    assert "AuthError: 401" in view_report(daily)
    clock.advance(3600)  # stale: still shown, no longer judging health
    daily = await report(ctx)
    assert daily["health"]["status"] == "healthy"
    assert {c["platform"] for c in daily["checks"]} == {"notion", "trello"}


async def test_opsbot_check_results_are_kept(
    settings: Settings, store: Store, queue: Any, clock: FakeClock
) -> None:
    ctx = OpsContext(store=store, settings=settings, queue=queue, clock=clock)
    results = await check(ctx)
    status = await ops.status(ctx)
    kept = {c["platform"]: c for c in status["checks"]}
    assert set(kept) == {r["platform"] for r in results}
    assert kept["echo"]["ok"] is True and kept["echo"]["source"] == "check"
    assert kept["notion"]["ok"] is False and kept["notion"]["detail"].startswith("disabled")
