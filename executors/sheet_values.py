"""Action data -> Sheets API shapes for the Sheets executor (pure functions, no I/O).

Every function refuses malformed input with a PermanentError naming the parameter, before any
request is made.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from executors.base import JSON, PermanentError

PLATFORM = "sheets"
SUMMARY_CHARS = 500


def a1(target: str, sheet: Any) -> str:
    """`B2` on sheet `Log` -> `'Log'!B2`; a range naming its sheet is kept as it is."""
    if not sheet or "!" in target:
        return target
    quoted = str(sheet).replace("'", "''")
    return f"'{quoted}'!{target}"


def rows(values: Any) -> list[list[Any]]:
    if not isinstance(values, list) or not values:
        raise PermanentError(
            "values: expected a row (list) or rows (list of lists)", platform=PLATFORM, status=400
        )
    if all(isinstance(v, list) for v in values):
        return values
    if any(isinstance(v, (list, dict)) for v in values):
        raise PermanentError("values: mix of cells and rows", platform=PLATFORM, status=400)
    return [values]


def updates(raw: Any, sheet: Any) -> list[JSON]:
    if not isinstance(raw, list) or not raw:
        raise PermanentError(
            "updates: expected a list of {range, values}", platform=PLATFORM, status=400
        )
    updates = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not item.get("range") or "values" not in item:
            raise PermanentError(
                f"updates[{index}]: range and values are required", platform=PLATFORM, status=400
            )
        values = item["values"]
        grid = rows(values) if isinstance(values, list) else [[values]]
        updates.append({"range": a1(str(item["range"]), sheet), "values": grid})
    return updates


def first_cell(values: Any) -> Any:
    if isinstance(values, list) and values and isinstance(values[0], list) and values[0]:
        return values[0][0]
    return ""


def padded(old: list[list[Any]], shape: list[list[Any]]) -> list[list[Any]]:
    """The old values on the new values' shape: cells that were empty come back as ''."""
    return [
        [old[r][c] if r < len(old) and c < len(old[r]) else "" for c in range(len(row))]
        for r, row in enumerate(shape)
    ]


def log_row(data: JSON) -> list[Any]:
    summary = data.get("summary")
    if summary is None and data.get("result") is not None:
        summary = json.dumps(data["result"], sort_keys=True, default=str)
    stamp = data.get("time") or datetime.now(UTC).isoformat(timespec="seconds")
    duration = data.get("duration_ms", data.get("duration", ""))
    return [
        str(stamp),
        str(data.get("action_id", "")),
        str(data.get("type", "")),
        str(data.get("platform", "")),
        str(data.get("status", "")),
        duration,
        str(summary or "")[:SUMMARY_CHARS],
    ]
