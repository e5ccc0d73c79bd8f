"""Notion executor against the Notion stand-in: real notion-client, real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.config import load_settings
from executors.base import JSON, PermanentError, PlatformDisabled, RateLimited
from executors.notion import NotionExecutor, build
from executors.sandbox.notion import (
    DATA_SOURCE_ID,
    DATABASE_ID,
    TOKEN,
    NotionStandIn,
    plain_text,
)
from tests.integration.contract import (
    SLOW_TIMEOUT,
    ContractSuite,
    CountingThrottle,
    Op,
    Platform,
    no_blocking,
    pytest_generate_tests,
)

__all__ = ["no_blocking", "pytest_generate_tests"]
pytestmark = pytest.mark.usefixtures("no_blocking")


def _prop(page: JSON, name: str) -> Any:
    value = page["properties"][name]
    inner = value[value["type"]]
    if value["type"] in ("title", "rich_text"):
        return plain_text(value)
    if isinstance(inner, dict) and "name" in inner:
        return inner["name"]
    return inner


def _page(standin: NotionStandIn, page_id: str) -> JSON:
    page: JSON = standin.state["pages"][page_id]
    return page


def _create_setup(standin: NotionStandIn) -> JSON:
    return {
        "title": "Review Q4 budget",
        "status": "To Do",
        "due_date": "2025-10-31",
        "properties": {"priority": {"select": {"name": "High"}}},
        "idempotency_key": "invoice-2025-10-001",
    }


def _create_done(standin: NotionStandIn, data: JSON, result: JSON) -> None:
    [page] = standin.pages()
    assert page["id"] == result["id"] and page["url"] == result["url"]
    assert _prop(page, "Name") == "Review Q4 budget"
    assert (_prop(page, "Status"), _prop(page, "Priority")) == ("To Do", "High")
    assert _prop(page, "Due") == {"start": "2025-10-31"}
    assert _prop(page, "Opsbot Key") == "invoice-2025-10-001"


def _create_undone(standin: NotionStandIn, data: JSON, result: JSON) -> None:
    assert standin.pages() == []
    assert _page(standin, result["id"])["in_trash"] is True


def _update_setup(standin: NotionStandIn) -> JSON:
    page = standin.add_page("Fix login bug", Status={"status": {"name": "To Do"}})
    return {"page_id": page["id"], "status": "Done", "assignees": ["user-1"], "due": "2025-11-01"}


def _update_done(standin: NotionStandIn, data: JSON, result: JSON) -> None:
    page = _page(standin, data["page_id"])
    assert _prop(page, "Status") == "Done"
    assert [p["id"] for p in _prop(page, "Assignee")] == ["user-1"]
    assert _prop(page, "Due") == {"start": "2025-11-01"}
    assert result["previous"]["Status"] == {"status": {"name": "To Do"}}


def _update_undone(standin: NotionStandIn, data: JSON, result: JSON) -> None:
    page = _page(standin, data["page_id"])
    assert (_prop(page, "Status"), _prop(page, "Assignee"), _prop(page, "Due")) == (
        "To Do",
        [],
        None,
    )
    assert _prop(page, "Name") == "Fix login bug"


def _comment_setup(standin: NotionStandIn) -> JSON:
    return {"page_id": standin.add_page("Meeting")["id"], "text": "Agenda attached"}


def _comment_done(standin: NotionStandIn, data: JSON, result: JSON) -> None:
    [comment] = standin.state["comments"].values()
    assert comment["id"] == result["id"] and comment["parent"]["page_id"] == data["page_id"]
    assert comment["rich_text"][0]["plain_text"] == "Agenda attached"


def _comment_undone(standin: NotionStandIn, data: JSON, result: JSON) -> None:
    assert standin.state["comments"] == {}


class TestNotionContract(ContractSuite):
    CASES = [
        Op("create_task", _create_setup, _create_done, _create_undone, required=("title",)),
        Op("update_task", _update_setup, _update_done, _update_undone, required=("page_id",)),
        Op(
            "add_comment",
            _comment_setup,
            _comment_done,
            _comment_undone,
            result_keys=("id", "page_id"),
            required=("page_id", "text"),
        ),
    ]

    @pytest.fixture
    async def platform(self) -> AsyncIterator[Platform]:
        throttle = CountingThrottle()
        async with NotionStandIn() as standin:
            executor = _executor(standin, throttle)
            yield Platform(executor, standin, throttle)
            await executor.aclose()


def _executor(standin: NotionStandIn, throttle: CountingThrottle) -> NotionExecutor:
    return NotionExecutor(
        token=TOKEN,
        base_url=standin.base_url,
        throttle=throttle,
        database_id=DATABASE_ID,
        timeout=SLOW_TIMEOUT,
    )


@pytest.fixture
async def notion() -> AsyncIterator[tuple[NotionExecutor, NotionStandIn]]:
    async with NotionStandIn() as standin:
        executor = _executor(standin, CountingThrottle())
        yield executor, standin
        await executor.aclose()


async def test_same_idempotency_key_returns_the_existing_page(
    notion: tuple[NotionExecutor, NotionStandIn],
) -> None:
    executor, standin = notion
    data = {"title": "Pay invoice", "idempotency_key": "inv-7"}
    first = await executor.create_task(data)
    again = await executor.create_task({**data, "title": "Pay invoice (retry)"})
    assert (again["id"], again["duplicate"], again["matched"]) == (
        first["id"],
        True,
        "idempotency_key",
    )
    assert len(standin.pages()) == 1
    # The same action's page: undoing the duplicate answer archives it.
    await executor.compensate("create_task", data, again)
    assert standin.pages() == []


async def test_same_title_matches_only_open_pages_created_by_opsbot(
    notion: tuple[NotionExecutor, NotionStandIn],
) -> None:
    executor, standin = notion
    standin.add_page("Weekly sync")  # made by a person: no opsbot key
    created = await executor.create_task({"title": "Weekly sync"})  # no key: marked as opsbot's
    assert created["duplicate"] is False
    again = await executor.create_task({"title": "Weekly sync", "idempotency_key": "b"})
    assert (again["id"], again["matched"]) == (created["id"], "title")
    # Another action's page: compensation leaves it alone.
    await executor.compensate("create_task", {}, again)
    assert not _page(standin, created["id"])["in_trash"]
    await executor.update_task({"page_id": created["id"], "status": "Done"})
    fresh = await executor.create_task({"title": "Weekly sync", "idempotency_key": "c"})
    assert fresh["duplicate"] is False and len(standin.pages()) == 3


async def test_without_key_property_same_title_matches_pages_by_the_bot(
    notion: tuple[NotionExecutor, NotionStandIn],
) -> None:
    executor, standin = notion
    del standin.state["data_sources"][DATA_SOURCE_ID]["properties"]["Opsbot Key"]
    standin.add_page("Standup")  # a person's page
    created = await executor.create_task({"title": "Standup"})
    again = await executor.create_task({"title": "Standup"})
    assert (created["duplicate"], again["duplicate"], again["id"]) == (False, True, created["id"])
    assert len(standin.pages()) == 2


async def test_sdk_retries_are_off(notion: tuple[NotionExecutor, NotionStandIn]) -> None:
    executor, standin = notion
    standin.faults.set("429", retry_after=1)
    with pytest.raises(RateLimited):
        await executor.create_task({"title": "x"})
    assert len(standin.stats.requests) == 1


async def test_unknown_property_and_missing_database_are_permanent(
    notion: tuple[NotionExecutor, NotionStandIn],
) -> None:
    executor, standin = notion
    with pytest.raises(PermanentError, match="Colour"):
        await executor.create_task({"title": "x", "properties": {"Colour": "red"}})
    with pytest.raises(PermanentError, match="nothing to change"):
        await executor.update_task({"page_id": "p"})
    no_db = NotionExecutor(token=TOKEN, base_url=standin.base_url, throttle=CountingThrottle())
    with pytest.raises(PermanentError, match="database_id"):
        await no_db.create_task({"title": "x"})
    await no_db.aclose()
    assert standin.pages() == []


async def test_bad_token_is_auth_error_without_the_token(
    notion: tuple[NotionExecutor, NotionStandIn],
) -> None:
    _, standin = notion
    wrong = NotionExecutor(
        token="secret_wrong", base_url=standin.base_url, throttle=CountingThrottle()
    )
    result = await wrong.check()
    await wrong.aclose()
    assert not result.ok and "AuthError" in result.detail and "secret_wrong" not in result.detail


async def test_build_without_key_disables_platform() -> None:
    with pytest.raises(PlatformDisabled, match="NOTION_API_KEY is not set"):
        build(load_settings(_env_file=None, notion_api_key=None), CountingThrottle())


async def test_result_url_opens_in_the_standin(
    notion: tuple[NotionExecutor, NotionStandIn],
) -> None:
    executor, _ = notion
    result = await executor.create_task({"title": "Open me"})
    async with aiohttp.ClientSession() as http, http.get(result["url"]) as response:
        assert (response.status, (await response.json())["id"]) == (200, result["id"])


async def test_concurrent_first_actions_look_the_schema_up_once(
    notion: tuple[NotionExecutor, NotionStandIn],
) -> None:
    executor, standin = notion
    await asyncio.gather(*(executor.create_task({"title": f"task {i}"}) for i in range(3)))
    assert len(standin.stats.calls("GET", "/v1/databases/")) == 1
    assert len(standin.stats.calls("GET", "/v1/data_sources/")) == 1
    assert len(standin.pages()) == 3
