"""Workflow runs in Slack and the metrics `opsbot run` feeds: the services `bot.app.compose`
starts (runner, Slack over Socket Mode against the stand-in, surface with /metrics), real SQLite,
echo steps. Outcomes: the stand-in's recorded Web API calls and messages, the scraped metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.actions import parse_actions
from bot.app import compose
from bot.runtime import Runtime
from bot.surface import Surface
from executors.sandbox.slack import APP_TOKEN, BOT_TOKEN, SlackStandIn

ALICE = "U0ALICE"
LINK = "https://docs.example.test/d/42"
WORKFLOWS = f"""
notify:
  inputs: [who]
  steps:
    - name: first
      action: {{type: echo, data: {{who: "{{{{ input.who }}}}", delay: 0.3}}}}
    - name: second
      depends_on: first
      action: {{type: echo, data: {{delay: 0.3, url: "{LINK}"}}}}
    - name: third
      depends_on: second
      action: {{type: echo, data: {{delay: 0.3}}}}
held:
  steps:
    - name: prepare
      action: {{type: echo, data: {{n: 1}}}}
    - name: approve
      depends_on: prepare
      requires_approval: true
      action: {{type: echo, data: {{n: 2}}}}
chain:
  transactional: true
  steps:
    - name: s1
      action: {{type: echo, data: {{n: 1}}}}
    - name: s2
      depends_on: s1
      action: {{type: echo, data: {{n: 2}}}}
    - name: s3
      depends_on: s2
      action: {{type: echo, data: {{fail: permanent}}}}
"""


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as server:
        yield server


@pytest.fixture
def settings_overrides(slack: SlackStandIn, tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "workflows.yml").write_text(WORKFLOWS)
    return {
        "slack_bot_token": BOT_TOKEN,
        "slack_app_token": APP_TOKEN,
        "slack_api_url": slack.api_url,
        "ops_approvers": ALICE,
        "ops_admins": ALICE,
        "opsbot_http_port": 0,
        "opsbot_workflows": str(tmp_path / "workflows.yml"),
        "max_retry_attempts": 1,
    }


@dataclass
class Bot:
    runtime: Runtime
    surface: Surface
    slack: SlackStandIn

    async def run_from_slack(self, text: str) -> dict[str, Any]:
        """`/ops run ...` typed in #general; the run's final view."""
        await self.slack.slash_command(text, user=ALICE, channel="general")
        await self.slack.wait_for(lambda: self.slack.calls_to("response_url"))
        [started] = await self.runtime.runner.runs(limit=1)
        view: dict[str, Any] = await self.runtime.runner.wait(started["id"], 10.0, poll=0.05)
        return view

    def run_posts(self, run_id: str) -> list[dict[str, Any]]:
        return [p for p in self.slack.calls_to("chat.postMessage") if run_id in p["text"]]

    async def settled_message(self, run_id: str, final: str) -> dict[str, Any]:
        """The run's message in #general once it shows the run's final status."""

        def shown() -> dict[str, Any] | None:
            for message in self.slack.messages("general"):
                if run_id in message["text"] and final in message["text"]:
                    return message
            return None

        found: dict[str, Any] = await self.slack.wait_for(shown, 10.0)
        return found


@contextlib.asynccontextmanager
async def running(settings: Any, slack: SlackStandIn) -> AsyncIterator[Bot]:
    """What `opsbot run` starts, tuned for tests (quick rounds, loopback HTTP)."""
    runtime = Runtime(settings)
    service = compose(runtime)
    assert service is not None
    service.run_interval = service.card_interval = 0.2
    [surface] = [s for s in runtime.services if isinstance(s, Surface)]
    surface.host = "127.0.0.1"
    async with runtime:
        yield Bot(runtime, surface, slack)


@pytest.fixture
async def bot(settings: Any, slack: SlackStandIn) -> AsyncIterator[Bot]:
    async with running(settings, slack) as started:
        yield started


async def test_ops_run_keeps_one_message_updated_in_place(bot: Bot) -> None:
    view = await bot.run_from_slack("run notify who=ops")
    assert view["status"] == "succeeded", view
    run_id = view["id"]
    message = await bot.settled_message(run_id, "succeeded")
    [post] = bot.run_posts(run_id)  # one message for the whole run
    assert post["channel"] == bot.slack.add_channel("general")  # where /ops run was typed
    updates = [u for u in bot.slack.calls_to("chat.update") if u["ts"] == message["ts"]]
    assert updates, "the message is edited in place as the run moves"
    assert [m for m in bot.slack.messages("general") if run_id in m["text"]] == [message]
    shown = str(message["blocks"])
    assert "Workflow notify" in shown and run_id in shown
    for step in ("first", "second", "third"):
        assert f"`{step}` succeeded" in shown
    assert f"<{LINK}|open>" in shown  # the link from the step's result


