"""The durable queue against real SQLite files, with an injected clock (no sleeping)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import bindparam, text

from bot.actions import ActionSpec, parse_action
from bot.config import Settings
from bot.queue import Outcome, Queue, QueueFull, depth_by_priority, stuck
from bot.store.engine import Store
from bot.store.tables import SCHEMA_VERSION
from tests.conftest import FakeClock


def spec(priority: str | None = None, **fields: Any) -> ActionSpec:
    raw: dict[str, Any] = {"type": "echo", "data": fields.pop("data", {"n": 1}), **fields}
    if priority:
        raw["priority"] = priority
    return parse_action(raw)


def statuses(store: Store) -> dict[str, str]:
    return store.read_sync(lambda c: dict(c.execute(text("SELECT id, status FROM actions")).all()))


def audit(store: Store, action_id: str) -> list[tuple[Any, ...]]:
    sql = "SELECT from_status, to_status, actor FROM audit WHERE entity_id = :i ORDER BY id"
    return store.read_sync(lambda c: [tuple(r) for r in c.execute(text(sql), {"i": action_id})])


async def test_submit_is_committed_and_audited(queue: Queue, store: Store) -> None:
    [result] = await queue.submit([spec()], actor="tester")
    assert result.status == "queued" and not result.duplicate
    assert statuses(store) == {result.id: "queued"}
    assert audit(store, result.id) == [("received", "queued", "tester")]


async def test_claim_order_priority_then_fifo(queue: Queue) -> None:
    order = ["low", "normal", "critical", "high", "normal", "critical", "low", "high"]
    results = await queue.submit([spec(p, data={"i": i}) for i, p in enumerate(order)])
    claimed = await queue.claim("w", 100)
    got = [(c.priority, c.data["i"]) for c in claimed]
    assert got == [
        ("critical", 2),
        ("critical", 5),
        ("high", 3),
        ("high", 7),
        ("normal", 1),
        ("normal", 4),
        ("low", 0),
        ("low", 6),
    ]
    assert {c.id for c in claimed} == {r.id for r in results}
    assert all(c.attempt == 1 and c.max_attempts == 4 for c in claimed)


async def test_claim_in_batches_keeps_fifo_across_submits(queue: Queue) -> None:
    first = await queue.submit([spec(data={"i": i}) for i in range(5)])
    second = await queue.submit([spec(data={"i": i}) for i in range(5, 10)])
    ids = [c.id for c in await queue.claim("w", 3)] + [c.id for c in await queue.claim("w", 10)]
    assert ids == [r.id for r in first + second]
    assert await queue.claim("w", 10) == []


async def test_mixed_batch_keeps_submit_order_within_a_priority(queue: Queue) -> None:
    """Actions of different types (and so different INSERTs) in one submit keep their order."""
    batch = [
        spec(data={"n": 1}),
        parse_action({"type": "create_task", "data": {"title": "t"}}),
        spec(data={"n": 2}),
        parse_action({"type": "create_card", "data": {"name": "c"}}),
    ]
    submitted = [r.id for r in await queue.submit(batch)]
    claimed = await queue.claim("w", 10)
    assert [c.id for c in claimed] == submitted
    assert [c.type for c in claimed] == ["echo", "create_task", "echo", "create_card"]
    assert [c.data for c in claimed][:3] == [{"n": 1}, {"title": "t"}, {"n": 2}]


async def test_claim_sets_lease_and_audits(queue: Queue, store: Store, clock: FakeClock) -> None:
    [r] = await queue.submit([spec()])
    [c] = await queue.claim("worker-1", 1)
    row = store.read_sync(
        lambda conn: conn.execute(
            text("SELECT status, lease_owner, lease_expires_at, attempts FROM actions")
        ).one()
    )
    assert tuple(row) == ("running", "worker-1", clock() + 30.0, 1)
    assert audit(store, r.id)[-1] == ("queued", "running", "worker-1")
    assert c.id == r.id


@pytest.mark.parametrize("with_key", [True, False])
async def test_not_before_delays(queue: Queue, clock: FakeClock, with_key: bool) -> None:
    later = clock() + 60
    extra = {"idempotency_key": "k"} if with_key else {}
    [r] = await queue.submit([spec(not_before=later, **extra)])
    assert await queue.claim("w", 10) == []
    clock.advance(61)
    assert [c.id for c in await queue.claim("w", 10)] == [r.id]


async def test_idempotency_returns_first_and_never_runs_twice(
    queue: Queue, clock: FakeClock
) -> None:
    [first] = await queue.submit([spec(idempotency_key="order-1")])
    [c] = await queue.claim("w", 5)
    await queue.record([Outcome(c.id, "succeeded", clock(), clock(), "w", result={"ok": 1})])
    [again] = await queue.submit([spec(idempotency_key="order-1", data={"other": True})])
    assert again.duplicate and again.id == first.id
    assert again.status == "succeeded" and again.result == {"ok": 1}
    assert await queue.claim("w", 5) == []


async def test_idempotency_repeats_inside_one_batch(queue: Queue, store: Store) -> None:
    results = await queue.submit(
        [spec(idempotency_key="a"), spec(idempotency_key="b"), spec(idempotency_key="a")]
    )
    assert results[2].id == results[0].id and results[2].duplicate
    assert len(statuses(store)) == 2


async def test_concurrent_duplicate_submits(queue: Queue, store: Store) -> None:
    results = await asyncio.gather(
        *(queue.submit([spec(idempotency_key="same")]) for _ in range(20))
    )
    ids = {r[0].id for r in results}
    assert len(ids) == 1
    assert sum(1 for r in results if not r[0].duplicate) == 1
    assert len(statuses(store)) == 1


async def test_duplicate_from_another_process_race(
    queue: Queue, settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process inserts the same key between our look-up and our insert: the unique
    index refuses ours, and the retried submit returns theirs."""
    import bot.queue_submit

    other = Queue(Store(settings.opsbot_database_url), settings, clock=clock)
    real_existing = bot.queue_submit._existing
    calls = 0

    def racing(conn: Any, specs: list[ActionSpec]) -> Any:
        nonlocal calls
        calls += 1
        found = real_existing(conn, specs)
        if calls == 1:
            other.submit_sync([spec(idempotency_key="race")])
        return found

    monkeypatch.setattr(bot.queue_submit, "_existing", racing)
    [ours] = await queue.submit([spec(idempotency_key="race")])
    [theirs] = other.submit_sync([spec(idempotency_key="race")])
    # Our first look found nothing, so only the unique index + retry can make ours a duplicate.
    assert ours.id == theirs.id and ours.duplicate
    assert len(statuses(queue.store)) == 1
    await other.close()
    other.store.close()


