"""Queue micro-timings (helper's own check; the real benchmark is bench/queue_bench.py).

submit one by one, submit in batches of 500, claim+record 10,000 rows in batches of 100;
median of 3 runs each, on a fresh SQLite file per run.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.actions import parse_action
from bot.config import load_settings
from bot.queue import Outcome, Queue
from bot.store.engine import Store


def _queue(tmp: Path) -> Queue:
    s = load_settings(
        _env_file=None, opsbot_database_url=f"sqlite:///{tmp / 'q.db'}", queue_max_size=10**6
    )
    return Queue(Store(s.opsbot_database_url), s)


async def one_by_one(n: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        q = _queue(Path(d))
        spec = parse_action({"type": "echo", "data": {"x": 1}})
        t = time.perf_counter()
        for _ in range(n):
            await q.submit([spec])
        rate = n / (time.perf_counter() - t)
        await q.close()
        q.store.close()
        return rate


async def batches(n: int, size: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        q = _queue(Path(d))
        specs = [parse_action({"type": "echo", "data": {"x": i}}) for i in range(size)]
        t = time.perf_counter()
        for _ in range(n // size):
            await q.submit(specs)
        rate = n / (time.perf_counter() - t)
        await q.close()
        q.store.close()
        return rate


async def drain(n: int, size: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        q = _queue(Path(d))
        specs = [parse_action({"type": "echo", "data": {"x": i}}) for i in range(500)]
        for _ in range(n // 500):
            await q.submit(specs)
        t = time.perf_counter()
        done = 0
        while True:
            claimed = await q.claim("w1", size)
            if not claimed:
                break
            now = time.time()
            await q.record(
                [Outcome(c.id, "succeeded", now, now, "w1", result=c.data) for c in claimed]
            )
            done += len(claimed)
        rate = done / (time.perf_counter() - t)
        await q.close()
        q.store.close()
        return rate


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    benches: list[tuple[str, Callable[[], Awaitable[float]]]] = [
        ("submit one by one", lambda: one_by_one(min(n, 5000))),
        ("submit batches of 500", lambda: batches(n * 5, 500)),
        ("claim+record, batches of 100", lambda: drain(n, 100)),
    ]
    for name, fn in benches:
        runs = [await fn() for _ in range(3)]
        median = statistics.median(runs)
        print(f"{name:32s} median {median:>10,.0f}/s  runs {[round(r) for r in runs]}")


if __name__ == "__main__":
    asyncio.run(main())
