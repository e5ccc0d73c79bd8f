"""`opsbot run`: the whole bot in one asyncio process.

The Runtime (store, queue, flow control, executors, workers) plus its services, started in this
order and stopped in reverse:
  run lock -> workflow runner -> Slack front door (when both tokens are set) -> scheduler ->
  surface (metrics, alerts, health checks, callbacks, HTTP server).
The runner comes before Slack and the scheduler so `/ops run` and schedules use the live one;
Slack comes before the surface so alerts can be posted to #errors.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from bot.backup import RunLock
from bot.config import Settings
from bot.run_callbacks import RunCallbackService
from bot.runtime import Runtime
from bot.schedules.service import SchedulerService
from bot.slack_app import SlackService, add_slack
from bot.surface import Surface
from bot.workflows.service import WorkflowService

log = logging.getLogger(__name__)


def compose(runtime: Runtime) -> SlackService | None:
    """Add every service `opsbot run` starts to `runtime.services`; returns the Slack service.
    The surface is built first (started last) so the others can be handed its parts."""
    settings = runtime.settings
    runtime.services.append(RunLock(settings))
    surface = Surface(runtime)
    runtime.services.append(WorkflowService(runtime))
    slack = add_slack(runtime, settings)
    surface.slack_post = slack.alert_post if slack else None
    runtime.services.append(
        SchedulerService(runtime, runner=lambda: runtime.runner, post=_report_poster(slack))
    )
    runtime.services.append(surface)
    runtime.services.append(RunCallbackService(runtime, surface))  # needs runner and surface
    return slack


def _report_poster(slack: SlackService | None) -> Any:
    if slack is None:
        return None

    async def post(channel: str, text: str) -> Any:
        assert slack.door is not None, "the Slack service has not started"
        return await slack.door.client.chat_postMessage(channel=channel, text=text)

    return post


def http_port(runtime: Runtime) -> int | None:
    """The port the HTTP API really listens on (OPSBOT_HTTP_PORT may be 0, or taken and
    replaced); None when the surface is not running."""
    for service in runtime.services:
        web = getattr(service, "web", None) if isinstance(service, Surface) else None
        if web is not None:
            return int(web.port)
    return None


def banner(runtime: Runtime, slack: SlackService | None) -> str:
    """What is running, in a few lines for the console (no secrets)."""
    settings = runtime.settings
    port = http_port(runtime)
    lines = [
        f"opsbot is running (database {settings.opsbot_database_url}, "
        f"{settings.queue_workers} workers, HTTP on port {port if port is not None else 'none'})",
        "  slack front door: "
        + ("on (Socket Mode)" if slack else "off (needs SLACK_BOT_TOKEN and SLACK_APP_TOKEN)"),
    ]
    lines += [f"  {platform}: enabled" for platform in sorted(runtime.executors)]
    lines += [f"  {p}: disabled: {reason}" for p, reason in sorted(runtime.disabled.items())]
    workflows = runtime.runner.workflows if runtime.runner else {}
    lines.append(f"  workflows: {', '.join(sorted(workflows)) or 'none (OPSBOT_WORKFLOWS)'}")
    lines.append("Stop with Ctrl-C (SIGINT) or SIGTERM: running actions finish, the rest wait.")
    return "\n".join(lines)


def unfinished_actions(settings: Settings) -> int:
    """Actions not final yet (queued, waiting for approval or a retry), read from the store
    after the runtime stopped: the ones the next start picks up."""
    from bot.queue_views import count_active
    from bot.store.engine import Store

    store = Store(settings.opsbot_database_url)
    try:
        return store.read_sync(count_active)
    finally:
        store.close()


async def stopped_line(settings: Settings, where: str) -> str:
    """The console's last line on a clean shutdown."""
    try:
        left = await asyncio.to_thread(unfinished_actions, settings)
    except Exception as exc:  # the line is a courtesy: never fail the exit over it
        log.warning("counting the unfinished actions failed: %s", exc)
        return f"opsbot stopped: state kept in {where}"
    noun = "action" if left == 1 else "actions"
    return f"opsbot stopped: {left} {noun} still queued, state kept in {where}"


def console(text: str) -> None:
    """Banners and the stop line go to stdout; logs go to stderr. Flushing stderr first keeps
    the startup log lines above the banner on a terminal showing both."""
    sys.stderr.flush()
    print(text, flush=True)


async def serve(settings: Settings, runtime: Runtime | None = None) -> int:
    runtime = runtime or Runtime(settings)
    slack = compose(runtime)
    async with runtime:
        console(banner(runtime, slack))
        await runtime.run_forever()
    console(await stopped_line(settings, settings.opsbot_database_url))
    return 0


def run_all(settings: Settings) -> int:
    return asyncio.run(serve(settings))
