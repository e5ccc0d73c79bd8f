"""Block Kit builders: pure functions from plain data to Slack blocks (and the fallback text).

The one place for the Slack front door's wording: approval cards and their outcomes, `/ops`
answers and help, the reject-reason and details modals, App Home.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

Block = dict[str, Any]
APPROVE, REJECT, DETAILS = "opsbot_approve", "opsbot_reject", "opsbot_details"
REJECT_VIEW = "opsbot_reject_reason"
REASON_BLOCK, REASON_INPUT = "reason", "reason_input"
SECTION_LIMIT = 2900  # Slack refuses section text over 3000 characters
HIGH_RISK = ("deletion", "permission", "money", "bulk", "external")

_STATUS_LINES = {
    "queued": ":white_check_mark: Approved by {who} at {when}; queued to run.",
    "running": ":white_check_mark: Approved by {who} at {when}; running.",
    "retry_scheduled": ":white_check_mark: Approved by {who} at {when}; retrying after an error.",
    "succeeded": ":white_check_mark: Approved by {who} at {when}; :tada: executed.",
    "dead_lettered": ":white_check_mark: Approved by {who} at {when}; :x: failed: {error}",
    "rejected": ":no_entry: Rejected by {who} at {when}. Reason: {reason}",
    "expired": ":hourglass: Expired at {when}: nobody decided in time.",
    "cancelled": ":heavy_multiplication_x: Cancelled at {when}.",
}


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def mrkdwn(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_LIMIT]}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:SECTION_LIMIT]}]}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150]}}


def code(text: str) -> list[Block]:
    """Preformatted text split into sections that each fit Slack's limit."""
    text = text or "(nothing)"
    size = SECTION_LIMIT - 8
    return [mrkdwn(f"```{text[i : i + size]}```") for i in range(0, len(text), size)][:45]


def who(actor: str | None) -> str:
    """`slack:U123` or `U123` -> a mention; anything else (api, cli:alice) shown as is."""
    if not actor:
        return "someone"
    ident = actor.removeprefix("slack:")
    return f"<@{ident}>" if ident[:1] in "UW" and ident.isalnum() else actor


def risk(view: Mapping[str, Any]) -> str:
    reason = str(view.get("approval_reason") or "").lower()
    if any(word in reason for word in HIGH_RISK) or view.get("priority") == "critical":
        return "high"
    return "medium" if reason else "low"


def params_text(data: Mapping[str, Any], limit: int = 8) -> str:
    lines = []
    for key, value in list(data.items())[:limit]:
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        lines.append(f"*{key}*: {shown if len(shown) <= 120 else shown[:117] + '...'}")
    if len(data) > limit:
        lines.append(f"_and {len(data) - limit} more (see Details)_")
    return "\n".join(lines) or "_no parameters_"


def card_text(view: Mapping[str, Any]) -> str:
    return f"Approval needed: {view['type']} on {view['platform']} ({view['id']})"


def approval_card(
    view: Mapping[str, Any], decision: Mapping[str, Any] | None = None
) -> list[Block]:
    """The card in SLACK_APPROVAL_CHANNEL: buttons while awaiting, the outcome afterwards."""
    fields = [
        ("Platform", view["platform"]),
        ("Operation", view["type"]),
        ("Risk", risk(view)),
        ("Priority", view.get("priority") or "normal"),
        ("Requested by", who(view.get("requested_by") or view.get("source"))),
        ("Why", view.get("reason") or view.get("approval_reason") or "-"),
    ]
    blocks: list[Block] = [
        header(f"Approval needed: {view['type']}"),
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields],
        },
        mrkdwn(params_text(view.get("data") or {})),
        context(f"Action `{view['id']}` · rule: {view.get('approval_reason') or 'requested'}"),
    ]
    status = str(view.get("status"))
    if status == "awaiting_approval":
        blocks.append(_buttons(str(view["id"])))
    else:
        blocks.append(mrkdwn(outcome_line(view, decision or {})))
        blocks.append(_details_only(str(view["id"])))
    return blocks


def outcome_line(view: Mapping[str, Any], decision: Mapping[str, Any]) -> str:
    template = _STATUS_LINES.get(str(view.get("status")), "Status: " + str(view.get("status")))
    line = template.format(
        who=who(decision.get("by")),
        when=when(decision.get("at") or view.get("finished_at")),
        reason=decision.get("reason") or "none given",
        error=view.get("error") or "unknown error",
    )
    result = view.get("result")
    if view.get("status") == "succeeded" and isinstance(result, Mapping):
        link = result.get("permalink") or result.get("url") or result.get("webViewLink")
        if link:
            line += f" <{link}|result>"
    return line


