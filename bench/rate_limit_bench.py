"""Rate-limit benchmark: N actions per platform through the whole path, all platforms at once.

Path: Queue.submit on a temporary SQLite file -> worker pool -> per-platform sliding-window
limiter -> executor -> the platform's real SDK -> a local stand-in on 127.0.0.1 that enforces
the seed's limit (Notion 3/s, Trello 100/10 s, Slack 1/s, Drive 1000/100 s, Sheets 100/100 s)
by arrival time and answers 429 above it. Stand-ins run on an event loop of their own.

Run: `.venv/bin/python bench/rate_limit_bench.py [--actions 300] [--platforms notion,slack]
[--scale 10] [--workers 5] [--runs 1] [--isolated]`. At the seed limits a run takes ~5 minutes
(Slack's 300 notifications at 1 request/s). `--scale` multiplies every limit (limiter
and stand-in) for quick runs; only `--scale 1` figures compare with the seed. `--isolated` gives
each platform a runtime of its own. Goal (issue 3): >= 95% of the limit with zero 429s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _rate_table import DEFINITIONS, Row, achieved_pct, median_rows, percentile, print_table
from sqlalchemy import text

from bot.actions import parse_actions
from bot.config import DEFAULT_RATE_LIMITS, Settings
from bot.flow.ratelimit import default_margin
from bot.runtime import Runtime
from executors.sandbox import notion, slack, trello
from executors.sandbox.google import start_google_standins
from executors.sandbox.standin import StandIn

T = TypeVar("T")
PLATFORMS = ("notion", "trello", "slack", "drive", "sheets")
Maker = Callable[[int], dict[str, Any]]
ACTIONS: dict[str, tuple[str, Maker]] = {
    "notion": ("create_task", lambda i: {"title": f"bench task {i}"}),
    "trello": ("create_card", lambda i: {"name": f"bench card {i}"}),
    "slack": ("send_notification", lambda i: {"channel": "#operations", "text": f"bench {i}"}),
    "drive": ("upload_file", lambda i: {"name": f"bench-{i}.txt", "content": f"file {i}"}),
    "sheets": ("append_row", lambda i: {"values": [i, "bench"], "sheet": "Sheet1"}),
}


def scaled_limits(scale: float) -> dict[str, tuple[int, float]]:
    return {
        p: (max(1, round(DEFAULT_RATE_LIMITS[p][0] * scale)), DEFAULT_RATE_LIMITS[p][1])
        for p in PLATFORMS
    }


async def start_standins(
    platforms: list[str], limits: dict[str, tuple[int, float]], stack: contextlib.AsyncExitStack
) -> tuple[dict[str, StandIn], dict[str, dict[str, Any]]]:
    """The stand-ins of `platforms` and, per platform, the Settings overrides that point opsbot
    at its stand-in."""
    standins: dict[str, StandIn] = {}
    overrides: dict[str, dict[str, Any]] = {}
    if "notion" in platforms:
        standins["notion"] = await stack.enter_async_context(
            notion.NotionStandIn(rate_limit=limits["notion"])
        )
        overrides["notion"] = {
            "notion_api_key": notion.TOKEN,
            "notion_database_id": notion.DATABASE_ID,
            "notion_api_url": standins["notion"].base_url,
        }
    if "trello" in platforms:
        standins["trello"] = await stack.enter_async_context(
            trello.TrelloStandIn(rate_limit=limits["trello"])
        )
        overrides["trello"] = {
            "trello_api_key": trello.API_KEY,
            "trello_token": trello.TOKEN,
            "trello_board_id": trello.BOARD_ID,
            "trello_default_list_id": trello.DEFAULT_LIST_ID,
            "trello_api_url": standins["trello"].base_url,
        }
    if "slack" in platforms:
        slack_standin = slack.SlackStandIn(rate_limit=limits["slack"])
        standins["slack"] = await stack.enter_async_context(slack_standin)
        overrides["slack"] = {
            "slack_bot_token": slack.BOT_TOKEN,
            "slack_api_url": slack_standin.api_url,
        }
    if "drive" in platforms or "sheets" in platforms:
        google = await start_google_standins(rate_limits=limits)
        stack.push_async_callback(google.stop)
        for platform, google_standin in (("drive", google.drive), ("sheets", google.sheets)):
            if platform in platforms:
                standins[platform] = google_standin
                overrides[platform] = google.settings()
    return standins, overrides


class SideLoop:
    """An event loop in a thread of its own for the stand-ins: as in production, when a request
    arrives at the platform does not depend on what else the bot's loop is doing (they still
    share the GIL and the machine's cores)."""

    def __enter__(self) -> SideLoop:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="standins")
        self.thread.start()
        return self

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def __exit__(self, *exc_info: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def refused_at(standin: StandIn) -> tuple[float, ...]:
    """When the refused (429) requests arrived, relative to the first request: at the start
    (cold connections) or in the steady state tell different stories."""
    served = set(standin.stats.served)
    stamps = sorted(r.at for r in standin.stats.requests)
    return tuple(t - stamps[0] for t in stamps if t not in served)


def make_settings(
    db: Path,
    limits: dict[str, tuple[int, float]],
    workers: int,
    total: int,
    overrides: dict[str, Any],
) -> Settings:
    values: dict[str, Any] = {
        "opsbot_database_url": f"sqlite:///{db}",
        "queue_max_size": max(1000, 2 * total),
        "queue_workers": workers,
        # Platforms not benchmarked stay disabled, whatever the environment says.
        "notion_api_key": None,
        "trello_api_key": None,
        "slack_bot_token": None,
        "google_service_account_key": None,
        **{f"{p}_rate_limit": limits[p][0] for p in PLATFORMS},
        **overrides,
        "_env_file": None,
    }
    return Settings(**values)


async def run_actions(
    settings: Settings, platforms: list[str], n: int, limit_s: float
) -> tuple[dict[str, float], dict[str, int], list[Any]]:
    """Submit n actions per platform at once; wait until every one is final. Returns the
    wall time and succeeded count per platform, and (platform, queue_wait_ms) rows."""
    specs = parse_actions(
        [{"type": ACTIONS[p][0], "data": ACTIONS[p][1](i)} for i in range(n) for p in platforms]
    )
    remaining = dict.fromkeys(platforms, n)
    succeeded = dict.fromkeys(platforms, 0)
    wall: dict[str, float] = {}
    done = asyncio.Event()
    started = time.monotonic()

    def on_outcome(view: dict[str, Any]) -> None:
        if not view["final"]:
            return
        platform = view["platform"]
        remaining[platform] -= 1
        succeeded[platform] += view["status"] == "succeeded"
        if remaining[platform] == 0:
            wall[platform] = time.monotonic() - started
            if len(wall) == len(platforms):
                done.set()

    async with Runtime(settings) as runtime:
        runtime.queue.subscribe(on_outcome)
        await runtime.queue.submit(specs)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), limit_s)
        sql = text("SELECT platform, queue_wait_ms FROM actions WHERE queue_wait_ms IS NOT NULL")
        waits = await runtime.store.read(lambda conn: conn.execute(sql).all())
    for platform in platforms:  # not finished within the timeout
        wall.setdefault(platform, float("nan"))
    return wall, succeeded, list(waits)


