"""Base for local stand-ins of platform APIs: aiohttp on 127.0.0.1, ephemeral port by default.

A stand-in speaks the platform's real HTTP shapes so the real SDKs can talk to it. This base adds
what every stand-in needs, in one middleware, in this order for each request:

1. record it (`requests` log and per-path timestamps; tokens in query strings are redacted);
2. apply a fault switch if one matches (slow answer, then 503 / 429 with Retry-After / 401 / any);
3. check credentials (`authorize`, per platform);
4. enforce the platform's sliding-window rate limit (429 with Retry-After when exceeded);
5. run the platform handler.

Faults are switched from Python (`standin.faults.set(...)`) or over HTTP (`POST /_standin/faults`,
used by the sandbox page). State is a JSON-able dict, optionally persisted to a file: loaded on
start, saved after changes and on stop. Admin routes (`/_standin/...`) and `public_prefixes`
skip steps 1-4.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from executors.sandbox.measure import FAULT_KINDS, Fault, Faults, Recorded, SlidingWindow, Stats

__all__ = [
    "FAULT_KINDS", "Fault", "Faults", "Handler", "Recorded", "SlidingWindow", "StandIn", "Stats",
    "retry_headers",
]  # fmt: skip

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ADMIN = "/_standin"
_REDACTED_PARAMS = {"key", "token", "access_token"}


class StandIn:
    """Subclass per platform: set `name`, add routes in `routes`, override `authorize`,
    `error_response` and `initial_state`; call `self.changed()` after mutating `self.state`."""

    name = "standin"
    # Paths served like the admin routes (no record, fault, auth or limit): the web links a
    # platform hands out (a page's or card's url), so the sandbox page can open them.
    public_prefixes: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        rate_limit: tuple[int, float] | None = None,
        state_file: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.faults = Faults()
        self.stats = Stats()
        self.limiter = SlidingWindow(*rate_limit, clock) if rate_limit else None
        self.state_file = Path(state_file) if state_file else None
        self.state: dict[str, Any] = self.initial_state()
        self.base_url = ""
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self._save_task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[str], None]] = []

    # -- to override -------------------------------------------------------------------------
    def initial_state(self) -> dict[str, Any]:
        return {}

    def routes(self, app: web.Application) -> None:
        """Register the platform's routes on `app`."""

    def authorize(self, request: web.Request) -> bool:
        return True

    def error_response(
        self, status: int, message: str, retry_after: float | None = None
    ) -> web.StreamResponse:
        """An error in the platform's own format (JSON body, headers such as Retry-After)."""
        return web.json_response(
            {"error": message}, status=status, headers=retry_headers(retry_after)
        )

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> Self:
        if self.state_file and self.state_file.exists():
            text = await asyncio.to_thread(self.state_file.read_text, "utf-8")
            self.state = {**self.initial_state(), **json.loads(text)}
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024**2)
        self._admin_routes(app)
        self.routes(app)
        # A short shutdown: a "slow" fault must not hold up stop().
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        if self._save_task is not None:
            await self._save_task
        await self._save()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- state -------------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """`listener(name)` runs after every state change (the sandbox page pushes updates)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def changed(self) -> None:
        for listener in list(self._listeners):
            listener(self.name)
        if self.state_file and (self._save_task is None or self._save_task.done()):
            self._save_task = asyncio.get_running_loop().create_task(self._save())

    async def _save(self) -> None:
        if self.state_file is None:
            return
        # Serialise on the loop (consistent snapshot), write in a thread (no blocking I/O).
        text = json.dumps(self.state, sort_keys=True)
        await asyncio.to_thread(_write_atomic, self.state_file, text)

    # -- middleware --------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith((ADMIN, *self.public_prefixes)):
            return await handler(request)
        arrived = await self._record(request)
        response = await self._gate(request)
        if response is None:
            response = await handler(request)
        self.stats.statuses[response.status] = self.stats.statuses.get(response.status, 0) + 1
        if response.status < 400:
            self.stats.served.append(arrived)
        return response

    async def _gate(self, request: web.Request) -> web.StreamResponse | None:
        fault = self.faults.take(request.path)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                retry_after = fault.retry_after if fault.status == 429 else None
                return self.error_response(
                    fault.status, f"injected fault {fault.kind}", retry_after
                )
        if not self.authorize(request):
            return self.error_response(401, "invalid credentials")
        if self.limiter is not None:
            wait = self.limiter.admit()
            if wait > 0:
                self.stats.rate_limited += 1
                return self.error_response(429, "rate limited", wait)
        return None

    async def _record(self, request: web.Request) -> float:
        raw = await request.read()  # cached by aiohttp: handlers can still read the body
        body: Any = None
        if raw:
            text = raw.decode("utf-8", "replace")
            try:
                body = json.loads(text) if request.content_type.endswith("json") else text
            except ValueError:
                body = text
        query = {k: ("***" if k in _REDACTED_PARAMS else v) for k, v in request.query.items()}
        now = time.time()
        self.stats.record(Recorded(request.method, request.path, query, body, now))
        return now

    # -- admin routes ------------------------------------------------------------------------
    def _admin_routes(self, app: web.Application) -> None:
        app.router.add_get(f"{ADMIN}/faults", self._get_faults)
        app.router.add_post(f"{ADMIN}/faults", self._post_fault)
        app.router.add_delete(f"{ADMIN}/faults", self._clear_faults)
        app.router.add_get(f"{ADMIN}/state", self._get_state)
        app.router.add_get(f"{ADMIN}/stats", self._get_stats)

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"faults": self.faults.snapshot(), "injected": self.faults.injected}
        )

    async def _post_fault(self, request: web.Request) -> web.Response:
        """Body: {"kind": "503"|"429"|"401"|"slow"|"clear", "count", "path", "retry_after",
        "delay", "status"} (all but kind optional)."""
        options = await request.json()
        kind = str(options.pop("kind", ""))
        if kind == "clear":
            self.faults.clear()
            return web.json_response({"faults": []})
        try:
            fault = self.faults.set(kind, **options)
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"fault": asdict(fault)}, status=201)

    async def _clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return web.json_response({"faults": []})

    async def _get_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state)

    async def _get_stats(self, request: web.Request) -> web.Response:
        summary = self.stats.summary()
        if self.limiter is not None:
            summary["limit"] = [self.limiter.limit, self.limiter.window]
            summary["served_max_in_window"] = self.stats.max_in_window(self.limiter.window)
        return web.json_response(summary)


def retry_headers(retry_after: float | None) -> dict[str, str] | None:
    """Retry-After is whole seconds on the wire; never round a real wait down to 0."""
    if retry_after is None:
        return None
    return {"Retry-After": str(max(1, int(-(-retry_after // 1))))}


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name: a save from a request in flight may overlap the final save in stop().
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, "utf-8")
    tmp.replace(path)
