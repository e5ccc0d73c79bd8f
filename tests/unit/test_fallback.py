"""Fallback chains and the create_task -> create_card translation."""

from __future__ import annotations

import pytest

from bot.config import Settings
from bot.flow.fallback import FallbackChain


def test_default_chain_from_settings() -> None:
    chain = FallbackChain(Settings(_env_file=None).fallbacks)  # type: ignore[call-arg]
    assert chain.for_action("notion", "create_task") == ("trello", "create_card")
    assert chain.for_action("notion", "update_task") is None
    assert chain.for_action("trello", "create_card") is None


def test_task_translates_to_card() -> None:
    chain = FallbackChain({("notion", "create_task"): ("trello", "create_card")})
    card = chain.translate(
        "create_task",
        "create_card",
        {
            "title": "Fix login",
            "description": "Users see 500",
            "properties": {"Status": "Todo", "Owner": ["ann", "bob"]},
            "due": "2026-12-01",
            "labels": ["bug"],
        },
    )
    assert card == {
        "name": "Fix login",
        "desc": "Users see 500\nStatus: Todo\nOwner: ann, bob",
        "due": "2026-12-01",
        "labels": ["bug"],
    }


def test_unknown_translation_is_refused() -> None:
    with pytest.raises(ValueError, match="no data translation"):
        FallbackChain({("notion", "create_task"): ("sheets", "append_row")})


def test_route_prefers_own_platform_then_fallback_then_waits() -> None:
    chain = FallbackChain({("notion", "create_task"): ("trello", "create_card")})
    data = {"title": "T"}
    up: set[str] = {"notion", "trello"}
    assert chain.route("notion", "create_task", data, up.__contains__) == (
        "notion",
        "create_task",
        data,
    )
    up.discard("notion")
    assert chain.route("notion", "create_task", data, up.__contains__) == (
        "trello",
        "create_card",
        {"name": "T"},
    )
    assert chain.route("notion", "update_task", data, up.__contains__) is None
    up.clear()
    assert chain.route("notion", "create_task", data, up.__contains__) is None
