"""Fallback chains: when a platform cannot serve (circuit open, or it failed for good with a
platform-side error), an action may run as another platform's operation instead.

Chains come from OPSBOT_FALLBACKS (default `notion.create_task=trello.create_card`). The data is
translated field by field; the action's record keeps which platform served it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

JSON = dict[str, Any]
Translator = Callable[[JSON], JSON]


def task_to_card(data: JSON) -> JSON:
    """Notion create_task -> Trello create_card: title->name, description(+properties)->desc."""
    card: JSON = {"name": data.get("title", "")}
    lines = [str(data["description"])] if data.get("description") else []
    properties = data.get("properties")
    if isinstance(properties, Mapping):
        lines += [f"{key}: {_plain(value)}" for key, value in properties.items()]
    if lines:
        card["desc"] = "\n".join(lines)
    due = data.get("due") or data.get("due_date")
    if due:
        card["due"] = str(due)
    labels = data.get("labels") or data.get("tags")
    if labels:
        card["labels"] = [str(label) for label in labels]
    for key in ("list_id", "board_id"):
        if data.get(key):
            card[key] = data[key]
    return card


def _plain(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


TRANSLATORS: dict[tuple[str, str], Translator] = {
    ("create_task", "create_card"): task_to_card,
}


class FallbackChain:
    def __init__(self, chains: Mapping[tuple[str, str], tuple[str, str]]) -> None:
        for (_, src_type), (_, dst_type) in chains.items():
            if src_type != dst_type and (src_type, dst_type) not in TRANSLATORS:
                raise ValueError(
                    f"fallback {src_type} -> {dst_type}: no data translation; known: "
                    + ", ".join(f"{a}->{b}" for a, b in TRANSLATORS)
                )
        self._chains = dict(chains)

    def for_action(self, platform: str, action_type: str) -> tuple[str, str] | None:
        return self._chains.get((platform, action_type))

    def route(
        self, platform: str, action_type: str, data: JSON, can_run: Callable[[str], bool]
    ) -> tuple[str, str, JSON] | None:
        """Where an action runs now: (platform, type, data) on its own platform if `can_run`
        it, else on its fallback (data translated), else None (it waits). `can_run` may take a
        half-open circuit's probe slot, so it is asked at most once per platform, in order."""
        if can_run(platform):
            return platform, action_type, data
        target = self._chains.get((platform, action_type))
        if target is not None and can_run(target[0]):
            return target[0], target[1], self.translate(action_type, target[1], data)
        return None

    def has_fallback(self, platform: str) -> bool:
        return any(source == platform for source, _ in self._chains)

    def translate(self, src_type: str, dst_type: str, data: JSON) -> JSON:
        if src_type == dst_type:
            return dict(data)
        return TRANSLATORS[(src_type, dst_type)](data)
