"""App Home: the live picture for whoever opens the tab (views.publish on app_home_opened)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.app.async_app import AsyncApp

from bot import ops
from bot.slack_app import FrontDoor
from handlers import blocks

log = logging.getLogger("opsbot.slack")


def register(app: AsyncApp, door: FrontDoor) -> None:
    @app.event("app_home_opened")
    async def home_opened(event: dict[str, Any]) -> None:
        # Events API envelopes are acked by Bolt itself; this runs after the ack.
        if event.get("tab", "home") == "home":
            await publish_home(door, str(event["user"]))


async def publish_home(door: FrontDoor, user: str) -> None:
    ctx = door.ops
    queue = await ops.queue_status(ctx)
    view = blocks.home_view(
        queue["by_priority"],
        await ops.circuits(ctx),
        await ops.approvals(ctx),
        await ops.recent_errors(ctx, 5),
        ctx.clock(),
    )
    await door.client.views_publish(user_id=user, view=view)
