"""Breaker transitions with an injected clock, and persistence through the circuits table."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from bot.flow.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Breakers,
    CircuitBreaker,
    load_circuits,
    persist,
    reset_circuit,
)
from bot.store.engine import Store
from bot.store.tables import AuditRow
from executors.base import AuthError, PermanentError, RateLimited, RetryableError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def opened(clock: Clock) -> CircuitBreaker:
    breaker = CircuitBreaker("notion", clock=clock)
    for _ in range(5):
        assert breaker.allow()
        breaker.record_failure(RetryableError("503", status=503))
    return breaker


def test_opens_after_five_consecutive_failures() -> None:
    clock = Clock()
    breaker = CircuitBreaker("notion", clock=clock)
    for _ in range(4):
        breaker.record_failure(RetryableError("503"))
    breaker.record_success()  # the streak is broken
    for _ in range(4):
        breaker.record_failure(TimeoutError())
    assert breaker.state == CLOSED
    breaker.record_failure(AuthError("401"))
    assert breaker.state == OPEN
    assert not breaker.allow()


def test_validation_errors_and_429_do_not_open() -> None:
    breaker = CircuitBreaker("notion", clock=Clock())
    for _ in range(10):
        breaker.record_failure(PermanentError("400", status=400))
        breaker.record_failure(RateLimited("429", retry_after=1))
    assert breaker.state == CLOSED


def test_half_open_one_probe_then_closed_after_three_successes() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now += 29.9
    assert breaker.state == OPEN
    clock.now += 0.1
    assert breaker.state == HALF_OPEN
    for _ in range(3):
        assert breaker.allow()
        assert not breaker.allow()  # one probe at a time
        breaker.record_success()
    assert breaker.state == CLOSED
    assert breaker.allow() and breaker.allow()


def test_probe_failure_reopens_for_another_timeout() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now += 30
    assert breaker.allow()
    breaker.record_success()
    assert breaker.allow()
    breaker.record_failure(RetryableError("503"))
    assert breaker.state == OPEN
    clock.now += 29
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


def test_neutral_probe_frees_the_slot() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now += 30
    assert breaker.allow()
    breaker.record_failure(PermanentError("404", status=404))
    assert breaker.state == HALF_OPEN
    assert breaker.allow()


def test_blocked_and_half_open_sets() -> None:
    clock = Clock()
    breakers = Breakers(["notion", "trello"], clock=clock)
    for _ in range(5):
        breakers.get("notion").record_failure(RetryableError("503"))
    assert breakers.blocked() == {"notion"}
    clock.now += 30
    assert breakers.half_open() == {"notion"} and breakers.blocked() == frozenset()
    assert breakers.get("notion").allow()
    assert breakers.blocked() == {"notion"}  # the probe is out


def test_open_survives_restart_and_external_reset_is_adopted(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    clock = Clock()
    first = Breakers(["notion", "trello"], clock=clock)
    for _ in range(5):
        first.get("notion").record_failure(RetryableError("503"))
    store.write_sync(first.sync)

    restarted = Breakers(["notion", "trello"], clock=clock)
    store.write_sync(restarted.sync)
    assert restarted.get("notion").state == OPEN
    assert restarted.get("trello").state == CLOSED

    clock.now += 5
    store.write_sync(lambda conn: reset_circuit(conn, "notion", clock.now, "cli:alice"))
    store.write_sync(restarted.sync)
    assert restarted.get("notion").state == CLOSED

    rows = {r["platform"]: r for r in store.read_sync(load_circuits)}
    assert rows["notion"]["state"] == CLOSED
    audits = store.read_sync(
        lambda conn: conn.execute(select(AuditRow.__table__)).mappings().all()  # type: ignore[attr-defined]
    )
    moves = [(a["entity_id"], a["from_status"], a["to_status"], a["actor"]) for a in audits]
    assert ("notion", CLOSED, OPEN, "worker") in moves
    assert ("notion", OPEN, CLOSED, "cli:alice") in moves
    store.close()


async def test_operator_reset_between_read_and_write_wins(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    clock = Clock()
    breakers = Breakers(["notion"], clock=clock)
    await breakers.sync_async(store)
    clock.now += 1
    breakers.adopt(await store.read(load_circuits))
    for _ in range(5):
        breakers.get("notion").record_failure(RetryableError("503"))
    saves, moves = breakers.changes()
    clock.now += 1
    await store.write(lambda conn: reset_circuit(conn, "notion", clock.now, "cli:bob"))
    await store.write(lambda conn: persist(conn, saves, moves, "worker"))  # lost the race
    await breakers.sync_async(store)
    assert breakers.get("notion").state == CLOSED
    assert {r["platform"]: r["state"] for r in await store.read(load_circuits)} == {
        "notion": CLOSED
    }
    store.close()
