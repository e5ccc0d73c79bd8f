"""Block Kit for a workflow run's progress message: pure, from `WorkflowRunner.state()`'s view.

One message per run shows the workflow, run id, status and every step with its state (pending,
running, succeeded, failed, rolled back, skipped, ...) and the links its result carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers.blocks import SECTION_LIMIT, Block, context, header, mrkdwn

LINK_KEYS = ("web_view_link", "webViewLink", "permalink", "url", "shortUrl")
ERROR_CHARS = 160

_RUN_ICONS = {
    "running": ":arrows_counterclockwise:", "succeeded": ":white_check_mark:",
    "failed": ":x:", "timed_out": ":hourglass:", "rolling_back": ":rewind:",
    "rolled_back": ":leftwards_arrow_with_hook:", "rollback_failed": ":rotating_light:",
    "resolved": ":memo:",
}  # fmt: skip
_STEP_STATES = {  # step status (or compensation state) -> (icon, words shown)
    "pending": (":white_circle:", "pending"),
    "queued": (":large_blue_circle:", "running"),
    "running": (":large_blue_circle:", "running"),
    "retry_scheduled": (":large_blue_circle:", "running (retrying)"),
    "awaiting_approval": (":raised_hand:", "awaiting approval"),
    "succeeded": (":white_check_mark:", "succeeded"),
    "failed": (":x:", "failed"),
    "skipped": (":fast_forward:", "skipped"),
    "cancelled": (":fast_forward:", "skipped"),
    "undo_running": (":rewind:", "rolling back"),
    "undo_succeeded": (":leftwards_arrow_with_hook:", "rolled back"),
    "undo_failed": (":rotating_light:", "rollback failed"),
}


def run_text(view: Mapping[str, Any]) -> str:
    """The notification fallback text (also what search and screen readers see)."""
    return f"Workflow {view['workflow']} run {view['id']}: {_words(str(view['status']))}"


def run_progress(view: Mapping[str, Any]) -> list[Block]:
    status = str(view["status"])
    icon = _RUN_ICONS.get(status, ":grey_question:")
    body = [
        header(f"Workflow {view['workflow']}"),
        mrkdwn(f"{icon} *{_words(status)}*  ·  run `{view['id']}`"),
    ]
    undo = _undo_states(view.get("compensations") or [])
    lines = [_step_line(step, undo.get(str(step["name"]))) for step in view.get("steps") or []]
    body += [mrkdwn(chunk) for chunk in _chunks(lines)]
    notes = [f"{view.get('duration_s', 0):g} s"]
    if view.get("error"):
        notes.append(f"error: {_short(str(view['error']))}")
    if view.get("comment"):
        notes.append(f"resolved: {_short(str(view['comment']))}")
    body.append(context("  ·  ".join(notes)))
    return body


def step_links(result: Any) -> list[str]:
    """URLs in a step's result: its own link keys, then those one level down (echo, nested)."""
    if not isinstance(result, Mapping):
        return []
    found = [str(result[k]) for k in LINK_KEYS if _is_url(result.get(k))]
    for value in result.values():
        if isinstance(value, Mapping):
            found += [str(value[k]) for k in LINK_KEYS if _is_url(value.get(k))]
    return list(dict.fromkeys(found))


def _step_line(step: Mapping[str, Any], undo: str | None) -> str:
    icon, words = _STEP_STATES.get(undo or str(step["status"]), (":grey_question:", ""))
    line = f"{icon} `{step['name']}` {words or step['status']}"
    links = step_links(step.get("result"))
    if links:
        line += "  " + " ".join(f"<{url}|{_label(i, len(links))}>" for i, url in enumerate(links))
    if step.get("error") and step["status"] != "succeeded":
        line += f"  _{_short(str(step['error']))}_"
    return line


def _chunks(lines: list[str]) -> list[str]:
    """Lines joined into sections under Slack's size limit, never splitting a line (a link
    cut in half would break the message); at most 45 sections (Slack allows 50 blocks)."""
    chunks: list[str] = []
    for line in lines:
        if chunks and len(chunks[-1]) + 1 + len(line) <= SECTION_LIMIT:
            chunks[-1] += "\n" + line
        else:
            chunks.append(line[:SECTION_LIMIT])
    return chunks[:45]


def _undo_states(compensations: list[Mapping[str, Any]]) -> dict[str, str]:
    """step -> undo_running | undo_succeeded | undo_failed, from its latest compensation."""
    states: dict[str, str] = {}
    for undo in compensations:  # oldest first: a retried rollback's later row wins
        status = str(undo.get("status"))
        if status == "succeeded":
            states[str(undo["step"])] = "undo_succeeded"
        elif status in ("dead_lettered", "failed", "cancelled", "rejected", "expired"):
            states[str(undo["step"])] = "undo_failed"
        else:
            states[str(undo["step"])] = "undo_running"
    return states


def _label(index: int, count: int) -> str:
    return "open" if count == 1 else f"link {index + 1}"


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://"))


def _words(status: str) -> str:
    return status.replace("_", " ")


def _short(text: str) -> str:
    # Slack's escaping, so an error message cannot inject a link or a mention.
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"
