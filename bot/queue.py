"""The durable action queue: the Queue facade producers, workers and ops code talk to.

Every write is one transaction on the store's writer thread; the transactions live in one
module per concept: bot.queue_submit (submit), bot.queue_capacity (QUEUE_MAX_SIZE),
bot.queue_claim (claims), bot.outcome_record (worker outcomes), bot.queue_leases (renew,
release, reap), bot.queue_approvals (decide, expire) and bot.queue_views (read-only views).
They use prepared statements in batches (executemany, `WHERE seq IN (...)`): no ORM object per
row. The SQL is portable (SQLite and PostgreSQL); cross-process safety comes from guarded updates
(`... WHERE status = 'queued'`) and the unique index on `idempotency_key`, not from locks.
Delivery is at-least-once: a claim holds a lease; an expired lease puts the action back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy.exc import IntegrityError

from bot.actions import ActionSpec, Status
from bot.approval_rules import ApprovalRules
from bot.config import Settings
from bot.outcome_record import record_tx
from bot.outcomes import Outcome, OutcomeBus, Subscriber
from bot.queue_approvals import bus_view, decide_tx, expire_approvals_tx
from bot.queue_capacity import Capacity, QueueFull
from bot.queue_claim import Claimed, claim_tx
from bot.queue_leases import reap_tx, release_outcomes, renew_tx
from bot.queue_submit import SubmitResult, available_at, submit_tx
from bot.queue_views import action_view, depth_by_priority, stuck
from bot.store.engine import Store
from bot.work_signal import WorkSignal

__all__ = [
    "ActionNotFound",
    "Claimed",
    "Outcome",
    "Queue",
    "QueueFull",
    "SubmitResult",
    "depth_by_priority",
    "stuck",
]

_SUBMIT_TRIES = 3  # a concurrent duplicate from another process surfaces as IntegrityError


class ActionNotFound(KeyError):
    def __str__(self) -> str:
        return f"no action {self.args[0]!r}"


class Queue:
    def __init__(self, store: Store, settings: Settings, clock: Callable[[], float] = time.time):
        self.store = store
        self.settings = settings
        self.clock = clock
        self.bus = OutcomeBus()
        self.decisions = OutcomeBus()  # approvals decided or expired (metrics: decision times)
        sqlite_path = settings.database_path if store.is_sqlite else None
        self.signal = WorkSignal(
            str(sqlite_path) if sqlite_path else None, settings.opsbot_poll_interval
        )
        self.capacity = Capacity(settings.queue_max_size)
        self.approval_rules = ApprovalRules.from_settings(settings)
        self._next_due: float | None = None

    # -- producers -------------------------------------------------------------------------

    async def submit(
        self,
        specs: list[ActionSpec],
        *,
        actor: str = "api",
        run_id: str | None = None,
        step_name: str | None = None,
    ) -> list[SubmitResult]:
        """Store validated actions in one transaction; returns after the commit."""
        fn = self._submit_fn(specs, actor, run_id, step_name)
        for attempt in range(_SUBMIT_TRIES):
            try:
                results = await self.store.write_grouped(fn)
                break
            except IntegrityError:
                if attempt == _SUBMIT_TRIES - 1:
                    raise
        if any(not r.duplicate for r in results):
            for when in {available_at(s) for s in specs}:
                self._note_due(when)
            self.signal.set()
        return results

    def submit_sync(
        self,
        specs: list[ActionSpec],
        *,
        actor: str = "cli",
        run_id: str | None = None,
        step_name: str | None = None,
    ) -> list[SubmitResult]:
        fn = self._submit_fn(specs, actor, run_id, step_name)
        for attempt in range(_SUBMIT_TRIES):
            try:
                return self.store.write_sync(fn)
            except IntegrityError:
                if attempt == _SUBMIT_TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _submit_fn(
        self, specs: list[ActionSpec], actor: str, run_id: str | None, step_name: str | None
    ) -> partial[list[SubmitResult]]:
        max_attempts = 1 + self.settings.max_retry_attempts
        marked = self.approval_rules.apply(specs)
        return partial(
            submit_tx, marked, actor, run_id, step_name, self.clock(), max_attempts, self.capacity
        )

    # -- workers ---------------------------------------------------------------------------

    async def claim(
        self,
        owner: str,
        limit: int,
        *,
        exclude: frozenset[str] = frozenset(),
        only_one: frozenset[str] = frozenset(),
    ) -> list[Claimed]:
        """Due queued actions in run order, now running under `owner`'s lease."""
        now, lease_s = self.clock(), self.settings.opsbot_lease_seconds
        fn = partial(claim_tx, owner, limit, exclude, only_one, now, lease_s, self._set_next_due)
        return await self.store.write(fn)

    def _set_next_due(self, when: float | None) -> None:
        self._next_due = when

    async def record(self, outcomes: list[Outcome]) -> None:
        """Record many outcomes in one transaction, then notify subscribers and waiters."""
        if not outcomes:
            return
        views = await self.store.write(partial(record_tx, outcomes, self.clock()))
        self._after_change(views)

    async def renew(self, owner: str, ids: list[str]) -> None:
        expires = self.clock() + self.settings.opsbot_lease_seconds
        if ids:
            await self.store.write(partial(renew_tx, owner, ids, expires))

    async def release(self, owner: str, ids: list[str]) -> None:
        """Clean stop: put claimed actions back without spending their attempt."""
        await self.record(release_outcomes(owner, ids, self.clock()))

    async def reap_expired(self) -> int:
        """Expired leases go back to the queue (or to the dead letters when exhausted)."""
        views = await self.store.write(partial(reap_tx, self.clock()))
        self._after_change(views)
        return len(views)

    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 (contract)
        """Return when work may be claimable: in-process submit, another process's commit,
        a retry or delayed action falling due, or `timeout` seconds."""
        if self._next_due is not None:
            until_due = self._next_due - self.clock()
            if until_due <= 0:
                self._next_due = None  # the next claim looks it up again
                return
            timeout = min(timeout, until_due)
        await self.signal.wait(timeout)

    def wake(self) -> None:
        """Tell waiting workers that work may have appeared (e.g. after a DLQ replay)."""
        self._next_due = None
        self.signal.set()

    def _note_due(self, when: float) -> None:
        if when > self.clock() and (self._next_due is None or when < self._next_due):
            self._next_due = when

    def _after_change(self, views: list[dict[str, Any]]) -> None:
        self.capacity.finished(sum(1 for v in views if v["final"]))
        for view in views:
            if view["status"] == Status.QUEUED.value:
                due = view.get("available_at") or 0.0
                self._note_due(due)
                if due <= self.clock():
                    self.signal.set()
        self.bus.publish([v for v in views if v["event"] in ("final", "retry")])

    # -- approvals ---------------------------------------------------------------------------

    async def decide(
        self, action_id: str, approved: bool, actor: str, reason: str | None = None
    ) -> dict[str, Any]:
        """awaiting_approval -> queued | rejected. The first decision wins; later ones change
        nothing and get `changed: False` with the current view."""
        now = self.clock()
        changed = await self.store.write(
            partial(decide_tx, action_id, approved, actor, reason, now)
        )
        if changed is None:
            raise ActionNotFound(action_id)
        view = await self.get(action_id)
        if changed:
            self._after_change([bus_view(view)])
            self.decisions.publish([bus_view(view)])
        return {**view, "changed": changed}

    async def expire_approvals(self, older_than: float) -> list[str]:
        """Expire actions awaiting approval for longer than `older_than` seconds (a Unix time
        above 1e9 is taken as the cutoff itself). Returns their ids."""
        now = self.clock()
        cutoff = older_than if older_than > 1e9 else now - older_than
        views = await self.store.write(partial(expire_approvals_tx, cutoff, now))
        self._after_change(views)
        self.decisions.publish(views)
        return [v["id"] for v in views]

    # -- views -----------------------------------------------------------------------------

    async def get(self, action_id: str) -> dict[str, Any]:
        view = await self.store.read(partial(action_view, action_id))
        if view is None:
            raise ActionNotFound(action_id)
        return view

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Outcome bus: `callback(view)` after commit for every final status and retry."""
        return self.bus.subscribe(callback)

    def subscribe_decisions(self, callback: Subscriber) -> Callable[[], None]:
        """`callback(view)` after commit for every approval decided (event "approved", or a
        final "rejected") or expired, whichever door it came through."""
        return self.decisions.subscribe(callback)

    async def close(self) -> None:
        """Finish subscriber tasks and close the change watcher (the Store is the caller's)."""
        await self.bus.close()
        await self.decisions.close()
        await self.signal.close()
