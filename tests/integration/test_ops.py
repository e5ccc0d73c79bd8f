"""The ops service against a real temporary SQLite store: outcomes in rows and audit rows."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert, select

from bot import ops
from bot.config import Settings
from bot.store.engine import Store
from bot.store.tables import ActionRow, AttemptRow, AuditRow, PauseRow
from tests.conftest import FakeClock

A = ActionRow.__table__  # type: ignore[attr-defined]
T = AttemptRow.__table__  # type: ignore[attr-defined]
AUDIT = AuditRow.__table__  # type: ignore[attr-defined]
P = PauseRow.__table__  # type: ignore[attr-defined]


@pytest.fixture
def ctx(store: Store, settings: Settings, clock: FakeClock) -> ops.OpsContext:
    return ops.OpsContext(store=store, settings=settings, clock=clock)


def add_action(store: Store, now: float, id_: str, status: str, **extra: Any) -> None:
    row = {
        "id": id_,
        "type": "echo",
        "platform": "echo",
        "priority": "normal",
        "priority_rank": 2,
        "status": status,
        "created_at": now - 5,
        "queued_at": now - 5,
        "available_at": now - 5,
    }
    row.update(extra)
    store.write_sync(lambda conn: conn.execute(insert(A).values(**row)))


def audit_for(store: Store, entity_id: str) -> list[tuple[str, str, str]]:
    query = select(AUDIT.c.from_status, AUDIT.c.to_status, AUDIT.c.actor).where(
        AUDIT.c.entity_id == entity_id
    )
    return [tuple(r) for r in store.read_sync(lambda c: c.execute(query).all())]


def statuses(store: Store) -> dict[str, str]:
    rows = store.read_sync(lambda c: c.execute(select(A.c.id, A.c.status)).all())
    return {r[0]: r[1] for r in rows}


async def test_status_counts_and_success_rate(
    ctx: ops.OpsContext, store: Store, clock: FakeClock
) -> None:
    now = clock()
    for i, st in enumerate(["queued", "queued", "running", "dead_lettered", "awaiting_approval"]):
        add_action(store, now, f"a{i}", st)
    attempts = [
        {
            "action_id": "a2",
            "number": n,
            "platform": "echo",
            "started_at": now - 10,
            "finished_at": now - 5,
            "outcome": outcome,
        }
        for n, outcome in enumerate(["succeeded", "succeeded", "succeeded", "failed"], 1)
    ]
    store.write_sync(lambda c: c.execute(insert(T), attempts))
    result = await ops.status(ctx)
    assert (result["queued"], result["running"], result["dead_letters"]) == (2, 1, 1)
    assert result["awaiting_approval"] == 1
    assert result["success_rate_15m"] == {"succeeded": 3, "attempts": 4, "rate": 0.75}
    assert result["paused"] == [] and result["circuits_not_closed"] == []


async def test_queue_status_depth_waits_and_utilisation(
    ctx: ops.OpsContext, store: Store, clock: FakeClock
) -> None:
    now = clock()
    add_action(
        store, now, "c", "queued", priority="critical", priority_rank=0, available_at=now - 30
    )
    add_action(store, now, "n", "queued", available_at=now - 10)
    add_action(store, now, "later", "queued", available_at=now + 60)
    add_action(store, now, "r", "running", started_at=now - 1)
    result = await ops.queue_status(ctx)
    assert result["by_priority"] == {"critical": 1, "high": 0, "normal": 1, "low": 0}
    assert (result["due"], result["delayed"], result["total_queued"]) == (2, 1, 3)
    assert result["oldest_wait_s"] == 30 and result["avg_wait_s"] == 20
    assert result["worker_utilization"] == 1 / 5


async def test_pause_resume_are_audited_and_keep_actions_queued(
    ctx: ops.OpsContext, store: Store, clock: FakeClock
) -> None:
    add_action(store, clock(), "q", "queued", platform="notion", type="create_task")
    first = await ops.pause(ctx, "notion", "cli:alice")
    again = await ops.pause(ctx, "notion", "cli:bob")
    await ops.pause(ctx, None, "cli:alice")
    assert first["changed"] and not again["changed"]
    keys = store.read_sync(lambda c: c.execute(select(P.c.platform)).scalars().all())
    assert sorted(keys) == ["*", "notion"]
    assert audit_for(store, "notion") == [("active", "paused", "cli:alice")]

    one = await ops.resume(ctx, "notion", "cli:carol")
    assert one["resumed"] == ["notion"] and one["still_paused"] == ["*"]
    everything = await ops.resume(ctx, None, "cli:carol")
    assert everything["resumed"] == ["*"]
    assert audit_for(store, "*")[-1] == ("paused", "active", "cli:carol")
    assert statuses(store) == {"q": "queued"}


async def test_unknown_platform_lists_valid_ones(ctx: ops.OpsContext) -> None:
    with pytest.raises(ops.BadInput, match=r"unknown platform 'jira'.*notion, trello"):
        await ops.pause(ctx, "jira", "cli")
    with pytest.raises(ops.BadInput):
        await ops.circuit_reset(ctx, "nope", "cli")


async def test_clear_cancels_stuck_only_or_everything(
    ctx: ops.OpsContext, store: Store, clock: FakeClock
) -> None:
    now = clock()
    add_action(store, now, "old", "running", started_at=now - 3600, lease_owner="w1")
    add_action(store, now, "fresh", "running", started_at=now - 1)
    add_action(store, now, "waiting", "queued")
    add_action(store, now, "done", "succeeded")
    stuck = await ops.stuck(ctx)
    assert [r["id"] for r in stuck] == ["old"] and stuck[0]["for_s"] == 3600

    result = await ops.clear(ctx, stuck_only=True, actor="cli:alice")
    assert result["cleared"] == 1 and result["ids"] == ["old"]
    assert statuses(store)["old"] == "cancelled" and statuses(store)["waiting"] == "queued"
    assert audit_for(store, "old") == [("running", "cancelled", "cli:alice")]

    result = await ops.clear(ctx, stuck_only=False, actor="cli:alice")
    assert result["ids"] == ["waiting"]
    assert statuses(store) == {
        "old": "cancelled",
        "fresh": "running",
        "waiting": "cancelled",
        "done": "succeeded",
    }


async def test_circuit_reset_closes_and_audits(
    ctx: ops.OpsContext, store: Store, settings: Settings, clock: FakeClock
) -> None:
    from bot.flow.breaker import save

    now = clock()
    store.write_sync(
        lambda c: save(
            c,
            {
                "platform": "notion",
                "state": "open",
                "consecutive_failures": 7,
                "half_open_successes": 0,
                "opened_at": now - 10,
                "updated_at": now - 10,
                "last_error": "503 from notion",
            },
        )
    )
    view = {c["platform"]: c for c in await ops.circuits(ctx)}
    assert view["notion"]["state"] == "open" and view["notion"]["failure_count"] == 7
    assert view["notion"]["will_reset_at"] == now - 10 + settings.circuit_breaker_timeout
    assert view["trello"]["state"] == "closed"
    assert (await ops.status(ctx))["circuits_not_closed"][0]["platform"] == "notion"

    result = await ops.circuit_reset(ctx, "notion", "cli:alice")
    assert (result["from"], result["to"]) == ("open", "closed")
    assert (await ops.circuits(ctx, "notion"))[0]["state"] == "closed"
    assert audit_for(store, "notion") == [("open", "closed", "cli:alice")]


async def test_recent_errors_and_approvals(
    ctx: ops.OpsContext, store: Store, settings: Settings, clock: FakeClock
) -> None:
    now = clock()
    add_action(store, now, "f", "dead_lettered")
    add_action(
        store,
        now,
        "old-ask",
        "awaiting_approval",
        created_at=now - settings.opsbot_approval_timeout - 1,
    )
    add_action(store, now, "new-ask", "awaiting_approval", created_at=now - 5)
    rows = [
        {
            "action_id": "f",
            "number": n,
            "platform": "echo",
            "started_at": now - 9 + n,
            "finished_at": now - 8 + n,
            "outcome": "failed",
            "error": f"boom {n}",
        }
        for n in (1, 2, 3)
    ]
    store.write_sync(lambda c: c.execute(insert(T), rows))
    errors = await ops.recent_errors(ctx, 2)
    assert [e["error"] for e in errors] == ["boom 3", "boom 2"]
    pending = await ops.approvals(ctx)
    assert [(p["id"], p["overdue"]) for p in pending] == [("old-ask", True), ("new-ask", False)]


@pytest.fixture
async def qctx(ctx: ops.OpsContext, queue: Any) -> ops.OpsContext:
    ctx.queue = queue
    return ctx


async def test_submit_validates_and_stores(qctx: ops.OpsContext, store: Store) -> None:
    from bot.actions import ActionInvalid

    with pytest.raises(ActionInvalid) as caught:
        await ops.submit(qctx, [{"type": "echo"}, {"type": "create_task"}], "cli")
    assert "data.title" in str(caught.value)
    assert statuses(store) == {}
    done = await ops.submit(qctx, {"type": "echo", "idempotency_key": "k"}, "cli")
    again = await ops.submit(qctx, {"type": "echo", "idempotency_key": "k"}, "cli")
    assert again[0]["id"] == done[0]["id"] and again[0]["duplicate"]
    assert statuses(store) == {done[0]["id"]: "queued"}
    view = await ops.action_show(qctx, done[0]["id"])
    assert view["status"] == "queued"
    with pytest.raises(ops.NotFound):
        await ops.action_show(qctx, "act_nope")


async def test_dead_letters_replay_and_purge(
    qctx: ops.OpsContext, store: Store, clock: FakeClock
) -> None:
    now = clock()
    for i in range(3):
        add_action(store, now, f"d{i}", "dead_lettered", finished_at=now - i, error="boom")
    assert [d["id"] for d in await ops.dlq_list(qctx)] == ["d0", "d1", "d2"]
    assert (await ops.dlq_replay(qctx, ["d1"], "cli:alice"))["replayed"] == 1
    assert statuses(store)["d1"] == "queued"
    with pytest.raises(ops.NotFound):
        await ops.dlq_replay(qctx, ["d1"], "cli:alice")  # not a dead letter any more
    with pytest.raises(ops.BadInput):
        await ops.dlq_purge(qctx, [], "cli:alice")
    assert (await ops.dlq_purge(qctx, None, "cli:alice"))["purged"] == 2
    assert statuses(store) == {"d1": "queued"}


async def test_live_breakers_and_pool_are_preferred(ctx: ops.OpsContext, clock: FakeClock) -> None:
    from bot.flow.breaker import Breakers
    from bot.routing import PLATFORMS

    breakers = Breakers(PLATFORMS, threshold=1, clock=clock)
    breakers.get("slack").record_failure(RuntimeError("down"))

    class Pool:
        workers, busy = 4, 3

    ctx.breakers, ctx.pool = breakers, Pool()
    view = {c["platform"]: c for c in await ops.circuits(ctx)}
    assert view["slack"]["state"] == "open" and view["notion"]["state"] == "closed"
    queue = await ops.queue_status(ctx)
    assert (queue["worker_utilization"], queue["utilization_source"]) == (0.75, "pool")


async def test_status_shows_disabled_platforms(ctx: ops.OpsContext) -> None:
    ctx.disabled = {"notion": "NOTION_API_KEY is not set"}
    platforms = {p["platform"]: p for p in (await ops.status(ctx))["platforms"]}
    assert platforms["notion"] == {
        "platform": "notion",
        "enabled": False,
        "reason": "NOTION_API_KEY is not set",
    }
    assert platforms["echo"]["enabled"] is True


def test_redact_hides_secrets_and_url_passwords() -> None:
    from bot.config import load_settings
    from bot.render import redact

    settings = load_settings(_env_file=None, slack_bot_token="xoxb-very-secret")
    text = "token xoxb-very-secret at postgresql://opsbot:pw123@db/opsbot"
    assert redact(text, settings) == "token [REDACTED] at postgresql://opsbot:[REDACTED]@db/opsbot"
