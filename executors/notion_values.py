"""Notion property values: from what an action says to what the API takes, and back. Pure.

An action may give values in Notion's request shape (`{"Status": {"status": {"name": "Done"}}}`),
as plain values (`{"Priority": "High", "Due": "2025-10-31"}`), or through shortcuts (`status`,
`assignees`, `due`/`due_date`, `priority`, `title`). Property names match case-insensitively and
`due_date` finds `Due Date`, as in the seed's examples. The seed writes `select` for Status; a
database whose Status is a `status` property gets the same option name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from executors.base import JSON, PermanentError

KEY_PROPERTY = "Opsbot Key"  # rich_text property holding the idempotency key, when it exists
_OPTION_TYPES = ("select", "status")
_SHORTCUTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # shortcut: (preferred property names, property types to fall back on)
    "status": (("status",), ("status",)),
    "assignees": (("assignee", "assignees", "owner"), ("people",)),
    "due": (("due", "due date", "deadline"), ("date",)),
    "due_date": (("due date", "due", "deadline"), ("date",)),
    "priority": (("priority",), ()),
}


@dataclass(frozen=True)
class Source:
    """A data source's schema: its id, its title property, and each property's type."""

    id: str
    title: str
    types: dict[str, str]

    @classmethod
    def from_schema(cls, source_id: str, properties: dict[str, Any]) -> Source:
        types = {name: str(spec["type"]) for name, spec in properties.items()}
        title = next((name for name, kind in types.items() if kind == "title"), "Name")
        return cls(source_id, title, types)

    @property
    def status(self) -> str | None:
        """The property that says whether a task is open (Status, of type status or select)."""
        return self.find("status", kinds=("status",))

    def find(self, *names: str, kinds: tuple[str, ...]) -> str | None:
        lowered = {name.lower(): name for name in self.types}
        for name in names:
            if name in lowered:
                return lowered[name]
        return next((name for name, kind in self.types.items() if kind in kinds), None)


def properties_for(source: Source, data: JSON) -> JSON:
    """The request-shaped properties an action's data asks for (raw `properties` win)."""
    out: JSON = {}
    if data.get("title") not in (None, ""):
        out[source.title] = {"title": _text(str(data["title"]))}
    for shortcut, (names, kinds) in _SHORTCUTS.items():
        if data.get(shortcut) in (None, ""):
            continue
        name = source.find(*names, kinds=kinds)
        if name is None:
            raise PermanentError(
                f"data.{shortcut}: the database has no property for it", platform="notion"
            )
        out[name] = _value(source.types[name], data[shortcut], name)
    for given, value in (data.get("properties") or {}).items():
        name = _resolve(source, str(given))
        out[name] = _value(source.types[name], value, name)
    return out


def restorable(value: JSON | None) -> JSON:
    """A stored property value (as the API returns it) in request shape, to write it back."""
    if not value:
        return {}
    kind = str(value.get("type"))
    inner = value.get(kind)
    if kind in ("title", "rich_text"):
        # Formatting (bold, links) is not kept: the text is.
        text = "".join(part.get("plain_text", "") for part in inner or [])
        return {kind: _text(text) if text else []}
    if kind == "people":
        return {kind: [{"id": person["id"]} for person in inner or []]}
    if kind in _OPTION_TYPES:
        return {kind: {"name": inner["name"]} if inner else None}
    return {kind: inner}


def _resolve(source: Source, given: str) -> str:
    if given in source.types:
        return given
    wanted = given.replace("_", " ").lower()
    for name in source.types:
        if name.lower() == wanted:
            return name
    known = ", ".join(sorted(source.types))
    raise PermanentError(
        f"data.properties.{given}: no such property (known: {known})", platform="notion"
    )


def _value(kind: str, value: Any, name: str) -> JSON:
    if isinstance(value, dict) and len(value) == 1:
        ((given_kind, inner),) = value.items()
        if given_kind == kind:
            return {kind: inner}
        if given_kind in _OPTION_TYPES and kind in _OPTION_TYPES:
            return {kind: inner}
        if given_kind in _ALL_TYPES:
            raise PermanentError(
                f"data.properties.{name}: a {given_kind} value for a {kind} property",
                platform="notion",
            )
    return _plain(kind, value, name)


def _plain(kind: str, value: Any, name: str) -> JSON:
    if kind in ("title", "rich_text"):
        return {kind: _text(str(value))}
    if kind in _OPTION_TYPES:
        return {kind: {"name": str(value)}}
    if kind == "multi_select":
        items = value if isinstance(value, list) else [value]
        return {kind: [{"name": str(item)} for item in items]}
    if kind == "people":
        people = value if isinstance(value, list) else [value]
        return {kind: [{"id": str(person)} for person in people]}
    if kind == "date":
        return {kind: value if isinstance(value, dict) else {"start": str(value)}}
    if kind in ("number", "checkbox", "url", "email", "phone_number"):
        return {kind: value}
    raise PermanentError(
        f"data.properties.{name}: {kind} properties cannot be set", platform="notion"
    )


def _text(content: str) -> list[JSON]:
    return [{"type": "text", "text": {"content": content[:2000]}}]


_ALL_TYPES = {
    "title", "rich_text", "select", "status", "multi_select", "people", "date", "number",
    "checkbox", "url", "email", "phone_number", "files", "relation",
}  # fmt: skip