class TestQueueFull:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"queue_max_size": 3}

    async def test_refuses_whole_batch(self, queue: Queue, store: Store) -> None:
        await queue.submit([spec(), spec()])
        with pytest.raises(QueueFull) as info:
            await queue.submit([spec(), spec()])
        message = str(info.value)
        assert "queue full" in message and "2 of QUEUE_MAX_SIZE=3" in message
        assert len(statuses(store)) == 2
        await queue.submit([spec()])  # exactly fits
        with pytest.raises(QueueFull):
            await queue.submit([spec()])

    async def test_frees_room_when_actions_finish(self, queue: Queue, clock: FakeClock) -> None:
        await queue.submit([spec(), spec(), spec()])
        claimed = await queue.claim("w", 3)
        await queue.record([Outcome(c.id, "succeeded", clock(), clock(), "w") for c in claimed])
        assert len(await queue.submit([spec(), spec(), spec()])) == 3

    async def test_concurrent_submits_share_a_commit_and_fail_alone(
        self, queue: Queue, store: Store
    ) -> None:
        """Submits arriving while the writer is busy are committed together, each in its own
        savepoint: those that fit are stored and returned, the others get QueueFull."""
        gate = threading.Event()
        blocker = asyncio.ensure_future(store.write(lambda conn: gate.wait(5)))
        submits = [asyncio.ensure_future(queue.submit([spec(data={"n": i})])) for i in range(6)]
        await asyncio.sleep(0)  # every submit has joined the waiting group
        gate.set()
        results = await asyncio.gather(*submits, return_exceptions=True)
        stored = [r[0].id for r in results if isinstance(r, list)]
        assert len(stored) == 3
        assert sum(isinstance(r, QueueFull) for r in results) == 3
        assert set(statuses(store)) == set(stored)
        assert await blocker is True

    async def test_duplicates_do_not_count(self, queue: Queue) -> None:
        await queue.submit([spec(idempotency_key=k) for k in "abc"])
        results = await queue.submit([spec(idempotency_key="a")])
        assert results[0].duplicate


