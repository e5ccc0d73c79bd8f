"""Sheets executor against the Sheets stand-in: real gspread + google-auth, real HTTP on 127.0.0.1.

gspread's production URLs are redirected by the executor's adapter; the token comes from the
Google token stand-in named by the generated key's token_uri.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.config import Settings, load_settings
from bot.flow.ratelimit import SlidingWindowLimiter
from executors.base import (
    JSON,
    AuthError,
    PermanentError,
    PlatformDisabled,
    RateLimited,
    RetryableError,
)
from executors.google_auth import SHEETS_SCOPES, google_error, load_credentials
from executors.sandbox.google import GoogleTokenStandIn, make_service_account_key
from executors.sandbox.sheets import LOG_HEADER, SANDBOX_SPREADSHEET_ID, SheetsStandIn
from executors.sheets import SheetsExecutor, build
from tests.integration.contract import (
    SLOW_TIMEOUT,
    ContractSuite,
    CountingThrottle,
    Op,
    Platform,
    pytest_generate_tests,
)

__all__ = ["pytest_generate_tests"]


@functools.cache
def _shared_key() -> JSON:
    """One RSA key for the module: generating one takes a few hundred milliseconds."""
    return make_service_account_key("http://127.0.0.1:9/token")


def _key(tokens: GoogleTokenStandIn) -> JSON:
    return tokens.add_key(_shared_key())


def _settings(tokens: GoogleTokenStandIn, sheets: SheetsStandIn) -> Settings:
    return load_settings(
        _env_file=None,
        google_service_account_key=json.dumps(_key(tokens)),
        google_sheets_api_url=sheets.base_url,
        sheets_spreadsheet_id=SANDBOX_SPREADSHEET_ID,
        sheets_log_sheet="Actions",
    )


def _grid(sheets: SheetsStandIn, sheet: str = "Sheet1") -> list[list[Any]]:
    return sheets.state["spreadsheets"][SANDBOX_SPREADSHEET_ID]["grids"][sheet]  # type: ignore[no-any-return]


def _seed(sheets: SheetsStandIn, rows: list[list[Any]]) -> None:
    _grid(sheets)[:] = [list(row) for row in rows]


def _setup_append(sheets: SheetsStandIn) -> JSON:
    _seed(sheets, [["head"]])
    return {"values": [["a", 1], ["b", 2]], "sheet": "Sheet1"}


def _appended(sheets: SheetsStandIn, data: JSON, result: JSON) -> None:
    assert sheets.rows("Sheet1") == [["head"], ["a", 1], ["b", 2]]
    assert result["updated_range"] == "Sheet1!A2:B3"


def _append_undone(sheets: SheetsStandIn, data: JSON, result: JSON) -> None:
    assert sheets.rows("Sheet1") == [["head"]]


def _setup_update(sheets: SheetsStandIn) -> JSON:
    _seed(sheets, [["", ""], ["", "=SUM(1,2)"]])
    return {"range": "B2", "sheet": "Sheet1", "value": "new"}


def _updated(sheets: SheetsStandIn, data: JSON, result: JSON) -> None:
    assert sheets.rows("Sheet1") == [[], ["", "new"]]
    assert result["previous_value"] == "=SUM(1,2)"


def _update_undone(sheets: SheetsStandIn, data: JSON, result: JSON) -> None:
    assert sheets.rows("Sheet1") == [[], ["", "=SUM(1,2)"]]


def _setup_batch(sheets: SheetsStandIn) -> JSON:
    _seed(sheets, [["x"]])
    return {
        "updates": [
            {"range": "Sheet1!A1:B1", "values": [["p", "q"]]},
            {"range": "C3", "values": "z"},
        ]
    }


def _batched(sheets: SheetsStandIn, data: JSON, result: JSON) -> None:
    assert sheets.rows("Sheet1") == [["p", "q"], [], ["", "", "z"]]
    assert result["updated_ranges"] == ["Sheet1!A1:B1", "Sheet1!C3"]


def _batch_undone(sheets: SheetsStandIn, data: JSON, result: JSON) -> None:
    assert sheets.rows("Sheet1") == [["x"]]


def _logged(sheets: SheetsStandIn, data: JSON, result: JSON) -> None:
    header, row = sheets.rows("Actions")
    assert header == LOG_HEADER
    assert row[1:6] == ["act-1", "create_task", "notion", "succeeded", 12]
    assert json.loads(row[6]) == {"page_id": "p1"}
    assert result["updated_range"] == "Actions!A2:G2"


CASES = [
    Op(
        "append_row",
        setup=_setup_append,
        done=_appended,
        undone=_append_undone,
        result_keys=("spreadsheet_id", "updated_range"),
        required=("values",),
    ),
    Op(
        "update_cell",
        setup=_setup_update,
        done=_updated,
        undone=_update_undone,
        result_keys=("spreadsheet_id", "updated_range"),
        required=("range", "value"),
    ),
    Op(
        "batch_update",
        setup=_setup_batch,
        done=_batched,
        undone=_batch_undone,
        result_keys=("spreadsheet_id", "updated_ranges"),
        required=("updates",),
    ),
    Op(
        "log_action",
        setup=lambda s: {
            "action_id": "act-1",
            "type": "create_task",
            "platform": "notion",
            "status": "succeeded",
            "duration_ms": 12,
            "result": {"page_id": "p1"},
        },
        done=_logged,
        undone=None,
        result_keys=("spreadsheet_id", "updated_range"),
    ),
]


@pytest.fixture
async def tokens() -> AsyncIterator[GoogleTokenStandIn]:
    server = GoogleTokenStandIn()
    async with server:
        yield server


@pytest.fixture
async def sheets(tokens: GoogleTokenStandIn) -> AsyncIterator[SheetsStandIn]:
    server = SheetsStandIn(tokens)
    async with server:
        yield server


def _executor(settings: Settings, throttle: CountingThrottle) -> SheetsExecutor:
    credentials = load_credentials(settings.google_service_account_key, SHEETS_SCOPES)
    return SheetsExecutor(settings, credentials, throttle, timeout=SLOW_TIMEOUT)


class TestSheetsContract(ContractSuite):
    CASES = CASES

    @pytest.fixture
    async def platform(
        self, tokens: GoogleTokenStandIn, sheets: SheetsStandIn
    ) -> AsyncIterator[Platform]:
        throttle = CountingThrottle()
        executor = _executor(_settings(tokens, sheets), throttle)
        yield Platform(executor, sheets, throttle)
        await executor.aclose()


async def test_single_row_into_a_named_sheet_with_quotes_and_a_formula_in_the_log(
    tokens: GoogleTokenStandIn, sheets: SheetsStandIn
) -> None:
    sheets.add_spreadsheet("other", "Other", ["Team's plan"])
    executor = _executor(_settings(tokens, sheets), CountingThrottle())
    try:
        result = await executor.operations["append_row"](
            {"values": ["one", "two"], "sheet": "Team's plan", "spreadsheet_id": "other"}
        )
        logged = await executor.operations["log_action"]({"action_id": "x", "summary": "=1+1"})
    finally:
        await executor.aclose()
    assert result["updated_range"] == "'Team''s plan'!A1:B1"
    assert sheets.rows("Team's plan", "other") == [["one", "two"]]
    assert sheets.rows("Actions")[1][6] == "=1+1"
    # The log goes in RAW: user text never becomes a formula.
    [call] = sheets.stats.calls("POST", "/v4/spreadsheets/sandbox-spreadsheet/values/")
    assert call.query["valueInputOption"] == "RAW"
    assert logged["updated_rows"] == 1


async def test_token_is_fetched_once_and_no_request_leaves_for_google(
    tokens: GoogleTokenStandIn, sheets: SheetsStandIn
) -> None:
    executor = _executor(_settings(tokens, sheets), CountingThrottle())
    try:
        assert (await executor.check()).ok
        await executor.operations["append_row"]({"values": ["a"]})
    finally:
        await executor.aclose()
    assert len(tokens.stats.calls("POST", "/token")) == 1
    assert [r.method for r in sheets.stats.requests] == ["GET", "POST"]


async def test_unknown_sheet_is_permanent_and_missing_spreadsheet_is_refused(
    tokens: GoogleTokenStandIn, sheets: SheetsStandIn
) -> None:
    settings = _settings(tokens, sheets)
    executor = _executor(settings, CountingThrottle())
    bare = _executor(
        settings.model_copy(update={"sheets_spreadsheet_id": None}), CountingThrottle()
    )
    try:
        with pytest.raises(PermanentError, match="Unable to parse range"):
            await executor.operations["append_row"]({"values": ["a"], "sheet": "Nope"})
        with pytest.raises(PermanentError, match="spreadsheet_id"):
            await bare.operations["append_row"]({"values": ["a"]})
    finally:
        await executor.aclose()
        await bare.aclose()
    assert len(sheets.stats.requests) == 1


def test_build_disables_the_platform_without_a_key() -> None:
    settings = load_settings(_env_file=None, google_service_account_key=None)
    with pytest.raises(PlatformDisabled, match="GOOGLE_SERVICE_ACCOUNT_KEY is not set"):
        build(settings, CountingThrottle())


async def test_401_forgets_the_token_and_the_next_attempt_gets_a_new_one(
    tokens: GoogleTokenStandIn, sheets: SheetsStandIn
) -> None:
    executor = _executor(_settings(tokens, sheets), CountingThrottle())
    try:
        await executor.operations["append_row"]({"values": ["one"]})
        tokens.revoke_all()
        with pytest.raises(AuthError):
            await executor.operations["append_row"]({"values": ["lost"]})
        await executor.operations["append_row"]({"values": ["two"]})
    finally:
        await executor.aclose()
    assert len(tokens.stats.calls("POST", "/token")) == 2
    assert sheets.rows("Sheet1") == [["one"], ["two"]]


async def test_a_failing_token_endpoint_is_retryable_and_not_retried_by_google_auth(
    tokens: GoogleTokenStandIn, sheets: SheetsStandIn
) -> None:
    executor = _executor(_settings(tokens, sheets), CountingThrottle())
    tokens.faults.set("503", count=1)
    try:
        with pytest.raises(RetryableError):
            await executor.operations["append_row"]({"values": ["a"]})
    finally:
        await executor.aclose()
    assert len(tokens.stats.calls("POST", "/token")) == 1
    assert sheets.stats.requests == []


@pytest.mark.parametrize(
    ("status", "payload", "headers", "error"),
    [
        (429, {}, {"Retry-After": "3"}, RateLimited),
        (403, {"error": {"status": "RESOURCE_EXHAUSTED"}}, {}, RateLimited),
        (403, {"error": {"errors": [{"reason": "userRateLimitExceeded"}]}}, {}, RateLimited),
        (403, {"error": {"status": "PERMISSION_DENIED"}}, {}, AuthError),
        (401, {}, {}, AuthError),
        (500, {}, {}, RetryableError),
        (404, {}, {}, PermanentError),
        (400, {"error": {"message": "Unable to parse range: X"}}, {}, PermanentError),
    ],
)
def test_google_errors_map_to_the_shared_types(
    status: int, payload: JSON, headers: dict[str, str], error: type[Exception]
) -> None:
    mapped = google_error(status, payload, headers, "sheets")
    assert type(mapped) is error
    assert mapped.platform == "sheets" and mapped.status == status
    if headers:
        assert getattr(mapped, "retry_after", None) == 3.0


async def test_concurrent_appends_through_the_limiter_never_exceed_the_stand_in_limit(
    tokens: GoogleTokenStandIn,
) -> None:
    # The throttle runs on the loop while gspread waits in its worker thread (blocking_throttle).
    server = SheetsStandIn(tokens, rate_limit=(4, 0.5))
    async with server:
        # The default margin: each request counts until its answer (bot.flow.ratelimit).
        limiter = SlidingWindowLimiter(4, 0.5)
        executor = _executor(_settings(tokens, server), CountingThrottle())
        executor._throttle = limiter.acquire
        try:
            await asyncio.gather(
                *(executor.operations["append_row"]({"values": [[i]]}) for i in range(10))
            )
        finally:
            await executor.aclose()
        assert server.stats.rate_limited == 0
        assert sorted(row[0] for row in server.rows("Sheet1")) == list(range(10))


async def test_a_call_given_up_while_waiting_for_the_limiter_sends_nothing(
    tokens: GoogleTokenStandIn,
) -> None:
    # gspread waits for its grant in a worker thread. If the attempt is cancelled meanwhile
    # (timeout, shutdown), the thread must not append once granted: the retry would append
    # the same row again.
    server = SheetsStandIn(tokens)
    async with server:
        limiter = SlidingWindowLimiter(1, 0.5)
        executor = _executor(_settings(tokens, server), CountingThrottle())
        executor._throttle = limiter.acquire
        try:
            await executor.operations["append_row"]({"values": [["first"]]})
            given_up = asyncio.create_task(executor.operations["append_row"]({"values": [["x"]]}))
            await asyncio.sleep(0.1)  # waiting for the grant, about 0.4 s away
            given_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await given_up
            await asyncio.sleep(0.7)  # past the grant
        finally:
            await executor.aclose()
        assert [row[0] for row in server.rows("Sheet1")] == ["first"]
