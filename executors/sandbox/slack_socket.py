"""The Socket Mode side of the Slack stand-in: the WebSocket and the envelopes Slack sends.

`SocketModeServer` is the transport: one-time tickets (what `apps.connections.open` hands out),
the `hello` on connect, envelopes pushed to the newest connection, acks collected by envelope id.
The payload builders below are pure: what Slack sends for a slash command, a button click, a modal
submission and an Events API event.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

JSON = dict[str, Any]
TEAM_ID = "T0SANDBOX"
APP_ID = "A0OPSBOT"


class SocketModeServer:
    def __init__(
        self, changed: Callable[[], None], wait_for: Callable[..., Awaitable[Any]]
    ) -> None:
        self.acks: dict[str, JSON] = {}
        self._changed = changed
        self._wait_for = wait_for
        self._sockets: list[web.WebSocketResponse] = []
        self._tickets: set[str] = set()
        self._waiters: dict[str, asyncio.Future[JSON]] = {}

    def issue(self, base_url: str) -> str:
        """A fresh `ws://` URL for apps.connections.open."""
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return base_url.replace("http", "ws", 1) + f"/socket/{ticket}"

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        if request.match_info["ticket"] not in self._tickets:
            raise web.HTTPUnauthorized()
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets),
                "connection_info": {"app_id": APP_ID},
                "debug_info": {"host": "sandbox", "approximate_connection_time": 3600},
            }
        )
        self._changed()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_ack(json.loads(msg.data))
        finally:
            self._sockets.remove(ws)
        return ws

    def _on_ack(self, ack: JSON) -> None:
        envelope_id = ack.get("envelope_id")
        if not envelope_id:
            return
        self.acks[envelope_id] = ack
        waiter = self._waiters.pop(envelope_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(ack)
        self._changed()

    @property
    def connected(self) -> int:
        return sum(1 for ws in self._sockets if not ws.closed)

    async def push(self, kind: str, payload: JSON, within: float = 5.0) -> asyncio.Future[JSON]:
        """Send one envelope to the newest connection; the future resolves with its ack."""
        await self._wait_for(lambda: self.connected, within)
        envelope_id = str(uuid.uuid4())
        waiter: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self._waiters[envelope_id] = waiter
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": 0,
        }
        live = [ws for ws in self._sockets if not ws.closed]
        await live[-1].send_json(envelope)
        return waiter

    async def drop(self) -> None:
        """Close every connection from the server side (a network blip, or shutdown)."""
        for ws in list(self._sockets):
            await ws.close()


def slash_command(command: str, text: str, user: JSON, channel: JSON, response_url: str) -> JSON:
    return {
        "token": "sandbox",
        "team_id": TEAM_ID,
        "team_domain": "sandbox",
        "channel_id": channel["id"],
        "channel_name": channel["name"],
        "user_id": user["id"],
        "user_name": user.get("name", user["id"]),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "trigger_id": uuid.uuid4().hex,
        "response_url": response_url,
    }


def block_actions(
    user: JSON, channel: JSON, message: JSON, action_id: str, value: str, response_url: str
) -> JSON:
    """A button click on `message` (the block_actions interactive payload)."""
    return {
        "type": "block_actions",
        "user": {"id": user["id"], "team_id": TEAM_ID, "username": user.get("name")},
        "api_app_id": APP_ID,
        "team": {"id": TEAM_ID},
        "trigger_id": uuid.uuid4().hex,
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel["id"]},
        "channel": {"id": channel["id"], "name": channel["name"]},
        "message": message,
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": action_id,
                "value": value,
                "action_ts": str(time.time()),
            }
        ],
    }


def view_submission(user_id: str, view: JSON, values: dict[str, dict[str, str]]) -> JSON:
    """Submitting modal `view`; `values` is {block_id: {action_id: text}}."""
    state = {
        b: {a: {"type": "plain_text_input", "value": v} for a, v in inner.items()}
        for b, inner in values.items()
    }
    return {
        "type": "view_submission",
        "team": {"id": TEAM_ID},
        "api_app_id": APP_ID,
        "user": {"id": user_id, "team_id": TEAM_ID},
        "view": {**view, "state": {"values": state}},
        "trigger_id": uuid.uuid4().hex,
    }


def event_callback(event: JSON, bot_user_id: str) -> JSON:
    return {
        "token": "sandbox",
        "team_id": TEAM_ID,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": "Ev" + uuid.uuid4().hex[:10],
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM_ID, "user_id": bot_user_id, "is_bot": True}],
    }
