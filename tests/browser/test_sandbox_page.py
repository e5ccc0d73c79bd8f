"""The sandbox page in headless Chromium: submit a risky action from the JSON editor, see its
approval card in #approvals, click Approve (pushed through the Slack stand-in's Socket Mode to
the real Bolt app), see the Notion panel receive the page and the card updated in place.

Needs Debian's chromium (`apt-get install -y chromium`); skipped with the reason otherwise.
Set OPSBOT_SCREENSHOT_DIR to keep the page's screenshot.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.actions import parse_actions
from bot.sandbox import SandboxRun, default_build, running_sandbox
from handlers import blocks
from tests.browser.cdp import CHROMIUM, Browser

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"{CHROMIUM} is absent: install it with `apt-get install -y chromium`",
    ),
]
TITLE = "Rotate the production database credentials"  # examples/actions/create-task-approval


@pytest.fixture
async def run(tmp_path: Path) -> AsyncIterator[SandboxRun]:
    build = functools.partial(default_build, card_interval=0.05, ping_interval=0.5)
    overrides = {"_env_file": None, "opsbot_http_port": 0}
    async with running_sandbox(
        tmp_path / "sandbox", page_port=0, overrides=overrides, build=build
    ) as started:
        yield started


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    async with Browser.launch(tmp_path / "chromium-profile") as started:
        yield started


def _card_js(action_id: str) -> str:
    """The approval card's message node in the shown channel."""
    return (
        "[...document.querySelectorAll('#messages .msg')]"
        f".find((m) => m.textContent.includes({json.dumps(action_id)}))"
    )


async def test_approve_from_the_page_executes_the_action(
    run: SandboxRun, browser: Browser, tmp_path: Path
) -> None:
    await browser.goto(run.url)
    await browser.wait_js("document.getElementById('conn').textContent === 'live'")
    await browser.wait_js("document.querySelectorAll('#example option').length > 0")
    await browser.js(
        "(() => { const s = document.getElementById('example');"
        " s.value = [...s.options].find((o) => o.textContent === 'create-task-approval').value;"
        " s.dispatchEvent(new Event('change')); document.getElementById('submit-action').click();"
        " })()"
    )
    result = await browser.wait_js(
        "(document.getElementById('action-result').textContent.match(/^(\\S+): awaiting_approval/)"
        " || [])[1]"
    )
    action_id = str(result)
    card = _card_js(action_id)
    approve = f"{card}?.querySelector('button[data-action-id=\"{blocks.APPROVE}\"]')"
    await browser.wait_js(f"!!({approve})")
    await browser.js(f"{approve}.click()")
    await browser.wait_js(
        f"[...document.querySelectorAll('#notion .notion-page')]"
        f".some((p) => p.textContent.includes({json.dumps(TITLE)}))"
    )
    await browser.wait_js(f"{card}?.textContent.includes('executed') && !({approve})")
    assert [p["url"] for p in run.sandbox.notion.pages()]  # the stand-in received the page
    assert (await run.runtime.queue.get(action_id))["status"] == "succeeded"
    png = await browser.screenshot()
    assert png.startswith(b"\x89PNG")
    keep = os.environ.get("OPSBOT_SCREENSHOT_DIR")
    (Path(keep) if keep else tmp_path).joinpath("sandbox-page.png").write_bytes(png)
    await browser.js("document.querySelector('#channels a.home').click()")
    await browser.wait_js("document.querySelector('.home-view')?.textContent.length > 20")
    if keep:
        Path(keep).joinpath("sandbox-home.png").write_bytes(await browser.screenshot())


async def test_reject_asks_for_a_reason_in_a_modal(run: SandboxRun, browser: Browser) -> None:
    [submitted] = await run.runtime.queue.submit(
        parse_actions(
            {"type": "create_card", "data": {"name": "Risky"}, "requires_approval": True}
        ),
        actor="test",
    )
    await browser.goto(run.url)
    card = _card_js(submitted.id)
    reject = f"{card}?.querySelector('button[data-action-id=\"{blocks.REJECT}\"]')"
    await browser.wait_js(f"!!({reject})")
    await browser.js(f"{reject}.click()")
    await browser.wait_js("!document.getElementById('modal').classList.contains('hidden')")
    await browser.js(
        "document.querySelector('#modal-body textarea').value = 'not this week';"
        "document.getElementById('modal-submit').click()"
    )
    await browser.wait_js(f"{card}?.textContent.includes('not this week')")
    assert (await run.runtime.queue.get(submitted.id))["status"] == "rejected"
    assert not run.sandbox.trello.cards()
