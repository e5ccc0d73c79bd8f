"""The Slack front door as a runtime service: Bolt's AsyncApp over Socket Mode.

`SlackService(settings, runtime)` is added to `Runtime.services`; on `start()` (inside the running
loop, which AsyncSocketModeHandler needs) it builds the app from Settings, registers the handlers
and connects. slack_sdk's Socket Mode client reconnects by itself when the socket drops (server
close, `disconnect` envelope, failed pings). Handlers only ack, then call the ops layer and the
queue; the approval cards are kept in step with the queue by `handlers.approvals.CardKeeper`.
"""

from __future__ import annotations

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


class SlackService:
    """Start/stop the Slack front door with the runtime (`runtime.services.append(...)`)."""

    def __init__(
        self,
        settings: Settings,
        runtime: Any,
        *,
        ping_interval: float = 10.0,
        card_interval: float = 1.0,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.ping_interval = ping_interval
        self.card_interval = card_interval
        self.door: FrontDoor | None = None
        self.app: AsyncApp | None = None
        self.handler: AsyncSocketModeHandler | None = None
        self._keeper: Any = None

    async def start(self) -> None:
        from handlers.approvals import CardKeeper

        settings = self.settings
        if settings.slack_bot_token is None or settings.slack_app_token is None:
            raise RuntimeError("Slack needs SLACK_BOT_TOKEN and SLACK_APP_TOKEN")
        rt = self.runtime
        client = make_client(settings, settings.slack_bot_token.get_secret_value())
        ops_ctx = OpsContext(
            store=rt.store, settings=settings, queue=rt.queue, clock=rt.clock,
            breakers=getattr(rt, "breakers", None), pool=getattr(rt, "pool", None),
            disabled=getattr(rt, "disabled", None),
        )  # fmt: skip
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
        await self.handler.connect_async()  # type: ignore[no-untyped-call]
        log.info("Slack connected over Socket Mode (%s)", settings.slack_api_url)

    async def stop(self) -> None:
        if self.handler is not None:
            await self.handler.close_async()  # type: ignore[no-untyped-call]
            self.handler = None
        if self._keeper is not None:
            await self._keeper.stop()
            self._keeper = None
