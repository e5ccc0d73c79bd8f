"""The writer thread: runs write jobs one at a time, in order, and hands results back to the
event loop.

A plain thread reading a SimpleQueue and answering with `call_soon_threadsafe` costs about half
the round trip of `loop.run_in_executor` on a one-thread pool (measured ~30 us against ~60 us
on the 2-core bench machine): no concurrent Future, no wrap_future chaining, no pool
bookkeeping. A one-by-one submit is one round trip plus one commit, so this is a sizeable part
of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)
# (fn, future, loop): loop None with a concurrent Future (run_blocking); both None (post)
_Job = tuple[
    Callable[[], Any],
    "asyncio.Future[Any] | Future[Any] | None",
    asyncio.AbstractEventLoop | None,
]


class WriterThread:
    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        # A daemon thread never holds up interpreter exit; a transaction cut short at exit is
        # rolled back by SQLite, so nothing half-written can remain.
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    async def run(self, fn: Callable[[], T]) -> T:
        """Run `fn()` on the writer thread; a cancelled caller's job is skipped if not begun."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, future, loop))
        return await future

    def run_blocking(self, fn: Callable[[], T]) -> T:
        """Run `fn()` on the writer thread and wait for it (from any other thread)."""
        future: Future[T] = Future()
        self._jobs.put((fn, future, None))
        return future.result()

    def post(self, fn: Callable[[], None]) -> None:
        """Run `fn()` on the writer thread without waiting: it reports its own results."""
        self._jobs.put((fn, None, None))

    def stop(self) -> None:
        """Finish the queued jobs, then end the thread."""
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, future, loop = job
            if future is None:
                _run_posted(fn)
                continue
            if future.cancelled():  # the caller gave up before we began
                continue
            try:
                result = fn()
            except BaseException as exc:  # handed to the caller, as run_in_executor does
                deliver(loop, future, None, exc)
            else:
                deliver(loop, future, result, None)


def _run_posted(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:  # a posted job answers its callers itself; keep the thread alive
        log.exception("writer job failed")


def deliver(
    loop: asyncio.AbstractEventLoop | None,
    future: asyncio.Future[Any] | Future[Any],
    result: Any,
    exc: BaseException | None,
) -> None:
    """Settle `future` with the result or error, on its loop (None: a concurrent Future)."""
    if loop is None:
        assert isinstance(future, Future)
        _settle(future, result, exc)
        return
    with contextlib.suppress(RuntimeError):  # the loop closed while we ran: nobody waits
        loop.call_soon_threadsafe(_settle, future, result, exc)


def _settle(
    future: asyncio.Future[Any] | Future[Any], result: Any, exc: BaseException | None
) -> None:
    if future.cancelled() or future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
