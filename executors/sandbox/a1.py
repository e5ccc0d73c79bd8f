"""A1 notation and cell grids for the Sheets stand-in (pure functions, no I/O).

A grid is a list of rows, each a list of cell values; "" is an empty cell. A `Box` is 0-based and
inclusive; an end of None is unbounded (`A:C`, `A2:C`, a sheet name alone).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

Grid = list[list[Any]]
_PART = re.compile(r"^([A-Za-z]*)(\d*)$")
_PLAIN_TITLE = re.compile(r"^[A-Za-z0-9_]+$")


class RangeError(ValueError):
    """The range cannot be parsed (Google answers 400 "Unable to parse range")."""


@dataclass(frozen=True)
class Box:
    r0: int
    c0: int
    r1: int | None
    c1: int | None


def split_sheet(text: str, titles: list[str]) -> tuple[str, str]:
    """(sheet title, cell part). No sheet named: the first sheet, as Google does."""
    if "!" in text:
        sheet, _, cells = text.rpartition("!")
        if sheet.startswith("'") and sheet.endswith("'") and len(sheet) >= 2:
            sheet = sheet[1:-1].replace("''", "'")
    elif text in titles:
        sheet, cells = text, ""
    else:
        sheet, cells = (titles[0] if titles else ""), text
    if sheet not in titles:
        raise RangeError(f"Unable to parse range: {text}")
    return sheet, cells


def parse_cells(cells: str) -> Box:
    if not cells:
        return Box(0, 0, None, None)
    start, _, end = cells.partition(":")
    r0, c0 = _part(start, cells)
    if not end:
        return Box(r0 or 0, c0 or 0, r0 or 0, c0 or 0)
    r1, c1 = _part(end, cells)
    return Box(r0 or 0, c0 or 0, r1, c1)


def _part(text: str, whole: str) -> tuple[int | None, int | None]:
    match = _PART.match(text)
    if not match or not text:
        raise RangeError(f"Unable to parse range: {whole}")
    letters, digits = match.groups()
    column = _column_index(letters) if letters else None
    row = int(digits) - 1 if digits else None
    if row is not None and row < 0:
        raise RangeError(f"Unable to parse range: {whole}")
    return row, column


def _column_index(letters: str) -> int:
    index = 0
    for char in letters.upper():
        index = index * 26 + (ord(char) - 64)
    return index - 1


def column_letters(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def a1(sheet: str, box: Box) -> str:
    """`Sheet1!A1:C3`, `Sheet1!B2`, `'My sheet'!A1`."""
    title = sheet if _PLAIN_TITLE.match(sheet) else "'" + sheet.replace("'", "''") + "'"
    start = f"{column_letters(box.c0)}{box.r0 + 1}"
    if box.r1 == box.r0 and box.c1 == box.c0:
        return f"{title}!{start}"
    end_col = column_letters(box.c1) if box.c1 is not None else ""
    end_row = str(box.r1 + 1) if box.r1 is not None else ""
    return f"{title}!{start}:{end_col}{end_row}"


def read(grid: Grid, box: Box) -> Grid:
    """The values in `box`, trailing empty cells and rows dropped (as the API answers)."""
    last_row = len(grid) - 1 if box.r1 is None else min(box.r1, len(grid) - 1)
    rows: Grid = []
    for r in range(box.r0, last_row + 1):
        row = grid[r]
        end = len(row) - 1 if box.c1 is None else min(box.c1, len(row) - 1)
        cells = row[box.c0 : end + 1]
        while cells and cells[-1] in ("", None):
            cells.pop()
        rows.append(cells)
    while rows and not rows[-1]:
        rows.pop()
    return rows


def write(grid: Grid, r0: int, c0: int, values: Grid) -> Box:
    """Write `values` at (r0, c0), growing the grid; returns the box written."""
    width = max((len(row) for row in values), default=0)
    while len(grid) < r0 + len(values):
        grid.append([])
    for offset, row in enumerate(values):
        target = grid[r0 + offset]
        while len(target) < c0 + len(row):
            target.append("")
        for col, value in enumerate(row):
            target[c0 + col] = "" if value is None else value
    return Box(r0, c0, r0 + max(len(values), 1) - 1, c0 + max(width, 1) - 1)


def clear(grid: Grid, box: Box) -> None:
    last_row = len(grid) - 1 if box.r1 is None else min(box.r1, len(grid) - 1)
    for r in range(box.r0, last_row + 1):
        row = grid[r]
        end = len(row) - 1 if box.c1 is None else min(box.c1, len(row) - 1)
        for c in range(box.c0, end + 1):
            row[c] = ""


def last_filled_row(grid: Grid) -> int:
    """Index of the last row holding a value (-1 when the grid is empty)."""
    for r in range(len(grid) - 1, -1, -1):
        if any(value not in ("", None) for value in grid[r]):
            return r
    return -1


def formatted(values: Grid) -> Grid:
    """FORMATTED_VALUE rendering: every value as text, as the API returns by default."""
    return [[_text(value) for value in row] for row in values]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
