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
from tests.integration.contract import (
    SLOW_TIMEOUT,
    ContractSuite,
    CountingThrottle,
    Op,
    Platform,
    pytest_generate_tests,
)

__all__ = ["pytest_generate_tests"]  # parametrizes the contract suite's cases and faults


@pytest.fixture
async def standin() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as server:
        yield server


@pytest.fixture
async def executor(standin: SlackStandIn) -> AsyncIterator[SlackExecutor]:
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
    yield ex
    await ex.aclose()


async def test_send_notification_by_name_returns_ts_and_permalink(
    standin: SlackStandIn, executor: SlackExecutor
) -> None:
    result = await executor.operations["send_notification"](
        {"channel": "#operations", "text": "deployed", "blocks": [{"type": "divider"}]}
    )
    assert result["channel"] == standin.add_channel("operations")
    # The permalink Slack itself gives for that message (chat.getPermalink), built locally.
    assert result["permalink"] == standin.permalink(result["channel"], result["ts"])
    [message] = standin.messages("operations")
    assert message["text"] == "deployed" and message["blocks"] == [{"type": "divider"}]
    # One throttle wait per request: auth.test once (the workspace URL), then postMessage only.
    assert len(executor.throttled) == 2  # type: ignore[attr-defined]
    reply = await executor.operations["reply_in_thread"](
        {"channel": result["channel"], "thread_ts": result["ts"], "text": "details"}
    )
    assert reply["permalink"] == (
        standin.permalink(result["channel"], reply["ts"])
        + f"?thread_ts={result['ts']}&cid={result['channel']}"
    )
    assert len(executor.throttled) == 3  # type: ignore[attr-defined]
    methods = [call["method"] for call in standin.calls]
    assert methods.count("auth.test") == 1 and "chat.getPermalink" not in methods


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
    await executor.operations["send_notification"]({"channel": "#general", "text": "newer"})
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


async def test_check_and_disabled(standin: SlackStandIn, executor: SlackExecutor) -> None:
    assert (await executor.check()).ok
    standin.faults.set("401")
    result = await executor.check()
    assert not result.ok and "AuthError" in result.detail
    with pytest.raises(PlatformDisabled, match="SLACK_BOT_TOKEN is not set"):
        build(load_settings(_env_file=None, slack_bot_token=None), executor.throttled)  # type: ignore[attr-defined]


def _posted(channel: str) -> Any:
    def check(standin: SlackStandIn, data: dict[str, Any], result: dict[str, Any]) -> None:
        texts = [m["text"] for m in standin.messages(result["channel"])]
        assert data["text"] in texts, texts

    return check


def _gone(standin: SlackStandIn, data: dict[str, Any], result: dict[str, Any]) -> None:
    assert result["ts"] not in [m["ts"] for m in standin.messages(result["channel"])]


def _root(standin: SlackStandIn, text: str = "root") -> dict[str, Any]:
    """A message seeded directly in the stand-in's state (no request)."""
    channel = standin.channels[standin.add_channel("general")]
    ts = f"1700000000.{len(channel['messages']) + 1:06d}"
    channel["messages"].append({"type": "message", "ts": ts, "text": text, "blocks": []})
    return {"channel": channel["id"], "ts": ts}


def _restored(standin: SlackStandIn, data: dict[str, Any], result: dict[str, Any]) -> None:
    [message] = [m for m in standin.messages(result["channel"]) if m["ts"] == result["ts"]]
    assert message["text"] == "root"


def _updated(standin: SlackStandIn, data: dict[str, Any], result: dict[str, Any]) -> None:
    [message] = [m for m in standin.messages(result["channel"]) if m["ts"] == result["ts"]]
    assert message["text"] == data["text"]


KEYS = ("channel", "ts", "permalink")


class TestSlackContract(ContractSuite):
    CASES = [
        Op(
            "send_notification",
            lambda s: {"channel": "#operations", "text": "hello"},
            _posted("operations"),
            _gone,
            KEYS,
            required=("text",),
        ),
        Op(
            "send_dm",
            lambda s: {"user": "U0BOB", "text": "psst"},
            _posted("dm"),
            _gone,
            KEYS,
            required=("user", "text"),
        ),
        Op(
            "reply_in_thread",
            lambda s: {**_root(s), "thread_ts": _root(s)["ts"], "text": "re"},
            _posted("general"),
            _gone,
            KEYS,
            required=("channel", "thread_ts", "text"),
        ),
        Op(
            "update_message",
            lambda s: {**_root(s), "text": "edited"},
            _updated,
            _restored,
            KEYS,
            required=("channel", "ts", "text"),
        ),
    ]

    @pytest.fixture
    async def platform(self) -> AsyncIterator[Platform]:
        from slack_sdk.web.async_client import AsyncWebClient

        throttle = CountingThrottle()
        async with SlackStandIn() as standin:
            client = AsyncWebClient(
                token=BOT_TOKEN,
                base_url=standin.api_url,
                timeout=SLOW_TIMEOUT,  # type: ignore[arg-type]
                retry_handlers=[],
            )
            executor = SlackExecutor(client, throttle)
            yield Platform(executor, standin, throttle)
            await executor.aclose()
