"""A workflow run started over HTTP with a `callback_url` tells that URL its outcome when it
finishes: through `opsbot run`'s own composition (bot.app.compose), signed like an action's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.app import compose
from bot.config import Settings
from bot.runtime import Runtime
from tests.integration.test_web import Receiver, receiver_url  # noqa: F401 - the fixture

TOKEN = "run-callback-api-token"
SECRET = "run-callback-secret"
WORKFLOWS = """
name: two-steps
transactional: true
steps:
  - name: first
    action: {type: echo, data: {n: 1}}
  - name: second
    depends_on: first
    action: {type: echo, data: {n: 2, fail: "{{ input.fail }}"}}
"""


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "workflows.yml").write_text(WORKFLOWS)
    return {
        "opsbot_api_token": SecretStr(TOKEN),
        "opsbot_callback_secret": SecretStr(SECRET),
        "opsbot_workflows": str(tmp_path / "workflows.yml"),
        "opsbot_http_port": 0,
    }


async def start(http: aiohttp.ClientSession, base: str, body: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with http.post(f"{base}/workflows/two-steps/runs", json=body, headers=headers) as r:
        return r.status, await r.json()


@pytest.mark.parametrize(
    ("fail", "status", "completed"),
    [("", "succeeded", ["first", "second"]), ("permanent", "rolled_back", ["first"])],
)
async def test_a_finished_run_is_posted_to_its_callback_url(
    settings: Settings,
    receiver_url: Any,  # noqa: F811 - the imported fixture
    fail: str,
    status: str,
    completed: list[str],
) -> None:
    receiver = Receiver(SECRET)
    url = await receiver_url(receiver)
    runtime = Runtime(settings)
    compose(runtime)
    async with runtime, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{runtime_port(runtime)}"
        answer, run = await start(http, base, {"input": {"fail": fail}, "callback_url": url})
        assert answer == 202, run
        await asyncio.wait_for(receiver.got.wait(), 10)
    (told,) = receiver.received
    assert told["kind"] == "workflow_run" and told["id"] == run["id"]
    assert told["status"] == status and told["completed"] == completed
    assert told["workflow"] == "two-steps" and told["finished_at"]


async def test_bad_callback_urls_are_refused_by_name(settings: Settings) -> None:
    runtime = Runtime(settings)
    compose(runtime)
    async with runtime, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{runtime_port(runtime)}"
        for bad in ("ftp://example.com/x", "not a url", 42):
            status, body = await start(http, base, {"callback_url": bad})
            assert status == 400 and "callback_url" in body["error"], body


def runtime_port(runtime: Runtime) -> int:
    from bot.app import http_port

    port = http_port(runtime)
    assert port is not None
    return port
