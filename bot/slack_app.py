"""The Slack front door as a runtime service: Bolt's AsyncApp over Socket Mode.

`SlackService(settings, runtime)` is added to `Runtime.services`; on `start()` (inside the running
loop, which AsyncSocketModeHandler needs) it builds the app from Settings, registers the handlers
and connects. slack_sdk's Socket Mode client reconnects by itself when the socket drops (server
close, `disconnect` envelope, failed pings). Handlers only ack, then call the ops layer and the
queue; the approval cards are kept in step with the queue by `handlers.approvals.CardKeeper`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.ops import OpsContext
from executors.slack import make_client

log = logging.getLogger("opsbot.slack")

# Bolt switches to OAuth (multi-workspace) mode when these are in the environment; opsbot is a
# single-workspace bot, so they are hidden while the app is built.
_OAUTH_ENV = ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET")


@dataclass
class FrontDoor:
    """What every handler may use. Handlers never reach executors."""

    settings: Settings
    ops: OpsContext
    queue: Any  # bot.queue.Queue: decide, get, subscribe
    client: AsyncWebClient
    clock: Callable[[], float] = time.time
    cards: Any = None  # handlers.approvals.CardKeeper, once started
    runs: Any = None  # handlers.run_progress.RunProgress, when a workflow runner is live
    group_cache: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)

    @property
    def actor_prefix(self) -> str:
        return "slack:"


@contextlib.contextmanager
def _single_workspace() -> Iterator[None]:
    saved = {name: os.environ.pop(name) for name in _OAUTH_ENV if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def build_app(door: FrontDoor) -> AsyncApp:
    """The Bolt app with every opsbot listener registered."""
    from handlers import approvals, commands, home

    with _single_workspace():
        app = AsyncApp(client=door.client, logger=log, ssl_check_enabled=False)
    commands.register(app, door)
    approvals.register(app, door)
    home.register(app, door)
    return app


def add_slack(runtime: Any, settings: Settings, **options: Any) -> SlackService | None:
    """Add the Slack front door to `runtime.services` when both tokens are set (else None).
    The returned service's `alert_post` is the alerter's Slack sink."""
    if settings.slack_bot_token is None or settings.slack_app_token is None:
        log.info("Slack is off: SLACK_BOT_TOKEN and SLACK_APP_TOKEN are both needed")
        return None
    service = SlackService(settings, runtime, **options)
    runtime.services.append(service)
    return service


class SlackService:
    """Start/stop the Slack front door with the runtime (`runtime.services.append(...)`)."""

    def __init__(
        self,
        settings: Settings,
        runtime: Any,
        *,
        ping_interval: float = 10.0,
        card_interval: float = 1.0,
        run_interval: float = 1.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.ping_interval = ping_interval
        self.card_interval = card_interval
        self.run_interval = run_interval  # at most one edit per run message per interval
        self.connect_timeout = connect_timeout
        self._connecting: asyncio.Task[None] | None = None
        self.door: FrontDoor | None = None
        self.app: AsyncApp | None = None
        self.handler: AsyncSocketModeHandler | None = None
        self._keeper: Any = None
        self._progress: Any = None
        self._unsubscribe: Callable[[], None] | None = None
        self._notices: set[asyncio.Task[None]] = set()
        self._error_channel_id: str | None = None  # chat.update needs the id, not the name

    async def start(self) -> None:
        from handlers.approvals import CardKeeper

        settings = self.settings
        if settings.slack_bot_token is None or settings.slack_app_token is None:
            raise RuntimeError("Slack needs SLACK_BOT_TOKEN and SLACK_APP_TOKEN")
        rt = self.runtime
        client = make_client(settings, settings.slack_bot_token.get_secret_value())
        ops_ctx = rt.ops_context()
        self.door = FrontDoor(settings, ops_ctx, rt.queue, client, rt.clock)
        self.app = build_app(self.door)
        self.handler = AsyncSocketModeHandler(
            self.app,
            settings.slack_app_token.get_secret_value(),
            web_client=client,
            ping_interval=self.ping_interval,
        )
        self.door.cards = self._keeper = CardKeeper(self.door, interval=self.card_interval)
        await self._keeper.start()
        if rt.runner is not None:  # `opsbot run` starts the workflow service before Slack
            from handlers.run_progress import RunProgress

            progress = RunProgress(self.door, rt.runner, interval=self.run_interval)
            self.door.runs = self._progress = progress
            await progress.start()
        self._unsubscribe = rt.queue.subscribe(self._on_outcome)
        await self._connect()

    async def _connect(self) -> None:
        """slack_sdk's connect() retries until it succeeds: bound the wait so the workers keep
        running while Slack is unreachable at boot; the connection completes in the background."""
        assert self.handler is not None
        connect = self.handler.connect_async()  # type: ignore[no-untyped-call]
        self._connecting = asyncio.create_task(connect)
        done, _ = await asyncio.wait({self._connecting}, timeout=self.connect_timeout)
        if done:
            log.info("Slack connected over Socket Mode (%s)", self.settings.slack_api_url)
        else:
            log.warning("Slack is not reachable yet; still connecting in the background")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._notices:
            await asyncio.gather(*self._notices, return_exceptions=True)
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self.handler is not None:
            await self.handler.close_async()  # type: ignore[no-untyped-call]
            self.handler = None
        for keeper in (self._progress, self._keeper):
            if keeper is not None:
                await keeper.stop()
        self._keeper = self._progress = None

    async def alert_post(
        self, text: str, *, update: str | None = None, thread: str | None = None
    ) -> str | None:
        """The alerter's Slack sink: post to SLACK_ERROR_CHANNEL (or edit `update`, or reply
        under `thread`); returns the message ts. Raises when Slack fails: the alerter logs it,
        so an alert about Slack being down ends in the log, not in a loop."""
        from handlers.blocks import alert_blocks

        if self.door is None:
            raise RuntimeError("Slack is not connected")
        client, channel = self.door.client, self.settings.slack_error_channel
        body = alert_blocks(text)
        if update is not None:
            response = await client.chat_update(channel=self._error_channel_id or channel,
                                                 ts=update, text=text, blocks=body)  # fmt: skip
        else:
            response = await client.chat_postMessage(channel=channel, text=text, blocks=body,
                                                     thread_ts=thread)  # fmt: skip
            self._error_channel_id = response["channel"]
        ts: str | None = response.get("ts")
        return ts

    def _on_outcome(self, view: dict[str, Any]) -> None:
        if view.get("final") and view.get("notify"):
            task = asyncio.ensure_future(self._notify(view))
            self._notices.add(task)
            task.add_done_callback(self._notices.discard)

    async def _notify(self, view: dict[str, Any]) -> None:
        """Post a final outcome to SLACK_NOTIFICATION_CHANNEL; failures only reach the log."""
        from handlers.blocks import outcome_message

        assert self.door is not None
        try:
            text, body = outcome_message(await self.door.queue.get(str(view["id"])))
            await self.door.client.chat_postMessage(
                channel=self.settings.slack_notification_channel, text=text, blocks=body
            )
        except Exception:
            log.exception("posting the outcome of %s failed", view.get("id"))
