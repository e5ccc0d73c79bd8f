"""A local Slack: the Web API methods opsbot uses plus the Socket Mode WebSocket.

The real slack_sdk / slack-bolt code talks to it unchanged; only `base_url` and tokens differ.
`apps.connections.open` hands out `ws://127.0.0.1:PORT/socket/<ticket>`; the stand-in then pushes
envelopes (slash commands, button clicks, view submissions, events) and collects the acks. Every
Web API call and every `response_url` post is recorded, so tests assert what was really posted.
Errors are Slack-shaped: HTTP 200 with `ok: false` + `error`, or 429 `ratelimited` + Retry-After.
This module is the HTTP side (routes, tokens, recording, waiting, Socket Mode pushes); the
workspace state and the Web API methods live in executors/sandbox/slack_workspace.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from executors.sandbox import slack_socket as envelopes
from executors.sandbox.measure import Recent
from executors.sandbox.slack_socket import SocketModeServer
from executors.sandbox.slack_workspace import (
    BOT_USER_ID,
    DEFAULT_CHANNELS,
    DEFAULT_USERS,
    MESSAGES_KEPT,
    SlackError,
    SlackWorkspace,
)
from executors.sandbox.standin import retry_headers

__all__ = [
    "APP_TOKEN", "BOT_TOKEN", "BOT_USER_ID", "DEFAULT_CHANNELS", "DEFAULT_USERS", "MESSAGES_KEPT",
    "SlackError", "SlackStandIn",
]  # fmt: skip

JSON = dict[str, Any]
Call = JSON  # {"method": str, "params": dict, "at": float}

BOT_TOKEN = "xoxb-sandbox-bot-token"
APP_TOKEN = "xapp-sandbox-app-token"
_STATUS_ERRORS = {401: "invalid_auth", 429: "ratelimited", 503: "service_unavailable"}


class SlackStandIn(SlackWorkspace):
    """Web API and Socket Mode of a one-workspace Slack, on 127.0.0.1 (ephemeral port).

    `state` (JSON, persisted by the base when `state_file` is given): see `SlackWorkspace`.
    """

    name = "slack"

    def __init__(
        self,
        *,
        bot_token: str = BOT_TOKEN,
        app_token: str = APP_TOKEN,
        rate_limit: tuple[int, float] | None = None,
        state_file: str | Path | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(rate_limit=rate_limit, state_file=state_file, port=port)
        self.bot_token, self.app_token = bot_token, app_token
        self.calls: list[Call] = Recent()  # the newest KEPT calls
        self.socket = SocketModeServer(self._changed_now, self.wait_for)
        self._changed = asyncio.Event()
        self._call_listeners: list[Callable[[Call], None]] = []

    # -- HTTP -------------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        """What SLACK_API_URL must be set to."""
        return f"{self.base_url}/api/"

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self._web_api)
        app.router.add_post("/respond/{channel}/{user}", self._response_url)
        app.router.add_get("/socket/{ticket}", self.socket.handle)

    def authorize(self, request: web.Request) -> bool:
        """Web API calls need the bot token (the app token for apps.connections.open);
        sockets and response URLs carry their own one-time secrets in the path."""
        if not request.path.startswith("/api/"):
            return True
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if request.path == "/api/apps.connections.open":
            return token == self.app_token
        return token == self.bot_token

    def error_response(
        self, status: int, message: str, retry_after: float | None = None
    ) -> web.StreamResponse:
        """Slack answers bad credentials with HTTP 200 and `ok: false`; 429 and 5xx keep their
        status (slack_sdk reads Retry-After from the 429)."""
        error = _STATUS_ERRORS.get(status, message)
        http_status = 200 if status == 401 else status
        body = {"ok": False, "error": error}
        return web.json_response(body, status=http_status, headers=retry_headers(retry_after))

    async def stop(self) -> None:
        await self.socket.drop()
        await super().stop()

    # -- observation -------------------------------------------------------------------------
    def calls_to(self, method: str) -> list[JSON]:
        return [c["params"] for c in self.calls if c["method"] == method]

    def on_call(self, listener: Callable[[Call], None]) -> None:
        """Called with every recorded Web API call and response_url post."""
        self._call_listeners.append(listener)

    async def wait_for(self, predicate: Callable[[], Any], within: float = 5.0) -> Any:
        """Wait until `predicate()` is truthy (re-checked after every call); return its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not (value := predicate()):
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError("stand-in condition not met in time")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                continue
        return value

    async def wait_call(self, method: str, within: float = 5.0, **match: Any) -> JSON:
        """The first recorded call of `method` whose params contain `match`."""

        def found() -> JSON | None:
            for params in self.calls_to(method):
                if all(params.get(k) == v for k, v in match.items()):
                    return params
            return None

        result: JSON = await self.wait_for(found, within)
        return result

    def _changed_now(self) -> None:
        """Wake `wait_for`: something a test may be waiting on happened."""
        self._changed.set()

    def _log_call(self, method: str, params: JSON) -> None:
        call = {"method": method, "params": params, "at": time.time()}
        self.calls.append(call)
        self._changed.set()
        for listener in self._call_listeners:
            listener(call)

    # -- Web API -----------------------------------------------------------------------------
    async def _web_api(self, request: web.Request) -> web.Response:
        # Faults, credentials and the rate limit were applied by the base middleware.
        method = request.match_info["method"]
        params = await _params(request)
        params.pop("token", None)
        self._log_call(method, params)
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        try:
            body: JSON = handler(params)
        except SlackError as exc:
            return web.json_response({"ok": False, "error": exc.code})
        self.changed()
        self._changed.set()
        return web.json_response({"ok": True, **body})

    async def _response_url(self, request: web.Request) -> web.Response:
        """`respond()` from Bolt posts here; recorded as method "response_url"."""
        body = await request.json()
        body.update(channel=request.match_info["channel"], user=request.match_info["user"])
        self._log_call("response_url", body)
        return web.Response(text="ok", content_type="text/plain")

    def response_url(self, channel: str, user: str) -> str:
        return f"{self.base_url}/respond/{channel}/{user}"

    # -- Socket Mode: tests and the sandbox page act as the people clicking -------------------
    @property
    def connected(self) -> int:
        return self.socket.connected

    async def drop_sockets(self) -> None:
        """Close every connection from the server side (a network blip)."""
        await self.socket.drop()

    def _user(self, uid: str) -> JSON:
        return self.users.get(uid) or {"id": uid, "name": uid}

    async def slash_command(
        self, text: str, *, user: str = "U0ALICE", channel: str = "general", command: str = "/ops"
    ) -> asyncio.Future[JSON]:
        ch = self._channel(channel)
        url = self.response_url(ch["id"], user)
        payload = envelopes.slash_command(command, text, self._user(user), ch, url)
        return await self.socket.push("slash_commands", payload)

    async def click(
        self, channel: str, ts: str, action_id: str, value: str, *, user: str = "U0ALICE"
    ) -> asyncio.Future[JSON]:
        """A button click on message `ts` of `channel`."""
        ch = self._channel(channel)
        url = self.response_url(ch["id"], user)
        message = self._message(ch, ts)
        payload = envelopes.block_actions(self._user(user), ch, message, action_id, value, url)
        return await self.socket.push("interactive", payload)

    async def submit_view(
        self, view_id: str, values: dict[str, dict[str, str]], *, user: str = "U0ALICE"
    ) -> asyncio.Future[JSON]:
        """Submit modal `view_id` (opened with views.open); `values`: {block: {action: text}}."""
        payload = envelopes.view_submission(user, self.state["views"][view_id], values)
        return await self.socket.push("interactive", payload)

    async def event(self, event: JSON) -> asyncio.Future[JSON]:
        return await self.socket.push("events_api", envelopes.event_callback(event, BOT_USER_ID))


async def _params(request: web.Request) -> JSON:
    """Query string, form fields and a JSON body, merged; JSON-encoded form values decoded."""
    params: JSON = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        params.update(body if isinstance(body, dict) else {})
    elif request.can_read_body:
        params.update(dict(await request.post()))
    for key in ("blocks", "view", "attachments"):
        value = params.get(key)
        if isinstance(value, str) and value[:1] in "[{":
            params[key] = json.loads(value)
    return params
