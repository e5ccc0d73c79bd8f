"""A small, safe template syntax for step data. No code runs: only lookups in plain data.

    "{{ input.amount }}"                           the run's input
    "{{ steps.upload.result.webViewLink }}"        an earlier step's result
    "{{ steps.log.result.rows[0] }}"               list index ([0] or .0)
    "{{ run.id }}"                                 the run: id, name, version
    "{{ input.channel | default(\"#finance\") }}"  fallback when missing (a JSON literal)

A value that is exactly one `{{ ... }}` keeps the referenced value's type (a list stays a list);
inside a longer string the value is inserted as text (JSON for lists and objects). Lookups follow
dict keys and list indexes only: no attributes, calls, arithmetic or filters besides `default`.
A missing reference raises TemplateError naming the reference and what was there instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

ROOTS = ("input", "steps", "run")
_TAG = re.compile(r"\{\{(.*?)\}\}", re.S)
_SEGMENT = re.compile(r"\.([A-Za-z0-9_][A-Za-z0-9_-]*)|\[(\d+)\]|\[\"([^\"]*)\"\]")
_HEAD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)")
_DEFAULT = re.compile(r"\|\s*default\((.*)\)\s*$", re.S)
_MISSING = object()


class TemplateError(ValueError):
    """A template is malformed, or refers to something the run does not have."""


@dataclass(frozen=True)
class Ref:
    """One parsed `{{ ... }}`: root, path segments (str keys, int indexes), optional default."""

    text: str
    root: str
    path: tuple[str | int, ...]
    default: Any = _MISSING

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    @property
    def step(self) -> str | None:
        """The step a `steps.X...` reference points at."""
        return str(self.path[0]) if self.root == "steps" and self.path else None


def parse_ref(expression: str) -> Ref:
    """Parse the inside of one `{{ ... }}`. Raises TemplateError explaining what is wrong."""
    text = expression.strip()
    body, default = text, _MISSING
    match = _DEFAULT.search(text)
    if match:
        body = text[: match.start()]
        try:
            default = json.loads(match.group(1))
        except ValueError:
            raise TemplateError(
                f'{{{{ {text} }}}}: default(...) takes a JSON literal, e.g. default("x") or '
                "default(0)"
            ) from None
    head = _HEAD.match(body)
    if head is None or head.group(1) not in ROOTS:
        raise TemplateError(f"{{{{ {text} }}}}: a reference starts with one of {', '.join(ROOTS)}")
    path, rest = _segments(body[head.end() :].rstrip(), text)
    if head.group(1) == "steps" and (len(path) < 2 or path[1] != "result"):
        raise TemplateError(f"{{{{ {text} }}}}: step references read steps.<name>.result[...]")
    return Ref(text, head.group(1), path, default) if not rest else _bad(text, rest)


def _segments(rest: str, text: str) -> tuple[tuple[str | int, ...], str]:
    path: list[str | int] = []
    while rest:
        match = _SEGMENT.match(rest)
        if match is None:
            return tuple(path), rest
        key, index, quoted = match.groups()
        if index is not None:
            path.append(int(index))
        elif quoted is not None:
            path.append(quoted)
        else:
            path.append(int(key) if key.isdigit() else key)
        rest = rest[match.end() :]
    return tuple(path), ""


def _bad(text: str, rest: str) -> NoReturn:
    raise TemplateError(
        f"{{{{ {text} }}}}: cannot read {rest.strip()!r}; only dotted keys, [index] and "
        "| default(JSON) are allowed"
    )


def refs_in(value: Any, where: str = "") -> Iterator[tuple[str, Ref | TemplateError]]:
    """Every reference in nested data, with its location; malformed ones as TemplateError."""
    if isinstance(value, str):
        for expression in _TAG.findall(value):
            try:
                yield where, parse_ref(expression)
            except TemplateError as exc:
                yield where, exc
        if _TAG.sub("", value).count("{{"):
            yield where, TemplateError(f"{value!r}: '{{{{' without a closing '}}}}'")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from refs_in(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from refs_in(item, f"{where}[{i}]")


def is_templated(value: Any) -> bool:
    return isinstance(value, str) and _TAG.search(value) is not None


def render(value: Any, context: dict[str, Any]) -> Any:
    """Substitute every reference in nested data. `context` has input, steps, run."""
    if isinstance(value, str):
        return _render_str(value, context)
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    return value


def _render_str(value: str, context: dict[str, Any]) -> Any:
    whole = _TAG.fullmatch(value.strip())
    # One tag only: "{{ a }} and {{ b }}" also fullmatches, its group spanning "}} and {{".
    if whole is not None and "{{" not in whole.group(1):
        return resolve(parse_ref(whole.group(1)), context)

    def one(match: re.Match[str]) -> str:
        found = resolve(parse_ref(match.group(1)), context)
        return found if isinstance(found, str) else json.dumps(found, default=str)

    return _TAG.sub(one, value)


def resolve(ref: Ref, context: dict[str, Any]) -> Any:
    """Follow the reference through `context`; the default (if any) replaces a missing value."""
    current: Any = context.get(ref.root, _MISSING)
    walked = ref.root
    for segment in ref.path:
        found = _lookup(current, segment)
        if found is _MISSING:
            if ref.has_default:
                return ref.default
            raise TemplateError(f"{{{{ {ref.text} }}}}: {_why(current, walked, segment)}")
        current = found
        walked += f"[{segment}]" if isinstance(segment, int) else f".{segment}"
    return current


def _lookup(current: Any, segment: str | int) -> Any:
    if isinstance(current, dict):
        return current.get(str(segment), _MISSING)
    if isinstance(current, list) and isinstance(segment, int):
        return current[segment] if segment < len(current) else _MISSING
    return _MISSING


def _why(current: Any, walked: str, segment: str | int) -> str:
    if isinstance(current, dict):
        keys = ", ".join(sorted(map(str, current))) or "none"
        return f"{walked} has no key {str(segment)!r} (keys: {keys})"
    if isinstance(current, list):
        return f"{walked} has {len(current)} item(s), no index {segment!r}"
    return f"{walked} is {json.dumps(current, default=str)[:60]}, not an object or list"
