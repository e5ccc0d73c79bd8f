"""A 429 storm on every platform, through the whole path (queue, limiter, worker, executor, SDK,
stand-in): no action is lost or duplicated, and outside the injected storm the stand-in never
has to refuse a request.

The stand-ins enforce the configured limit over 90% of the window: the 10% is room for request
latency, since the limiter grants at send time and the stand-in counts at arrival time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.actions import parse_actions
from bot.config import Settings
from bot.runtime import Runtime
from executors.sandbox import notion, slack, trello
from executors.sandbox.google import start_google_standins
from executors.sandbox.standin import StandIn

ACTIONS = 12
STORM = 5  # injected 429s, Retry-After 1 s


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "opsbot_database_url": f"sqlite:///{tmp_path / 'storm.db'}",
        "retry_initial_delay": 0.05,
        "retry_max_delay": 2.0,
        "max_retry_attempts": STORM + 3,
        "queue_workers": 4,
        "slack_bot_token": None,
        "_env_file": None,
    }
    return Settings(**{**values, **overrides})


async def _run_all(settings: Settings, actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    finals: list[dict[str, Any]] = []
    done = asyncio.Event()

    def on_outcome(view: dict[str, Any]) -> None:
        if view["final"]:
            finals.append(view)
            if len(finals) == len(actions):
                done.set()

    async with Runtime(settings) as runtime:
        runtime.queue.subscribe(on_outcome)
        await runtime.queue.submit(parse_actions(actions))
        await asyncio.wait_for(done.wait(), 30)
    return finals


def _assert_storm_absorbed(standin: StandIn, finals: list[dict[str, Any]]) -> None:
    assert [view["status"] for view in finals] == ["succeeded"] * ACTIONS
    assert standin.faults.injected == STORM
    assert standin.stats.rate_limited == 0  # the limiter kept every other request under the limit


@pytest.mark.slow
async def test_notion_429_storm_loses_nothing(tmp_path: Path) -> None:
    limit = 10
    async with notion.NotionStandIn(rate_limit=(limit, 0.9)) as standin:
        standin.faults.set("429", count=STORM, retry_after=1)
        settings = _settings(
            tmp_path,
            notion_api_key=notion.TOKEN,
            notion_api_url=standin.base_url,
            notion_database_id=notion.DATABASE_ID,
            notion_rate_limit=limit,
        )
        actions = [{"type": "create_task", "data": {"title": f"task {i}"}} for i in range(ACTIONS)]
        finals = await _run_all(settings, actions)
        _assert_storm_absorbed(standin, finals)
        titles = sorted(notion.plain_text(page["properties"]["Name"]) for page in standin.pages())
        assert titles == sorted(f"task {i}" for i in range(ACTIONS))


@pytest.mark.slow
async def test_trello_429_storm_loses_nothing(tmp_path: Path) -> None:
    limit = 20
    async with trello.TrelloStandIn(rate_limit=(limit, 9.0)) as standin:
        standin.faults.set("429", count=STORM, retry_after=1)
        settings = _settings(
            tmp_path,
            trello_api_key=trello.API_KEY,
            trello_token=trello.TOKEN,
            trello_api_url=standin.base_url,
            trello_default_list_id=trello.DEFAULT_LIST_ID,
            trello_rate_limit=limit,
        )
        actions = [{"type": "create_card", "data": {"name": f"card {i}"}} for i in range(ACTIONS)]
        finals = await _run_all(settings, actions)
        _assert_storm_absorbed(standin, finals)
        assert sorted(card["name"] for card in standin.cards()) == sorted(
            f"card {i}" for i in range(ACTIONS)
        )


@pytest.mark.slow
async def test_slack_429_storm_loses_nothing(tmp_path: Path) -> None:
    limit = 10
    async with slack.SlackStandIn(rate_limit=(limit, 0.9)) as standin:
        standin.faults.set("429", count=STORM, retry_after=1)
        settings = _settings(
            tmp_path,
            slack_bot_token=slack.BOT_TOKEN,
            slack_api_url=standin.api_url,
            slack_rate_limit=limit,
        )
        actions = [
            {"type": "send_notification", "data": {"channel": "#operations", "text": f"n{i}"}}
            for i in range(ACTIONS)
        ]
        finals = await _run_all(settings, actions)
        _assert_storm_absorbed(standin, finals)
        texts = sorted(m["text"] for m in standin.messages("operations"))
        assert texts == sorted(f"n{i}" for i in range(ACTIONS))


@pytest.mark.slow
@pytest.mark.parametrize("platform", ["drive", "sheets"])
async def test_google_429_storm_loses_nothing(tmp_path: Path, platform: str) -> None:
    limit = 20
    google = await start_google_standins(rate_limits={platform: (limit, 90.0)})
    try:
        standin: StandIn = google.drive if platform == "drive" else google.sheets
        standin.faults.set("429", count=STORM, retry_after=1)
        settings = _settings(tmp_path, **google.settings(), **{f"{platform}_rate_limit": limit})
        if platform == "drive":
            actions = [
                {"type": "create_folder", "data": {"name": f"folder {i}"}} for i in range(ACTIONS)
            ]
        else:
            actions = [
                {"type": "append_row", "data": {"range": "Sheet1", "values": [[f"row {i}"]]}}
                for i in range(ACTIONS)
            ]
        finals = await _run_all(settings, actions)
        _assert_storm_absorbed(standin, finals)
        if platform == "drive":
            names = [f["name"] for f in google.drive.files.values()]
            assert sorted(n for n in names if n.startswith("folder ")) == sorted(
                f"folder {i}" for i in range(ACTIONS)
            )
        else:
            cells = [row[0] for row in google.sheets.rows("Sheet1") if row]
            assert sorted(cells) == sorted(f"row {i}" for i in range(ACTIONS))
    finally:
        await google.stop()