async def test_record_success_retry_dead(queue: Queue, store: Store, clock: FakeClock) -> None:
    results = await queue.submit([spec(data={"i": i}) for i in range(3)])
    ok, again, dead = await queue.claim("w", 3)
    t0 = clock()
    clock.advance(0.25)
    await queue.record(
        [
            Outcome(ok.id, "succeeded", t0, clock(), "w-1", result={"echo": 1}, served_by="echo"),
            Outcome(
                again.id,
                "retry",
                t0,
                clock(),
                "w-2",
                error="503",
                error_kind="retryable",
                status_code=503,
                retry_at=clock() + 5,
            ),
            Outcome(
                dead.id,
                "dead",
                t0,
                clock(),
                "w-3",
                error="bad",
                error_kind="permanent",
                status_code=400,
            ),
        ]
    )
    assert statuses(store) == {
        results[0].id: "succeeded",
        results[1].id: "queued",
        results[2].id: "dead_lettered",
    }
    view = await queue.get(ok.id)
    assert view["result"] == {"echo": 1} and view["worker"] == "w-1"
    assert view["run_ms"] == pytest.approx(250.0) and view["served_by"] == "echo"
    assert view["attempt_history"][0]["outcome"] == "succeeded"
    assert [h["to_status"] for h in view["history"]] == ["queued", "running", "succeeded"]
    assert [h["to_status"] for h in (await queue.get(again.id))["history"]][-2:] == [
        "retry_scheduled",
        "queued",
    ]
    assert await queue.claim("w", 5) == []  # the retry is not due yet
    clock.advance(5)
    [retried] = await queue.claim("w", 5)
    assert retried.id == again.id and retried.attempt == 2
    dead_view = await queue.get(dead.id)
    assert dead_view["error"] == "bad" and dead_view["attempt_history"][0]["status_code"] == 400


async def test_release_does_not_spend_the_attempt(queue: Queue, store: Store) -> None:
    [r] = await queue.submit([spec()])
    await queue.claim("w", 1)
    await queue.release("w", [r.id])
    assert statuses(store) == {r.id: "queued"}
    [again] = await queue.claim("w", 1)
    assert again.attempt == 1
    assert audit(store, r.id)[2] == ("running", "queued", "w")


async def test_lease_expiry_reclaims(queue: Queue, store: Store, clock: FakeClock) -> None:
    [r] = await queue.submit([spec()])
    await queue.claim("dead-worker", 1)
    assert await queue.reap_expired() == 0
    clock.advance(31)
    assert await queue.reap_expired() == 1
    [again] = await queue.claim("w2", 1)
    assert again.id == r.id and again.attempt == 2
    history = (await queue.get(r.id))["attempt_history"]
    assert history[0]["error"] == "lease expired"


async def test_renew_keeps_the_lease(queue: Queue, clock: FakeClock) -> None:
    [r] = await queue.submit([spec()])
    await queue.claim("w", 1)
    clock.advance(20)
    await queue.renew("w", [r.id])
    clock.advance(20)
    assert await queue.reap_expired() == 0


async def test_lease_expiry_when_exhausted_dead_letters(
    queue: Queue, store: Store, clock: FakeClock
) -> None:
    [r] = await queue.submit([spec()])
    for _ in range(4):
        assert await queue.claim("w", 1)
        clock.advance(31)
        await queue.reap_expired()
    assert statuses(store) == {r.id: "dead_lettered"}
    assert (await queue.get(r.id))["error"] == "lease expired"


