"""Where operator alerts go: Slack (through a posting callable), a signed webhook, email, the log.

Each sink gets an `AlertNotice` (opened, updated or resolved) and returns a reference to what it
sent (the Slack message ts) so later notices can update that message in place. Only the Slack
and log sinks want "updated" notices; the webhook and email are told when an alert opens and
when it resolves. Sinks may raise: the Alerter catches, logs and carries on (never re-alerts).
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Literal, Protocol

import aiohttp

from bot.config import Settings
from bot.signing import signed_headers

log = logging.getLogger("opsbot.alerts")

Event = Literal["opened", "updated", "resolved"]


@dataclass(frozen=True)
class AlertNotice:
    event: Event
    key: str
    severity: str
    title: str
    text: str
    count: int
    opened_at: float
    updated_at: float
    resolved_at: float | None = None
    ref: str | None = None  # this sink's reference from the previous notice (Slack ts)

    def payload(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("ref")
        return data


class Sink(Protocol):
    name: str
    updates: bool  # wants "updated" notices

    async def send(self, notice: AlertNotice) -> str | None: ...


def render(notice: AlertNotice) -> str:
    """The one wording of an alert, shared by every text sink."""
    head = f":rotating_light: [{notice.severity.upper()}] {notice.title}"
    if notice.event == "resolved":
        head = f":white_check_mark: RESOLVED: {notice.title}"
    lines = [head, notice.text] if notice.text else [head]
    since = _hm(notice.opened_at)
    if notice.event == "resolved" and notice.resolved_at is not None:
        lines.append(f"from {since} to {_hm(notice.resolved_at)} UTC, seen {notice.count} time(s)")
    else:
        lines.append(
            f"since {since} UTC, seen {notice.count} time(s), last {_hm(notice.updated_at)}"
        )
    return "\n".join(lines)


# (text, update=ts to edit in place or None, thread=ts to reply under or None) -> ts
SlackPost = Callable[..., Awaitable[str | None]]


class SlackSink:
    """Posts to the error channel through the Slack helper's callable; edits in place."""

    name = "slack"
    updates = True

    def __init__(self, post: SlackPost) -> None:
        self.post = post

    async def send(self, notice: AlertNotice) -> str | None:
        text = render(notice)
        if notice.event == "opened" or notice.ref is None:
            return await self.post(text, update=None, thread=None)
        await self.post(text, update=notice.ref, thread=None)
        if notice.event == "resolved":
            # The follow-up makes the resolution visible to people who saw the first message.
            await self.post(f"Resolved: {notice.title}", update=None, thread=notice.ref)
        return notice.ref


class WebhookSink:
    """POSTs the notice as JSON, signed like our inbound hooks when a secret is configured."""

    name = "webhook"
    updates = False

    def __init__(
        self,
        url: str,
        secret: str | None,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.secret = secret
        self.clock = clock
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, notice: AlertNotice) -> str | None:
        body = json.dumps({"source": "opsbot", **notice.payload()}).encode()
        headers = (
            signed_headers(self.secret, body, self.clock())
            if self.secret
            else {"Content-Type": "application/json"}
        )
        async with (
            aiohttp.ClientSession(timeout=self.timeout) as session,
            session.post(self.url, data=body, headers=headers) as response,
        ):
            if response.status >= 300:
                raise RuntimeError(f"alert webhook answered HTTP {response.status}")
        return None


class EmailSink:
    """Plain-text mail over SMTP (STARTTLS by default); smtplib runs in a thread."""

    name = "email"
    updates = False

    def __init__(self, settings: Settings, recipients: list[str]) -> None:
        assert settings.smtp_host
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.username = settings.smtp_username
        self.password = settings.smtp_password
        self.starttls = settings.smtp_starttls
        self.sender = settings.alert_email_from
        self.recipients = recipients

    async def send(self, notice: AlertNotice) -> str | None:
        message = EmailMessage()
        message["Subject"] = f"[opsbot] {notice.event}: {notice.title}"
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(render(notice))
        await asyncio.to_thread(self._send, message)
        return None

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username and self.password:
                smtp.login(self.username, self.password.get_secret_value())
            smtp.send_message(message)


class LogSink:
    """Always on: the last resort (an alert about Slack being down ends here)."""

    name = "log"
    updates = True

    async def send(self, notice: AlertNotice) -> str | None:
        level = logging.WARNING if notice.event == "opened" else logging.INFO
        fields = {"alert": notice.key, "event": notice.event, "count": notice.count}
        log.log(level, "alert %s: %s", notice.event, notice.title, extra={"fields": fields})
        return None


def sinks_from_settings(
    settings: Settings, slack_post: SlackPost | None = None, clock: Callable[[], float] = time.time
) -> list[Sink]:
    """The sinks named in ALERT_CHANNELS that are configured; the log sink always."""
    wanted = {c.strip() for c in settings.alert_channels.split(",") if c.strip()}
    sinks: list[Sink] = [LogSink()]
    if "slack" in wanted and slack_post is not None:
        sinks.append(SlackSink(slack_post))
    if "webhook" in wanted and settings.alert_webhook_url:
        secret = settings.alert_webhook_secret
        sinks.append(
            WebhookSink(
                settings.alert_webhook_url, secret.get_secret_value() if secret else None, clock
            )
        )
    recipients = [r.strip() for r in settings.alert_email_recipients.split(",") if r.strip()]
    if "email" in wanted and settings.smtp_host and recipients:
        sinks.append(EmailSink(settings, recipients))
    return sinks


def _hm(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")
