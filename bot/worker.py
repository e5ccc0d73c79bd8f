"""The worker pool: claim -> circuit breaker -> executor (rate-limited per request) -> outcome.

Throughput comes from batching the database work, not from the worker count:
- one dispatcher task claims a batch in one transaction and feeds an in-memory queue; it claims
  again when half of it has run (few transactions; the next claim overlaps with recording the
  previous outcomes). The batch adapts: it doubles (up to MAX_PREFETCH) while full batches are
  used up within FAST_CYCLE and halves when they last longer than SLOW_CYCLE, so fast actions
  get big batches while slow ones (rate-limited platforms) are not hoarded: a hoarded action
  waits behind others, and a crash costs it an attempt it never started;
- worker tasks run actions and append their Outcome to a list; per-platform lanes
  (bot.flow.lanes) give each rate-limited platform workers of its own, so a slow one never
  occupies the workers of the others (QUEUE_WORKERS is the width of the unlimited lane);
- one recorder task writes all pending outcomes in one `queue.record` call, starting again as
  soon as the previous commit finished (grouped commits under load, low latency when idle);
- a housekeeping task renews the leases of every held action, reaps expired leases of dead
  workers and syncs the breakers with the `circuits` table.
Delivery is at-least-once: an action whose worker dies is claimed again when its lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, text

from bot.attempts import ATTEMPT_TIMEOUT, AttemptRunner
from bot.config import Settings
from bot.flow.breaker import Breakers
from bot.flow.fallback import FallbackChain
from bot.flow.lanes import Lanes
from bot.flow.ratelimit import RateLimiters
from bot.flow.retry import RetryPolicy
from bot.queue import Claimed, Outcome, Queue
from bot.routing import PLATFORMS
from executors.base import Executor

if TYPE_CHECKING:
    from bot.store.engine import Store

log = logging.getLogger(__name__)

PARK_SECONDS = 5.0  # how long an open platform stays unclaimed after an action had to wait
MAX_PREFETCH = 200  # measured: batches of 200-250 drain echo actions fastest
FAST_CYCLE, SLOW_CYCLE = 0.05, 0.5  # seconds a full batch lasted: grow / shrink the next one
RECORDER_GRACE = 10.0  # clean stop: seconds to let the last outcomes reach the store
IDLE_WAIT = 0.25  # max seconds between claims when idle (picks up retries that became due)
_STOP = None  # sentinel telling a worker task to exit


class WorkerPool:
    def __init__(
        self,
        queue: Queue,
        executors: Mapping[str, Executor],
        limiters: RateLimiters,
        breakers: Breakers,
        policy: RetryPolicy,
        fallbacks: FallbackChain,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        *,
        store: Store | None = None,
        disabled: Mapping[str, str] | None = None,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
    ) -> None:
        self.queue, self.executors, self.limiters = queue, executors, limiters
        self.breakers, self.policy, self.fallbacks = breakers, policy, fallbacks
        self.settings, self.clock, self.store = settings, clock, store
        self.attempts = AttemptRunner(
            executors, limiters, breakers, policy, fallbacks, clock, attempt_timeout
        )
        self.disabled = disabled  # platform -> why this process cannot serve it (for the log)
        self._lanes: Lanes[Claimed] = Lanes.from_limits(
            settings.rate_limits, settings.queue_workers
        )
        self.workers = self._lanes.width  # worker tasks: every lane can be full at once
        self.min_prefetch = 2 * self.workers
        self.prefetch = self.min_prefetch  # current batch target, adapted by _adapt
        self._claimed_at = 0.0  # monotonic time of the last full claim
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._ready: asyncio.Queue[Claimed | None] = asyncio.Queue()
        self._held: dict[str, Claimed] = {}  # claimed and not yet recorded
        self._outcomes: list[Outcome] = []
        self._have_outcomes = asyncio.Event()
        self._pending = 0  # claimed and not yet run (in _ready, set aside, or running)
        self._room = asyncio.Event()  # set when _pending drops to the low-water mark
        self._parked: dict[str, float] = {}  # open platform -> unclaimed until
        self._stopping = False
        self._idle = asyncio.Event()  # set when a claim found nothing and nothing is held
        self._dispatcher: asyncio.Task[None] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._recorder: asyncio.Task[None] | None = None
        self._housekeeper: asyncio.Task[None] | None = None
        self.executed = 0  # actions run by this pool (any outcome)
        self.busy = 0  # worker tasks running an action right now (ops: utilisation)
        # Called on the loop with (platform, from, to, at) for every breaker transition, within
        # about a second (alerts: "circuit opened"). Add before start().
        self.circuit_listeners: list[Callable[[str, str, str, float], None]] = []

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        for platform, reason in (self.disabled or {}).items():
            log.info("%s actions stay queued in this process: %s", platform, reason)
        await self._sync_circuits()
        self._recorder = asyncio.create_task(self._record_loop(), name="opsbot-recorder")
        self._workers = [
            asyncio.create_task(self._work_loop(i), name=f"opsbot-worker-{i}")
            for i in range(self.workers)
        ]
        self._housekeeper = asyncio.create_task(self._housekeeping(), name="opsbot-housekeeping")
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="opsbot-dispatcher")

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Stop claiming, let running actions finish within the bound, release the rest."""
        if drain_timeout is None:
            drain_timeout = self.settings.opsbot_drain_timeout
        if self._stopping:
            return
        self._stopping = True
        await _cancel(self._dispatcher)
        while not self._ready.empty():  # claimed but never started: released below
            self._ready.get_nowait()
        for _ in self._workers:
            self._ready.put_nowait(_STOP)
        if self._workers:
            _, late = await asyncio.wait(self._workers, timeout=drain_timeout)
            for task in late:
                await _cancel(task)
        # Let the recorder finish on its own: cancelling it mid-commit would leave unknown
        # whether its batch was stored, and releasing those actions would run them twice.
        self._have_outcomes.set()
        if self._recorder is not None:
            await asyncio.wait({self._recorder}, timeout=RECORDER_GRACE)
        await _cancel(self._recorder)
        await _cancel(self._housekeeper)
        leftover = list(self._held)
        if leftover:
            await self.queue.release(self.owner, leftover)
            self._held.clear()
        await self._sync_circuits()

    async def run_until_drained(self) -> None:
        """Start, run until nothing is left to run, stop."""
        await self.start()
        try:
            await self.wait_drained()
        finally:
            await self.stop()

    async def wait_drained(self, check_every: float = 0.2) -> None:
        """Return once nothing is left to run: queued (now or later) or running."""
        while True:
            await self._idle.wait()
            if not await self.work_left():
                return
            await asyncio.sleep(check_every)  # e.g. retries scheduled for later

    # -- dispatcher -----------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while not self._stopping:
            # Outcomes not yet recorded are held too: cap them so a stalled store stops claims.
            if self._active() > self.prefetch // 2 or len(self._held) > 4 * MAX_PREFETCH:
                self._room.clear()
                await self._room.wait()
                continue
            self._adapt()
            limit = self.prefetch - self._active()
            try:
                batch = await self._claim(limit)
            except Exception:
                log.exception("claim failed; retrying shortly")
                await asyncio.sleep(1.0)
                continue
            for claimed in batch:
                self._held[claimed.id] = claimed
                self._ready.put_nowait(claimed)
            self._pending += len(batch)
            if len(batch) == limit:
                self._claimed_at = time.monotonic()
            if batch:
                self._idle.clear()
            elif not self._held:
                self._idle.set()
            if len(batch) < limit:  # nothing more is due now: sleep until work may appear
                await self.queue.wait_for_work(IDLE_WAIT)

    def _adapt(self) -> None:
        """Size the next batch from how fast the last full one was used up."""
        if not self._claimed_at:
            return
        cycle = time.monotonic() - self._claimed_at
        if cycle < FAST_CYCLE:
            self.prefetch = min(MAX_PREFETCH, self.prefetch * 2)
        elif cycle > SLOW_CYCLE:
            self.prefetch = max(self.min_prefetch, self.prefetch // 2)
        self._claimed_at = 0.0

    async def _claim(self, limit: int) -> list[Claimed]:
        now = self.clock()
        self._parked = {p: t for p, t in self._parked.items() if t > now}
        blocked = self.breakers.blocked()
        # A platform this process cannot serve now (circuit open, or disabled here: another
        # process may have its credentials) is left queued. It stays claimable when some of its
        # types have a fallback, unless an action without one had to wait recently (parked):
        # that avoids claim/release churn.
        unusable = blocked | (frozenset(PLATFORMS) - self.executors.keys())
        exclude = self._lanes.crowded() | frozenset(
            p for p in unusable if p in self._parked or not self.fallbacks.has_fallback(p)
        )
        return await self.queue.claim(
            self.owner, limit, exclude=exclude, only_one=self.breakers.half_open() - blocked
        )

    # -- workers --------------------------------------------------------------------------------

    def _active(self) -> int:
        """Claimed actions that will start soon: set-aside ones wait for their platform."""
        return self._pending - self._lanes.waiting

    async def _next(self) -> Claimed | None:
        """The next action to run (None: stop). Set-aside actions whose platform has room
        come first, so each platform's actions keep their order."""
        while True:
            claimed = None if self._stopping else self._lanes.take_aside()
            if claimed is not None:
                return claimed
            claimed = await self._ready.get()
            if claimed is None or self._lanes.admit(claimed.platform, claimed):
                return claimed
            if self._active() <= self.prefetch // 2:
                self._room.set()

    async def _run(self, claimed: Claimed, worker: str) -> Outcome:
        outcome = await self.attempts.run(claimed, worker)
        if outcome.kind == "release":  # no platform can take it: leave it unclaimed a while
            self._parked[claimed.platform] = outcome.started_at + PARK_SECONDS
        return outcome

    async def _work_loop(self, index: int) -> None:
        name = f"{self.owner}/w{index}"
        while True:
            claimed = await self._next()
            if claimed is None:
                return
            self.busy += 1
            try:
                outcome = await self._run(claimed, name)
            except Exception as exc:  # a bug outside the executor: keep the worker and action
                log.exception("running action %s failed unexpectedly", claimed.id)
                started, platform = self.clock(), claimed.platform
                outcome = self.attempts.failed(claimed, name, started, exc, platform, False)
            finally:
                self.busy -= 1
                self._lanes.done(claimed.platform)
            self.executed += 1
            self._pending -= 1
            self._outcomes.append(outcome)
            self._have_outcomes.set()
            if self._active() <= self.prefetch // 2:
                self._room.set()

    # -- recorder and housekeeping --------------------------------------------------------------

    async def _record_loop(self) -> None:
        while True:
            await self._have_outcomes.wait()
            await self._flush()
            if self._stopping and all(t.done() for t in self._workers):
                return

    async def _flush(self) -> None:
        self._have_outcomes.clear()
        while self._outcomes:
            self._have_outcomes.clear()
            batch, self._outcomes = self._outcomes, []
            try:
                await self.queue.record(batch)
            except Exception:
                log.exception("recording %d outcomes failed; retrying", len(batch))
                self._outcomes[:0] = batch
                await asyncio.sleep(0.5)
                continue
            for outcome in batch:
                self._held.pop(outcome.action_id, None)
            self._room.set()

    async def _housekeeping(self) -> None:
        lease = self.settings.opsbot_lease_seconds
        tick = min(1.0, lease / 3)
        while True:
            await asyncio.sleep(tick)
            try:
                if self._held:
                    await self.queue.renew(self.owner, list(self._held))
                await self.queue.reap_expired()
                await self._sync_circuits()
            except Exception:
                log.exception("housekeeping failed; will try again")

    async def _sync_circuits(self) -> None:
        if self.store is None:
            return
        for move in await self.breakers.sync_async(self.store, actor=self.owner):
            for listener in self.circuit_listeners:
                try:
                    listener(*move)
                except Exception:
                    log.exception("circuit listener failed")

    async def work_left(self) -> bool:
        if self._held or self._outcomes:
            return True
        if self.store is None:
            return False
        served = [p for p in PLATFORMS if p in self.executors or self.fallbacks.has_fallback(p)]
        return await self.store.read(partial(_runnable_left, served))


def _runnable_left(platforms: list[str], conn: Connection) -> bool:
    """Any action still to run here: queued (now or later) or running, on a platform this
    process serves and nobody paused. Actions of platforms served elsewhere do not count."""
    sql = text(
        "SELECT 1 FROM actions WHERE status IN ('queued', 'retry_scheduled', 'running') "
        "AND platform IN :platforms AND platform NOT IN (SELECT platform FROM pauses) "
        "AND NOT EXISTS (SELECT 1 FROM pauses WHERE platform = '*') LIMIT 1"
    ).bindparams(bindparam("platforms", expanding=True))
    return conn.execute(sql, {"platforms": platforms}).first() is not None


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    if task is None or task.done():
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.error("task %s had failed: %r", task.get_name(), task.exception())
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
