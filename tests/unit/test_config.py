"""Settings: env names, seed defaults, parsing of the compound variables."""

from __future__ import annotations

import pytest

from bot.config import Settings


def test_seed_defaults_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.queue_workers == 5
    assert settings.queue_max_size == 1000
    assert settings.rate_limits["notion"] == (3, 1.0)
    assert settings.rate_limits["trello"] == (100, 10.0)
    assert settings.rate_limits["sheets"] == (100, 100.0)
    assert settings.fallbacks == {("notion", "create_task"): ("trello", "create_card")}
    assert settings.slack_api_url == "https://slack.com/api/"


def test_environment_overrides_rate_limits_and_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTION_RATE_LIMIT", "10")
    monkeypatch.setenv("OPSBOT_FALLBACKS", "slack.send_notification=echo.echo, ")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.rate_limits["notion"] == (10, 1.0)
    assert settings.fallbacks == {("slack", "send_notification"): ("echo", "echo")}


def test_malformed_fallback_names_the_item(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_FALLBACKS", "notion=trello")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="'notion=trello'"):
        _ = settings.fallbacks


def test_secrets_are_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert "xoxb-very-secret" not in repr(settings)
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-very-secret"


def test_approvers_and_admins_are_id_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPS_APPROVERS", "U1, S2,,")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.approvers == frozenset({"U1", "S2"})
    assert settings.admins == frozenset()
