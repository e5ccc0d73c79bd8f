"""The sandbox end to end: every stand-in plus the real runtime (Slack app over Socket Mode,
workers, workflows, HTTP surface) in-process, driven through the sandbox page's HTTP API the way
the page's JavaScript drives it. Outcomes are read from the stand-ins' state and the store."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import banner as bot_banner
from bot.app import http_port
from bot.sandbox import SANDBOX_USER, SandboxRun, default_build, running_sandbox
from bot.sandbox.content import SAMPLE_INPUTS
from bot.sandbox.page import find_runner
from bot.sandbox.run import banner
from executors.sandbox.standin import StandIn
from handlers import blocks

TITLE = "Rotate the database credentials"
RISKY: dict[str, Any] = {
    "type": "create_task",
    "data": {"title": TITLE},
    "requires_approval": True,
    "requested_by": "agent:test",
    "reason": "quarterly rotation",
}
FAST = functools.partial(default_build, card_interval=0.05, ping_interval=0.5)


def _overrides() -> dict[str, Any]:
    return {"_env_file": None, "opsbot_http_port": 0, "retry_initial_delay": 0.01,
            "retry_max_delay": 0.05}  # fmt: skip


@pytest.fixture
async def run(tmp_path: Path) -> AsyncIterator[SandboxRun]:
    async with running_sandbox(
        tmp_path / "sandbox", page_port=0, overrides=_overrides(), build=FAST
    ) as started:
        yield started


async def until(standins: list[StandIn], predicate: Callable[[], Any], within: float = 10.0) -> Any:
    """Wait (bounded) until `predicate()` is truthy, re-checking on every stand-in change."""
    changed = asyncio.Event()
    undo = [s.subscribe(lambda _name: changed.set()) for s in standins]
    try:
        async with asyncio.timeout(within):
            while not (value := predicate()):
                changed.clear()
                await changed.wait()
        return value
    finally:
        for u in undo:
            u()


async def post(run: SandboxRun, path: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(run.url + path, json=body) as r:
        return r.status, await r.json()


def card_of(run: SandboxRun, action_id: str) -> dict[str, Any] | None:
    found = [m for m in run.sandbox.slack.messages("approvals") if action_id in m["text"]]
    return found[0] if found else None


async def test_risky_action_approved_from_the_page_runs_through_socket_mode(
    run: SandboxRun,
) -> None:
    status, answer = await post(run, "api/actions", RISKY)
    assert status == 201, answer
    [action] = answer["actions"]
    assert action["status"] == "awaiting_approval"
    slack, notion = run.sandbox.slack, run.sandbox.notion
    card = await until([slack], lambda: card_of(run, action["id"]))
    assert blocks.APPROVE in json.dumps(card["blocks"])
    status, ack = await post(run, "api/click", {"channel": "approvals", "ts": card["ts"],
                                                "action_id": blocks.APPROVE,
                                                "value": action["id"]})  # fmt: skip
    assert status == 200 and ack["ok"], ack
    [page] = await until([notion], lambda: notion.pages())
    assert page["properties"]["Name"]["title"][0]["plain_text"] == TITLE
    updated = await until(
        [slack], lambda: "executed" in json.dumps(card_of(run, action["id"]) or {})
    )
    assert updated
    after = card_of(run, action["id"])
    assert after is not None and f"<@{SANDBOX_USER}>" in json.dumps(after["blocks"])
    assert blocks.APPROVE not in json.dumps(after["blocks"])  # the buttons are gone
    assert (await run.runtime.queue.get(action["id"]))["status"] == "succeeded"


async def test_ops_command_from_the_page_gets_its_ephemeral_answer(run: SandboxRun) -> None:
    status, ack = await post(run, "api/command", {"text": "/ops status", "channel": "operations"})
    assert status == 200, ack
    slack = run.sandbox.slack
    answer = await slack.wait_call("response_url", user=SANDBOX_USER)
    assert answer["response_type"] == "ephemeral" and "queued" in json.dumps(answer["blocks"])


@pytest.mark.parametrize("name", sorted(SAMPLE_INPUTS))
async def test_example_workflows_run_on_the_seeded_content(run: SandboxRun, name: str) -> None:
    status, started = await post(run, f"api/workflows/{name}", {"input": SAMPLE_INPUTS[name]})
    assert status == 201, started
    view = await find_runner(run.runtime).wait(started["id"], 20)
    assert view["status"] == "succeeded", view
    sb = run.sandbox
    if name == "bug-report":
        assert sb.trello.cards() and sb.google.sheets.rows("Bugs")
        [logged] = [r for r in sb.google.sheets.rows("Actions") if r[1] == started["id"]]
        assert datetime.fromisoformat(logged[0]).utcoffset() == timedelta(0)  # ISO-8601 UTC
        shown = [s["title"] for s in run.page.panel("sheets")["sheets"]]
        assert shown[0] == "Actions" and "Bugs" in shown
    elif name == "invoice-processing":
        assert sb.google.sheets.rows("Invoices") and sb.slack.messages("finance")
        link = view["result"]["create_invoice_file"]["web_view_link"]
        assert link.startswith(sb.google.drive.base_url + "/file/d/")  # not drive.google.com
        async with aiohttp.ClientSession() as http, http.get(link) as r:
            assert r.status == 200 and await r.text() == SAMPLE_INPUTS[name]["content"]
    else:
        assert sb.notion.pages() and sb.slack.messages("operations")


async def test_fault_switch_fails_the_platform_then_clears(run: SandboxRun) -> None:
    trello = run.sandbox.trello
    base = trello.base_url
    status, faults = await post(run, "api/faults", {"platform": "trello", "kind": "off"})
    assert status == 200 and faults["trello"] == [{"kind": "off"}]
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http, http.get(base + "/1/members/me"):
            pass
    await post(run, "api/faults", {"platform": "trello", "kind": "503"})
    status, faults = await post(run, "api/faults", {"platform": "trello", "kind": "clear"})
    assert faults["trello"] == [] and trello.base_url == base  # back, on the same port


async def test_state_and_ports_survive_a_restart(tmp_path: Path) -> None:
    folder = tmp_path / "sandbox"
    async with running_sandbox(folder, page_port=0, overrides=_overrides(), build=FAST) as first:
        await first.sandbox.slack.slash_command("help", user=SANDBOX_USER)
        await post(first, "api/actions", {"type": "create_card", "data": {"name": "Kept"}})
        await until([first.sandbox.trello], lambda: first.sandbox.trello.cards())
        ports = dict(first.sandbox.ports)
        text = banner(first)
    assert "SANDBOX" in text and first.url in text
    port = http_port(first.runtime)
    assert port and f"127.0.0.1:{port}" in text  # the port bound, not OPSBOT_HTTP_PORT's 0
    assert f"HTTP on port {port})" in bot_banner(first.runtime, None)
    async with running_sandbox(folder, page_port=0, overrides=_overrides(), build=FAST) as again:
        assert {k: again.sandbox.ports[k] for k in ports} == ports
        [card] = again.sandbox.trello.cards()
        async with aiohttp.ClientSession() as http, http.get(card["url"]) as r:
            assert r.status == 200 and (await r.json())["name"] == "Kept"  # the link still works
        assert again.sandbox.slack.users[SANDBOX_USER]


async def test_page_stream_starts_with_the_whole_picture(run: SandboxRun) -> None:
    async with aiohttp.ClientSession() as http, http.get(run.url + "events") as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        event = (await r.content.readline()).decode()
        data = json.loads((await r.content.readline()).decode().removeprefix("data: "))
    assert event.strip() == "event: state"
    names = [c["name"] for c in data["slack"]["channels"]]
    assert names[:3] == ["approvals", "errors", "operations"] and "bugs" in names
    assert {"notion", "trello", "drive", "sheets", "faults", "circuits"} <= set(data)
    async with aiohttp.ClientSession() as http:
        for path in ("", "static/app.js", "static/blocks.js", "static/style.css"):
            async with http.get(run.url + path) as r:
                assert r.status == 200, path
        async with http.get(run.url + "api/examples") as r:
            examples = await r.json()
    assert any(isinstance(ex["action"], dict) and ex["action"].get("requires_approval")
               for ex in examples)  # fmt: skip


async def test_page_stream_pushes_a_panel_when_its_stand_in_changes(run: SandboxRun) -> None:
    async with aiohttp.ClientSession() as http, http.get(run.url + "events") as r:
        assert (await r.content.readline()).startswith(b"event: state")
        await post(run, "api/actions", {"type": "create_card", "data": {"name": "Live"}})

        async def trello_event() -> dict[str, Any]:
            name = ""
            async for line in r.content:
                text = line.decode().strip()
                if text.startswith("event: "):
                    name = text.removeprefix("event: ")
                elif text.startswith("data: ") and name == "trello":
                    board = json.loads(text.removeprefix("data: "))
                    if board["lists"][0]["cards"]:
                        return dict(board)
            raise AssertionError("the stream ended")

        board = await asyncio.wait_for(trello_event(), 10)
    assert board["lists"][0]["cards"][0]["name"] == "Live"


async def test_every_example_action_is_accepted_by_the_intake(run: SandboxRun) -> None:
    async with aiohttp.ClientSession() as http, http.get(run.url + "api/examples") as r:
        examples = await r.json()
    assert len(examples) >= 5
    for example in examples:
        status, answer = await post(run, "api/actions", example["action"])
        assert status == 201, (example["name"], answer)
    status, answer = await post(run, "api/actions", {"type": "create_task", "bogus": 1})
    assert status == 400 and "bogus" in answer["error"]
