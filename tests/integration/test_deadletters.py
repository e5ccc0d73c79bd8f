"""Dead letters: list with error history, replay (same id and key), purge, TTL expiry."""

from __future__ import annotations

from sqlalchemy import text

from bot import deadletters
from bot.actions import parse_action
from bot.queue import Outcome, Queue
from bot.store.engine import Store
from tests.conftest import FakeClock


async def dead_letters(queue: Queue, clock: FakeClock, n: int, key: str = "k") -> list[str]:
    results = await queue.submit(
        [parse_action({"type": "echo", "idempotency_key": f"{key}{i}"}) for i in range(n)]
    )
    claimed = await queue.claim("w", n)
    t0 = clock()
    await queue.record(
        [Outcome(c.id, "retry", t0, t0, "w", error="503", retry_at=t0) for c in claimed]
    )
    claimed = await queue.claim("w", n)
    await queue.record(
        [Outcome(c.id, "dead", t0, t0, "w", error="400 bad", status_code=400) for c in claimed]
    )
    return [r.id for r in results]


async def test_list_has_error_history(queue: Queue, store: Store, clock: FakeClock) -> None:
    ids = await dead_letters(queue, clock, 2)
    items = store.read_sync(lambda c: deadletters.list_dead(c, 10))
    assert {i["id"] for i in items} == set(ids)
    errors = items[0]["errors"]
    assert [(e["number"], e["error"]) for e in errors] == [(1, "503"), (2, "400 bad")]
    assert items[0]["attempts"] == 2 and items[0]["error"] == "400 bad"


async def test_replay_keeps_id_and_key(queue: Queue, store: Store, clock: FakeClock) -> None:
    ids = await dead_letters(queue, clock, 3)
    now = clock()
    assert store.write_sync(lambda c: deadletters.replay(c, [ids[0]], now, "U-ops")) == 1
    [again] = await queue.claim("w", 10)
    assert again.id == ids[0] and again.attempt == 1 and again.idempotency_key == "k0"
    history = (await queue.get(ids[0]))["history"]
    assert (history[-2]["to_status"], history[-2]["actor"]) == ("queued", "U-ops")
    assert store.write_sync(lambda c: deadletters.replay(c, None, now, "U-ops")) == 2
    assert store.read_sync(lambda c: deadletters.list_dead(c, 10)) == []


async def test_purge_some_or_all(queue: Queue, store: Store, clock: FakeClock) -> None:
    ids = await dead_letters(queue, clock, 3)
    now = clock()
    assert store.write_sync(lambda c: deadletters.purge(c, [ids[1], "nope"], now, "ops")) == 1
    assert store.write_sync(lambda c: deadletters.purge(c, None, now, "ops")) == 2
    left = store.read_sync(lambda c: c.execute(text("SELECT COUNT(*) FROM attempts")).scalar())
    assert left == 0
    purged = store.read_sync(
        lambda c: c.execute(text("SELECT COUNT(*) FROM audit WHERE detail = 'purged'")).scalar()
    )
    assert purged == 3


async def test_expire_after_ttl(queue: Queue, store: Store, clock: FakeClock) -> None:
    old = await dead_letters(queue, clock, 1)
    clock.advance(3 * 86400)
    new = await dead_letters(queue, clock, 1, key="second")
    clock.advance(5 * 86400)
    now = clock()
    assert store.write_sync(lambda c: deadletters.expire(c, now, 7 * 86400)) == 1
    remaining = [i["id"] for i in store.read_sync(lambda c: deadletters.list_dead(c, 10))]
    assert remaining == new and old[0] not in remaining
