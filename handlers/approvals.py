"""Approval cards and their buttons: Approve, Reject (with a reason modal), Details.

Only approvers decide (OPS_APPROVERS: user ids and/or user group ids), never the requester; the
queue's conditional update makes the first decision win, so double clicks and two approvers at
once yield one decision. `CardKeeper` posts a card for every action awaiting approval (found in
the store, so actions submitted by another process and cards after a restart are covered) and
updates it in place from the queue's outcome bus: decided, executed, failed, expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from sqlalchemy import Connection, delete, insert, select

from bot import ops
from bot.slack_app import FrontDoor
from bot.store.tables import AuditRow, MetaRow
from handlers import blocks

log = logging.getLogger("opsbot.slack")
Ack = Callable[..., Awaitable[None]]
Respond = Callable[..., Awaitable[Any]]
GROUP_TTL_S = 60.0
CARD_KEY = "slack_card:"  # meta table: action id -> {"channel", "ts"} of its approval card
_META = MetaRow.__table__  # type: ignore[attr-defined]
_AUDIT = AuditRow.__table__  # type: ignore[attr-defined]


async def member_of(door: FrontDoor, user: str, ids: frozenset[str]) -> bool:
    """Is `user` one of `ids`, or in one of the user groups (S...) among them?"""
    if user in ids:
        return True
    for group in (i for i in ids if i.startswith("S")):
        cached = door.group_cache.get(group)
        if cached is None or door.clock() - cached[0] > GROUP_TTL_S:
            try:
                response = await door.client.usergroups_users_list(usergroup=group)
            except SlackApiError as exc:
                log.warning("usergroup %s: %s", group, exc.response.get("error"))
                continue
            cached = (door.clock(), frozenset(response.get("users") or ()))
            door.group_cache[group] = cached
        if user in cached[1]:
            return True
    return False


async def refusal(door: FrontDoor, user: str, view: dict[str, Any]) -> str | None:
    """Why `user` may not decide this action, or None when they may."""
    if view.get("status") != "awaiting_approval":
        return f"`{view['id']}` is no longer awaiting approval (status: {view.get('status')})."
    if not await member_of(door, user, door.settings.approvers):
        return "Only approvers (OPS_APPROVERS) can decide on actions."
    requester = str(view.get("requested_by") or "").removeprefix("slack:")
    if requester == user:
        return "You requested this action, so someone else has to approve it."
    return None


async def decide(door: FrontDoor, action_id: str, user: str, approved: bool,
                 reason: str | None = None) -> str | None:  # fmt: skip
    """Decide and refresh the card; returns an explanation for the user when nothing changed."""
    view = await _view(door, action_id)
    if view is None:
        return f"`{action_id}` no longer exists (purged?)."
    refused = await refusal(door, user, view)
    if refused:
        return refused
    outcome = await door.queue.decide(action_id, approved, door.actor_prefix + user, reason)
    if not outcome.get("changed"):
        return f"`{action_id}` was already decided (status: {outcome.get('status')})."
    if door.cards is not None:  # the outcome bus carries rejections but not approvals
        await door.cards.refresh(action_id)
    return None


def register(app: AsyncApp, door: FrontDoor) -> None:
    @app.action(blocks.APPROVE)
    async def approve(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        await ack()
        user, action_id = body["user"]["id"], body["actions"][0]["value"]
        await _explain(respond, await decide(door, action_id, user, approved=True))

    @app.action(blocks.REJECT)
    async def reject(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        await ack()
        user, action_id = body["user"]["id"], body["actions"][0]["value"]
        view = await _view(door, action_id)
        refused = "That action no longer exists." if view is None else None
        refused = refused or await refusal(door, user, view or {})
        if refused:
            await _explain(respond, refused)
            return
        await door.client.views_open(trigger_id=body["trigger_id"],
                                     view=blocks.reject_modal(action_id))  # fmt: skip

    @app.action(blocks.DETAILS)
    async def details(ack: Ack, body: dict[str, Any]) -> None:
        await ack()
        view = await door.queue.get(body["actions"][0]["value"])
        await door.client.views_open(trigger_id=body["trigger_id"],
                                     view=blocks.details_modal(view))  # fmt: skip

    @app.view(blocks.REJECT_VIEW)
    async def reject_reason(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        values = view["state"]["values"][blocks.REASON_BLOCK][blocks.REASON_INPUT]
        user, action_id = body["user"]["id"], view["private_metadata"]
        refused = await decide(door, action_id, user, False, values.get("value") or None)
        if refused:
            await _dm(door, user, refused)


async def _view(door: FrontDoor, action_id: str) -> dict[str, Any] | None:
    try:
        view: dict[str, Any] = await door.queue.get(action_id)
    except KeyError:  # bot.queue.ActionNotFound
        return None
    return view


async def _explain(respond: Respond, text: str | None) -> None:
    if text:
        await respond(text=f":lock: {text}", response_type="ephemeral", replace_original=False)


async def _dm(door: FrontDoor, user: str, text: str) -> None:
    opened = await door.client.conversations_open(users=user)
    await door.client.chat_postMessage(channel=opened["channel"]["id"], text=text)


# -- cards ---------------------------------------------------------------------------------


def _load_cards(conn: Connection) -> dict[str, dict[str, Any]]:
    rows = conn.execute(select(_META).where(_META.c.key.like(CARD_KEY + "%")))
    return {r.key.removeprefix(CARD_KEY): json.loads(r.value) for r in rows}


def _save_card(action_id: str, card: dict[str, Any]) -> Callable[[Connection], None]:
    def tx(conn: Connection) -> None:
        key = CARD_KEY + action_id
        conn.execute(delete(_META).where(_META.c.key == key))
        conn.execute(insert(_META).values(key=key, value=json.dumps(card)))

    return tx


def _decision(action_id: str) -> Callable[[Connection], dict[str, Any]]:
    """Who decided and when, from the audit log (covers decisions made from the CLI too)."""

    def read(conn: Connection) -> dict[str, Any]:
        row = conn.execute(
            select(_AUDIT).where(_AUDIT.c.entity_id == action_id,
                                 _AUDIT.c.from_status == "awaiting_approval")
            .order_by(_AUDIT.c.id.desc()).limit(1)
        ).first()  # fmt: skip
        if row is None:
            return {}
        reason: Any = row.detail
        with contextlib.suppress(TypeError, ValueError):
            parsed = json.loads(row.detail)
            reason = parsed.get("reason") if isinstance(parsed, dict) else parsed
        return {"by": row.actor, "at": row.at, "reason": reason}

    return read


class CardKeeper:
    """Posts cards for actions awaiting approval and keeps each card in step with its action.

    A card is re-rendered only when its action's status differs from what it shows, under a
    per-action lock, so the decision handler, the outcome bus and the poll never double-post.
    """

    def __init__(self, door: FrontDoor, interval: float = 1.0) -> None:
        self.door = door
        self.interval = interval
        self._cards: dict[str, dict[str, Any]] = {}  # id -> {"channel", "ts", "shown"}
        self._locks: dict[str, asyncio.Lock] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self._updates: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._cards = await self.door.ops.store.read(_load_cards)
        self._unsubscribe = self.door.queue.subscribe(self._on_outcome)
        self._task = asyncio.create_task(self._loop(), name="opsbot-approval-cards")

    async def stop(self, grace: float = 5.0) -> None:
        """Let a round in progress finish (a card posted but not yet recorded would be posted
        again after a restart), then stop."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stopping.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=grace)
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._updates:
            await asyncio.gather(*self._updates, return_exceptions=True)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sync()
            except Exception:  # Slack or the store hiccupped: try again next round
                log.exception("keeping approval cards failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)

    async def sync(self) -> None:
        """Expire overdue approvals (OPSBOT_APPROVAL_TIMEOUT); post missing cards; refresh cards
        still showing buttons for actions decided elsewhere (e.g. from the CLI)."""
        # Expiry lives here because cards are its audience; the conditional update makes it
        # harmless if another process expires the same actions.
        await self.door.queue.expire_approvals(self.door.settings.opsbot_approval_timeout)
        pending = {row["id"] for row in await ops.approvals(self.door.ops)}
        for action_id in sorted(pending - set(self._cards)):
            await self._post(await self.door.queue.get(action_id))
        for action_id, card in list(self._cards.items()):
            if card.get("shown") == "awaiting_approval" and action_id not in pending:
                await self.refresh(action_id)

    async def _post(self, view: dict[str, Any]) -> None:
        response = await self.door.client.chat_postMessage(
            channel=self.door.settings.slack_approval_channel,
            text=blocks.card_text(view),
            blocks=blocks.approval_card(view),
        )
        card = {"channel": response["channel"], "ts": response["ts"], "shown": view["status"]}
        await self._remember(str(view["id"]), card)

    async def _remember(self, action_id: str, card: dict[str, Any]) -> None:
        self._cards[action_id] = card
        await self.door.ops.store.write(_save_card(action_id, card))

    async def refresh(self, action_id: str) -> None:
        """Re-render the card from the action's current state, when that state changed."""
        if action_id not in self._cards:
            return
        async with self._locks.setdefault(action_id, asyncio.Lock()):
            card = self._cards[action_id]
            view = await self.door.queue.get(action_id)
            if view["status"] == card.get("shown"):
                return
            decision = await self.door.ops.store.read(_decision(action_id))
            await self.door.client.chat_update(
                channel=card["channel"],
                ts=card["ts"],
                text=blocks.card_text(view),
                blocks=blocks.approval_card(view, decision),
            )
            await self._remember(action_id, {**card, "shown": view["status"]})
        if view["status"] == "expired":
            await self._tell_requester(view)
        if view["final"]:
            self._locks.pop(action_id, None)

    async def _tell_requester(self, view: dict[str, Any]) -> None:
        requester = str(view.get("requested_by") or "").removeprefix("slack:")
        if requester.startswith("U"):
            note = f":hourglass: Your action `{view['id']}` expired without a decision."
            await _dm(self.door, requester, note)

    def _on_outcome(self, view: dict[str, Any]) -> None:
        if str(view.get("id")) in self._cards:
            task = asyncio.ensure_future(self._follow(str(view["id"])))
            self._updates.add(task)
            task.add_done_callback(self._updates.discard)

    async def _follow(self, action_id: str) -> None:
        try:
            await self.refresh(action_id)
        except Exception:  # an update failing must not disturb the queue
            log.exception("updating the approval card of %s failed", action_id)
