"""Retention pruning and the daily report on a real SQLite store, time injected."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from bot.actions import parse_action
from bot.config import Settings
from bot.maintenance import DAY, post_report, prune_now, report
from bot.ops.context import A, OpsContext, T
from bot.store.audit import audit_row, write_audit
from bot.store.engine import Store
from bot.store.tables import AuditRow
from tests.conftest import FakeClock

AUDIT_T = AuditRow.__table__  # type: ignore[attr-defined]


async def _actions(queue: Any, n: int, **fields: Any) -> list[str]:
    specs = [parse_action({"type": "echo", "data": {"i": i}, **fields}) for i in range(n)]
    return [r.id for r in await queue.submit(specs, actor="test")]


def _finish(
    store: Store, ids: list[str], status: str, at: float, run_id: str | None = None
) -> None:
    def go(conn: Any) -> None:
        conn.execute(update(A).where(A.c.id.in_(ids)).values(
            status=status, finished_at=at, run_id=run_id))  # fmt: skip
        conn.execute(insert(T), [{"action_id": i, "number": 1, "platform": "echo",
                                  "started_at": at - 1, "finished_at": at,
                                  "outcome": "succeeded" if status == "succeeded" else "failed",
                                  "error_kind": None if status == "succeeded" else "permanent"}
                                 for i in ids])  # fmt: skip

    store.write_sync(go)


async def test_prune_deletes_only_what_is_past_retention(
    store: Store, queue: Any, settings: Settings, clock: FakeClock
) -> None:
    now = clock()
    old, recent = await _actions(queue, 3), await _actions(queue, 2)
    dead, step = await _actions(queue, 1), await _actions(queue, 1)
    running = await _actions(queue, 1)
    _finish(store, old, "succeeded", now - 31 * DAY)
    _finish(store, recent, "succeeded", now - 29 * DAY)
    _finish(store, dead, "dead_lettered", now - 40 * DAY)
    _finish(store, step, "succeeded", now - 40 * DAY, run_id="run_x")
    store.write_sync(lambda c: c.execute(update(A).where(A.c.id.in_(running)).values(
        status="running", created_at=now - 60 * DAY)))  # fmt: skip
    aged = [audit_row(now - d * DAY, "x", None, to) for d, to in ((91, "old"), (89, "kept"))]
    store.write_sync(lambda c: write_audit(c, aged))
    ctx = OpsContext(store=store, settings=settings, queue=queue, clock=clock)
    result = await prune_now(ctx, actor="cli:test")
    assert result["deleted"]["actions"] == 3 and result["deleted"]["attempts"] == 3
    assert result["deleted"]["audit"] == 1
    left = store.read_sync(lambda c: set(c.execute(select(A.c.id)).scalars()))
    assert left == {*recent, *dead, *step, *running}
    statuses = store.read_sync(
        lambda c: [r[0] for r in c.execute(select(AUDIT_T.c.to_status).where(
            AUDIT_T.c.entity_id == "x"))]
    )  # fmt: skip
    assert statuses == ["kept"]


async def test_report_counts_the_last_day_and_posts_through_the_callable(
    store: Store, queue: Any, settings: Settings, clock: FakeClock
) -> None:
    now = clock()
    ok, bad = await _actions(queue, 3), await _actions(queue, 1)
    _finish(store, ok, "succeeded", now - 3600)
    _finish(store, bad, "dead_lettered", now - 3600)
    _finish(store, await _actions(queue, 5), "succeeded", now - 2 * DAY)  # outside the window
    ctx = OpsContext(store=store, settings=settings, queue=queue, clock=clock)
    data = await report(ctx)
    assert data["success_rate_24h"] == {"succeeded": 3, "attempts": 4, "rate": 0.75}
    assert data["errors_24h"]["total"] == 1
    assert data["errors_24h"]["by"] == [{"platform": "echo", "kind": "permanent", "count": 1}]
    assert data["database"]["bytes"] > 0
    posted: list[tuple[str, str]] = []

    async def post(channel: str, text: str) -> None:
        posted.append((channel, text))

    assert (await post_report(ctx, post))["posted"] is False  # no channel configured
    configured = OpsContext(store=store, settings=settings.model_copy(
        update={"opsbot_report_channel": "#ops"}), queue=queue, clock=clock)  # fmt: skip
    assert (await post_report(configured, post))["posted"] is True
    [(channel, text)] = posted
    assert channel == "#ops" and "75.0% of 4 attempts" in text and "errors 24h" in text