async def test_paused_excluded_and_half_open_platforms(
    queue: Queue, store: Store, clock: FakeClock
) -> None:
    await queue.submit([spec(data={"i": i}) for i in range(3)])
    assert await queue.claim("w", 5, exclude=frozenset({"echo"})) == []
    first = await queue.claim("w", 5, only_one=frozenset({"echo"}))
    assert len(first) == 1
    assert await queue.claim("w", 5, only_one=frozenset({"echo"})) == []  # probe still running
    await queue.record([Outcome(first[0].id, "succeeded", clock(), clock(), "w")])
    assert len(await queue.claim("w", 5, only_one=frozenset({"echo"}))) == 1
    sql = "INSERT INTO pauses (platform, paused_at, actor) VALUES ('*', 0, 'ops')"
    store.write_sync(lambda c: c.execute(text(sql)))
    assert await queue.claim("w", 5) == []


async def test_approvals_first_decision_wins(queue: Queue, store: Store) -> None:
    [r] = await queue.submit([spec(requires_approval=True)], actor="agent")
    assert r.status == "awaiting_approval"
    assert await queue.claim("w", 5) == []
    first, second = await asyncio.gather(
        queue.decide(r.id, True, "U1", "looks fine"), queue.decide(r.id, False, "U2")
    )
    assert first["changed"] and not second["changed"]
    assert statuses(store) == {r.id: "queued"}
    assert audit(store, r.id) == [
        ("received", "awaiting_approval", "agent"),
        ("awaiting_approval", "queued", "U1"),
    ]
    assert [c.id for c in await queue.claim("w", 5)] == [r.id]


async def test_routes_requiring_approval(queue: Queue) -> None:
    share = parse_action({"type": "share", "data": {"file_id": "f"}})
    [r] = await queue.submit([share])
    assert r.status == "awaiting_approval"


async def test_approval_rules_hold_risky_actions_with_their_reason(queue: Queue) -> None:
    rows = {"type": "append_row", "data": {"values": [[i] for i in range(12)]}}
    money = {"type": "create_task", "data": {"title": "Pay vendor", "amount": 900}}
    plain = {"type": "create_task", "data": {"title": "Tidy up"}}
    results = await queue.submit([parse_action(a) for a in (rows, money, plain)])
    views = [await queue.get(r.id) for r in results]
    assert [(v["status"], v["approval_reason"]) for v in views] == [
        ("awaiting_approval", "bulk change: 12 values (over 10)"),
        ("awaiting_approval", "money: amount"),
        ("queued", None),
    ]


async def test_reject_and_expire_approvals(queue: Queue, store: Store, clock: FakeClock) -> None:
    [a] = await queue.submit([spec(requires_approval=True)])
    [b] = await queue.submit([spec(requires_approval=True)])
    clock.advance(100)
    rejected = await queue.decide(a.id, False, "U1", "no")
    assert rejected["status"] == "rejected" and rejected["changed"]
    [c] = await queue.submit([spec(requires_approval=True)])
    clock.advance(50)
    assert sorted(await queue.expire_approvals(older_than=40)) == sorted([b.id, c.id])
    assert statuses(store) == {a.id: "rejected", b.id: "expired", c.id: "expired"}


async def test_outcome_bus_and_wait(queue: Queue, clock: FakeClock) -> None:
    seen: list[dict[str, Any]] = []
    unsubscribe = queue.subscribe(seen.append)
    [r] = await queue.submit([spec()])
    [c] = await queue.claim("w", 1)
    await queue.record([Outcome(c.id, "succeeded", clock(), clock(), "w", result={"x": 1})])
    assert [(v["id"], v["status"], v["result"]) for v in seen] == [(r.id, "succeeded", {"x": 1})]
    unsubscribe()


