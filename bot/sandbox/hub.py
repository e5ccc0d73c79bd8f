"""Live updates for the sandbox page: stand-in changes and queue outcomes, fanned out over SSE.

Stand-ins call `dirty(panel)` on every state change (many per second under load); the hub
coalesces them and, at most every `interval` seconds, sends each changed panel's snapshot once
to every connected page. Events that are not state (an ephemeral `/ops` answer, a modal opened
for the user, an action's outcome) are sent as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("opsbot.sandbox")

Event = tuple[str, Any]  # (SSE event name, JSON data)
_QUEUE_SIZE = 500  # per page; a page that cannot keep up is dropped (it reconnects, resyncs)
_KEEPALIVE_S = 15.0


class Hub:
    def __init__(self, snapshot: Callable[[str], Any], interval: float = 0.1) -> None:
        self.snapshot = snapshot  # panel name -> its current JSON
        self.interval = interval
        self._clients: set[asyncio.Queue[Event | None]] = set()
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._flush_loop())

    async def stop(self) -> None:
        for client in list(self._clients):
            _offer(client, None)  # ends each open stream
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def dirty(self, panel: str) -> None:
        self._dirty.add(panel)
        self._wake.set()

    def send(self, name: str, data: Any) -> None:
        for client in list(self._clients):
            if not _offer(client, (name, data)):
                # A page that fell this far behind is told to go: its EventSource reconnects
                # and starts again from the full picture.
                self._clients.discard(client)
                while not client.empty():
                    client.get_nowait()
                client.put_nowait(None)

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.interval)  # coalesce a burst of changes into one send
            self._wake.clear()
            panels, self._dirty = self._dirty, set()
            for panel in sorted(panels):
                try:
                    self.send(panel, self.snapshot(panel))
                except Exception:  # one bad panel must not stop the page's updates
                    log.exception("sandbox page: the %s snapshot failed", panel)

    async def stream(self, request: web.Request, initial: list[Event]) -> web.StreamResponse:
        """One page's Server-Sent Events stream: the full picture, then changes."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        client: asyncio.Queue[Event | None] = asyncio.Queue(_QUEUE_SIZE)
        self._clients.add(client)
        try:
            for event in initial:
                await response.write(_frame(event))
            while True:
                try:
                    item = await asyncio.wait_for(client.get(), _KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keepalive\n\n")
                    continue
                if item is None:
                    break
                await response.write(_frame(item))
        except ConnectionResetError:
            pass  # the page went away
        finally:
            self._clients.discard(client)
        return response


def _offer(client: asyncio.Queue[Event | None], item: Event | None) -> bool:
    try:
        client.put_nowait(item)
    except asyncio.QueueFull:
        return False
    return True


def _frame(event: Event) -> bytes:
    name, data = event
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n".encode()
