"""Group commit: concurrent writes that may share one transaction (submits).

Each caller still returns only after the commit that holds its rows. Writes that arrive while
the writer thread is busy wait in one group; when the writer gets to the group it runs every
write in its own SAVEPOINT (a failing one is rolled back alone and its caller gets the error)
and commits once. A lone write (the usual case when idle) runs exactly like Store.write.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection

from bot.store.writer import WriterThread, deliver

T = TypeVar("T")
_Outcome = tuple[Any, BaseException | None]
_Pending = tuple[Callable[[Connection], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class GroupCommit:
    def __init__(
        self, writer: WriterThread, transaction: Callable[[Callable[[Connection], Any]], Any]
    ) -> None:
        """`transaction(fn)` runs fn(conn) in one transaction on the writer thread, commits
        and returns fn's result (Store._write_on_writer)."""
        self._writer = writer
        self._transaction = transaction
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []

    async def write(self, fn: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._pending.append((fn, future, loop))
            first = len(self._pending) == 1
        if first:  # later arrivals join this group until the writer takes it
            self._writer.post(self._flush)
        return await future

    def _flush(self) -> None:
        """On the writer thread: run the group taken now, commit, answer every caller."""
        with self._lock:
            group, self._pending = self._pending, []
        group = [job for job in group if not job[1].cancelled()]
        if not group:
            return
        fns = [fn for fn, _, _ in group]
        try:
            outcomes = self._transaction(lambda conn: _run_group(fns, conn))
        except BaseException as exc:  # the commit (or a lone write) failed: all get it
            outcomes = [(None, exc)] * len(group)
        for (_, future, loop), (result, error) in zip(group, outcomes, strict=True):
            deliver(loop, future, result, error)


def _run_group(fns: list[Callable[[Connection], Any]], conn: Connection) -> list[_Outcome]:
    if len(fns) == 1:
        return [(fns[0](conn), None)]  # an error rolls back the transaction, as Store.write
    raw = conn.connection.driver_connection
    cursor = raw.cursor()  # type: ignore[union-attr]
    if not getattr(raw, "in_transaction", True):
        # sqlite3 begins implicitly only before DML; a SAVEPOINT outside a transaction would
        # start one that its RELEASE commits: begin explicitly, so the group commits once.
        cursor.execute("BEGIN")
    outcomes: list[_Outcome] = []
    try:
        for fn in fns:
            cursor.execute("SAVEPOINT opsbot_group")
            try:
                outcomes.append((fn(conn), None))
            except Exception as exc:
                cursor.execute("ROLLBACK TO SAVEPOINT opsbot_group")
                outcomes.append((None, exc))
            cursor.execute("RELEASE SAVEPOINT opsbot_group")
    finally:
        cursor.close()
    return outcomes
