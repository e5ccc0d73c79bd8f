"""Block Kit builders: shapes Slack accepts and the wording people read."""

from __future__ import annotations

from typing import Any

from handlers import blocks

VIEW: dict[str, Any] = {
    "id": "act_1",
    "type": "archive_card",
    "platform": "trello",
    "status": "awaiting_approval",
    "priority": "normal",
    "data": {"card_id": "c1", "note": "x" * 300},
    "requested_by": "slack:U0BOB",
    "reason": "cleanup",
    "approval_reason": "deletion",
}


def _texts(block_list: list[dict[str, Any]]) -> str:
    return str(block_list)


def _buttons(card: list[dict[str, Any]]) -> list[str]:
    return [e["action_id"] for b in card if b["type"] == "actions" for e in b["elements"]]


def test_pending_card_has_the_three_buttons_and_key_facts() -> None:
    card = blocks.approval_card(VIEW)
    assert _buttons(card) == [blocks.APPROVE, blocks.REJECT, blocks.DETAILS]
    text = _texts(card)
    for fact in ("trello", "archive_card", "*Risk*\\nhigh", "<@U0BOB>", "cleanup", "card_id"):
        assert fact in text
    assert "x" * 121 not in text  # long parameters are shortened
    actions = next(b for b in card if b["type"] == "actions")
    assert all(e["value"] == "act_1" for e in actions["elements"])


def test_decided_card_shows_who_and_when_and_no_decision_buttons() -> None:
    approved = blocks.approval_card(
        {**VIEW, "status": "queued"}, {"by": "slack:U0ALICE", "at": 1_700_000_000.0}
    )
    assert _buttons(approved) == [blocks.DETAILS]
    assert "Approved by <@U0ALICE> at 2023-11-14 22:13 UTC" in _texts(approved)
    rejected = blocks.approval_card(
        {**VIEW, "status": "rejected"}, {"by": "cli:ops", "at": 0.0, "reason": "too risky"}
    )
    assert "Rejected by cli:ops" in _texts(rejected) and "too risky" in _texts(rejected)
    done = blocks.approval_card(
        {**VIEW, "status": "succeeded", "result": {"url": "http://x/c1"}}, {"by": "U0ALICE"}
    )
    assert "executed" in _texts(done) and "<http://x/c1|result>" in _texts(done)
    assert "Expired" in _texts(blocks.approval_card({**VIEW, "status": "expired"}))


def test_risk_levels() -> None:
    assert blocks.risk({"approval_reason": "permission change"}) == "high"
    assert blocks.risk({"approval_reason": "requested"}) == "medium"
    assert blocks.risk({}) == "low"


def test_long_answers_are_split_under_slacks_limit() -> None:
    answer = blocks.ops_answer("/ops status", "line\n" * 2000)
    assert len(answer) > 2
    assert all(len(b["text"]["text"]) <= 3000 for b in answer)


def test_reject_modal_carries_the_action_and_a_reason_input() -> None:
    modal = blocks.reject_modal("act_9")
    assert modal["callback_id"] == blocks.REJECT_VIEW
    assert modal["private_metadata"] == "act_9"
    [field] = [b for b in modal["blocks"] if b["type"] == "input"]
    assert (field["block_id"], field["element"]["action_id"]) == (
        blocks.REASON_BLOCK,
        blocks.REASON_INPUT,
    )


def test_details_modal_and_home() -> None:
    assert "archive_card" in _texts(blocks.details_modal(VIEW)["blocks"])
    home = blocks.home_view(
        {"high": 2, "normal": 0},
        [{"platform": "notion", "state": "open"}],
        [{"id": "act_1", "type": "share", "platform": "drive", "waiting_s": 4000, "overdue": True}],
        [{"finished_at": 0.0, "platform": "trello", "error_kind": "RateLimited", "error": "429"}],
        0.0,
    )
    text = _texts(home["blocks"])
    assert home["type"] == "home"
    for fact in ("*high* 2", ":red_circle: notion: open", "overdue", "RateLimited"):
        assert fact in text


def test_who_mentions_slack_users_only() -> None:
    assert blocks.who("slack:U0A") == "<@U0A>"
    assert blocks.who("api") == "api"
    assert blocks.who(None) == "someone"


def test_outcome_message_links_the_result_or_shows_the_error() -> None:
    text, body = blocks.outcome_message(
        {
            "id": "a",
            "type": "create_card",
            "platform": "trello",
            "status": "succeeded",
            "result": {"url": "http://t/c"},
        }
    )
    assert "create_card on trello succeeded" in text and "<http://t/c|result>" in str(body)
    text, body = blocks.outcome_message(
        {
            "id": "b",
            "type": "share",
            "platform": "drive",
            "status": "dead_lettered",
            "error": "403 forbidden",
        }
    )
    assert "dead lettered" in text and "403 forbidden" in str(body)


def test_alert_blocks_bold_title_and_context() -> None:
    laid_out = blocks.alert_blocks("circuit open: notion\n5 failures in a row")
    assert laid_out[0]["text"]["text"] == "*circuit open: notion*"
    assert laid_out[1]["type"] == "context"
    assert len(blocks.alert_blocks("one line")) == 1
