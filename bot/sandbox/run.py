"""`opsbot run` without Slack tokens (or `--sandbox`): the stand-ins, then the real bot on them.

    code = asyncio.run(run_sandbox())           # blocks until SIGINT/SIGTERM

`running_sandbox(...)` is the same thing as an async context manager (tests, embedding): it
starts the stand-ins, builds Settings from their overrides, builds the runtime (the caller's
`build`, else the whole bot as `opsbot run` composes it: bot.app.compose), adds the page and
enters the runtime. Only base URLs and tokens differ from a production run.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config import Settings, load_settings
from bot.runtime import Runtime
from bot.sandbox.content import EXAMPLE_ACTIONS, EXAMPLE_WORKFLOWS
from bot.sandbox.page import PageService
from bot.sandbox.standins import Sandbox, port_free

log = logging.getLogger("opsbot.sandbox")

DEFAULT_STATE_DIR = Path("var/sandbox")
DEFAULT_PAGE_PORT = 8765
API_TOKEN = "sandbox-api-token"  # the HTTP API's write token in the sandbox (not a secret)
RULE_MAX = 96  # the banner's frame, however long a path in it is
CALLBACK_SECRET = "sandbox-callback-secret"  # signs outcome callbacks (well known, like the token)

Build = Callable[[Settings], Runtime]


@dataclass
class SandboxRun:
    sandbox: Sandbox
    runtime: Runtime
    page: PageService
    settings: Settings

    @property
    def url(self) -> str:
        return self.page.url


def sandbox_settings(sandbox: Sandbox, overrides: Mapping[str, Any] | None = None) -> Settings:
    """The environment's Settings with every platform pointed at the stand-ins; `overrides`
    (Settings field names, plus `_env_file`) win."""
    values: dict[str, Any] = {**sandbox.overrides(), "opsbot_api_token": API_TOKEN,
                              "opsbot_callback_secret": CALLBACK_SECRET}  # fmt: skip
    if EXAMPLE_WORKFLOWS.is_dir():
        values["opsbot_workflows"] = str(EXAMPLE_WORKFLOWS)
    values.update(overrides or {})
    settings = load_settings(**values)
    if settings.opsbot_http_port and not port_free(settings.opsbot_http_port):
        log.warning(
            "sandbox: port %s is taken; the HTTP API takes a free one", settings.opsbot_http_port
        )
        settings = load_settings(**{**values, "opsbot_http_port": 0})
    return settings


def default_build(
    settings: Settings, *, card_interval: float | None = None, ping_interval: float | None = None
) -> Runtime:
    """The whole bot exactly as `opsbot run` composes it (bot.app.compose), with the HTTP API
    on 127.0.0.1 only: its write token is the well-known sandbox one. The intervals (tests)
    tune the Slack service: how often approval cards are reconciled, socket pings."""
    from bot.app import compose
    from bot.surface import Surface

    runtime = Runtime(settings)
    slack = compose(runtime)
    for service in runtime.services:
        if isinstance(service, Surface):
            service.host = "127.0.0.1"
    if slack is not None:
        slack.card_interval = card_interval or slack.card_interval
        slack.ping_interval = ping_interval or slack.ping_interval
    return runtime


@contextlib.asynccontextmanager
async def running_sandbox(
    state_dir: str | Path = DEFAULT_STATE_DIR,
    *,
    page_port: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    build: Build | None = None,
    remember_ports: bool = True,
) -> AsyncIterator[SandboxRun]:
    """Stand-ins, then the runtime with the page; everything stopped on exit."""
    async with Sandbox(state_dir, remember_ports=remember_ports) as sandbox:
        settings = sandbox_settings(sandbox, overrides)
        runtime = (build or default_build)(settings)
        port = page_port
        if port is None:  # the remembered (or default) port, unless something else has it
            port = sandbox.ports.get("page", DEFAULT_PAGE_PORT)
            port = port if port_free(port) else 0
        page = PageService(sandbox, runtime, port=port)
        runtime.services.append(page)
        async with runtime:
            if page_port is None:
                await sandbox.remember_port("page", page.port)
            yield SandboxRun(sandbox, runtime, page, settings)


async def run_sandbox(
    state_dir: str | Path = DEFAULT_STATE_DIR,
    *,
    page_port: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    build: Build | None = None,
    announce: Callable[[str], None] | None = None,
) -> int:
    """Run the sandbox until SIGINT/SIGTERM. Once everything is up (after the startup logs)
    the console gets one block saying it is the sandbox and where; on a clean stop, one line
    saying what is left."""
    from bot.app import console, stopped_line

    # slack_sdk ignores NO_PROXY, and everything the sandbox talks to is on 127.0.0.1.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        os.environ.pop(name, None)
    say = announce or console
    async with running_sandbox(
        state_dir, page_port=page_port, overrides=overrides, build=build
    ) as run:
        say(banner(run))
        await run.runtime.run_forever()
    say(await stopped_line(run.settings, f"{run.sandbox.state_dir}/"))
    return 0


def banner(run: SandboxRun) -> str:
    """The sandbox's block for the console (its tokens are well known, not secrets)."""
    from bot.app import http_port

    port = http_port(run.runtime)
    api = f"http://127.0.0.1:{port}" if port is not None else ""
    runner = run.runtime.runner
    workflows = ", ".join(sorted(runner.workflows)) if runner is not None else "none"
    platforms = ", ".join(sorted(p for p in run.runtime.executors if p != "echo"))
    lines = [
        "opsbot SANDBOX is up: the real bot against local stand-ins of Slack, Notion, Trello,",
        "Google Drive and Google Sheets on 127.0.0.1. Nothing leaves this machine.",
        "",
        f"  Page:       {run.url}",
        f"  HTTP API:   {api or 'off'}" + (f"  (write token: {API_TOKEN})" if api else ""),
        *([f"  Try:        curl -H 'Authorization: Bearer {API_TOKEN}' \\",
           f"                -d @{_shown(EXAMPLE_ACTIONS / 'create-card.json')} {api}/actions"]
          if api else []),
        f"  State:      {run.sandbox.state_dir}/ (kept across restarts; delete it to start over)",
        f"  Platforms:  {platforms}; workflows: {workflows}",
        "  Stop:       Ctrl-C (running actions finish, queued ones wait for the next start)",
        "",
        "Set SLACK_BOT_TOKEN and SLACK_APP_TOKEN (and the platforms' keys) to run for real.",
    ]  # fmt: skip
    rule = "=" * min(RULE_MAX, max(len(line) for line in lines))
    return "\n".join(["", rule, *lines, rule])


def _shown(path: Path) -> str:
    """A path as short as it can be said from here (relative under the working directory)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
