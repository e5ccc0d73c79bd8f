"""The routing table: action type -> platform, default priority, required data, risk. Pure.

Types and default priorities come from the seed "Action Orchestration Architecture"; the types it
does not price (add_comment, add_label, ...) take the priority of their closest sibling.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Priority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Lower runs first: critical 0 ... low 3 (the seed's enum values)."""
        return _RANKS[self]


_RANKS = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}


@dataclass(frozen=True)
class Route:
    type: str
    platform: str
    priority: Priority
    required: tuple[str, ...] = ()
    # Why this operation needs a human decision by default ("" when it does not).
    approval_reason: str = ""


def _r(
    type_: str,
    platform: str,
    priority: Priority,
    required: tuple[str, ...] = (),
    approval: str = "",
) -> Route:
    return Route(type_, platform, priority, required, approval)


N, H, L = Priority.NORMAL, Priority.HIGH, Priority.LOW

ROUTES: dict[str, Route] = {
    r.type: r
    for r in (
        # notion
        _r("create_task", "notion", N, ("title",)),
        _r("update_task", "notion", N, ("page_id",)),
        _r("add_comment", "notion", N, ("page_id", "text")),
        # trello
        _r("create_card", "trello", N, ("name",)),
        _r("move_card", "trello", L, ("card_id", "list_id")),
        _r("add_label", "trello", L, ("card_id", "label")),
        _r("update_card", "trello", N, ("card_id",)),
        _r("attach_file", "trello", N, ("card_id", "url")),
        _r("archive_card", "trello", N, ("card_id",), "deletion"),
        # slack
        _r("send_notification", "slack", H, ("text",)),
        _r("send_dm", "slack", H, ("user", "text")),
        _r("reply_in_thread", "slack", H, ("channel", "thread_ts", "text")),
        _r("update_message", "slack", N, ("channel", "ts", "text")),
        # drive
        _r("upload_file", "drive", N, ("name", "content")),
        _r("create_folder", "drive", N, ("name",)),
        _r("organize_attachments", "drive", N, ("folder_name", "files")),
        _r("share", "drive", N, ("file_id",), "permission change"),
        _r("get_link", "drive", L, ("file_id",)),
        # sheets
        _r("append_row", "sheets", N, ("values",)),
        _r("update_cell", "sheets", N, ("range", "value")),
        _r("batch_update", "sheets", N, ("updates",)),
        _r("log_action", "sheets", L, ()),
        # built-in test platform: returns its data (optional delay, failure, side-effect file)
        _r("echo", "echo", N, ()),
    )
}

PLATFORMS: tuple[str, ...] = tuple(dict.fromkeys(r.platform for r in ROUTES.values()))


def route_for(action_type: str) -> Route | None:
    return ROUTES.get(action_type)


def types_for(platform: str) -> list[str]:
    return [r.type for r in ROUTES.values() if r.platform == platform]