async def test_wait_for_work_wakes_on_submit(queue: Queue) -> None:
    await queue.wait_for_work(0)  # consume the first-look wake
    waiter = asyncio.create_task(queue.wait_for_work(30))
    await asyncio.sleep(0)
    await queue.submit([spec()])
    await asyncio.wait_for(waiter, 5)


async def test_wait_for_work_sees_another_process(
    queue: Queue, settings: Settings, clock: FakeClock
) -> None:
    await queue.wait_for_work(0)
    other = Store(settings.opsbot_database_url)  # a second process's connection to the file
    waiter = asyncio.create_task(queue.wait_for_work(30))
    await asyncio.sleep(0.01)
    Queue(other, settings, clock=clock).submit_sync([spec()])
    await asyncio.wait_for(waiter, 5)
    assert len(await queue.claim("w", 5)) == 1
    other.close()


async def test_views_stuck_and_depth(queue: Queue, store: Store, clock: FakeClock) -> None:
    await queue.submit([spec("high"), spec("low"), spec("low")])
    await queue.submit([spec(not_before=clock() + 1000)])
    [running] = await queue.claim("w", 1)
    clock.advance(700)
    now = clock()
    report = store.read_sync(lambda c: depth_by_priority(c, now))
    assert report["depth"] == {"critical": 0, "high": 0, "normal": 0, "low": 2}
    assert report["running"] == 1 and report["scheduled"] == 1
    assert report["oldest_wait_s"] == pytest.approx(700)
    found = store.read_sync(lambda c: stuck(c, now, 600))
    kinds = sorted((f["stuck"], f["id"] == running.id) for f in found)
    assert kinds == [("running", True), ("waiting", False), ("waiting", False)]


def test_migrate_runs_steps_and_refuses_newer(settings: Settings) -> None:
    from bot.store import migrations
    from bot.store.tables import SCHEMA_VERSION

    store = Store(settings.opsbot_database_url)
    # Simulate a version-1 file: no claim index, stamped 1.
    store.write_sync(lambda c: c.execute(text("DROP INDEX ix_actions_claim")))
    store.write_sync(
        lambda c: c.execute(text("UPDATE meta SET value = '1' WHERE key = 'schema_version'"))
    )
    store.close()
    upgraded = Store(settings.opsbot_database_url)
    assert upgraded.schema_version == SCHEMA_VERSION
    names = upgraded.read_sync(
        lambda c: (
            c.execute(text("SELECT name FROM sqlite_master WHERE type='index'")).scalars().all()
        )
    )
    assert "ix_actions_claim" in names
    upgraded.write_sync(
        lambda c: c.execute(text("UPDATE meta SET value = '99' WHERE key = 'schema_version'"))
    )
    with pytest.raises(RuntimeError, match="newer than this opsbot"):
        upgraded.write_sync(migrations.migrate)
    upgraded.close()


async def test_migrate_version_2_file_in_place(settings: Settings, clock: FakeClock) -> None:
    """A version-2 file (status index, full run_id index) keeps its actions and gets the lean
    indexes; its queued actions are still claimed in order."""
    store = Store(settings.opsbot_database_url)
    queue = Queue(store, settings, clock=clock)
    await queue.submit([spec(priority="low"), spec(priority="high")], run_id="run-1")

    def as_version_2(c: Any) -> None:
        c.execute(text("CREATE INDEX ix_actions_status ON actions (status)"))
        c.execute(text("DROP INDEX ix_actions_run_id"))
        c.execute(text("CREATE INDEX ix_actions_run_id ON actions (run_id)"))
        c.execute(text("UPDATE meta SET value = '2' WHERE key = 'schema_version'"))

    store.write_sync(as_version_2)
    await queue.close()
    store.close()
    upgraded = Store(settings.opsbot_database_url)
    sql = "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='actions'"
    indexes: dict[str, str] = dict(upgraded.read_sync(lambda c: c.execute(text(sql)).all()))
    assert upgraded.schema_version == SCHEMA_VERSION
    assert "ix_actions_status" not in indexes
    assert "WHERE run_id IS NOT NULL" in indexes["ix_actions_run_id"]
    queue = Queue(upgraded, settings, clock=clock)
    claimed = await queue.claim("w", 10)
    assert [c.priority for c in claimed] == ["high", "low"]
    assert {c.run_id for c in claimed} == {"run-1"}
    await queue.close()
    upgraded.close()


