"""Outcome callbacks: when an action or a workflow run (bot.run_callbacks) with a `callback_url`
is final, POST its outcome there, at least once, whatever crashes in between.

Each source ("action" here, "run" registered by bot.run_callbacks) turns ids into deliveries:
only final rows with a URL and no claim yet (bot.callback_ledger.untold, one read for many ids).
A delivery is claimed in the store before it is posted and settled after, so:
- the fast path (the queue's outcome and decision buses, the runner's watch) tells at once;
- a recovery sweep, at start and every `sweep_interval` s, finds in the audit trail what became
  final within `window` s and was never claimed (a crash or stop between commit and claim), or
  whose claim's lease ran out (its owner died while retrying), and tells it;
- two processes never both claim one outcome; a crash after the POST but before the settle
  write sends it again (the payload's `delivery_attempt` grows; receivers dedupe by id+status).
The body is signed like the inbound hooks (bot.signing, OPSBOT_CALLBACK_SECRET), retried with
exponential backoff on connection errors, timeouts, 408, 425, 429 and 5xx, given up on other 4xx.
Deliveries run in tasks of their own: `on_outcome` only notes an id, so a slow or dead receiver
never holds up the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import aiohttp

from bot import callback_ledger as ledger
from bot.callback_ledger import Key
from bot.signing import signed_headers

log = logging.getLogger(__name__)

FINAL = frozenset({"succeeded", "dead_lettered", "rejected", "expired", "cancelled"})
PAYLOAD_FIELDS = ("id", "status", "type", "platform", "result", "error", "error_kind",
                  "finished_at", "run_id")  # fmt: skip
_RETRY_STATUS = frozenset({408, 425, 429})


@dataclasses.dataclass(frozen=True)
class Delivery:
    key: Key
    url: str
    payload: dict[str, Any]


# ids of one kind, now -> what to tell (rows already claimed are left out)
Source = Callable[[list[str], float], Awaitable[list[Delivery]]]


class CallbackDispatcher:
    def __init__(
        self,
        queue: Any,
        secret: str | None,
        *,
        attempts: int = 6,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: Any = None,
        sweep_interval: float = 60.0,
        window: float = 86_400.0,
    ) -> None:
        self.queue, self.store = queue, queue.store
        self.secret = secret
        self.attempts, self.base_delay, self.max_delay = attempts, base_delay, max_delay
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.clock, self.sleep, self.metrics = clock, sleep, metrics
        self.sweep_interval, self.window = sweep_interval, window
        delays = sum(self._delay(a) for a in range(1, attempts))
        # A claim outlives a whole delivery (every try timing out, every backoff) with margin,
        # so only a dead owner's claim expires; each attempt renews it.
        self.lease = delays + attempts * timeout + 60.0
        self.owner = f"callbacks-{uuid.uuid4().hex[:12]}"
        self.sources: dict[str, Source] = {}
        self.final: dict[str, frozenset[str]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._active: set[Key] = set()  # claimed by us, being delivered
        self._unsubscribe: list[Callable[[], None]] = []
        self._pending: list[str] = []
        self._have_pending = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing awaits a lookup or the first sweep
        self._idle.set()
        self._loops: list[asyncio.Task[None]] = []  # the sweep and the lookup loops
        self._lookup: asyncio.Task[None] | None = None
        self._once: set[asyncio.Task[None]] = set()  # a late source's first sweep
        self._swept = True  # the first sweep is done (flush waits for it)
        self._sweeping = False
        self.add_source("action", self._action_deliveries, FINAL)
        if secret is None:
            log.warning("OPSBOT_CALLBACK_SECRET is not set: outcome callbacks are sent unsigned")

    def add_source(self, kind: str, source: Source, final: frozenset[str]) -> None:
        """Let the sweep find `kind`'s outcomes too (audit entity `kind`, final `final`)."""
        self.sources[kind], self.final[kind] = source, final
        if self._sweeping:  # started: the first sweep may have passed this kind by
            since = self.clock() - self.window
            task = asyncio.create_task(self._sweep_once(since, (kind,)), name=f"callback-{kind}")
            self._once.add(task)  # flush waits for it
            task.add_done_callback(self._once.discard)

    def start(self, *, sweep: bool = True) -> None:
        self._unsubscribe += [self.queue.subscribe(self.on_outcome),
                              self.queue.subscribe_decisions(self.on_outcome)]  # fmt: skip
        if sweep:
            self._swept, self._sweeping = False, True
            self._idle.clear()
            self._loops.append(asyncio.create_task(self._sweep_loop(), name="callback-sweep"))

    def on_outcome(self, view: dict[str, Any]) -> None:
        """Bus subscriber (cheap, synchronous): note a final action for delivery."""
        if view.get("status") not in FINAL:
            return
        self._pending.append(str(view["id"]))
        self._idle.clear()
        self._have_pending.set()
        if self._lookup is None:
            self._lookup = asyncio.create_task(self._lookup_loop(), name="callback-lookup")
            self._loops.append(self._lookup)

    async def _lookup_loop(self) -> None:
        while True:
            await self._have_pending.wait()
            self._have_pending.clear()
            ids, self._pending = self._pending, []
            await self.tell("action", ids)
            if not self._pending and self._swept:
                self._idle.set()

    async def tell(self, kind: str, ids: list[str]) -> None:
        """Claim and deliver what `ids` (of `kind`) have to tell; failures are logged (the
        sweep finds anything left unclaimed)."""
        try:
            deliveries = await self.sources[kind](ids, self.clock())
            await self.submit(deliveries)
        except Exception:
            log.exception("callbacks for %d %s(s) not started", len(ids), kind)

    async def submit(self, deliveries: list[Delivery]) -> None:
        """Claim `deliveries` (one write) and deliver those claimed, each in a task of its own."""
        todo = {d.key: d for d in deliveries if d.key not in self._active}
        if not todo:
            return
        claim = partial(ledger.claim, keys=list(todo), owner=self.owner, now=self.clock(),
                        lease=self.lease)  # fmt: skip
        for key, done in (await self.store.write(claim)).items():
            if key not in self._active:
                self._spawn(todo[key], done)

    def _spawn(self, delivery: Delivery, done: int) -> None:
        self._active.add(delivery.key)
        label = f"{delivery.key[0]}-{delivery.key[1]}"
        task = asyncio.create_task(self._deliver(delivery, done), name=f"callback-{label}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._active.discard(delivery.key))

    async def _deliver(self, d: Delivery, done: int) -> None:
        outcome, result, attempt = "gave_up", "no attempts left", done
        for attempt in range(done + 1, self.attempts + 1):
            # The attempt number makes each retry's body, hence its signature, unique: a
            # receiver that refuses replayed signatures still accepts our retries.
            body = json.dumps({**d.payload, "delivery_attempt": attempt}, default=str).encode()
            verdict, result = await self._post(d.url, body)
            if verdict == "ok":
                outcome = "delivered"
                break
            if verdict == "give_up" or attempt == self.attempts:
                break
            await self._record(d.key, attempts=attempt, last_result=result,
                               lease_expires_at=self.clock() + self.lease)  # fmt: skip
            await self.sleep(self._delay(attempt))
        if outcome != "delivered":
            log.warning("callback for %s %s to %s not delivered (%s)",
                        d.key[0], d.key[1], _host(d.url), result)  # fmt: skip
        await self._record(d.key, attempts=attempt, last_result=result, state=outcome,
                           owner=None, lease_expires_at=None, done_at=self.clock())  # fmt: skip
        if self.metrics is not None:
            self.metrics.callbacks.labels("delivered" if outcome == "delivered" else "failed").inc()

    def _delay(self, attempt: int) -> float:
        return float(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    async def _record(self, key: Key, **values: Any) -> None:
        try:
            await self.store.write(partial(ledger.record, key=key, owner=self.owner, values=values))
        except Exception:  # the claim's lease runs out and another try tells it again
            log.exception("callback for %s %s: recording the delivery failed", key[0], key[1])

    async def _post(self, url: str, body: bytes) -> tuple[str, str]:
        headers = (
            signed_headers(self.secret, body, self.clock())
            if self.secret
            else {"Content-Type": "application/json"}
        )
        try:
            async with self._client().post(url, data=body, headers=headers) as response:
                code = str(response.status)
                if response.status < 300:
                    return "ok", code
                retry = response.status >= 500 or response.status in _RETRY_STATUS
                return ("retry" if retry else "give_up"), code
        except (aiohttp.ClientError, TimeoutError) as exc:
            return "retry", type(exc).__name__

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    # -- recovery ------------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        since = self.clock() - self.window
        while True:
            started = self.clock()
            try:
                await self.sweep(since)
            except Exception:
                log.exception("callback recovery sweep failed")
            else:  # later sweeps overlap the previous one: a commit can land a little late
                since = started - max(300.0, 2 * self.sweep_interval)
            self._swept = True
            if not self._pending:
                self._idle.set()
            await asyncio.sleep(self.sweep_interval)  # not self.sleep: that one is the backoff's

    async def _sweep_once(self, since: float, kinds: tuple[str, ...]) -> None:
        try:
            await self.sweep(since, kinds)
        except Exception:
            log.exception("callback recovery sweep failed")

    async def sweep(self, since: float, kinds: tuple[str, ...] | None = None) -> None:
        """Tell what became final since `since`, or was left claimed by a dead owner."""
        now, kinds = self.clock(), kinds or tuple(self.sources)
        statuses = tuple(frozenset().union(*(self.final[k] for k in kinds)))

        def scan(conn: Any) -> tuple[dict[str, set[str]], list[Key]]:
            return (ledger.finals_since(conn, since, kinds, statuses),
                    ledger.expired_claims(conn, now))  # fmt: skip

        found, expired = await self.store.read(scan)
        for kind, subject, _, _ in expired:
            found.setdefault(kind, set()).add(subject)
        for kind, ids in found.items():
            if ids and kind in kinds:
                await self.tell(kind, sorted(ids))
        await self.store.write(partial(ledger.prune, before=now - 2 * self.window))

    async def _action_deliveries(self, ids: list[str], now: float) -> list[Delivery]:
        columns = (*PAYLOAD_FIELDS, "callback_url")
        rows = await self.store.read(
            partial(
                ledger.untold,
                kind="action",
                ids=ids,
                statuses=tuple(FINAL),
                now=now,
                columns=columns,
            )
        )
        return [
            Delivery(ledger.key_of("action", r), r["callback_url"],
                     {**{k: r[k] for k in PAYLOAD_FIELDS}, "result": _loads(r["result"])})
            for r in rows
        ]  # fmt: skip

    async def flush(self, limit: float = 30.0) -> None:
        """Wait (bounded) until noted outcomes (and the first sweep) are looked up and their
        deliveries done."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), limit)
        if self._once:
            await asyncio.wait(list(self._once), timeout=limit)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=limit)

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        tasks = [*self._loops, *self._once, *self._tasks]
        for task in tasks:
            task.cancel()
        if tasks:  # a cancelled delivery keeps its claim: its lease runs out, then it is retold
            await asyncio.wait(tasks)
        self._loops.clear()
        self._lookup = None
        if self._session is not None:
            await self._session.close()


def _loads(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def _host(url: str) -> str:
    # Log the host only: a callback URL may carry a token in its path or query.
    from urllib.parse import urlsplit

    return urlsplit(url).netloc or "?"
