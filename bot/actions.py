"""The action contract (DESIGN.md section 3): parsing, validation and clear errors.

`parse_action` is the single intake check used by every front door (Python API, CLI, HTTP,
Slack). It either returns a normalised `ActionSpec` or raises `ActionInvalid` listing every bad
field with its value and what was expected. Nothing invalid reaches the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from bot.routing import PLATFORMS, ROUTES, Priority, route_for


class Status(StrEnum):
    RECEIVED = "received"
    AWAITING_APPROVAL = "awaiting_approval"
    QUEUED = "queued"
    RUNNING = "running"
    RETRY_SCHEDULED = "retry_scheduled"
    SUCCEEDED = "succeeded"
    DEAD_LETTERED = "dead_lettered"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {Status.SUCCEEDED, Status.DEAD_LETTERED, Status.REJECTED, Status.EXPIRED, Status.CANCELLED}
)

FIELDS = (
    "id",
    "type",
    "platform",
    "data",
    "priority",
    "idempotency_key",
    "requires_approval",
    "not_before",
    "requested_by",
    "source",
    "reason",
    "notify",
    "callback_url",
)


@dataclass(frozen=True)
class Problem:
    field: str
    value: Any
    expected: str

    def __str__(self) -> str:
        return f"{self.field}: got {_show(self.value)}, expected {self.expected}"


class ActionInvalid(ValueError):
    """An action was refused at intake. `problems` names every bad field."""

    def __init__(self, problems: list[Problem], index: int | None = None) -> None:
        self.problems = problems
        self.index = index
        where = f"action #{index}: " if index is not None else ""
        super().__init__(where + "; ".join(str(p) for p in problems))

    def as_dict(self) -> dict[str, Any]:
        return {
            "error": "invalid action",
            "index": self.index,
            "problems": [
                {"field": p.field, "value": p.value, "expected": p.expected}
                for p in self.problems
            ],
        }


@dataclass(frozen=True)
class ActionSpec:
    """A validated action, ready to be stored."""

    type: str
    platform: str
    data: dict[str, Any]
    priority: Priority
    id: str | None = None
    idempotency_key: str | None = None
    requires_approval: bool = False
    not_before: datetime | None = None
    requested_by: str | None = None
    source: str | None = None
    reason: str | None = None
    notify: bool = False
    callback_url: str | None = None
    approval_reason: str | None = None  # set by bot.approval_rules, never by producers
    # A workflow step's retry override (1 + its max_retries), stored by the submit itself so no
    # worker can claim the step with the default budget; never set by producers.
    max_attempts: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "platform": self.platform,
            "data": self.data,
            "priority": self.priority.value,
            "idempotency_key": self.idempotency_key,
            "requires_approval": self.requires_approval,
            "not_before": self.not_before.isoformat() if self.not_before else None,
            "requested_by": self.requested_by,
            "source": self.source,
            "reason": self.reason,
            "notify": self.notify,
            "callback_url": self.callback_url,
        }


def parse_action(raw: Any, index: int | None = None) -> ActionSpec:
    """Validate one action (a dict, e.g. decoded JSON). Raises ActionInvalid."""
    if not isinstance(raw, dict):
        raise ActionInvalid([Problem("action", raw, "a JSON object")], index)
    problems: list[Problem] = [
        Problem(key, raw[key], f"no such field (known fields: {', '.join(FIELDS)})")
        for key in raw
        if key not in FIELDS
    ]
    type_ = raw.get("type")
    route = route_for(type_) if isinstance(type_, str) else None
    if route is None:
        valid = ", ".join(sorted(ROUTES))
        problems.append(Problem("type", type_, f"one of: {valid}"))
    platform = raw.get("platform", route.platform if route else None)
    if route is not None and platform != route.platform:
        if platform not in PLATFORMS:
            problems.append(Problem("platform", platform, f"one of: {', '.join(PLATFORMS)}"))
        else:
            problems.append(
                Problem("platform", platform, f"'{route.platform}' for type '{route.type}'")
            )
    data = raw.get("data", {})
    if not isinstance(data, dict):
        problems.append(Problem("data", data, "a JSON object of the operation's parameters"))
        data = {}
    elif route is not None:
        problems += [
            Problem(f"data.{name}", None, f"a value (required by {route.type})")
            for name in route.required
            if data.get(name) in (None, "")
        ]
    priority = _priority(raw, route, problems)
    not_before = _timestamp(raw.get("not_before"), "not_before", problems)
    strings = {
        name: _optional_str(raw, name, problems)
        for name in ("id", "idempotency_key", "requested_by", "source", "reason", "callback_url")
    }
    flags = {name: _optional_bool(raw, name, problems) for name in ("requires_approval", "notify")}
    if strings["callback_url"] is not None and not is_callback_url(strings["callback_url"]):
        problems.append(Problem("callback_url", strings["callback_url"], CALLBACK_URL_EXPECTED))
    if problems:
        raise ActionInvalid(problems, index)
    assert route is not None
    return ActionSpec(
        type=route.type,
        platform=route.platform,
        data=data,
        priority=priority,
        not_before=not_before,
        requires_approval=flags["requires_approval"],
        notify=flags["notify"],
        max_attempts=None,  # producers never choose the retry budget (workflow steps do)
        **strings,
    )


def parse_actions(raw: Any) -> list[ActionSpec]:
    """One action or a list of them. Every invalid one is reported, none is accepted."""
    items = raw if isinstance(raw, list) else [raw]
    specs: list[ActionSpec] = []
    errors: list[ActionInvalid] = []
    for i, item in enumerate(items):
        try:
            specs.append(parse_action(item, i if isinstance(raw, list) else None))
        except ActionInvalid as exc:
            errors.append(exc)
    if errors:
        if len(errors) == 1:
            raise errors[0]
        merged = [
            Problem(f"[{e.index}].{p.field}", p.value, p.expected)
            for e in errors
            for p in e.problems
        ]
        raise ActionInvalid(merged)
    return specs


def _priority(raw: dict[str, Any], route: Any, problems: list[Problem]) -> Priority:
    value = raw.get("priority")
    if value is None:
        return route.priority if route is not None else Priority.NORMAL
    try:
        return Priority(value)
    except ValueError:
        problems.append(Problem("priority", value, "one of: critical, high, normal, low"))
        return Priority.NORMAL


def _timestamp(value: Any, name: str, problems: list[Problem]) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    problems.append(Problem(name, value, "an ISO 8601 time or a Unix timestamp"))
    return None


CALLBACK_URL_EXPECTED = "an http:// or https:// URL with a host"


def is_callback_url(value: str) -> bool:
    """Where an outcome may be POSTed: an absolute http(s) URL."""
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed "[" in the host
        return False


def _optional_str(raw: dict[str, Any], name: str, problems: list[Problem]) -> str | None:
    value = raw.get(name)
    if value is None or (isinstance(value, str) and value.strip()):
        return value
    problems.append(Problem(name, value, "a non-empty string"))
    return None


def _optional_bool(raw: dict[str, Any], name: str, problems: list[Problem]) -> bool:
    value = raw.get(name, False)
    if isinstance(value, bool):
        return value
    problems.append(Problem(name, value, "true or false"))
    return False


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
