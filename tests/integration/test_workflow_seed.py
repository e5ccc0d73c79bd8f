"""The seed's workflows (examples/workflows/) end to end: the real executors, queue and worker
pool against the local stand-ins of Drive, Sheets, Trello and Slack. Outcomes are read from the
stand-ins' state: files, rows, cards and messages."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings, load_settings
from bot.flow.breaker import Breakers
from bot.flow.fallback import FallbackChain
from bot.flow.ratelimit import RateLimiters
from bot.flow.retry import RetryPolicy
from bot.queue import Queue
from bot.routing import PLATFORMS
from bot.sandbox.content import EXAMPLE_WORKFLOWS
from bot.store.engine import Store
from bot.worker import WorkerPool
from bot.workflows.loader import load_path
from bot.workflows.rollback import WithCompensation
from bot.workflows.runner import WorkflowRunner
from executors.registry import build_executors
from executors.sandbox.google import GoogleStandIns, start_google_standins
from executors.sandbox.sheets import SANDBOX_SPREADSHEET_ID
from executors.sandbox.slack import APP_TOKEN, BOT_TOKEN, SlackStandIn
from executors.sandbox.trello import API_KEY, BOARD_ID, DEFAULT_LIST_ID, TOKEN, TrelloStandIn

EXAMPLES = EXAMPLE_WORKFLOWS


class World:
    def __init__(self, google: GoogleStandIns, trello: TrelloStandIn, slack: SlackStandIn) -> None:
        self.google, self.trello, self.slack = google, trello, slack
        self.runner: WorkflowRunner


def _settings(tmp_path: Path, w: World) -> Settings:
    return load_settings(
        _env_file=None,
        opsbot_database_url=f"sqlite:///{tmp_path / 'opsbot.db'}",
        **w.google.settings(),
        trello_api_key=API_KEY, trello_token=TOKEN, trello_api_url=w.trello.base_url,
        trello_board_id=BOARD_ID, trello_default_list_id=DEFAULT_LIST_ID,
        slack_bot_token=BOT_TOKEN, slack_app_token=APP_TOKEN, slack_api_url=w.slack.api_url,
        notion_api_key=None, retry_initial_delay=0.01, retry_max_delay=0.02, max_retry_attempts=1,
    )  # fmt: skip


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    google = await start_google_standins()
    async with TrelloStandIn() as trello, SlackStandIn() as slack:
        w = World(google, trello, slack)
        for channel in ("finance", "bugs"):
            slack.add_channel(channel)
        book = google.sheets.state["spreadsheets"][SANDBOX_SPREADSHEET_ID]
        for title in ("Invoices", "Bugs"):
            book["sheets"].append({"sheetId": len(book["sheets"]), "title": title})
            book["grids"][title] = []
        settings = _settings(tmp_path, w)
        store = Store(settings.opsbot_database_url)
        queue = Queue(store, settings)
        limiters = RateLimiters(settings.rate_limits)
        built, disabled = build_executors(settings, limiters.throttle)
        executors = {p: WithCompensation(e) for p, e in built.items()}
        pool = WorkerPool(
            queue, executors, limiters, Breakers(PLATFORMS, clock=time.time),
            RetryPolicy.from_settings(settings), FallbackChain(settings.fallbacks), settings,
            store=store, disabled=disabled,
        )  # fmt: skip
        w.runner = WorkflowRunner(store, queue, load_path(EXAMPLES), settings, sweep_interval=0.1)
        await pool.start()
        await w.runner.start()
        try:
            yield w
        finally:
            await w.runner.stop()
            await pool.stop(1.0)
            for executor in executors.values():
                await executor.aclose()
            await queue.close()
            store.close()
    await google.stop()


INVOICE = {"invoice_id": "INV-001", "amount": "1250.00", "date": "2025-10-17", "content": "PDF"}


async def run(w: World, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    started = await w.runner.start_run(name, inputs, actor="test")
    return await w.runner.wait(started["id"], 20)


async def test_invoice_processing_end_to_end(world: World) -> None:
    view = await run(world, "invoice-processing", INVOICE)
    assert view["status"] == "succeeded", view
    [file] = [f for f in world.google.drive.files.values() if f["name"] == "Invoice-INV-001.pdf"]
    link = view["result"]["create_invoice_file"]["web_view_link"]
    assert link and file["id"] == view["result"]["create_invoice_file"]["file_id"]
    assert world.google.sheets.rows("Invoices") == [
        ["INV-001", "2025-10-17", "1250.00", "processed", link]
    ]
    [message] = world.slack.messages("finance")
    assert message["text"] == f"Invoice INV-001 processed: {link}"
    again = await world.runner.start_run("invoice-processing", INVOICE)
    assert again["duplicate"] and again["id"] == view["id"]  # invoice-INV-001 ran already


async def test_invoice_failure_at_step_3_rolls_back_2_then_1(world: World) -> None:
    world.slack.faults.set("401", path="/api/chat.postMessage")
    view = await run(world, "invoice-processing", {**INVOICE, "invoice_id": "INV-002"})
    assert view["status"] == "rolled_back", view
    assert view["rollback"]["rolled_back"] == ["log_to_sheet", "create_invoice_file"]
    assert not [f for f in world.google.drive.files.values() if f["name"] == "Invoice-INV-002.pdf"]
    assert not any(any(cell for cell in row) for row in world.google.sheets.rows("Invoices"))
    cleared = world.google.sheets.stats.calls("POST", "/v4/spreadsheets")[-1]
    deleted = world.google.drive.stats.calls("DELETE")[-1]
    assert cleared.path.endswith(":clear") and cleared.at < deleted.at  # sheet row, then file


async def test_bug_report_end_to_end(world: World) -> None:
    inputs = {"title": "Login fails", "description": "500 on submit", "priority": "urgent"}
    view = await run(world, "bug-report", inputs)
    assert view["status"] == "succeeded", view
    [card] = world.trello.cards()
    assert (card["name"], card["desc"]) == ("Bug: Login fails", "500 on submit")
    [message] = world.slack.messages("bugs")
    assert message["text"] == f"New urgent bug: Login fails\nCard: {card['url']}"
    [row] = world.google.sheets.rows("Bugs")
    assert (row[0], row[2], row[3], row[4], row[5], row[6]) == (
        view["id"],
        "urgent",
        card["url"],
        "open",
        "unassigned",
        view["result"]["notify_channel"]["permalink"],
    )
    assert datetime.fromisoformat(row[1]).timestamp() == int(view["started_at"])
