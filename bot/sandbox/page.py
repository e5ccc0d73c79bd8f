"""The sandbox page: an aiohttp app (a runtime Service) serving executors/sandbox/page/.

Everything the page does goes through the real doors: a button click or an `/ops` command is
pushed by the Slack stand-in over the Socket Mode WebSocket as the sandbox user (so Bolt's
handlers run exactly as in production), an action goes through the intake like the HTTP API, a
workflow through the runner. Panels are snapshots of the stand-ins' state, pushed live (SSE).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

import executors.sandbox
from bot.actions import ActionInvalid
from bot.sandbox import snapshot
from bot.sandbox.content import EXAMPLE_ACTIONS, SAMPLE_INPUTS, load_examples
from bot.sandbox.hub import Hub
from bot.sandbox.standins import PLATFORMS, SANDBOX_USER, Sandbox
from executors.sandbox.slack import SlackError

log = logging.getLogger("opsbot.sandbox")

PAGE_DIR = Path(executors.sandbox.__file__).resolve().parent / "page"  # package data
STATIC = {"app.js": "text/javascript", "blocks.js": "text/javascript", "style.css": "text/css"}
FAULT_KINDS = ("503", "429", "401", "slow", "off", "clear")
ACK_TIMEOUT = 5.0


class PageService:
    """`runtime.services.append(PageService(sandbox, runtime, port=...))`; `url` after start."""

    def __init__(
        self, sandbox: Sandbox, runtime: Any, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.sandbox, self.runtime = sandbox, runtime
        self.host, self.port = host, port
        self.url = ""
        self.hub = Hub(self.panel)
        self._runner: web.AppRunner | None = None
        self._undo: list[Callable[[], None]] = []
        self._seen_views: set[str] = set()
        self._circuits = ""
        self._recent: deque[dict[str, Any]] = deque(maxlen=30)  # the Activity panel on load
        self._ticker: asyncio.Task[None] | None = None
        self._live = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # the runtime only stops services whose start() returned
            raise

    async def _start(self) -> None:
        sb = self.sandbox
        self._seen_views = set(sb.slack.state["views"])
        self._live = True
        for platform in PLATFORMS:
            self._undo.append(sb.standin(platform).subscribe(self._on_change))
        sb.slack.on_call(self._on_call)  # the stand-in has no removal: `_live` gates it
        self._undo.append(self.runtime.queue.subscribe(self._on_outcome))
        self.hub.start()
        self._ticker = asyncio.create_task(self._tick())
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])
        self.url = f"http://{self.host}:{self.port}/"

    async def stop(self) -> None:
        self._live = False
        for undo in self._undo:
            undo()
        self._undo.clear()
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        await self.hub.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _app(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.get("/", self._index),
            web.get("/static/{name}", self._static),
            web.get("/events", self._events),
            web.get("/api/state", self._state),
            web.get("/api/examples", self._examples),
            web.get("/api/workflows", self._workflows),
            web.post("/api/click", self._click),
            web.post("/api/command", self._command),
            web.post("/api/view", self._view),
            web.post("/api/home", self._home),
            web.post("/api/actions", self._submit),
            web.post("/api/workflows/{name}", self._start_run),
            web.post("/api/faults", self._fault),
        ])  # fmt: skip
        return app

    # -- what the page sees ------------------------------------------------------------------
    def panel(self, name: str) -> Any:
        if name == "faults":
            return self.sandbox.faults()
        if name == "circuits":
            return snapshot.circuits(self.runtime)
        return snapshot.PANELS[name](self.sandbox.standin(name).state)

    def _everything(self) -> dict[str, Any]:
        names = (*PLATFORMS, "faults", "circuits")
        panels = {n: self.panel(n) for n in names}
        return {"user": SANDBOX_USER, "activity": list(self._recent), **panels}

    def _on_change(self, name: str) -> None:
        self.hub.dirty(name)  # the stand-ins' names are the platforms'
        if name == "slack":
            self._new_views()

    def _new_views(self) -> None:
        """A modal opened (Details, Reject's reason): the sandbox user is the only one clicking."""
        for view_id, view in list(self.sandbox.slack.state["views"].items()):
            if view_id not in self._seen_views:
                self._seen_views.add(view_id)
                self.hub.send("modal", view)

    def _on_call(self, call: dict[str, Any]) -> None:
        params = call["params"]
        if self._live and call["method"] == "response_url" and params.get("user") == SANDBOX_USER:
            self.hub.send("response", params)

    def _on_outcome(self, view: dict[str, Any]) -> None:
        self._activity(snapshot.brief(view))
        self.hub.dirty("circuits")

    def _activity(self, brief: dict[str, Any]) -> None:
        self._recent.append(brief)
        self.hub.send("action", brief)

    async def _tick(self) -> None:
        """Breakers change with time too (open -> half-open): look once a second."""
        while True:
            await asyncio.sleep(1.0)
            shown = json.dumps(snapshot.circuits(self.runtime), default=str)
            if shown != self._circuits:
                self._circuits = shown
                self.hub.dirty("circuits")

    # -- handlers ----------------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(PAGE_DIR / "index.html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.FileResponse(PAGE_DIR / name, headers={"Content-Type": STATIC[name]})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        initial = [("state", self._everything())]
        return await self.hub.stream(request, initial)

    async def _state(self, request: web.Request) -> web.Response:
        return _json(self._everything())

    async def _examples(self, request: web.Request) -> web.Response:
        return _json(await asyncio.to_thread(load_examples, EXAMPLE_ACTIONS))

    async def _workflows(self, request: web.Request) -> web.Response:
        runner = find_runner(self.runtime)
        workflows = getattr(runner, "workflows", {}) if runner is not None else {}
        return _json([
            {"name": name, "description": wf.description, "inputs": list(wf.inputs),
             "sample": SAMPLE_INPUTS.get(name, {})}
            for name, wf in sorted(workflows.items())
        ])  # fmt: skip

    async def _click(self, request: web.Request) -> web.Response:
        body = await _body(request)
        slack = self.sandbox.slack
        return await _pushed(slack.click(
            str(body["channel"]), str(body["ts"]), str(body["action_id"]),
            str(body.get("value", "")), user=SANDBOX_USER,
        ))  # fmt: skip

    async def _command(self, request: web.Request) -> web.Response:
        body = await _body(request)
        text = str(body.get("text", "")).strip().removeprefix("/ops").strip()
        channel = str(body.get("channel") or "operations")
        return await _pushed(
            self.sandbox.slack.slash_command(text, user=SANDBOX_USER, channel=channel)
        )

    async def _view(self, request: web.Request) -> web.Response:
        body = await _body(request)
        values = {str(b): {str(a): str(v) for a, v in inner.items()}
                  for b, inner in dict(body.get("values") or {}).items()}  # fmt: skip
        return await _pushed(
            self.sandbox.slack.submit_view(str(body["view_id"]), values, user=SANDBOX_USER)
        )

    async def _home(self, request: web.Request) -> web.Response:
        """The user opens opsbot's App Home tab: Bolt publishes the view (app_home_opened)."""
        dm = "D" + SANDBOX_USER.removeprefix("U")
        event = {"type": "app_home_opened", "user": SANDBOX_USER, "tab": "home", "channel": dm,
                 "event_ts": str(time.time())}  # fmt: skip
        return await _pushed(self.sandbox.slack.event(event))

    async def _submit(self, request: web.Request) -> web.Response:
        """One action (an object) or a batch (a list), as POST /actions takes them."""
        try:
            body = await request.json()
        except ValueError as exc:
            return _json({"error": f"not JSON: {exc}"}, 400)
        try:
            results = await self.runtime.intake.submit_results(body, actor="sandbox")
        except ActionInvalid as exc:
            return _json({"error": str(exc)}, 400)
        except Exception as exc:  # QueueFull and the like: say what happened
            return _json({"error": f"{type(exc).__name__}: {exc}"}, 503)
        shown = [{"id": r.id, "status": r.status, "duplicate": r.duplicate} for r in results]
        for item, raw in zip(shown, body if isinstance(body, list) else [body], strict=False):
            self._activity({"id": item["id"], "type": raw.get("type"), "status": item["status"]})
        return _json({"actions": shown}, 201)

    async def _start_run(self, request: web.Request) -> web.Response:
        runner = find_runner(self.runtime)
        if runner is None:
            return _json({"error": "workflows are off (no runner in this process)"}, 503)
        body = await _body(request)
        try:
            run = await runner.start_run(request.match_info["name"], body.get("input") or {},
                                         actor="sandbox", source="sandbox")  # fmt: skip
        except (KeyError, ValueError) as exc:  # RunRefused, unknown workflow, bad template
            return _json({"error": str(exc).strip("'\"")}, 400)
        return _json(run, 201)

    async def _fault(self, request: web.Request) -> web.Response:
        body = await _body(request)
        platform, kind = str(body.get("platform")), str(body.get("kind"))
        if platform not in PLATFORMS or kind not in FAULT_KINDS:
            return _json({"error": f"platform one of {PLATFORMS}, kind one of {FAULT_KINDS}"},
                         400)  # fmt: skip
        await self.sandbox.set_fault(platform, kind)
        self.hub.dirty("faults")
        return _json(self.sandbox.faults())


def find_runner(runtime: Any) -> Any:
    """The workflow runner of this process: on the runtime, as a service, or the surface's."""
    runner = getattr(runtime, "runner", None)
    if runner is not None:
        return runner
    for service in getattr(runtime, "services", []):
        if hasattr(service, "start_run"):
            return service
        if getattr(service, "runner", None) is not None:
            return service.runner
    return None


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return body


async def _pushed(push: Any) -> web.Response:
    """Push an envelope through the Socket Mode WebSocket and wait (bounded) for Bolt's ack."""
    try:
        ack = await asyncio.wait_for(await push, ACK_TIMEOUT)
    except TimeoutError:
        return _json({"error": "opsbot is not connected to the Slack stand-in (or no ack)"}, 503)
    except (KeyError, ValueError, SlackError) as exc:
        return _json({"error": f"not found: {exc}"}, 404)
    except Exception as exc:  # the stand-in is switched off, or refused the envelope
        return _json({"error": f"{type(exc).__name__}: {exc}"}, 503)
    return _json({"ok": True, "envelope_id": ack.get("envelope_id")})


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, default=str), status=status,
                        content_type="application/json")  # fmt: skip
