"""Engine setup and the thread model for the store.

SQLite allows one writer at a time, so every write runs on ONE dedicated thread (no lock
contention inside the process, grouped commits are natural) while reads use a small pool of
their own (WAL lets readers run beside the writer). Async code awaits `store.write(fn)` /
`store.read(fn)`; sync code (CLI) calls `store.write_sync(fn)` / `store.read_sync(fn)`.
The event loop never touches SQLite itself.

Durability: WAL with synchronous=NORMAL survives a process crash (kill -9) with every committed
transaction intact; only an OS crash or power loss can lose the last commits. Set
OPSBOT_SQLITE_SYNCHRONOUS=FULL to fsync every commit as well.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlmodel import SQLModel

from bot.store import tables
from bot.store.group_commit import GroupCommit
from bot.store.migrations import migrate
from bot.store.writer import WriterThread

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and the chosen sync level."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if str(path) not in ("", ":memory:"):
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        )
        synchronous = os.environ.get("OPSBOT_SQLITE_SYNCHRONOUS", "NORMAL").upper()
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(
                f"OPSBOT_SQLITE_SYNCHRONOUS: got {synchronous!r}, expected NORMAL, FULL or EXTRA"
            )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            # Checkpoint every ~40 MB of WAL instead of ~4 MB: a checkpoint fsyncs, and the
            # queue rewrites the same hot pages; ~35% more commits/s measured on this machine.
            cursor.execute("PRAGMA wal_autocheckpoint=10000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def init_schema(engine: Engine) -> int:
    """Create missing tables and upgrade an older schema in place. Returns the version."""
    SQLModel.metadata.create_all(engine, tables=_all_tables())
    with engine.begin() as conn:
        return migrate(conn)


def _all_tables() -> list[Any]:
    return [
        model.__table__  # type: ignore[attr-defined]
        for model in vars(tables).values()
        if isinstance(model, type) and issubclass(model, SQLModel) and hasattr(model, "__table__")
    ]


class Store:
    """The database, with one writer thread and a pool of reader threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.schema_version = init_schema(self.engine)
        self._writer = WriterThread("opsbot-db-write")
        self._writer_conn: Connection | None = None  # used on the writer thread only
        self._group = GroupCommit(self._writer, self._write_on_writer)
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="opsbot-db-read")

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn(conn)` in one transaction on the writer thread; committed when this returns."""
        return await self._writer.run(partial(self._write_on_writer, fn))

    async def write_grouped(self, fn: Callable[[Connection], T]) -> T:
        """Like `write`, but concurrent callers may share one commit (each in its own
        savepoint); each returns after the commit that holds its writes. For writes that
        are independent of each other, such as submits (bot.store.group_commit)."""
        return await self._group.write(fn)

    def _write_on_writer(self, fn: Callable[[Connection], T]) -> T:
        """write_sync on the writer thread, over one connection kept open for its life: a
        pool checkout and SQLAlchemy's begin/commit events per write cost about as much as
        the commit itself, and the queue commits thousands of times a second."""
        conn = self._writer_conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._writer_conn = self.engine.connect()
        try:
            result = fn(conn)
            if conn.in_transaction():
                conn.commit()
            else:  # only statements run on the DBAPI cursor (bot.store.prepared)
                conn.connection.driver_connection.commit()  # type: ignore[union-attr]
            return result
        except BaseException:
            if conn.in_transaction():
                conn.rollback()
            elif not conn.invalidated:
                conn.connection.driver_connection.rollback()  # type: ignore[union-attr]
            raise

    async def read(self, fn: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self.read_sync, fn)

    def write_sync(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.begin() as conn:
            return fn(conn)

    def read_sync(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn:
            return fn(conn)

    def close(self) -> None:
        if self._writer_conn is not None:
            self._writer.run_blocking(self._writer_conn.close)
            self._writer_conn = None
        self._writer.stop()
        self._readers.shutdown(wait=True)
        self.engine.dispose()

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar() == 1
