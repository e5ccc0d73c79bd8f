"""A local Google Sheets (v4 REST): spreadsheets, sheets and their cell grids.

Serves what gspread's HTTPClient calls: spreadsheets.get, values get/update (PUT), values:append,
values:clear, values:batchGet, values:batchUpdate, values:batchClear and spreadsheets:batchUpdate
(addSheet, deleteDimension), with Google's answer and error shapes. Ranges arrive percent-encoded
(gspread quotes them); aiohttp decodes the path. Bearer tokens must come from the
`GoogleTokenStandIn` given. A seeded spreadsheet (`SANDBOX_SPREADSHEET_ID`) has `Sheet1` and the
action log sheet `Actions` with its header row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from executors.sandbox import a1
from executors.sandbox.google import GoogleTokenStandIn, bearer, google_error
from executors.sandbox.standin import Handler, StandIn

SANDBOX_SPREADSHEET_ID = "sandbox-spreadsheet"
LOG_HEADER = ["time", "action_id", "type", "platform", "status", "duration_ms", "result"]
_INPUT_OPTIONS = ("RAW", "USER_ENTERED")
V4 = "/v4/spreadsheets"


class SheetsStandIn(StandIn):
    name = "sheets"

    def __init__(
        self,
        tokens: GoogleTokenStandIn,
        *,
        rate_limit: tuple[int, float] | None = None,
        state_file: str | Path | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(rate_limit=rate_limit, state_file=state_file, port=port)
        self.tokens = tokens

    def initial_state(self) -> dict[str, Any]:
        book = _spreadsheet("opsbot sandbox", ["Sheet1", "Actions"])
        book["grids"]["Actions"] = [list(LOG_HEADER)]
        return {"spreadsheets": {SANDBOX_SPREADSHEET_ID: book}}

    def routes(self, app: web.Application) -> None:
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/{sid}", self._get_spreadsheet),
            ("POST", "/{sid}", self._batch_update),  # "{id}:batchUpdate"
            ("GET", "/{sid}/values:batchGet", self._batch_get),
            ("POST", "/{sid}/values:batchUpdate", self._values_batch_update),
            ("POST", "/{sid}/values:batchClear", self._batch_clear),
            ("GET", "/{sid}/values/{range}", self._values_get),
            ("PUT", "/{sid}/values/{range}", self._values_update),
            ("POST", "/{sid}/values/{range}", self._values_post),  # ...:append, ...:clear
        ]
        for method, path, handler in table:
            app.router.add_route(method, V4 + path, _guarded(handler))

    def authorize(self, request: web.Request) -> bool:
        return self.tokens.valid(bearer(request))

    def error_response(
        self, status: int, message: str, retry_after: float | None = None
    ) -> web.StreamResponse:
        return google_error(status, message, retry_after)

    # -- reading and seeding state (tests, the sandbox page) ---------------------------------
    def rows(self, sheet: str, spreadsheet_id: str = SANDBOX_SPREADSHEET_ID) -> a1.Grid:
        grid = self.state["spreadsheets"][spreadsheet_id]["grids"][sheet]
        return a1.read(grid, a1.Box(0, 0, None, None))

    def add_spreadsheet(self, spreadsheet_id: str, title: str, sheets: list[str]) -> None:
        self.state["spreadsheets"][spreadsheet_id] = _spreadsheet(title, sheets)

    # -- handlers ----------------------------------------------------------------------------
    async def _get_spreadsheet(self, request: web.Request) -> web.Response:
        book = self._book(request)
        sid = request.match_info["sid"]
        sheets = [{"properties": self._sheet_properties(book, s)} for s in book["sheets"]]
        url = f"https://docs.google.com/spreadsheets/d/{sid}/edit"
        body = {"spreadsheetId": sid, "properties": book["properties"], "sheets": sheets}
        return web.json_response({**body, "spreadsheetUrl": url})

    async def _values_get(self, request: web.Request) -> web.Response:
        book = self._book(request)
        sheet, box = self._range(book, request.match_info["range"])
        values = a1.read(book["grids"][sheet], box)
        return web.json_response(_value_range(sheet, box, values, request.query))

    async def _batch_get(self, request: web.Request) -> web.Response:
        book = self._book(request)
        answers = []
        for text in request.query.getall("ranges", []):
            sheet, box = self._range(book, text)
            values = a1.read(book["grids"][sheet], box)
            answers.append(_value_range(sheet, box, values, request.query))
        sid = request.match_info["sid"]
        return web.json_response({"spreadsheetId": sid, "valueRanges": answers})

    async def _values_update(self, request: web.Request) -> web.Response:
        book = self._book(request)
        _input_option(request.query.get("valueInputOption"))
        body = await request.json()
        answer = self._write(book, request.match_info["range"], body.get("values", []))
        self.changed()
        return web.json_response({"spreadsheetId": request.match_info["sid"], **answer})

    async def _values_post(self, request: web.Request) -> web.Response:
        target = request.match_info["range"]
        book, sid = self._book(request), request.match_info["sid"]
        if target.endswith(":clear"):
            sheet, box = self._range(book, target[: -len(":clear")])
            a1.clear(book["grids"][sheet], box)
            self.changed()
            return web.json_response({"spreadsheetId": sid, "clearedRange": a1.a1(sheet, box)})
        if not target.endswith(":append"):
            raise _error(404, "Not found.")
        _input_option(request.query.get("valueInputOption"))
        body = await request.json()
        answer = self._append(book, target[: -len(":append")], body.get("values", []))
        self.changed()
        return web.json_response({"spreadsheetId": sid, **answer})

    async def _values_batch_update(self, request: web.Request) -> web.Response:
        book, sid = self._book(request), request.match_info["sid"]
        body = await request.json()
        _input_option(body.get("valueInputOption"))
        responses = [
            {"spreadsheetId": sid, **self._write(book, item["range"], item.get("values", []))}
            for item in body.get("data", [])
        ]
        self.changed()
        total = sum(r["updatedCells"] for r in responses)
        return web.json_response(
            {"spreadsheetId": sid, "totalUpdatedCells": total, "responses": responses}
        )

    async def _batch_clear(self, request: web.Request) -> web.Response:
        book, sid = self._book(request), request.match_info["sid"]
        body = await request.json()
        cleared = []
        for text in body.get("ranges", []):
            sheet, box = self._range(book, text)
            a1.clear(book["grids"][sheet], box)
            cleared.append(a1.a1(sheet, box))
        self.changed()
        return web.json_response({"spreadsheetId": sid, "clearedRanges": cleared})

    async def _batch_update(self, request: web.Request) -> web.Response:
        sid, _, method = request.match_info["sid"].partition(":")
        if method != "batchUpdate":
            raise _error(404, "Not found.")
        book = self._book(request, sid)
        body = await request.json()
        replies = [self._structural(book, item) for item in body.get("requests", [])]
        self.changed()
        return web.json_response({"spreadsheetId": sid, "replies": replies})

    # -- helpers -----------------------------------------------------------------------------
    def _book(self, request: web.Request, sid: str | None = None) -> dict[str, Any]:
        book = self.state["spreadsheets"].get(sid or request.match_info["sid"])
        if book is None:
            raise _error(404, "Requested entity was not found.")
        return book  # type: ignore[no-any-return]

    def _range(self, book: dict[str, Any], text: str) -> tuple[str, a1.Box]:
        titles = [s["title"] for s in book["sheets"]]
        try:
            sheet, cells = a1.split_sheet(text, titles)
            return sheet, a1.parse_cells(cells)
        except a1.RangeError as exc:
            raise _error(400, str(exc)) from None

    def _write(self, book: dict[str, Any], text: str, values: a1.Grid) -> dict[str, Any]:
        sheet, box = self._range(book, text)
        written = a1.write(book["grids"][sheet], box.r0, box.c0, _grid(values))
        return _update_answer(sheet, written, values)

    def _append(self, book: dict[str, Any], text: str, values: a1.Grid) -> dict[str, Any]:
        """After the last row holding data, from the range's first column (the table's end)."""
        sheet, box = self._range(book, text)
        grid = book["grids"][sheet]
        last = a1.last_filled_row(grid)
        start = max(last + 1, box.r0)
        written = a1.write(grid, start, box.c0, _grid(values))
        table = a1.a1(sheet, a1.Box(box.r0, box.c0, max(last, box.r0), written.c1))
        return {"tableRange": table, "updates": _update_answer(sheet, written, values)}

    def _structural(self, book: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        if "addSheet" in item:
            title = item["addSheet"].get("properties", {}).get("title") or "Sheet"
            if any(s["title"] == title for s in book["sheets"]):
                raise _error(400, f'A sheet with the name "{title}" already exists.')
            sheet: dict[str, Any] = {
                "sheetId": max((s["sheetId"] for s in book["sheets"]), default=-1) + 1,
                "title": title,
            }
            book["sheets"].append(sheet)
            book["grids"][title] = []
            return {"addSheet": {"properties": self._sheet_properties(book, sheet)}}
        if "deleteDimension" in item:
            span = item["deleteDimension"]["range"]
            found = [s for s in book["sheets"] if s["sheetId"] == span.get("sheetId")]
            if not found or span.get("dimension", "ROWS") != "ROWS":
                raise _error(400, "deleteDimension: unknown sheetId or unsupported dimension")
            del book["grids"][found[0]["title"]][span.get("startIndex", 0) : span.get("endIndex")]
            return {}
        raise _error(400, f"the stand-in does not support {sorted(item)}")

    def _sheet_properties(self, book: dict[str, Any], sheet: dict[str, Any]) -> dict[str, Any]:
        rows = len(book["grids"][sheet["title"]])
        return {
            "sheetId": sheet["sheetId"],
            "title": sheet["title"],
            "index": book["sheets"].index(sheet),
            "sheetType": "GRID",
            "gridProperties": {"rowCount": max(1000, rows), "columnCount": 26},
        }


def _spreadsheet(title: str, sheets: list[str]) -> dict[str, Any]:
    return {
        "properties": {"title": title, "locale": "en_US", "timeZone": "Etc/UTC"},
        "sheets": [{"sheetId": index, "title": name} for index, name in enumerate(sheets)],
        "grids": {name: [] for name in sheets},
    }


def _value_range(sheet: str, box: a1.Box, values: a1.Grid, query: Any) -> dict[str, Any]:
    render = query.get("valueRenderOption", "FORMATTED_VALUE")
    answer: dict[str, Any] = {"range": a1.a1(sheet, box), "majorDimension": "ROWS"}
    if values:
        answer["values"] = a1.formatted(values) if render == "FORMATTED_VALUE" else values
    return answer


def _update_answer(sheet: str, written: a1.Box, values: a1.Grid) -> dict[str, Any]:
    rows = len(values)
    cols = max((len(row) for row in values), default=0)
    return {
        "updatedRange": a1.a1(sheet, written),
        "updatedRows": rows,
        "updatedColumns": cols,
        "updatedCells": sum(len(row) for row in values),
    }


def _grid(values: Any) -> a1.Grid:
    if not isinstance(values, list) or not all(isinstance(row, list) for row in values):
        raise _error(400, "Invalid values: expected a list of rows")
    return values


def _input_option(value: Any) -> None:
    if value not in _INPUT_OPTIONS:
        raise _error(400, "'valueInputOption' is required but not specified")


class _Refused(Exception):
    """Raised deep in a handler; `_guarded` turns it into a Google-shaped error answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> _Refused:
    return _Refused(status, message)


def _guarded(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _Refused as refused:
            return google_error(refused.status, refused.message)
        except ValueError:  # a body that is not JSON
            return google_error(400, "Invalid JSON payload received.")

    return guarded