async def run_once(
    platforms: list[str], n: int, scale: float, workers: int, isolated: bool
) -> list[Row]:
    limits = scaled_limits(scale)
    stack = contextlib.AsyncExitStack()  # entered and closed on the stand-ins' loop
    with SideLoop() as side, tempfile.TemporaryDirectory(prefix="ratebench-") as tmp:
        standins, overrides = await side.call(start_standins(platforms, limits, stack))
        folder = Path(tmp)
        # Longest expected drain (two requests per action at the limit) with plenty of room.
        timeout = 3 * sum(2 * n / (limits[p][0] / limits[p][1]) for p in platforms) + 120
        # One runtime for all platforms, or (isolated) one runtime per platform, concurrently.
        groups = [[p] for p in platforms] if isolated else [platforms]
        runs = []
        for group in groups:
            merged = {k: v for p in group for k, v in overrides[p].items()}
            db = folder / f"{'-'.join(group)}.db"
            settings = make_settings(db, limits, workers, n * len(group), merged)
            runs.append(run_actions(settings, group, n, timeout))
        wall: dict[str, float] = {}
        succeeded: dict[str, int] = {}
        waits: list[Any] = []
        try:
            results = await asyncio.gather(*runs)
        finally:
            await side.call(stack.aclose())
        for group_wall, group_ok, group_waits in results:
            wall |= group_wall
            succeeded |= group_ok
            waits += group_waits
    rows = []
    for p in platforms:
        standin, (limit, window) = standins[p], limits[p]
        waited = [float(ms) for platform, ms in waits if platform == p]
        rows.append(
            Row(
                p,
                n,
                succeeded[p],
                len(standin.stats.requests),
                (limit, window),
                achieved_pct(standin.stats.served, limit, window),
                standin.stats.max_in_window(window),
                standin.stats.rate_limited,
                percentile(waited, 50),
                percentile(waited, 99),
                wall[p],
                refused_at(standin),
            )
        )
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=300, help="actions per platform")
    parser.add_argument("--platforms", default=",".join(PLATFORMS), help="comma-separated")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every limit")
    parser.add_argument(
        "--workers",
        type=int,
        default=Settings.model_fields["queue_workers"].default,
        help="QUEUE_WORKERS (default: the Settings default)",
    )
    parser.add_argument("--runs", type=int, default=1, help="runs; >1 adds a median table")
    parser.add_argument(
        "--isolated",
        action="store_true",
        help="one runtime (store, queue, pool) per platform instead of one for all",
    )
    args = parser.parse_args()
    args.platforms = [p.strip() for p in args.platforms.split(",") if p.strip()]
    unknown = set(args.platforms) - set(PLATFORMS)
    if unknown or not args.platforms:
        parser.error(f"--platforms: expected some of {', '.join(PLATFORMS)}")
    return args


def main() -> int:
    args = parse_args()
    # notion-client logs every 429 at WARNING on its own handler; the table counts them.
    quiet = logging.getLogger("opsbot.notion_client")
    quiet.addFilter(lambda record: record.levelno >= logging.ERROR)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        os.environ.pop(name, None)  # stand-ins are local; slack_sdk ignores NO_PROXY
    limits = "seed limits" if args.scale == 1 else f"limits x{args.scale:g} (NOT the seed's)"
    runtimes = "one runtime per platform" if args.isolated else "one runtime"
    windows = sorted({DEFAULT_RATE_LIMITS[p][1] for p in args.platforms})
    margins = ", ".join(f"{default_margin(w) * 1000:g} ms per {w:g}-s window" for w in windows)
    print(
        f"rate-limit bench: {args.actions} actions per platform, {', '.join(args.platforms)}"
        f" concurrently in {runtimes}, {limits}, QUEUE_WORKERS={args.workers}, limiter margin "
        f"{margins}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    runs = []
    for i in range(args.runs):
        rows = asyncio.run(
            run_once(args.platforms, args.actions, args.scale, args.workers, args.isolated)
        )
        runs.append(rows)
        print_table(f"run {i + 1} of {args.runs}", rows)
    if len(runs) > 1:
        print_table(f"median of {len(runs)} runs (max/win, 429s: worst)", median_rows(runs))
    print(f"\n{DEFINITIONS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
