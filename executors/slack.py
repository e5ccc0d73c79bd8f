"""Slack executor: messages through slack_sdk's AsyncWebClient.

One retry layer only (the queue's): the client is built with no retry handlers, replacing
slack_sdk's default connection-error retry. Every Web API request waits on the platform throttle
first, because Slack counts requests, not actions. Channel names (`#operations`) and ids both
work: chat.postMessage accepts either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from time import perf_counter
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from executors.base import (
    JSON,
    AuthError,
    CheckResult,
    ExecutorError,
    NotReversible,
    Operation,
    PermanentError,
    PlatformDisabled,
    RateLimited,
    RetryableError,
    Throttle,
    answered_by,
    no_throttle,
    require,
)

PLATFORM = "slack"
TIMEOUT_S = 10
AUTH_CODES = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
        "no_permission",
        "not_allowed_token_type",
        "ekm_access_denied",
    }
)
TRANSIENT_CODES = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class SlackExecutor:
    platform = PLATFORM

    def __init__(
        self,
        client: AsyncWebClient,
        throttle: Throttle = no_throttle,
        default_channel: str = "#operations",
    ) -> None:
        self._client = client
        self._throttle = throttle
        self._default_channel = default_channel
        self._session: aiohttp.ClientSession | None = None
        self._workspace_url: str | None = None  # from auth.test, for permalinks (see _result)

    @property
    def operations(self) -> Mapping[str, Operation]:
        return {
            "send_notification": self.send_notification,
            "send_dm": self.send_dm,
            "reply_in_thread": self.reply_in_thread,
            "update_message": self.update_message,
        }

    def reversible(self, action_type: str) -> bool:
        return action_type in self.operations

    async def send_notification(self, data: JSON) -> JSON:
        require(data, "text", platform=PLATFORM)
        return await self._post(str(data.get("channel") or self._default_channel), data)

    async def send_dm(self, data: JSON) -> JSON:
        require(data, "user", "text", platform=PLATFORM)
        opened = await self._call("conversations_open", users=str(data["user"]))
        return await self._post(opened["channel"]["id"], data)

    async def reply_in_thread(self, data: JSON) -> JSON:
        require(data, "channel", "thread_ts", "text", platform=PLATFORM)
        return await self._post(str(data["channel"]), data, thread_ts=str(data["thread_ts"]))

    async def update_message(self, data: JSON) -> JSON:
        require(data, "channel", "ts", "text", platform=PLATFORM)
        # Recorded so the compensation can restore exactly what was there before.
        previous = await self._previous(str(data["channel"]), str(data["ts"]))
        response = await self._call(
            "chat_update",
            channel=str(data["channel"]),
            ts=str(data["ts"]),
            text=str(data["text"]),
            **_blocks(data),
        )
        result = await self._result(response["channel"], response["ts"])
        result["previous"] = previous
        return result

    async def compensate(self, action_type: str, data: JSON, result: JSON) -> JSON:
        if action_type not in self.operations:
            raise NotReversible(f"{action_type} cannot be undone", platform=PLATFORM)
        channel, ts = str(result["channel"]), str(result["ts"])
        if action_type == "update_message":
            previous = result.get("previous") or {}
            await self._call(
                "chat_update",
                channel=channel,
                ts=ts,
                text=previous.get("text", ""),
                blocks=previous.get("blocks") or [],
            )
            return {"restored": ts, "channel": channel}
        try:
            await self._call("chat_delete", channel=channel, ts=ts)
            return {"deleted": ts, "channel": channel}
        except PermanentError as exc:
            if isinstance(exc, AuthError):
                raise
            # Deletion refused (e.g. cant_delete_message): say so in the thread instead.
            note = await self._call(
                "chat_postMessage",
                channel=channel,
                thread_ts=ts,
                text=":warning: Correction: please disregard this message.",
            )
            return {"corrected": ts, "channel": channel, "correction_ts": note["ts"]}

    async def check(self) -> CheckResult:
        started = perf_counter()
        try:
            response = await self._call("auth_test")
        except ExecutorError as exc:
            return CheckResult(PLATFORM, False, f"{exc.kind}: {exc.message}")
        detail = f"team {response.get('team')}, bot user {response.get('user_id')}"
        return CheckResult(PLATFORM, True, detail, (perf_counter() - started) * 1000)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _post(self, channel: str, data: JSON, thread_ts: str | None = None) -> JSON:
        extra: dict[str, Any] = _blocks(data)
        if thread_ts:
            extra["thread_ts"] = thread_ts
        response = await self._call(
            "chat_postMessage", channel=channel, text=str(data["text"]), **extra
        )
        return await self._result(response["channel"], response["ts"], thread_ts)

    async def _result(self, channel: str, ts: str, thread_ts: str | None = None) -> JSON:
        """The message's ids and permalink. The permalink is built as Slack builds it
        (workspace URL from one auth.test, /archives/CHANNEL/pTS, ?thread_ts=&cid= for a reply)
        instead of asking chat.getPermalink per message: at Slack's 1 request/s that second
        request halved how many messages opsbot could send."""
        if self._workspace_url is None:
            self._workspace_url = str((await self._call("auth_test")).get("url") or "")
        if not self._workspace_url:  # no URL from auth.test: ask Slack, message by message
            link = await self._call("chat_getPermalink", channel=channel, message_ts=ts)
            return {"channel": channel, "ts": ts, "permalink": link.get("permalink")}
        return {
            "channel": channel,
            "ts": ts,
            "permalink": _permalink(self._workspace_url, channel, ts, thread_ts),
        }

    async def _previous(self, channel: str, ts: str) -> JSON:
        history = await self._call(
            "conversations_history", channel=channel, latest=ts, inclusive=True, limit=1
        )
        messages = history.get("messages") or []
        if not messages or messages[0].get("ts") != ts:
            raise PermanentError(
                f"message {ts} not found in {channel}", platform=PLATFORM, status=404
            )
        return {"text": messages[0].get("text", ""), "blocks": messages[0].get("blocks") or []}

    async def _call(self, method: str, **kwargs: Any) -> Any:
        """Throttle, call, translate: the single boundary between slack_sdk and opsbot."""
        self._keep_session()
        answered = await self._throttle()
        api: Callable[..., Awaitable[Any]] = getattr(self._client, method)
        try:
            return await api(**kwargs)
        except SlackApiError as exc:
            raise translate(exc) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise RetryableError(f"{method}: {type(exc).__name__}", platform=PLATFORM) from None
        finally:
            answered_by(answered)

    def _keep_session(self) -> None:
        """One session (and its kept-alive connections) for all requests: without it slack_sdk
        opens a session per request, and each request pays a new connection."""
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self._client.timeout)  # as configured
            self._session = aiohttp.ClientSession(timeout=timeout)
            self._client.session = self._session


def _permalink(workspace_url: str, channel: str, ts: str, thread_ts: str | None) -> str:
    link = f"{workspace_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"
    return f"{link}?thread_ts={thread_ts}&cid={channel}" if thread_ts else link


def translate(exc: SlackApiError) -> ExecutorError:
    """Map a Slack API error (HTTP status + `error` code) onto the shared error tree."""
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = getattr(response, "data", None)
    code = str(data.get("error", "")) if isinstance(data, dict) else ""
    message = f"slack: {code or 'HTTP ' + str(status)}"
    if status == 429 or code == "ratelimited":
        headers = getattr(response, "headers", None) or {}
        retry_after = _float(headers.get("Retry-After"))
        return RateLimited(message, platform=PLATFORM, status=429, retry_after=retry_after)
    if code in AUTH_CODES or status in (401, 403):
        return AuthError(message, platform=PLATFORM, status=status or 401)
    if status >= 500 or code in TRANSIENT_CODES:
        return RetryableError(message, platform=PLATFORM, status=status)
    return PermanentError(message, platform=PLATFORM, status=status or 400)


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _blocks(data: JSON) -> dict[str, Any]:
    return {"blocks": data["blocks"]} if data.get("blocks") else {}


def make_client(settings: Settings, token: str) -> AsyncWebClient:
    """The Web API client every Slack caller in opsbot uses: configurable root, no retries."""
    return AsyncWebClient(
        token=token, base_url=settings.slack_api_url, timeout=TIMEOUT_S, retry_handlers=[]
    )


def build(settings: Settings, throttle: Throttle) -> SlackExecutor:
    if settings.slack_bot_token is None:
        raise PlatformDisabled("SLACK_BOT_TOKEN is not set", platform=PLATFORM)
    client = make_client(settings, settings.slack_bot_token.get_secret_value())
    return SlackExecutor(client, throttle, settings.slack_notification_channel)
