"""Trello executor against the Trello stand-in: real py-trello in threads, real HTTP on 127.0.0.1.

The whole module runs with asyncio debug on (`no_blocking`): py-trello is synchronous, so any
call that slipped onto the event loop would hold it and fail the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.config import load_settings
from executors.base import JSON, AuthError, PermanentError, PlatformDisabled
from executors.sandbox.trello import (
    API_KEY,
    BOARD_ID,
    DEFAULT_LIST_ID,
    LIST_IDS,
    TOKEN,
    TrelloStandIn,
)
from executors.trello import TrelloExecutor, build
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


def _card(standin: TrelloStandIn, card_id: str) -> JSON:
    card: JSON = standin.state["cards"][card_id]
    return card


def _labels(standin: TrelloStandIn, card_id: str) -> set[str]:
    return {standin.state["labels"][i]["name"] for i in _card(standin, card_id)["idLabels"]}


def _create_setup(standin: TrelloStandIn) -> JSON:
    return {"name": "Bug: login fails", "desc": "Steps to reproduce", "labels": ["bug", "High"]}


def _create_done(standin: TrelloStandIn, data: JSON, result: JSON) -> None:
    [card] = standin.cards()
    assert (card["id"], card["url"]) == (result["id"], result["url"])
    assert (card["name"], card["desc"], card["idList"]) == (
        data["name"],
        data["desc"],
        DEFAULT_LIST_ID,
    )
    assert _labels(standin, card["id"]) == {"bug", "High"}  # the missing label was created


def _create_undone(standin: TrelloStandIn, data: JSON, result: JSON) -> None:
    assert standin.state["cards"] == {}


def _seed(standin: TrelloStandIn, **data: str) -> JSON:
    card = standin.add_card("Invoice 42", desc="original", due="2025-10-31T00:00:00.000Z")
    return {"card_id": card["id"], **data}


def _moved(standin: TrelloStandIn, data: JSON, result: JSON) -> None:
    assert _card(standin, data["card_id"])["idList"] == LIST_IDS["Doing"]


def _moved_back(standin: TrelloStandIn, data: JSON, result: JSON) -> None:
    assert _card(standin, data["card_id"])["idList"] == DEFAULT_LIST_ID


def _labelled(standin: TrelloStandIn, data: JSON, result: JSON) -> None:
    assert _labels(standin, data["card_id"]) == {"urgent"}


def _unlabelled(standin: TrelloStandIn, data: JSON, result: JSON) -> None:
    assert _labels(standin, data["card_id"]) == set()


def _updated(standin: TrelloStandIn, data: JSON, result: JSON) -> None:
    card = _card(standin, data["card_id"])
    assert (card["name"], card["desc"], card["due"]) == ("Invoice 42 (paid)", "paid on time", None)


def _restored(standin: TrelloStandIn, data: JSON, result: JSON) -> None:
    card = _card(standin, data["card_id"])
    assert (card["name"], card["desc"]) == ("Invoice 42", "original")
    assert card["due"] == "2025-10-31T00:00:00.000Z"


def _attached(standin: TrelloStandIn, data: JSON, result: JSON) -> None:
    [attachment] = standin.attachments_of(data["card_id"])
    assert (attachment["id"], attachment["url"]) == (result["attachment_id"], data["url"])


def _detached(standin: TrelloStandIn, data: JSON, result: JSON) -> None:
    assert standin.attachments_of(data["card_id"]) == []


def _archived(standin: TrelloStandIn, data: JSON, result: JSON) -> None:
    assert _card(standin, data["card_id"])["closed"] is True


def _reopened(standin: TrelloStandIn, data: JSON, result: JSON) -> None:
    assert _card(standin, data["card_id"])["closed"] is False


class TestTrelloContract(ContractSuite):
    CASES = [
        Op("create_card", _create_setup, _create_done, _create_undone, required=("name",)),
        Op(
            "move_card",
            lambda s: _seed(s, list_id=LIST_IDS["Doing"]),
            _moved,
            _moved_back,
            required=("card_id", "list_id"),
        ),
        Op(
            "add_label",
            lambda s: _seed(s, label="urgent"),
            _labelled,
            _unlabelled,
            required=("card_id", "label"),
        ),
        Op(
            "update_card",
            lambda s: _seed(s, name="Invoice 42 (paid)", description="paid on time", due="null"),
            _updated,
            _restored,
            required=("card_id",),
        ),
        Op(
            "attach_file",
            lambda s: _seed(s, url="https://example.com/invoice-42.pdf", name="invoice.pdf"),
            _attached,
            _detached,
            result_keys=("id", "attachment_id"),
            required=("card_id", "url"),
        ),
        Op("archive_card", _seed, _archived, _reopened, required=("card_id",)),
    ]

    @pytest.fixture
    async def platform(self) -> AsyncIterator[Platform]:
        throttle = CountingThrottle()
        async with TrelloStandIn() as standin:
            executor = _executor(standin, throttle)
            yield Platform(executor, standin, throttle)
            await executor.aclose()


def _executor(standin: TrelloStandIn, throttle: CountingThrottle, **options: str) -> TrelloExecutor:
    defaults = {"api_key": API_KEY, "token": TOKEN, "default_list_id": DEFAULT_LIST_ID}
    return TrelloExecutor(
        base_url=standin.base_url,
        throttle=throttle,
        board_id=BOARD_ID,
        timeout=SLOW_TIMEOUT,
        **{**defaults, **options},  # type: ignore[arg-type]
    )


@pytest.fixture
async def trello() -> AsyncIterator[tuple[TrelloExecutor, TrelloStandIn]]:
    async with TrelloStandIn() as standin:
        executor = _executor(standin, CountingThrottle())
        yield executor, standin
        await executor.aclose()


async def test_concurrent_operations_keep_the_loop_free(
    trello: tuple[TrelloExecutor, TrelloStandIn],
) -> None:
    executor, standin = trello
    standin.faults.set("slow", delay=0.3, count=4)  # stalls inside threads, not on the loop
    results = await asyncio.gather(
        *(executor.create_card({"name": f"card {i}", "labels": "bug"}) for i in range(12))
    )
    assert len({r["id"] for r in results}) == 12 and len(standin.cards()) == 12


async def test_unknown_card_is_permanent_and_errors_hide_credentials(
    trello: tuple[TrelloExecutor, TrelloStandIn],
) -> None:
    executor, standin = trello
    with pytest.raises(PermanentError) as missing:
        await executor.move_card({"card_id": "0" * 24, "list_id": DEFAULT_LIST_ID})
    assert missing.value.status == 404
    wrong = _executor(standin, CountingThrottle(), token="not-the-token")
    with pytest.raises(AuthError) as denied:
        await wrong.create_card({"name": "x"})
    await wrong.aclose()
    for error in (missing.value, denied.value):
        assert API_KEY not in str(error) and "not-the-token" not in str(error)


async def test_labels_by_id_and_no_default_list(
    trello: tuple[TrelloExecutor, TrelloStandIn],
) -> None:
    executor, standin = trello
    urgent = standin.label_id("urgent")
    result = await executor.create_card(
        {"name": "x", "labels": [urgent], "list_id": LIST_IDS["Bugs"]}
    )
    assert _card(standin, result["id"])["idLabels"] == [urgent]
    no_list = _executor(standin, CountingThrottle(), default_list_id="")
    before = len(standin.stats.requests)
    with pytest.raises(PermanentError, match="list_id"):
        await no_list.create_card({"name": "x"})
    await no_list.aclose()
    assert len(standin.stats.requests) == before


async def test_add_label_already_present_is_undone_as_no_op(
    trello: tuple[TrelloExecutor, TrelloStandIn],
) -> None:
    executor, standin = trello
    card = standin.add_card("x", idLabels=[standin.label_id("bug")])
    result = await executor.add_label({"card_id": card["id"], "label": "BUG"})
    assert result["already_present"] is True
    await executor.compensate("add_label", {}, result)
    assert _labels(standin, card["id"]) == {"bug"}


async def test_build_without_credentials_disables_platform() -> None:
    settings = load_settings(_env_file=None, trello_api_key="k", trello_token=None)
    with pytest.raises(PlatformDisabled, match="TRELLO_TOKEN is not set"):
        build(settings, CountingThrottle())


async def test_result_url_opens_in_the_standin(
    trello: tuple[TrelloExecutor, TrelloStandIn],
) -> None:
    executor, _ = trello
    result = await executor.create_card({"name": "Open me"})
    async with aiohttp.ClientSession() as http, http.get(result["url"]) as response:
        assert (response.status, (await response.json())["id"]) == (200, result["id"])
