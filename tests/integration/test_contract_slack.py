"""Slack executor against the Slack stand-in: real slack_sdk, real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.config import load_settings
from executors.base import (
    AuthError,
    PermanentError,
    PlatformDisabled,
    RateLimited,
    RetryableError,
)
from executors.sandbox.slack import APP_TOKEN, BOT_TOKEN, SlackStandIn
from executors.slack import SlackExecutor, build


@pytest.fixture
async def standin() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as server:
        yield server


@pytest.fixture
def executor(standin: SlackStandIn) -> SlackExecutor:
    settings = load_settings(
        _env_file=None,
        slack_bot_token=BOT_TOKEN,
        slack_app_token=APP_TOKEN,
        slack_api_url=standin.api_url,
    )
    throttled: list[int] = []

    async def throttle() -> None:
        throttled.append(1)

    ex = build(settings, throttle)
    ex.throttled = throttled  # type: ignore[attr-defined]
    return ex


async def test_send_notification_by_name_returns_ts_and_permalink(
    standin: SlackStandIn, executor: SlackExecutor
) -> None:
    result = await executor.operations["send_notification"](
        {"channel": "#operations", "text": "deployed", "blocks": [{"type": "divider"}]}
    )
    assert result["channel"] == standin.add_channel("operations")
    assert result["permalink"].endswith(result["ts"].replace(".", ""))
    [message] = standin.messages("operations")
    assert message["text"] == "deployed" and message["blocks"] == [{"type": "divider"}]
    # One throttle wait per request (postMessage + getPermalink).
    assert len(executor.throttled) == 2  # type: ignore[attr-defined]


async def test_default_channel_and_channel_id(
    standin: SlackStandIn, executor: SlackExecutor
) -> None:
    await executor.operations["send_notification"]({"text": "to default"})
    cid = standin.add_channel("errors")
    await executor.operations["send_notification"]({"channel": cid, "text": "by id"})
    assert [m["text"] for m in standin.messages("operations")] == ["to default"]
    assert [m["text"] for m in standin.messages("errors")] == ["by id"]


async def test_dm_thread_reply_and_compensation(
    standin: SlackStandIn, executor: SlackExecutor
) -> None:
    dm = await executor.operations["send_dm"]({"user": "U0BOB", "text": "hi"})
    assert standin.messages(dm["channel"])[0]["text"] == "hi"
    root = await executor.operations["send_notification"]({"channel": "general", "text": "root"})
    reply = await executor.operations["reply_in_thread"](
        {"channel": root["channel"], "thread_ts": root["ts"], "text": "reply"}
    )
    assert standin.messages("general")[1]["thread_ts"] == root["ts"]
    undone = await executor.compensate("reply_in_thread", {}, reply)
    assert undone["deleted"] == reply["ts"]
    assert [m["text"] for m in standin.messages("general")] == ["root"]


async def test_update_message_records_previous_and_compensation_restores(
    standin: SlackStandIn, executor: SlackExecutor
) -> None:
    posted = await executor.operations["send_notification"]({"channel": "#general", "text": "v1"})
    data = {"channel": posted["channel"], "ts": posted["ts"], "text": "v2"}
    updated = await executor.operations["update_message"](data)
    assert updated["previous"]["text"] == "v1"
    assert standin.messages("general")[0]["text"] == "v2"
    await executor.compensate("update_message", data, updated)
    assert standin.messages("general")[0]["text"] == "v1"


async def test_delete_refused_posts_a_correction(
    standin: SlackStandIn, executor: SlackExecutor
) -> None:
    posted = await executor.operations["send_notification"]({"channel": "#general", "text": "oops"})
    standin.faults.set("403", status=200, path="/api/chat.delete", count=1)
    # The stand-in answers 200 ok:false for the injected status: a refused deletion.
    undone = await executor.compensate("send_notification", {}, posted)
    assert undone["corrected"] == posted["ts"]
    assert "Correction" in standin.messages("general")[-1]["text"]


@pytest.mark.parametrize(
    ("fault", "options", "error"),
    [
        ("429", {"retry_after": 7}, RateLimited),
        ("503", {}, RetryableError),
        ("401", {}, AuthError),
    ],
)
async def test_faults_map_to_error_types(
    standin: SlackStandIn,
    executor: SlackExecutor,
    fault: str,
    options: dict[str, Any],
    error: type[Exception],
) -> None:
    standin.faults.set(fault, **options)
    with pytest.raises(error) as raised:
        await executor.operations["send_notification"]({"channel": "#general", "text": "x"})
    if fault == "429":
        assert raised.value.retry_after == 7  # type: ignore[attr-defined]
    # No SDK retries: exactly one request reached the stand-in.
    assert len(standin.stats.calls("POST", "/api/chat.postMessage")) == 1


async def test_permanent_errors_and_validation(
    standin: SlackStandIn, executor: SlackExecutor
) -> None:
    with pytest.raises(PermanentError, match="channel_not_found") as raised:
        await executor.operations["send_notification"]({"channel": "#nope", "text": "x"})
    assert not isinstance(raised.value, RetryableError | AuthError)
    with pytest.raises(PermanentError, match="user, text"):
        await executor.operations["send_dm"]({})
    assert standin.calls_to("conversations.open") == []


async def test_slow_answer_times_out_as_retryable(standin: SlackStandIn) -> None:
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token=BOT_TOKEN, base_url=standin.api_url, timeout=1, retry_handlers=[])
    standin.faults.set("slow", delay=3, count=1)
    with pytest.raises(RetryableError):
        await SlackExecutor(client).operations["send_notification"](
            {"channel": "#general", "text": "x"}
        )


async def test_check_and_disabled(standin: SlackStandIn, executor: SlackExecutor) -> None:
    assert (await executor.check()).ok
    standin.faults.set("401")
    result = await executor.check()
    assert not result.ok and "AuthError" in result.detail
    with pytest.raises(PlatformDisabled, match="SLACK_BOT_TOKEN is not set"):
        build(load_settings(_env_file=None, slack_bot_token=None), executor.throttled)  # type: ignore[attr-defined]