def _buttons(action_id: str) -> Block:
    return {
        "type": "actions",
        "block_id": f"approval:{action_id}",
        "elements": [
            _button("Approve", APPROVE, action_id, "primary"),
            _button("Reject", REJECT, action_id, "danger"),
            _button("Details", DETAILS, action_id),
        ],
    }


def _details_only(action_id: str) -> Block:
    return {"type": "actions", "block_id": f"approval:{action_id}",
            "elements": [_button("Details", DETAILS, action_id)]}  # fmt: skip


def _button(text: str, action: str, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def details_modal(view: Mapping[str, Any]) -> Block:
    shown = {k: view.get(k) for k in ("id", "type", "platform", "status", "priority", "data",
                                      "requested_by", "source", "reason", "approval_reason",
                                      "idempotency_key", "created_at")}  # fmt: skip
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Action details"},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": code(json.dumps(shown, indent=2, default=str)),
    }


def reject_modal(action_id: str) -> Block:
    return {
        "type": "modal",
        "callback_id": REJECT_VIEW,
        "private_metadata": action_id,
        "title": {"type": "plain_text", "text": "Reject action"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            mrkdwn(f"Rejecting `{action_id}`. Say why, for the requester and the audit log."),
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                },
            },
        ],
    }


def ops_answer(title: str, text: str) -> list[Block]:
    return [mrkdwn(f"*{title}*"), *code(text)]


def ops_help(usages: Iterable[tuple[str, str]], problem: str | None = None) -> list[Block]:
    lines = "\n".join(f"`/ops {usage}`  {help_}" for usage, help_ in usages)
    blocks = [mrkdwn(f":warning: {problem}")] if problem else []
    return [*blocks, mrkdwn("*opsbot commands*\n" + lines)]


def announcement(actor: str, usage: str, summary: str) -> str:
    return f":gear: {who(actor)} ran `/ops {usage}`: {summary}"


_OUTCOME_ICONS = {
    "succeeded": ":white_check_mark:",
    "dead_lettered": ":x:",
    "rejected": ":no_entry:",
    "expired": ":hourglass:",
    "cancelled": ":heavy_multiplication_x:",
}


def outcome_message(view: Mapping[str, Any]) -> tuple[str, list[Block]]:
    """An action's final outcome for SLACK_NOTIFICATION_CHANNEL (actions with `notify`)."""
    status = str(view.get("status"))
    text = f"{_OUTCOME_ICONS.get(status, ':information_source:')} {view.get('type')} on " \
        f"{view.get('platform')} {status.replace('_', ' ')} (`{view.get('id')}`)"  # fmt: skip
    detail = view.get("error") if status != "succeeded" else None
    result = view.get("result")
    if isinstance(result, Mapping):
        link = result.get("permalink") or result.get("url") or result.get("webViewLink")
        detail = f"<{link}|result>" if link else detail
    body = [mrkdwn(text)] + ([context(str(detail))] if detail else [])
    return text, body


def alert_blocks(text: str) -> list[Block]:
    """An operator alert (the alerter renders the wording; this only lays it out)."""
    head, _, rest = text.partition("\n")
    return [mrkdwn(f"*{head}*"), *([context(rest)] if rest.strip() else [])]


def home_view(
    depth: Mapping[str, Any],
    circuits: Sequence[Mapping[str, Any]],
    approvals: Sequence[Mapping[str, Any]],
    errors: Sequence[Mapping[str, Any]],
    now: float,
) -> Block:
    """App Home: queue by priority, circuit states, pending approvals, the last errors."""
    queue = "  ".join(f"*{p}* {n}" for p, n in depth.items()) or "empty"
    circuit_lines = "\n".join(
        f"{_circuit_icon(c.get('state'))} {c.get('platform')}: {c.get('state')}" for c in circuits
    )
    pending = "\n".join(
        f"• `{a['id']}` {a['type']} on {a['platform']}, waiting {int(a.get('waiting_s') or 0)} s"
        + (" :warning: overdue" if a.get("overdue") else "")
        for a in approvals[:10]
    )
    last = "\n".join(
        f"• {when(e.get('finished_at'))} {e.get('platform')} {e.get('error_kind')}: "
        f"{str(e.get('error'))[:100]}"
        for e in errors[:5]
    )
    blocks = [
        header("opsbot"),
        context(f"Updated {when(now)}"),
        mrkdwn(f"*Queue by priority*\n{queue}"),
        mrkdwn(f"*Circuits*\n{circuit_lines or 'all closed'}"),
        mrkdwn(f"*Pending approvals*\n{pending or 'none'}"),
        mrkdwn(f"*Last errors*\n{last or 'none'}"),
    ]
    return {"type": "home", "blocks": blocks}


def _circuit_icon(state: Any) -> str:
    return {"closed": ":large_green_circle:", "open": ":red_circle:"}.get(
        str(state), ":large_yellow_circle:"
    )
