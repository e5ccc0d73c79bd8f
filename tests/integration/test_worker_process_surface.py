"""`opsbot worker` as a real process: it holds the run lock, logs one line per attempt and
alerts (here through a signed-webhook stand-in), like `opsbot run` without its front doors;
and its work shows on the /metrics of another process reading the same database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bot.backup import backup, restore
from bot.config import load_settings
from bot.metrics import Metrics
from bot.ops.context import OpsError
from bot.store.engine import Store

ROOT = Path(__file__).resolve().parents[2]
OK = {"type": "echo", "data": {"n": 1}}
BAD = {"type": "echo", "data": {"fail": "permanent"}}


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/alerts", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/alerts", got
    await runner.cleanup()


def worker_env(db: Path, webhook_url: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("OPSBOT_", "SLACK_", "ALERT_"))}  # fmt: skip
    return {**keep, "OPSBOT_DATABASE_URL": f"sqlite:///{db}", "ALERT_CHANNELS": "webhook,log",
            "ALERT_WEBHOOK_URL": webhook_url, "LOG_LEVEL": "INFO", "QUEUE_WORKERS": "2",
            "MAX_RETRY_ATTEMPTS": "0"}  # fmt: skip


def submit(env: dict[str, str], cwd: Path, actions: list[dict[str, Any]]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "submit", "-"], input=json.dumps(actions), env=env,
        cwd=cwd, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [line.split()[0] for line in done.stdout.splitlines()]


def statuses(db: Path, ids: list[str]) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        marks = ",".join("?" * len(ids))
        rows = conn.execute(f"SELECT id, status FROM actions WHERE id IN ({marks})", ids)
        return dict(rows.fetchall())


async def until(condition: Any) -> None:
    # Generous: a worker process starting on a loaded 2-core machine took over 30 s once.
    async with asyncio.timeout(90):
        while not condition():  # noqa: ASYNC110 - another process writes what we poll
            await asyncio.sleep(0.05)


async def test_worker_process_holds_the_run_lock_logs_attempts_alerts_and_is_measured(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, alerts = webhook
    db = tmp_path / "ops.db"
    env = worker_env(db, url)
    ids = submit(env, tmp_path, [OK, BAD, BAD, BAD])
    settings = load_settings(_env_file=None, opsbot_database_url=f"sqlite:///{db}")
    snapshot = str(tmp_path / "snap.db")
    await asyncio.to_thread(backup, settings, snapshot)
    store = Store(settings.opsbot_database_url)  # the process serving /metrics, say `opsbot run`
    metrics = Metrics()
    metrics.add_store_collector(store)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "worker", env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        final = {"succeeded", "dead_lettered"}
        await until(lambda: set(statuses(db, ids).values()) <= final and len(alerts) >= 2)
        with pytest.raises(OpsError, match="run lock held"):
            restore(settings, snapshot)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    stderr = err.decode()
    assert proc.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    attempts = {line["actionId"]: line for line in lines if line["logger"] == "opsbot.attempts"}
    assert set(attempts) == set(ids)
    assert attempts[ids[0]]["status"] == "succeeded"
    assert {attempts[i]["status"] for i in ids[1:]} == {"dead_lettered"}
    keys = {alert["key"] for alert in alerts if alert["event"] == "opened"}
    assert {"dead_letter:echo.echo", "failures:echo.echo"} <= keys
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in text_string_to_metric_families(metrics.render().decode())
               for s in family.samples}  # fmt: skip
    store.close()
    echo = {("platform", "echo"), ("type", "echo")}
    assert samples[("opsbot_actions_total", frozenset({*echo, ("outcome", "succeeded")}))] == 1
    assert samples[("opsbot_actions_total", frozenset({*echo, ("outcome", "dead_lettered")}))] == 3
    assert samples[("opsbot_dead_letters_total", frozenset({("platform", "echo")}))] == 3
    assert samples[("opsbot_attempt_duration_seconds_count", frozenset(echo))] == 4
    assert restore(settings, snapshot)["restored"] == str(db)  # the lock went with the process
