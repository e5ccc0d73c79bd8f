"""Structured logs: JSON lines with the seed's fields, and no secret ever reaches the output."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.config import Settings, load_settings
from bot.logs import REDACTED, Redactor, configure_logging, log_attempt


@pytest.fixture
def secret_settings(tmp_path: object) -> Settings:
    return load_settings(
        _env_file=None,
        opsbot_database_url="sqlite:///:memory:",
        slack_bot_token="xoxb-1111-2222-abcdefSECRET",
        notion_api_key="plain-notion-value-42",
        opsbot_api_token='tok"with\\quotes',
        log_level="DEBUG",
    )


@pytest.fixture
def captured(secret_settings: Settings) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging(secret_settings, stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_not_a_terminal_gives_json_with_level_from_settings(captured: io.StringIO) -> None:
    logging.getLogger("opsbot.test").debug("hello %s", "world")
    (entry,) = lines(captured)
    assert entry["message"] == "hello world"
    assert entry["level"] == "debug"
    assert str(entry["timestamp"]).endswith("Z")


def test_attempt_line_carries_the_seed_fields(captured: io.StringIO) -> None:
    log_attempt(
        action_id="a-1",
        type="create_task",
        platform="notion",
        priority="normal",
        status="succeeded",
        duration_ms=287.4,
        retries=0,
        queue_time_ms=2100.2,
        worker_id="worker-2",
    )
    (entry,) = lines(captured)
    for field in (
        "timestamp",
        "actionId",
        "type",
        "platform",
        "priority",
        "status",
        "duration",
        "retries",
        "queueTime",
        "workerId",
    ):
        assert field in entry, field
    assert entry["duration"] == 287 and entry["queueTime"] == 2100
    assert entry["level"] == "info"


def test_dead_attempt_is_an_error_line(captured: io.StringIO) -> None:
    log_attempt(
        action_id="a-2",
        type="create_card",
        platform="trello",
        priority="low",
        status="dead_lettered",
        duration_ms=5,
        retries=3,
        queue_time_ms=None,
        worker_id="w",
        error="boom",
    )
    assert lines(captured)[0]["level"] == "error"


@pytest.mark.parametrize(
    "text",
    [
        "token xoxb-1111-2222-abcdefSECRET leaked",
        "app token xapp-1-A0B1-123-abcdef",
        "notion secret_AbCdEf0123456789 here",
        "headers {'Authorization': 'Bearer sk-live-abcdef123456'}",
        "Authorization: Basic dXNlcjpwYXNz",
        "key plain-notion-value-42 in a message",
    ],
)
def test_secrets_and_token_shapes_are_redacted(captured: io.StringIO, text: str) -> None:
    logging.getLogger("opsbot.test").warning(text)
    out = captured.getvalue()
    assert REDACTED in out
    for secret in (
        "abcdefSECRET",
        "A0B1-123-abcdef",
        "AbCdEf0123456789",
        "sk-live-abcdef123456",
        "dXNlcjpwYXNz",
        "plain-notion-value-42",
    ):
        assert secret not in out


def test_secret_in_exception_and_fields_is_redacted(
    captured: io.StringIO, secret_settings: Settings
) -> None:
    secret = secret_settings.opsbot_api_token
    assert secret is not None
    try:
        raise RuntimeError(f"request failed with token {secret.get_secret_value()}")
    except RuntimeError:
        logging.getLogger("opsbot.test").exception(
            "failed", extra={"fields": {"auth": "xoxb-1111-2222-abcdefSECRET"}}
        )
    out = captured.getvalue()
    json.loads(out)  # still valid JSON after redaction
    assert "quotes" not in out and "abcdefSECRET" not in out


def test_terminal_gives_readable_lines(secret_settings: Settings) -> None:
    stream = io.StringIO()
    handler = configure_logging(secret_settings, stream, json_lines=False)
    try:
        logging.getLogger("opsbot.test").info("plain xoxb-1111-2222-abcdefSECRET")
    finally:
        logging.getLogger().removeHandler(handler)
    out = stream.getvalue()
    assert "opsbot.test: plain [REDACTED]" in out and "abcdefSECRET" not in out
    assert not out.startswith("{")


def test_redactor_leaves_ordinary_text_alone() -> None:
    redact = Redactor(["abc"])  # too short to redact safely
    assert redact("queue depth 12, abc, platform notion") == "queue depth 12, abc, platform notion"


def test_attempt_line_from_a_queue_outcome_view(captured: io.StringIO) -> None:
    from bot.logs import log_attempt_view

    log_attempt_view({"id": "a-3", "type": "echo", "platform": "echo", "priority": "high",
                      "status": "queued", "event": "retry", "run_ms": 12.0, "attempts": 2,
                      "worker": "w-1", "error": "HTTP 503"})  # fmt: skip
    log_attempt_view({"id": "a-4", "status": "expired", "event": "final"})  # not an attempt
    (entry,) = lines(captured)
    assert entry["status"] == "retry_scheduled" and entry["level"] == "warning"
    assert entry["retries"] == 1 and entry["workerId"] == "w-1" and entry["duration"] == 12
