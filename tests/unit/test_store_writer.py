"""The store's writer thread: jobs run in order on one thread, results and errors come back to
the awaiting coroutine, and a job whose caller gave up before it began is skipped."""

from __future__ import annotations

import asyncio
import threading
from functools import partial

import pytest

from bot.store.writer import WriterThread


async def test_runs_in_order_on_one_thread_and_returns_results() -> None:
    writer = WriterThread("test-writer")
    seen: list[tuple[int, str]] = []

    def job(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i * 2

    results = await asyncio.gather(*(writer.run(partial(job, i)) for i in range(20)))
    assert results == [i * 2 for i in range(20)]
    assert [i for i, _ in seen] == list(range(20))
    assert {name for _, name in seen} == {"test-writer"}
    assert writer.run_blocking(lambda: 7) == 7
    writer.stop()


async def test_errors_reach_the_caller() -> None:
    writer = WriterThread("test-writer")

    def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await writer.run(fail)
    with pytest.raises(ValueError, match="boom"):
        writer.run_blocking(fail)
    writer.stop()


async def test_a_cancelled_caller_s_job_is_skipped_when_not_begun() -> None:
    writer = WriterThread("test-writer")
    gate = threading.Event()
    ran: list[str] = []
    first = asyncio.ensure_future(writer.run(lambda: gate.wait(5)))
    second = asyncio.ensure_future(writer.run(lambda: ran.append("second")))
    await asyncio.sleep(0)  # both jobs queued; the first holds the thread
    second.cancel()
    gate.set()
    assert await first is True
    await writer.run(lambda: None)  # everything queued before this has been handled
    assert ran == [] and second.cancelled()
    writer.stop()
