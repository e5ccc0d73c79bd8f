"""The Slack stand-in's workspace: its state and the Web API methods that read and change it.

No HTTP here: `SlackStandIn` (executors/sandbox/slack.py) parses a request and calls the
`m_<method>` of this class (`chat.postMessage` -> `m_chat_postMessage`) with its params; a method
returns the body's fields or raises `SlackError`, which becomes `{"ok": false, "error": code}`.
State (`self.state`, persisted by the `StandIn` base): channels with their messages, users, user
groups, opened views and App Home views.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from executors.sandbox.slack_socket import TEAM_ID, SocketModeServer
from executors.sandbox.standin import StandIn

JSON = dict[str, Any]

BOT_USER_ID = "U0OPSBOT"
MESSAGES_KEPT = 1_000  # per channel, in memory and in the state file; older ones are dropped
DEFAULT_CHANNELS = ("approvals", "errors", "operations", "general")
DEFAULT_USERS = {"U0ALICE": "alice", "U0BOB": "bob", "U0CAROL": "carol"}


class SlackError(Exception):
    """A Web API method refused the call: becomes `{"ok": false, "error": code}`."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class SlackWorkspace(StandIn):
    """One workspace's channels, users, groups and views, and the Web API methods over them."""

    socket: SocketModeServer  # set by SlackStandIn; apps.connections.open issues its tickets

    def initial_state(self) -> dict[str, Any]:
        self.state = {
            "channels": {},
            "users": {},
            "usergroups": {},
            "views": {},
            "home": {},
            "next_ts": 1,
        }
        for name in DEFAULT_CHANNELS:
            self.add_channel(name)
        for uid, name in DEFAULT_USERS.items():
            self.add_user(uid, name)
        return self.state

    # -- setup ------------------------------------------------------------------------------
    @property
    def channels(self) -> dict[str, JSON]:
        channels: dict[str, JSON] = self.state["channels"]
        return channels

    @property
    def users(self) -> dict[str, JSON]:
        users: dict[str, JSON] = self.state["users"]
        return users

    def add_channel(self, name: str) -> str:
        cid = "C" + name.upper().replace("-", "")[:9].ljust(9, "0")
        self.channels.setdefault(cid, {"id": cid, "name": name, "is_im": False, "messages": []})
        return cid

    def add_user(self, uid: str, name: str) -> None:
        self.users[uid] = {"id": uid, "name": name, "real_name": name.title(), "is_bot": False}

    def add_usergroup(self, gid: str, members: list[str]) -> None:
        self.state["usergroups"][gid] = list(members)

    # -- lookups -----------------------------------------------------------------------------
    def messages(self, channel: str) -> list[JSON]:
        return [m for m in self._channel(channel)["messages"] if not m.get("deleted")]

    def _channel(self, ref: str | None) -> JSON:
        if not ref:
            raise SlackError("channel_not_found")
        ref = ref.lstrip("#")
        if ref in self.channels:
            return self.channels[ref]
        for channel in self.channels.values():
            if channel["name"] == ref:
                return channel
        raise SlackError("channel_not_found")

    def _message(self, channel: JSON, ts: str | None) -> JSON:
        messages: list[JSON] = channel["messages"]
        for message in messages:
            if message["ts"] == ts and not message.get("deleted"):
                return message
        raise SlackError("message_not_found")

    def _next_ts(self) -> str:
        self.state["next_ts"] += 1
        return f"{int(time.time())}.{self.state['next_ts']:06d}"

    def permalink(self, channel_id: str, ts: str) -> str:
        return f"{self.base_url}/archives/{channel_id}/p{ts.replace('.', '')}"

    # -- Web API methods ---------------------------------------------------------------------
    def m_auth_test(self, p: JSON) -> JSON:
        return {
            "url": f"{self.base_url}/",
            "team": "Sandbox",
            "user": "opsbot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": "B0OPSBOT",
            "is_enterprise_install": False,
        }

    def m_apps_connections_open(self, p: JSON) -> JSON:
        return {"url": self.socket.issue(self.base_url)}

    def m_chat_postMessage(self, p: JSON) -> JSON:
        channel = self._channel(p.get("channel"))
        if not p.get("text") and not p.get("blocks"):
            raise SlackError("no_text")
        message = {
            "type": "message",
            "ts": self._next_ts(),
            "user": BOT_USER_ID,
            "text": p.get("text", ""),
            "blocks": p.get("blocks") or [],
            "thread_ts": p.get("thread_ts"),
        }
        if message["thread_ts"]:
            self._message(channel, message["thread_ts"])
        channel["messages"].append(message)
        del channel["messages"][:-MESSAGES_KEPT]  # a long sandbox run: the file stays small
        return {"channel": channel["id"], "ts": message["ts"], "message": message}

    def m_chat_update(self, p: JSON) -> JSON:
        channel = self._channel(p.get("channel"))
        message = self._message(channel, p.get("ts"))
        message.update(text=p.get("text", message["text"]), edited=True)
        if "blocks" in p:
            message["blocks"] = p["blocks"] or []
        return {
            "channel": channel["id"],
            "ts": message["ts"],
            "text": message["text"],
            "message": message,
        }

    def m_chat_delete(self, p: JSON) -> JSON:
        channel = self._channel(p.get("channel"))
        self._message(channel, p.get("ts"))["deleted"] = True
        return {"channel": channel["id"], "ts": p["ts"]}

    def m_chat_postEphemeral(self, p: JSON) -> JSON:
        channel = self._channel(p.get("channel"))
        if p.get("user") not in self.users:
            raise SlackError("user_not_found")
        return {"message_ts": self._next_ts(), "channel": channel["id"]}

    def m_chat_getPermalink(self, p: JSON) -> JSON:
        channel = self._channel(p.get("channel"))
        self._message(channel, p.get("message_ts"))
        return {
            "channel": channel["id"],
            "permalink": self.permalink(channel["id"], p["message_ts"]),
        }

    def m_conversations_open(self, p: JSON) -> JSON:
        user = str(p.get("users") or "").split(",")[0]
        if user not in self.users:
            raise SlackError("user_not_found")
        cid = "D" + user.lstrip("U")
        self.channels.setdefault(
            cid, {"id": cid, "name": cid, "is_im": True, "user": user, "messages": []}
        )
        return {"channel": {"id": cid, "is_im": True, "user": user}}

    def m_conversations_list(self, p: JSON) -> JSON:
        listed = [
            {k: c[k] for k in ("id", "name", "is_im")} | {"is_channel": not c["is_im"]}
            for c in self.channels.values()
        ]
        return {"channels": listed, "response_metadata": {"next_cursor": ""}}

    def m_conversations_history(self, p: JSON) -> JSON:
        """Top-level messages, newest first, up to `latest` (inclusive when asked), `limit`."""
        latest, inclusive = p.get("latest"), str(p.get("inclusive")).lower() in ("1", "true")
        messages = [
            m
            for m in reversed(self.messages(p.get("channel", "")))
            if not m.get("thread_ts")
            and (latest is None or float(m["ts"]) < float(latest)
                 or (inclusive and m["ts"] == str(latest)))
        ]  # fmt: skip
        limit = int(p.get("limit") or 100)
        return {"messages": messages[:limit], "has_more": len(messages) > limit}

    def m_users_info(self, p: JSON) -> JSON:
        user = self.users.get(str(p.get("user")))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": user}

    def m_usergroups_users_list(self, p: JSON) -> JSON:
        group = self.state["usergroups"].get(str(p.get("usergroup")))
        if group is None:
            raise SlackError("no_such_subteam")
        return {"users": group}

    def m_views_open(self, p: JSON) -> JSON:
        if not p.get("trigger_id"):
            raise SlackError("invalid_arguments")
        view = dict(p.get("view") or {}, id="V" + uuid.uuid4().hex[:10].upper())
        self.state["views"][view["id"]] = view
        return {"view": view}

    def m_views_publish(self, p: JSON) -> JSON:
        if p.get("user_id") not in self.users:
            raise SlackError("user_not_found")
        view = dict(p.get("view") or {}, id="VHOME" + str(p["user_id"]))
        self.state["home"][p["user_id"]] = view
        return {"view": view}
