"""Outcome callbacks: when an action with a `callback_url` is final, POST its outcome there
(workflow runs use `send` too: bot.run_callbacks).

The queue's bus views do not carry `callback_url`, so final ids are collected and looked up in
batches (one indexed read for many outcomes) by a single task; only actions with a URL cost more.
The body is signed like the inbound hooks (bot.signing, OPSBOT_CALLBACK_SECRET), retried with
exponential backoff on connection errors, timeouts, 408, 429 and 5xx, and given up on other 4xx.
Delivery runs in tasks of its own: the queue's outcome bus only hands the view over (`on_outcome`
is synchronous and cheap), so a slow or dead receiver never holds up the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import aiohttp
from sqlalchemy import Connection, select

from bot.signing import signed_headers
from bot.store.tables import ActionRow

log = logging.getLogger(__name__)

FINAL = frozenset({"succeeded", "dead_lettered", "rejected", "expired", "cancelled"})
PAYLOAD_FIELDS = ("id", "status", "type", "platform", "result", "error", "error_kind",
                  "finished_at", "run_id")  # fmt: skip
_RETRY_STATUS = frozenset({408, 425, 429})
_A = ActionRow.__table__  # type: ignore[attr-defined]


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
    ) -> None:
        self.queue = queue
        self.secret = secret
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.clock = clock
        self.sleep = sleep
        self.metrics = metrics
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._pending: list[dict[str, Any]] = []
        self._have_pending = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing awaits a lookup
        self._idle.set()
        self._lookup: asyncio.Task[None] | None = None
        if secret is None:
            log.warning("OPSBOT_CALLBACK_SECRET is not set: outcome callbacks are sent unsigned")

    def start(self) -> None:
        self._unsubscribe = self.queue.subscribe(self.on_outcome)

    def on_outcome(self, view: dict[str, Any]) -> None:
        """Bus subscriber (cheap, synchronous): note a final action for delivery."""
        if view.get("status") not in FINAL:
            return
        if "callback_url" in view:
            if view["callback_url"]:
                self._spawn(view, view["callback_url"])
            return
        self._pending.append(view)
        self._idle.clear()
        self._have_pending.set()
        if self._lookup is None:
            self._lookup = asyncio.create_task(self._lookup_loop(), name="callback-lookup")

    async def _lookup_loop(self) -> None:
        while True:
            await self._have_pending.wait()
            self._have_pending.clear()
            views, self._pending = self._pending, []
            try:
                urls = await self.queue.store.read(
                    partial(_callback_urls, [v["id"] for v in views])
                )
            except Exception:
                log.exception("callback lookup failed for %d actions", len(views))
                urls = {}
            for view in views:
                if view["id"] in urls:
                    self._spawn(view, urls[view["id"]])
            if not self._pending:
                self._idle.set()

    def _spawn(self, view: dict[str, Any], url: str) -> None:
        self.send({k: view.get(k) for k in PAYLOAD_FIELDS}, url, str(view.get("id")))

    def send(self, payload: dict[str, Any], url: str, label: str) -> None:
        """Deliver `payload` to `url` in a task of its own (signed, retried with backoff)."""
        task = asyncio.create_task(self._deliver(payload, url, label), name=f"callback-{label}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, payload: dict[str, Any], url: str, label: str) -> None:
        outcome = "failed"
        for attempt in range(1, self.attempts + 1):
            # The attempt number makes each retry's body, hence its signature, unique: a
            # receiver that refuses replayed signatures still accepts our retries.
            body = json.dumps({**payload, "delivery_attempt": attempt}, default=str).encode()
            verdict = await self._post(url, body)
            if verdict == "ok":
                outcome = "delivered"
                break
            if verdict == "give_up" or attempt == self.attempts:
                break
            await self.sleep(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        if outcome != "delivered":
            log.warning("callback for %s to %s not delivered", label, _host(url))
        if self.metrics is not None:
            self.metrics.callbacks.labels(outcome).inc()

    async def _post(self, url: str, body: bytes) -> str:
        headers = (
            signed_headers(self.secret, body, self.clock())
            if self.secret
            else {"Content-Type": "application/json"}
        )
        try:
            async with self._client().post(url, data=body, headers=headers) as response:
                if response.status < 300:
                    return "ok"
                retry = response.status >= 500 or response.status in _RETRY_STATUS
                return "retry" if retry else "give_up"
        except (aiohttp.ClientError, TimeoutError):
            return "retry"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def flush(self, limit: float = 30.0) -> None:
        """Wait (bounded) until noted outcomes are looked up and their deliveries done."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), limit)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=limit)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._lookup is not None:
            self._lookup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lookup
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        if self._session is not None:
            await self._session.close()


def _callback_urls(ids: list[str], conn: Connection) -> dict[str, str]:
    found: dict[str, str] = {}
    for i in range(0, len(ids), 500):
        rows = conn.execute(
            select(_A.c.id, _A.c.callback_url).where(
                _A.c.id.in_(ids[i : i + 500]), _A.c.callback_url.is_not(None)
            )
        )
        found.update({row[0]: row[1] for row in rows})
    return found


def _host(url: str) -> str:
    # Log the host only: a callback URL may carry a token in its path or query.
    from urllib.parse import urlsplit

    return urlsplit(url).netloc or "?"
