"""Workflow commands typed in Slack (`/ops run`, `/ops rollback:force`) through the composed bot
and the Slack stand-in over Socket Mode: the run row records source "slack", and the forced
rollback is for admins only. Outcomes: run rows and what the stand-in's response_url received."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from executors.sandbox.slack import APP_TOKEN, BOT_TOKEN, SlackStandIn
from tests.scenario.test_slack_runs import Bot, running

ADMIN, OTHER = "U0ALICE", "U0BOB"
WORKFLOWS = """
chain:
  transactional: true
  steps:
    - name: s1
      action: {type: echo, data: {n: 1}}
    - name: s2
      depends_on: s1
      action: {type: echo, data: {n: 2}}
"""


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as server:
        yield server


@pytest.fixture
def settings_overrides(slack: SlackStandIn, tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "workflows.yml").write_text(WORKFLOWS)
    return {
        "slack_bot_token": BOT_TOKEN, "slack_app_token": APP_TOKEN,
        "slack_api_url": slack.api_url, "ops_admins": ADMIN, "opsbot_http_port": 0,
        "opsbot_workflows": str(tmp_path / "workflows.yml"),
    }  # fmt: skip


@pytest.fixture
async def bot(settings: Any, slack: SlackStandIn) -> AsyncIterator[Bot]:
    async with running(settings, slack) as started:
        yield started


async def ops(bot: Bot, text: str, user: str = ADMIN) -> str:
    """`/ops <text>` typed by `user`; the text of the first reply it got."""
    before = len(bot.slack.calls_to("response_url"))
    await bot.slack.slash_command(text, user=user)
    await bot.slack.wait_for(lambda: len(bot.slack.calls_to("response_url")) > before)
    return str(bot.slack.calls_to("response_url")[before]["text"])


async def test_slack_run_is_recorded_as_slack_and_rollback_force_is_for_admins(bot: Bot) -> None:
    await ops(bot, "run chain")
    [started] = await bot.runtime.runner.runs(limit=1)
    assert started["source"] == "slack"
    run_id = started["id"]
    view = await bot.runtime.runner.wait(run_id, 10.0, poll=0.05)
    assert view["status"] == "succeeded", view

    refused = await ops(bot, f"rollback:force {run_id}", user=OTHER)
    assert "only OPS_ADMINS may run it" in refused
    assert (await bot.runtime.runner.state(run_id))["status"] == "succeeded"
    tried = await bot.runtime.store.read(
        lambda c: c.execute(
            text("SELECT actor, to_status, detail FROM audit WHERE entity = 'command' "
                 "AND entity_id = 'workflow rollback:force'")
        ).all()
    )  # fmt: skip
    assert [(actor, status) for actor, status, _ in tried] == [(f"slack:{OTHER}", "error")]
    assert "not in OPS_ADMINS" in tried[0][2]

    plain = await ops(bot, f"rollback {run_id}")
    assert "only by force (rollback:force RUN" in plain
    await ops(bot, f"rollback:force {run_id}")
    view = await bot.runtime.runner.wait(run_id, 10.0, poll=0.05)
    assert view["status"] == "rolled_back", view
    assert view["rollback"]["rolled_back"] == ["s2", "s1"]
