"""A process killed with SIGKILL in the middle of a run; a new process finishes the run and every
step's side effect happens exactly once (the echo platform's record file counts them)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.store.engine import Store
from bot.store.tables import ActionRow

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from bot.config import load_settings
    from bot.flow.breaker import Breakers
    from bot.flow.fallback import FallbackChain
    from bot.flow.ratelimit import RateLimiters
    from bot.flow.retry import RetryPolicy
    from bot.queue import Queue
    from bot.routing import PLATFORMS
    from bot.store.engine import Store
    from bot.worker import WorkerPool
    from bot.workflows.definitions import Workflow
    from bot.workflows.rollback import WithCompensation
    from bot.workflows.runner import WorkflowRunner
    from executors.echo import EchoExecutor

    async def main(db: str, record: str) -> None:
        settings = load_settings(_env_file=None, opsbot_database_url=f"sqlite:///{db}",
                                 opsbot_lease_seconds=1.0, retry_initial_delay=0.01)
        def echo(step, **extra):
            return {"type": "echo", "data": {"step": step, "record": record, **extra}}
        wf = (Workflow("crash", timeout=60)
              .add_step("s1", echo("s1"))
              .add_step("s2", echo("s2", delay=1.5), depends_on="s1")
              .add_step("s3", echo("s3"), depends_on="s2"))
        store = Store(settings.opsbot_database_url)
        queue = Queue(store, settings)
        limiters = RateLimiters(settings.rate_limits)
        pool = WorkerPool(queue, {"echo": WithCompensation(EchoExecutor())}, limiters,
                          Breakers(PLATFORMS, clock=time.time),
                          RetryPolicy.from_settings(settings),
                          FallbackChain(settings.fallbacks), settings, store=store)
        runner = WorkflowRunner(store, queue, {"crash": wf}, settings, sweep_interval=0.1)
        await pool.start()
        await runner.start()
        started = await runner.start_run("crash", {}, idempotency_key="crash-1")
        print(json.dumps({"id": started["id"], "duplicate": started["duplicate"]}), flush=True)
        view = await runner.wait(started["id"], 30)
        print(json.dumps({"status": view["status"]}), flush=True)
        await runner.stop()
        await pool.stop(1.0)
        await queue.close()
        store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def _spawn(script: Path, db: Path, record: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    env["PYTHONPATH"] = str(ROOT)
    return await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(db), str(record),
        stdout=asyncio.subprocess.PIPE, cwd=str(ROOT), env=env,
    )  # fmt: skip


async def _line(proc: asyncio.subprocess.Process, within: float) -> dict[str, Any]:
    assert proc.stdout is not None
    raw = await asyncio.wait_for(proc.stdout.readline(), within)
    assert raw, "the process ended without answering"
    return dict(json.loads(raw))


async def _step_running(db: Path, step: str, within: float) -> None:
    table = ActionRow.__table__  # type: ignore[attr-defined]
    query = select(table.c.status).where(table.c.step_name == step)
    store = Store(f"sqlite:///{db}")
    try:
        async with asyncio.timeout(within):
            # Another process writes the store: polling it (bounded) is the only signal.
            while True:
                if await store.read(lambda c: c.execute(query).scalar()) == "running":
                    return
                await asyncio.sleep(0.05)
    finally:
        store.close()


@pytest.mark.slow
async def test_sigkill_mid_run_resumes_and_runs_each_step_once(tmp_path: Path) -> None:
    script, db, record = tmp_path / "run.py", tmp_path / "opsbot.db", tmp_path / "effects.jsonl"
    script.write_text(SCRIPT)
    first = await _spawn(script, db, record)
    try:
        started = await _line(first, 20)
        await _step_running(db, "s2", 20)  # s1 done, s2 in the middle of its 1.5 s
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    assert [json.loads(x)["step"] for x in record.read_text().splitlines()] == ["s1"]
    second = await _spawn(script, db, record)
    try:
        resumed = await _line(second, 20)
        assert resumed == {"id": started["id"], "duplicate": True}
        assert await _line(second, 30) == {"status": "succeeded"}
        await asyncio.wait_for(second.wait(), 10)
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()
    steps = [json.loads(x)["step"] for x in record.read_text().splitlines()]
    assert steps == ["s1", "s2", "s3"]