async def test_failed_transactional_run_shows_rolled_back_steps(bot: Bot) -> None:
    view = await bot.run_from_slack("run chain")
    assert view["status"] == "rolled_back", view
    message = await bot.settled_message(view["id"], "rolled back")
    shown = str(message["blocks"])
    assert "`s1` rolled back" in shown and "`s2` rolled back" in shown
    assert "`s3` failed" in shown
    assert len(bot.run_posts(view["id"])) == 1


async def test_metrics_count_a_decision_and_a_finished_run(bot: Bot) -> None:
    raw = {"type": "echo", "data": {"n": 1}, "requires_approval": True}
    [submitted] = await bot.runtime.queue.submit(parse_actions(raw), actor="test")
    [refused] = await bot.runtime.queue.submit(parse_actions(raw), actor="test")
    await bot.runtime.queue.decide(submitted.id, True, "cli:ann")
    await bot.runtime.queue.decide(refused.id, False, "slack:U0ALICE", "no")
    view = await bot.run_from_slack("run notify who=metrics")
    assert view["status"] == "succeeded"
    assert bot.surface.web is not None
    url = f"http://127.0.0.1:{bot.surface.web.port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("opsbot_approval_decision_seconds_count", (("decision", "approved"),))] == 1
    assert samples[("opsbot_approval_decision_seconds_count", (("decision", "rejected"),))] == 1
    assert samples[("opsbot_workflow_runs_total", (("outcome", "succeeded"),))] == 1


async def test_a_restart_keeps_editing_the_same_message(settings: Any, slack: SlackStandIn) -> None:
    async with running(settings, slack) as first:
        await slack.slash_command("run held", user=ALICE, channel="general")
        await slack.wait_for(lambda: slack.calls_to("response_url"))
        [run] = await first.runtime.runner.runs(limit=1)
        waiting = await first.settled_message(run["id"], "running")
        await slack.wait_for(lambda: "`approve` awaiting approval" in str(waiting["blocks"]))
    async with running(settings, slack) as second:
        step = await second.runtime.runner.state(run["id"])
        await second.runtime.queue.decide(step["steps"][1]["action_id"], True, "cli:ann")
        view = await second.runtime.runner.wait(run["id"], 10.0, poll=0.05)
        assert view["status"] == "succeeded"
        message = await second.settled_message(run["id"], "succeeded")
    assert message["ts"] == waiting["ts"] and len(second.run_posts(run["id"])) == 1
    assert "`approve` succeeded" in str(message["blocks"])


async def test_slack_down_neither_blocks_nor_fails_the_run(bot: Bot) -> None:
    bot.slack.faults.set("503", path="/api/chat.")
    view = await bot.runtime.runner.start_run("notify", {"who": "api"}, actor="api")
    done = await bot.runtime.runner.wait(view["id"], 10.0, poll=0.05)
    assert done["status"] == "succeeded"
    assert bot.slack.faults.injected > 0  # the keeper did try while Slack was down
    bot.slack.faults.clear()

    def shown() -> dict[str, Any] | None:
        found = [m for m in bot.slack.messages("operations") if view["id"] in m["text"]]
        return found[0] if found and "succeeded" in found[0]["text"] else None

    message = await bot.slack.wait_for(shown, 10.0)  # SLACK_NOTIFICATION_CHANNEL, once back
    assert "`third` succeeded" in str(message["blocks"])
    assert [m for m in bot.slack.messages("operations") if view["id"] in m["text"]] == [message]


async def test_a_deleted_message_is_given_up_without_stalling_others(bot: Bot) -> None:
    runner, slack = bot.runtime.runner, bot.slack
    held = await runner.start_run("held", {}, actor="api")

    def message_of(run_id: str, words: str) -> dict[str, Any] | None:
        found = [m for m in slack.messages("operations") if run_id in m["text"]]
        return found[0] if found and words in str(found[0]["blocks"]) else None

    gone = await slack.wait_for(lambda: message_of(held["id"], "awaiting approval"))
    gone["deleted"] = True  # someone deleted the run's message in Slack
    state = await runner.state(held["id"])
    await bot.runtime.queue.decide(state["steps"][1]["action_id"], True, "cli:ann")
    assert (await runner.wait(held["id"], 10.0, poll=0.05))["status"] == "succeeded"
    await slack.wait_call("chat.update", ts=gone["ts"])  # tried once, told message_not_found
    other = await runner.start_run("notify", {"who": "x"}, actor="api")
    await runner.wait(other["id"], 10.0, poll=0.05)
    await slack.wait_for(lambda: message_of(other["id"], "`third` succeeded"), 10.0)
    assert len(bot.run_posts(held["id"])) == 1  # not reposted