async def test_wait_for_work_wakes_when_delayed_work_falls_due(
    queue: Queue, clock: FakeClock
) -> None:
    await queue.submit([spec(not_before=clock() + 0.05)])
    await queue.wait_for_work(0)  # consume the submit's own wake
    await asyncio.wait_for(queue.wait_for_work(30), 5)  # returns at the due time, not 30 s
    clock.advance(0.05)
    assert len(await queue.claim("w", 5)) == 1


async def test_two_stores_never_claim_the_same_action(
    queue: Queue, settings: Settings, clock: FakeClock
) -> None:
    """Two processes' queues on one file: the guarded UPDATE gives each action to one of them."""
    other = Queue(Store(settings.opsbot_database_url), settings, clock=clock)
    await queue.submit([spec(data={"i": i}) for i in range(200)])

    async def drain(q: Queue, owner: str) -> list[str]:
        got: list[str] = []
        while batch := await q.claim(owner, 7):
            got += [c.id for c in batch]
        return got

    a, b = await asyncio.gather(drain(queue, "a"), drain(other, "b"))
    assert len(a) + len(b) == 200 and not set(a) & set(b)
    await other.close()
    other.store.close()


def test_hot_statements_compile_for_postgresql() -> None:
    """The prepared statements are plain portable SQL: they compile for PostgreSQL too, with
    named parameters filled from the row dicts (and literal guards from the compiled defaults)."""
    from sqlalchemy.dialects import postgresql

    import bot.outcome_record
    import bot.queue_claim
    import bot.queue_submit

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    settle = bot.outcome_record._SETTLE._for(dialect)
    assert "%(b_id)s" in settle.sql and settle.bind({"b_id": "x"})["status_1"] == "running"
    stmt = bot.queue_claim._CLAIM_UPDATE._build([bindparam(f"in_{k}") for k in range(3)])
    sql = str(stmt.compile(dialect=dialect))
    assert "RETURNING" in sql and "IN (%(in_0)s, %(in_1)s, %(in_2)s)" in sql
    shape = (
        "send_notification",
        "slack",
        "high",
        1,
        "awaiting_approval",
        True,
        "it's 5%",
        0,
        False,
    )
    insert_sql = bot.queue_submit._insert_for(dialect, shape)._for(dialect).sql
    assert insert_sql.startswith("INSERT INTO actions") and "?" not in insert_sql
    # route constants are SQL literals: quotes doubled, % escaped once for pyformat, booleans
    assert "'it''s 5%%'" in insert_sql and "true" in insert_sql
    received = bot.queue_submit._RECEIVED_AUDIT._for(dialect)
    assert "'received'" in received.sql and received.from_tuple is not None
    assert received.from_tuple((1.0, "act_1", "queued", "api"))["entity_id"] == "act_1"
    due = bot.queue_claim._DUE_ANY._for(dialect).sql
    assert "ORDER BY actions.priority_rank, actions.seq" in due and "LIMIT %(limit)s" in due


def test_migrate_version_3_file_gets_the_run_callback_column(settings: Settings) -> None:
    store = Store(settings.opsbot_database_url)

    def as_version_3(c: Any) -> None:
        c.execute(text("ALTER TABLE workflow_runs DROP COLUMN callback_url"))
        c.execute(text("UPDATE meta SET value = '3' WHERE key = 'schema_version'"))

    store.write_sync(as_version_3)
    store.close()
    upgraded = Store(settings.opsbot_database_url)
    columns = upgraded.read_sync(
        lambda c: [row[1] for row in c.execute(text("PRAGMA table_info(workflow_runs)"))]
    )
    assert upgraded.schema_version == SCHEMA_VERSION == 4
    assert "callback_url" in columns
    upgraded.close()
