"""Google Sheets through gspread (sync, so every call runs in a worker thread).

gspread copies its URL constants at import, so the API root is redirected by a requests adapter
mounted on gspread's session (see `RedirectAdapter`), which also sets a timeout and awaits the
platform throttle before every request. gspread has no retries of its own (the plain HTTPClient);
google-auth's 401-refresh-and-retry is switched off (one retry layer: the queue's). Only the
Sheets v4 values/spreadsheets endpoints are used: no call here goes to the Drive API.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

import gspread
import requests
from google.auth import exceptions as google_exceptions
from google.auth.transport.requests import AuthorizedSession

from bot.config import Settings
from executors import sheet_values
from executors.base import (
    JSON,
    CheckResult,
    ExecutorError,
    NotReversible,
    Operation,
    PermanentError,
    RetryableError,
    Throttle,
    blocking_throttle,
    require,
    run_blocking,
)
from executors.google_auth import (
    SHEETS_SCOPES,
    TOKEN_TIMEOUT,
    RedirectAdapter,
    ServiceAccountCredentials,
    TokenSource,
    google_error,
    load_credentials,
    refresh_error,
)

PLATFORM = "sheets"
T = TypeVar("T")
_SPREADSHEET_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class SheetsExecutor:
    platform = PLATFORM

    def __init__(
        self,
        settings: Settings,
        credentials: ServiceAccountCredentials,
        throttle: Throttle,
        *,
        timeout: float = 30.0,
    ) -> None:
        self._settings = settings
        self._credentials = credentials
        self._throttle = throttle
        self._timeout = timeout
        # Token requests: their own session, bounded like every other call.
        self._tokens = TokenSource(
            credentials, platform=PLATFORM, timeout=min(timeout, TOKEN_TIMEOUT)
        )
        self._gspread: gspread.Client | None = None

    @property
    def operations(self) -> Mapping[str, Operation]:
        return {
            "append_row": self.append_row,
            "update_cell": self.update_cell,
            "batch_update": self.batch_update,
            "log_action": self.log_action,
        }

    def reversible(self, action_type: str) -> bool:
        # The action log is a record of what happened: a rollback does not erase it.
        return action_type in ("append_row", "update_cell", "batch_update")

    # -- operations ---------------------------------------------------------------------------

    async def append_row(self, data: JSON) -> JSON:
        require(data, "values", platform=PLATFORM)
        sheet_id = self._spreadsheet(data)
        rows = sheet_values.rows(data["values"])
        target = sheet_values.a1(data.get("range") or "A1", data.get("sheet"))
        option = str(data.get("value_input_option", "USER_ENTERED"))
        if option not in ("RAW", "USER_ENTERED"):
            raise PermanentError(
                "value_input_option: expected RAW or USER_ENTERED", platform=PLATFORM, status=400
            )
        answer = await self._run(
            lambda c: c.http_client.values_append(
                sheet_id, target, {"valueInputOption": option}, {"values": rows}
            )
        )
        updates = answer.get("updates", {})
        return {
            "spreadsheet_id": sheet_id,
            "updated_range": updates.get("updatedRange"),
            "updated_rows": updates.get("updatedRows", len(rows)),
        }

    async def update_cell(self, data: JSON) -> JSON:
        require(data, "range", platform=PLATFORM)
        if "value" not in data:
            raise PermanentError("missing parameter(s): value", platform=PLATFORM, status=400)
        sheet_id = self._spreadsheet(data)
        target = sheet_values.a1(str(data["range"]), data.get("sheet"))
        old = await self._run(
            lambda c: c.http_client.values_get(sheet_id, target, {"valueRenderOption": "FORMULA"})
        )
        previous = sheet_values.first_cell(old.get("values"))
        answer = await self._run(
            lambda c: c.http_client.values_update(
                sheet_id,
                target,
                {"valueInputOption": "USER_ENTERED"},
                {"values": [[data["value"]]]},
            )
        )
        return {
            "spreadsheet_id": sheet_id,
            "updated_range": answer.get("updatedRange"),
            "previous_value": previous,
            "value": data["value"],
        }

    async def batch_update(self, data: JSON) -> JSON:
        """Several ranges in one request; the previous values are read first for the undo."""
        require(data, "updates", platform=PLATFORM)
        sheet_id = self._spreadsheet(data)
        updates = sheet_values.updates(data["updates"], data.get("sheet"))
        ranges = [u["range"] for u in updates]
        old = await self._run(
            lambda c: c.http_client.values_batch_get(
                sheet_id, ranges, {"valueRenderOption": "FORMULA"}
            )
        )
        previous = [
            {
                "range": got.get("range", want["range"]),
                "values": sheet_values.padded(got.get("values", []), want["values"]),
            }
            for got, want in zip(old.get("valueRanges", []), updates, strict=False)
        ]
        body = {"valueInputOption": "USER_ENTERED", "data": updates}
        answer = await self._run(lambda c: c.http_client.values_batch_update(sheet_id, body))
        ranges_done = [r.get("updatedRange") for r in answer.get("responses", [])]
        return {
            "spreadsheet_id": sheet_id,
            "updated_ranges": ranges_done,
            "previous": previous,
            "updated_cells": answer.get("totalUpdatedCells"),
        }

    async def log_action(self, data: JSON) -> JSON:
        sheet_id = self._spreadsheet(data)
        row = sheet_values.log_row(data)
        target = sheet_values.a1("A1", self._settings.sheets_log_sheet)
        # RAW: logged text (an error message starting with '=') must never become a formula.
        answer = await self._run(
            lambda c: c.http_client.values_append(
                sheet_id, target, {"valueInputOption": "RAW"}, {"values": [row]}
            )
        )
        updates = answer.get("updates", {})
        return {
            "spreadsheet_id": sheet_id,
            "updated_range": updates.get("updatedRange"),
            "updated_rows": 1,
        }

    # -- compensation and health --------------------------------------------------------------

    async def compensate(self, action_type: str, data: JSON, result: JSON) -> JSON:
        sheet_id = str(result["spreadsheet_id"])
        if action_type == "append_row":
            # Clear, not delete: deleting would shift rows appended after this one.
            target = str(result["updated_range"])
            await self._run(lambda c: c.http_client.values_clear(sheet_id, target))
            return {"cleared_range": target}
        if action_type == "update_cell":
            target = str(result["updated_range"])
            await self._run(
                lambda c: c.http_client.values_update(
                    sheet_id,
                    target,
                    {"valueInputOption": "USER_ENTERED"},
                    {"values": [[result.get("previous_value", "")]]},
                )
            )
            return {"restored_range": target, "value": result.get("previous_value", "")}
        if action_type == "batch_update":
            body = {"valueInputOption": "USER_ENTERED", "data": result["previous"]}
            await self._run(lambda c: c.http_client.values_batch_update(sheet_id, body))
            return {"restored_ranges": [p["range"] for p in result["previous"]]}
        raise NotReversible(f"{action_type} is not reversible", platform=PLATFORM)

    async def check(self) -> CheckResult:
        started = time.perf_counter()
        sheet_id = self._settings.sheets_spreadsheet_id
        try:
            if sheet_id:
                meta = await self._run(
                    lambda c: c.http_client.fetch_sheet_metadata(
                        sheet_id, {"includeGridData": "false", "fields": "spreadsheetId,properties"}
                    )
                )
                detail = f"spreadsheet {meta.get('properties', {}).get('title', sheet_id)!r}"
            else:
                await self._tokens.token()
                detail = "credentials ok; no SHEETS_SPREADSHEET_ID to probe"
        except ExecutorError as exc:
            return CheckResult(PLATFORM, False, f"{exc.kind}: {exc.message}")
        return CheckResult(PLATFORM, True, detail, (time.perf_counter() - started) * 1000)

    async def aclose(self) -> None:
        if self._gspread is not None:
            await asyncio.to_thread(self._gspread.http_client.session.close)
            self._gspread = None
        await asyncio.to_thread(self._tokens.close)

    # -- plumbing -----------------------------------------------------------------------------

    def _spreadsheet(self, data: JSON) -> str:
        sheet_id = data.get("spreadsheet_id") or self._settings.sheets_spreadsheet_id
        if not sheet_id:
            raise PermanentError(
                "missing parameter(s): spreadsheet_id (or set SHEETS_SPREADSHEET_ID)",
                platform=PLATFORM,
                status=400,
            )
        if not _SPREADSHEET_ID.match(str(sheet_id)):
            # gspread puts the id in the URL path unquoted: refuse anything but an id's alphabet.
            raise PermanentError(
                f"spreadsheet_id: {str(sheet_id)[:60]!r} is not a spreadsheet id",
                platform=PLATFORM,
                status=400,
            )
        return str(sheet_id)

    async def _run(self, call: Callable[[gspread.Client], T]) -> T:
        client = self._client()
        # Refresh here, one at a time, so concurrent calls do not each fetch a token in their
        # thread (google-auth does not serialise refreshes).
        await self._tokens.token()
        try:
            return await run_blocking(None, partial(call, client))
        except gspread.exceptions.APIError as exc:
            if exc.response.status_code == 401:
                self._tokens.invalidate()  # a fresh token on the next attempt
            raise google_error(
                exc.response.status_code, _payload(exc), exc.response.headers, PLATFORM
            ) from None
        except requests.RequestException as exc:
            raise RetryableError(f"sheets: {type(exc).__name__}", platform=PLATFORM) from None
        except google_exceptions.GoogleAuthError as exc:
            raise refresh_error(exc, PLATFORM) from None

    def _client(self) -> gspread.Client:
        """Built on first use, inside the loop: the throttle bridge needs the running loop."""
        if self._gspread is None:
            session = AuthorizedSession(  # type: ignore[no-untyped-call]
                self._credentials,
                refresh_status_codes=(),
                auth_request=self._tokens.request,
            )
            wait = blocking_throttle(self._throttle, asyncio.get_running_loop())
            adapter = RedirectAdapter(
                {
                    "https://sheets.googleapis.com": self._settings.google_sheets_api_url,
                    "https://www.googleapis.com": self._settings.google_drive_api_url,
                },
                timeout=self._timeout,
                before_send=wait,
            )
            adapter.mount_on(session)
            client = gspread.Client(auth=None, session=session)  # type: ignore[arg-type]
            client.set_timeout(self._timeout)
            self._gspread = client
        return self._gspread


def _payload(exc: gspread.exceptions.APIError) -> Any:
    return {"error": dict(exc.error)}


def build(settings: Settings, throttle: Throttle) -> SheetsExecutor:
    credentials = load_credentials(settings.google_service_account_key, SHEETS_SCOPES)
    return SheetsExecutor(settings, credentials, throttle)
