"""The work signal: wakes the worker pool when work may be claimable.

At once when this process submits, and within one poll interval when another process commits
(the CLI submitting while `opsbot run` is up), via SQLite's `PRAGMA data_version`, which changes
whenever another connection commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor


class WorkSignal:
    """Wakes workers: an in-process event plus a cheap cross-process change check.

    `sqlite_path` enables `PRAGMA data_version` polling on one dedicated connection (on its own
    thread, off the event loop). Without it (PostgreSQL) a waiter simply wakes every poll
    interval and the caller claims.
    """

    def __init__(self, sqlite_path: str | None, poll_interval: float) -> None:
        self._event: asyncio.Event | None = None
        self._poll = poll_interval
        self._path = sqlite_path
        self._conn: sqlite3.Connection | None = None
        self._seen: int | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsbot-db-watch")

    def _get_event(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    def set(self) -> None:
        """Work arrived in this process (call on the event loop)."""
        self._get_event().set()

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109 (a poll loop, not one await)
        """Return when work may be available, or after `timeout` seconds."""
        event = self._get_event()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        while not event.is_set():
            if await self._changed_elsewhere():
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, self._poll))
            if self._path is None:
                break  # no cheap change check (PostgreSQL): let the caller claim and see
        event.clear()

    async def _changed_elsewhere(self) -> bool:
        if self._path is None:
            return False
        loop = asyncio.get_running_loop()
        version = await loop.run_in_executor(self._thread, self._data_version)
        # The first look counts as a change: a commit made before it must not be missed.
        changed = version != self._seen
        self._seen = version
        return changed

    def _data_version(self) -> int:
        if self._conn is None:
            self._conn = sqlite3.connect(self._path or "", timeout=10, check_same_thread=False)
        row = self._conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    async def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._thread, _close)
        self._thread.shutdown(wait=False)  # idle now: nothing left to wait for
