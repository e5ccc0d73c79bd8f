"""Circuit breaker per platform, persisted in the `circuits` table.

closed --(threshold consecutive failures)--> open --(open_seconds)--> half_open
half_open: one probe at a time; `half_open_successes` probe successes -> closed; a failure -> open.

Which failures count: only those that say the PLATFORM is unwell - retryable errors (timeouts,
connection errors, 5xx), auth errors (every call will fail until someone fixes the credentials,
so holding the actions is better than dead-lettering them all) and unexpected exceptions. A
validation error (400/404, PermanentError) is about one action's data: it proves the platform
answers, so it neither counts nor resets the streak. A 429 (RateLimited) does not count either:
the platform is healthy, the rate limiter waits out its Retry-After.

Persistence: `Breakers.sync_async(store)` (each second, from the worker pool) adopts rows changed
by another process (an operator's `opsbot circuit reset`), detected by the row's updated_at
differing from the value this process last saw, then writes local changes only over a row that
is still as last seen. The row wins: an operator's reset beats a failure counted meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, insert, select, update

from bot.store.audit import audit_row, write_audit
from bot.store.engine import Store
from bot.store.tables import CircuitRow
from executors.base import AuthError, ExecutorError, PermanentError, RateLimited

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
Move = tuple[str, str, str, float]  # platform, from state, to state, at
Changes = tuple[list[tuple[dict[str, Any], "float | None"]], list[Move]]
_CIRCUITS = CircuitRow.__table__  # type: ignore[attr-defined]
Clock = Callable[[], float]


def counts_against_platform(error: BaseException) -> bool:
    if isinstance(error, RateLimited):
        return False
    if isinstance(error, AuthError):
        return True
    if isinstance(error, ExecutorError):
        return not isinstance(error, PermanentError)
    return True


class CircuitBreaker:
    def __init__(
        self,
        platform: str,
        threshold: int = 5,
        open_seconds: float = 30.0,
        half_open_successes: int = 3,
        clock: Clock = time.time,
    ) -> None:
        self.platform = platform
        self.threshold = threshold
        self.open_seconds = open_seconds
        self.half_open_successes = half_open_successes
        self._clock = clock
        self._state = CLOSED
        self.failures = 0
        self.successes = 0
        self.opened_at: float | None = None
        self.updated_at = 0.0
        self.last_error: str | None = None
        self._probing = False
        self.transitions: list[tuple[str, str, float]] = []  # (from, to, at), drained by sync

    @property
    def state(self) -> str:
        """The current state; an OPEN circuit whose time is up reads as HALF_OPEN."""
        opened_at = self.opened_at
        due = opened_at is not None and self._clock() >= opened_at + self.open_seconds
        if self._state == OPEN and due:
            self._move(HALF_OPEN)
        return self._state

    def allow(self) -> bool:
        """May one call go to the platform now? Half-open: only one probe at a time."""
        state = self.state
        if state == CLOSED:
            return True
        if state == HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    @property
    def probing(self) -> bool:
        return self._probing

    def record_success(self) -> None:
        state = self.state
        self._probing = False
        if state == HALF_OPEN:
            self.successes += 1
            if self.successes >= self.half_open_successes:
                self._move(CLOSED)
            else:
                self._touch()
        elif self.failures:
            self.failures = 0
            self._touch()

    def record_failure(self, error: BaseException) -> None:
        if not counts_against_platform(error):
            self.release_probe()
            return
        state = self.state
        self._probing = False
        self.last_error = f"{type(error).__name__}: {error}"[:500]
        if state == HALF_OPEN:
            self._move(OPEN)
        elif state == CLOSED:
            self.failures += 1
            if self.failures >= self.threshold:
                self._move(OPEN)
            else:
                self._touch()
        # OPEN: a late result of a call started before the circuit opened changes nothing.

    def release_probe(self) -> None:
        """The probe did not reach the platform (released, neutral error): free the slot."""
        self._probing = False

    def reset(self) -> None:
        self._move(CLOSED)

    def _move(self, to: str) -> None:
        now = self._clock()
        self.transitions.append((self._state, to, now))
        self._state = to
        self._probing = False
        self.successes = 0
        if to == OPEN:
            self.opened_at = now
        elif to == CLOSED:
            self.failures = 0
            self.opened_at = None
        self.updated_at = now

    def _touch(self) -> None:
        self.updated_at = self._clock()

    def snapshot(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "state": self.state,
            "consecutive_failures": self.failures,
            "half_open_successes": self.successes,
            "opened_at": self.opened_at,
            "updated_at": self.updated_at,
            "last_error": self.last_error,
        }

    def restore(self, row: dict[str, Any]) -> None:
        """Adopt a persisted row (at start-up, or after another process changed it)."""
        self._state = str(row["state"])
        self.failures = int(row["consecutive_failures"])
        self.successes = int(row["half_open_successes"])
        self.opened_at = row["opened_at"]
        self.updated_at = float(row["updated_at"])
        self.last_error = row["last_error"]
        self._probing = False


class Breakers:
    """The breakers of all platforms and their persistence."""

    def __init__(
        self,
        platforms: Iterable[str],
        threshold: int = 5,
        open_seconds: float = 30.0,
        half_open_successes: int = 3,
        clock: Clock = time.time,
    ) -> None:
        self._settings = (threshold, open_seconds, half_open_successes, clock)
        self._breakers = {p: self._make(p) for p in platforms}
        self._seen: dict[str, float] = {}  # platform -> updated_at of the row as last seen

    def _make(self, platform: str) -> CircuitBreaker:
        return CircuitBreaker(platform, *self._settings)

    def get(self, platform: str) -> CircuitBreaker:
        if platform not in self._breakers:
            self._breakers[platform] = self._make(platform)
        return self._breakers[platform]

    def all(self) -> list[CircuitBreaker]:
        return list(self._breakers.values())

    def blocked(self) -> frozenset[str]:
        """Platforms to leave unclaimed: open, or half-open with the probe already out."""
        return frozenset(
            b.platform
            for b in self._breakers.values()
            if b.state == OPEN or (b.state == HALF_OPEN and b.probing)
        )

    def half_open(self) -> frozenset[str]:
        return frozenset(b.platform for b in self._breakers.values() if b.state == HALF_OPEN)

    def snapshots(self) -> list[dict[str, Any]]:
        return [b.snapshot() for b in self._breakers.values()]

    def adopt(self, rows: list[dict[str, Any]]) -> None:
        """Take over rows changed by another process since this one last saw them."""
        for row in rows:
            platform = row["platform"]
            if self._seen.get(platform) != row["updated_at"]:
                breaker = self.get(platform)
                breaker.restore(row)
                breaker.transitions.clear()
                self._seen[platform] = row["updated_at"]

    def changes(self) -> Changes:
        """Local changes to persist: (snapshot, updated_at the row should still have) pairs,
        and the transitions since the last call as (platform, from, to, at)."""
        saves: list[tuple[dict[str, Any], float | None]] = []
        moves: list[Move] = []
        for breaker in self._breakers.values():
            breaker.state  # noqa: B018 - applies a due OPEN -> HALF_OPEN before saving
            moves += [(breaker.platform, *move) for move in breaker.transitions]
            breaker.transitions.clear()
            if self._seen.get(breaker.platform) != breaker.updated_at:
                saves.append((breaker.snapshot(), self._seen.get(breaker.platform)))
                self._seen[breaker.platform] = breaker.updated_at
        return saves, moves

    def sync(self, conn: Connection, actor: str = "worker") -> list[Move]:
        """Adopt, then persist, in one transaction (start-up, tests, single-threaded callers)."""
        self.adopt(load_circuits(conn))
        saves, moves = self.changes()
        persist(conn, saves, moves, actor)
        return moves

    async def sync_async(self, store: Store, actor: str = "worker") -> list[Move]:
        """The same from the event loop: state is only touched on the loop, SQL on threads."""
        self.adopt(await store.read(load_circuits))
        saves, moves = self.changes()
        if saves or moves:
            await store.write(lambda conn: persist(conn, saves, moves, actor))
        return moves


def persist(
    conn: Connection,
    saves: list[tuple[dict[str, Any], float | None]],
    moves: list[Move],
    actor: str,
) -> None:
    """Write snapshots unless another process changed the row meanwhile (its change wins and
    is adopted at the next sync), with one audit row per transition."""
    for snapshot, expected in saves:
        save(conn, snapshot, expected)
    write_audit(conn, [_circuit_audit(p, a, b, at, actor) for p, a, b, at in moves])


def load_circuits(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(_CIRCUITS).order_by(_CIRCUITS.c.platform))
    return [dict(r._mapping) for r in rows]


def save(conn: Connection, snapshot: dict[str, Any], expected: float | None = None) -> bool:
    """Upsert one breaker's row (portable: UPDATE, then INSERT when no row was there). With
    `expected`, only a row whose updated_at still equals it is overwritten. True if written."""
    values = {k: snapshot[k] for k in snapshot if k in _CIRCUITS.c}
    where = [_CIRCUITS.c.platform == values["platform"]]
    if expected is not None:
        where.append(_CIRCUITS.c.updated_at == expected)
    if conn.execute(update(_CIRCUITS).where(*where).values(**values)).rowcount:
        return True
    exists = conn.execute(select(_CIRCUITS.c.platform).where(where[0])).first()
    if exists is None:
        conn.execute(insert(_CIRCUITS).values(**values))
    return exists is None


def reset_circuit(conn: Connection, platform: str, now: float, actor: str) -> dict[str, Any]:
    """Close `platform`'s circuit (the operator's reset); running processes adopt it."""
    before = next((r for r in load_circuits(conn) if r["platform"] == platform), None)
    snapshot = {
        "platform": platform,
        "state": CLOSED,
        "consecutive_failures": 0,
        "half_open_successes": 0,
        "opened_at": None,
        "updated_at": now,
        "last_error": None,
    }
    save(conn, snapshot)
    from_state = before["state"] if before else CLOSED
    write_audit(conn, [_circuit_audit(platform, from_state, CLOSED, now, actor, "reset")])
    return {"platform": platform, "from": from_state, "to": CLOSED, "at": now}


def _circuit_audit(
    platform: str, from_state: str, to_state: str, at: float, actor: str, detail: str | None = None
) -> dict[str, Any]:
    return audit_row(
        at, platform, from_state, to_state, actor=actor, entity="circuit", detail=detail
    )
