"""The alerter's Slack sink for a process without the Slack front door (`opsbot worker`).

`opsbot run` posts alerts through its Socket Mode service (bot.slack_app); a worker-only process
has no Socket Mode connection but, when SLACK_BOT_TOKEN is set, can still post to
SLACK_ERROR_CHANNEL over the Web API, with the same layout and in-place updates.
"""

from __future__ import annotations

from bot.config import Settings
from executors.slack import make_client


class SlackAlertPost:
    """Post to SLACK_ERROR_CHANNEL (or edit `update`, or reply under `thread`); returns the ts.
    Raises when Slack fails: the alerter logs it (never an alert loop)."""

    def __init__(self, settings: Settings, token: str) -> None:
        self.client = make_client(settings, token)
        self.channel = settings.slack_error_channel
        self._channel_id: str | None = None  # chat.update needs the id, not the name

    async def __call__(
        self, text: str, *, update: str | None = None, thread: str | None = None
    ) -> str | None:
        from handlers.blocks import alert_blocks  # Block Kit layout lives with the handlers

        body = alert_blocks(text)
        if update is not None:
            response = await self.client.chat_update(
                channel=self._channel_id or self.channel, ts=update, text=text, blocks=body
            )
        else:
            response = await self.client.chat_postMessage(
                channel=self.channel, text=text, blocks=body, thread_ts=thread
            )
            self._channel_id = response["channel"]
        ts: str | None = response.get("ts")
        return ts


def slack_alert_post(settings: Settings) -> SlackAlertPost | None:
    """The poster when SLACK_BOT_TOKEN is set, else None (no Slack sink)."""
    token = settings.slack_bot_token
    return SlackAlertPost(settings, token.get_secret_value()) if token is not None else None
