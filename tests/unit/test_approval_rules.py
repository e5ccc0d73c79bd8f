"""Approval rules: which actions wait for a human, and the reason the card shows."""

from __future__ import annotations

from typing import Any

import pytest

from bot.actions import parse_action
from bot.approval_rules import ApprovalRules
from bot.config import Settings

RULES = ApprovalRules(internal_domains=frozenset({"example.com"}),
                      external_channels=frozenset({"#partners"}))  # fmt: skip


def reason(action: dict[str, Any], rules: ApprovalRules = RULES) -> str | None:
    return rules.reason(parse_action(action))


def test_ordinary_actions_need_no_decision() -> None:
    assert reason({"type": "create_task", "data": {"title": "t"}}) is None
    assert reason({"type": "append_row", "data": {"values": [[1, 2, 3]]}}) is None
    assert reason({"type": "send_notification", "data": {"channel": "#ops", "text": "x"}}) is None


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ({"type": "archive_card", "data": {"card_id": "c1"}}, "deletion"),
        ({"type": "share", "data": {"file_id": "f1"}}, "permission change"),
        (
            {"type": "append_row", "data": {"values": [[i] for i in range(11)]}},
            "bulk change: 11 values (over 10)",
        ),
        ({"type": "create_task", "data": {"title": "Pay", "amount": 1200}}, "money: amount"),
        (
            {"type": "send_notification", "data": {"channel": "#partners", "text": "hi"}},
            "external communication: #partners",
        ),
        (
            {"type": "send_dm", "data": {"user": "bob@vendor.io", "text": "hi"}},
            "external communication: vendor.io",
        ),
        ({"type": "create_task", "data": {"title": "t"}, "requires_approval": True}, "requested"),
    ],
)
def test_each_rule_names_its_reason(action: dict[str, Any], expected: str) -> None:
    assert reason(action) == expected


def test_bulk_at_the_threshold_is_not_bulk() -> None:
    assert reason({"type": "batch_update", "data": {"updates": [{}] * 10}}) is None


def test_internal_addresses_are_not_external() -> None:
    assert reason({"type": "send_dm", "data": {"user": "amy@example.com", "text": "x"}}) is None


def test_rules_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_APPROVAL_RULES", "money")
    rules = ApprovalRules.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert reason({"type": "archive_card", "data": {"card_id": "c1"}}, rules) is None
    assert reason({"type": "create_task", "data": {"title": "t", "price": 5}}, rules) == (
        "money: price"
    )


def test_unknown_rule_name_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_APPROVAL_RULES", "money,bulkk")
    with pytest.raises(ValueError, match="OPSBOT_APPROVAL_RULES: got bulkk, expected some of"):
        ApprovalRules.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]


def test_apply_marks_only_matching_specs() -> None:
    specs = [parse_action({"type": "echo"}), parse_action({"type": "share",
                                                           "data": {"file_id": "f"}})]  # fmt: skip
    marked = RULES.apply(specs)
    assert [(s.requires_approval, s.approval_reason) for s in marked] == [
        (False, None), (True, "permission change"),
    ]  # fmt: skip
