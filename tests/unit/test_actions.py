"""Validation of the action contract (bot/actions.py): every bad field named, with its value
and what was expected; nothing invalid gets through."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.actions import ActionInvalid, parse_action, parse_actions
from bot.routing import ROUTES, Priority


def problems(raw: object) -> dict[str, str]:
    with pytest.raises(ActionInvalid) as info:
        parse_actions(raw)
    return {p.field: p.expected for p in info.value.problems}


def test_valid_action_gets_route_defaults() -> None:
    spec = parse_action({"type": "create_task", "data": {"title": "Fix login"}})
    assert spec.platform == "notion" and spec.priority is Priority.NORMAL
    assert parse_action({"type": "send_notification", "data": {"text": "hi"}}).priority == "high"


def test_unknown_field_is_named() -> None:
    found = problems({"type": "echo", "colour": "red"})
    assert "colour" in found and "no such field" in found["colour"]


def test_unknown_type_lists_valid_ones() -> None:
    with pytest.raises(ActionInvalid) as info:
        parse_action({"type": "launch_rocket"})
    message = str(info.value)
    assert "launch_rocket" in message
    assert all(name in message for name in ROUTES)


def test_missing_required_data_is_named() -> None:
    found = problems({"type": "reply_in_thread", "data": {"channel": "C1"}})
    assert set(found) == {"data.thread_ts", "data.text"}
    assert "reply_in_thread" in found["data.text"]


def test_bad_priority() -> None:
    with pytest.raises(ActionInvalid) as info:
        parse_action({"type": "echo", "priority": "urgent"})
    assert "urgent" in str(info.value) and "critical, high, normal, low" in str(info.value)


def test_wrong_platform_for_type() -> None:
    found = problems({"type": "create_card", "platform": "notion", "data": {"name": "x"}})
    assert "'trello'" in found["platform"]


def test_bad_types_of_optional_fields() -> None:
    found = problems(
        {
            "type": "echo",
            "data": [],
            "requires_approval": "yes",
            "not_before": "tomorrow",
            "idempotency_key": "",
        }
    )
    assert set(found) == {"data", "requires_approval", "not_before", "idempotency_key"}


def test_not_before_accepts_iso_and_unix() -> None:
    iso = parse_action({"type": "echo", "not_before": "2030-01-01T00:00:00Z"})
    unix = parse_action({"type": "echo", "not_before": 1893456000})
    assert iso.not_before == unix.not_before == datetime(2030, 1, 1, tzinfo=UTC)


def test_list_reports_each_bad_item_with_its_index() -> None:
    with pytest.raises(ActionInvalid) as info:
        parse_actions(
            [
                {"type": "echo"},
                {"type": "nope"},
                {"type": "echo", "priority": "asap"},
                "not an object",
            ]
        )
    fields = [p.field for p in info.value.problems]
    assert fields == ["[1].type", "[2].priority", "[3].action"]
    assert info.value.as_dict()["problems"][0]["value"] == "nope"


def test_list_with_one_bad_item_names_its_index() -> None:
    with pytest.raises(ActionInvalid) as info:
        parse_actions([{"type": "echo"}, {"type": "echo", "bogus": 1}])
    assert info.value.index == 1 and str(info.value).startswith("action #1: bogus")


def test_valid_list() -> None:
    specs = parse_actions([{"type": "echo"}, {"type": "log_action"}])
    assert [s.platform for s in specs] == ["echo", "sheets"]


@pytest.mark.parametrize(
    "url", ["ftp://example.com/done", "example.com/done", "http://", "http://["]
)
def test_callback_url_must_be_an_http_url(url: str) -> None:
    with pytest.raises(ActionInvalid) as caught:
        parse_action({"type": "echo", "data": {}, "callback_url": url})
    assert "callback_url" in str(caught.value) and "http:// or https://" in str(caught.value)
    assert parse_action({"type": "echo", "callback_url": "https://agent.example/done?t=1"})
