"""Text building blocks of every view: tables, `key: value` lines, times, durations, JSON,
and secret redaction. The views (bot/render*.py) are made of these; nothing here knows a command.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.config import Settings
from bot.logs import REDACTED, Redactor, secrets_of

_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]+:)[^@\s]+@")


def redact(text: str, settings: Settings | None = None) -> str:
    """Hide URL passwords, token shapes and the value of every secret setting (bot.logs rules)."""
    text = _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)
    return Redactor(secrets_of(settings) if settings is not None else [])(text)


def to_json(result: Any) -> str:
    return json.dumps(result, indent=2, default=str, sort_keys=False)


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def seconds(value: float | None) -> str:
    """A duration for people: 850ms, 12.5s, 3m20s, 2h05m."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "(none)") -> str:
    """A plain fixed-width table; cells are cut at 90 characters to keep lines readable."""
    cells = [[_cell(v) for v in row] for row in rows]
    if not cells:
        return empty
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [_line(headers, widths), _line(["-" * w for w in widths], widths)]
    lines += [_line(r, widths) for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = "-" if value is None or value == "" else str(value).replace("\n", " ")
    return text if len(text) <= 90 else text[:87] + "..."


def _line(values: Sequence[str], widths: list[int]) -> str:
    return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()


def pairs(items: Iterable[tuple[str, Any]]) -> str:
    """`key: value` lines, keys aligned."""
    rows = [(k, _cell(v)) for k, v in items]
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
