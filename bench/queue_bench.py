"""Queue benchmark: enqueue rates, drain rate, idle enqueue-to-start latency, peak RSS.

Run: `.venv/bin/python bench/queue_bench.py [--runs 3] [--drain 10000]`. Every figure is the
median of the runs; each run uses a fresh SQLite file (WAL, synchronous=NORMAL, the defaults).
Goals (issue 2): submit >= 3,000/s one by one, >= 50,000/s in batches; drain >= 7,500/s with
5 workers; idle enqueue-to-start p99 <= 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from bot.actions import ActionSpec, parse_actions
from bot.config import Settings
from bot.flow.breaker import Breakers
from bot.flow.fallback import FallbackChain
from bot.flow.ratelimit import RateLimiters
from bot.flow.retry import RetryPolicy
from bot.queue import Queue
from bot.routing import PLATFORMS
from bot.store.engine import Store
from bot.worker import WorkerPool
from executors.echo import EchoExecutor

Bench = Callable[[Path], Awaitable[float | tuple[float, float]]]


def settings_for(db: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        opsbot_database_url=f"sqlite:///{db}", queue_max_size=10_000_000, _env_file=None
    )


def echo_specs(n: int) -> list[ActionSpec]:
    return parse_actions([{"type": "echo", "data": {"i": i}} for i in range(n)])


def make_pool(store: Store, queue: Queue, settings: Settings) -> WorkerPool:
    limiters = RateLimiters(settings.rate_limits)
    executors: dict[str, Any] = {"echo": EchoExecutor(limiters.throttle("echo"))}
    return WorkerPool(
        queue, executors, limiters, Breakers(PLATFORMS), RetryPolicy.from_settings(settings),
        FallbackChain(settings.fallbacks), settings, store=store,
    )  # fmt: skip


async def enqueue_one_by_one(db: Path, n: int = 2000) -> float:
    settings = settings_for(db)
    store = Store(settings.opsbot_database_url)
    queue = Queue(store, settings)
    specs = echo_specs(n)
    started = time.perf_counter()
    for spec in specs:
        await queue.submit([spec])
    elapsed = time.perf_counter() - started
    await queue.close()
    store.close()
    return n / elapsed


async def enqueue_batches(db: Path, n: int = 50_000, batch: int = 1000) -> float:
    settings = settings_for(db)
    store = Store(settings.opsbot_database_url)
    queue = Queue(store, settings)
    specs = echo_specs(n)  # validation is not part of the storage rate
    started = time.perf_counter()
    for i in range(0, n, batch):
        await queue.submit(specs[i : i + batch])
    elapsed = time.perf_counter() - started
    await queue.close()
    store.close()
    return n / elapsed


async def drain(db: Path, n: int) -> float:
    settings = settings_for(db)
    store = Store(settings.opsbot_database_url)
    queue = Queue(store, settings)
    specs = echo_specs(n)
    for i in range(0, n, 1000):
        await queue.submit(specs[i : i + 1000])
    done = asyncio.Event()
    finished = 0

    def count(view: dict[str, Any]) -> None:
        nonlocal finished
        if view.get("final"):
            finished += 1
            if finished >= n:
                done.set()

    queue.subscribe(count)
    pool = make_pool(store, queue, settings)
    started = time.perf_counter()
    await pool.start()
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - started
    await pool.stop(1.0)
    await queue.close()
    store.close()
    return n / elapsed


async def idle_latency(db: Path, samples: int = 300) -> tuple[float, float]:
    """Submit one action every 10 ms to idle workers; enqueue (submit call) -> attempt start."""
    settings = settings_for(db)
    store = Store(settings.opsbot_database_url)
    queue = Queue(store, settings)
    pool = make_pool(store, queue, settings)
    await pool.start()
    ids = []
    for spec in echo_specs(samples):
        ids.append((await queue.submit([spec]))[0].id)
        await asyncio.sleep(0.01)
    await pool.wait_drained()
    await pool.stop(1.0)
    sql = text(
        "SELECT (t.started_at - a.created_at) * 1000 FROM actions a "
        "JOIN attempts t ON t.action_id = a.id AND t.number = 1"
    )
    waits = sorted(row[0] for row in store.read_sync(lambda c: c.execute(sql).all()))
    await queue.close()
    store.close()
    return _percentile(waits, 50), _percentile(waits, 99)


def _percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def median_of(runs: int, bench: Bench) -> Any:
    results: list[Any] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(await bench(Path(tmp) / "bench.db"))
    if isinstance(results[0], tuple):
        return tuple(statistics.median(r[i] for r in results) for i in range(len(results[0])))
    return statistics.median(results)


async def main(runs: int, drain_n: int) -> None:
    one = await median_of(runs, enqueue_one_by_one)
    batched = await median_of(runs, enqueue_batches)
    drained = await median_of(runs, lambda db: drain(db, drain_n))
    p50, p99 = await median_of(runs, idle_latency)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        ("enqueue, one by one (own commit each)", f"{one:,.0f} actions/s", ">= 3,000/s"),
        ("enqueue, batches of 1,000", f"{batched:,.0f} actions/s", ">= 50,000/s"),
        (f"drain {drain_n:,} echo actions, 5 workers", f"{drained:,.0f} actions/s", ">= 7,500/s"),
        ("idle enqueue-to-start p50", f"{p50:.2f} ms", ""),
        ("idle enqueue-to-start p99", f"{p99:.2f} ms", "<= 5 ms"),
        ("peak RSS", f"{rss_mb:.0f} MB", ""),
    ]
    print(f"opsbot queue benchmark (median of {runs} runs, SQLite WAL)")
    print(f"{'measure':<42} {'result':>18}  goal")
    for name, value, goal in rows:
        print(f"{name:<42} {value:>18}  {goal}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--drain", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.drain))
