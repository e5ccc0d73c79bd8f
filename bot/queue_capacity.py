"""QUEUE_MAX_SIZE: a submit that would take the non-final actions beyond it is refused whole.

Counting the non-final actions on every submit would cost a scan per commit; the count is kept
in process (our submits add, our finals subtract) and taken again from the store when it is
older than a second (another process may submit too) or when the batch might not fit.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection

from bot.queue_views import count_active

_RECOUNT_EVERY_S = 1.0  # another process may submit too: trust the in-process count this long


class QueueFull(Exception):
    def __init__(self, waiting: int, incoming: int, max_size: int) -> None:
        self.waiting, self.incoming, self.max_size = waiting, incoming, max_size
        extra = f"; refused {incoming} new actions" if incoming > 1 else ""
        super().__init__(
            f"queue full: {waiting} of QUEUE_MAX_SIZE={max_size} actions waiting{extra}"
        )


class Capacity:
    """QUEUE_MAX_SIZE bookkeeping: non-final actions as last counted, plus our own submits
    minus our own finals since. Counts exactly only when it may matter or the count is old."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active: int | None = None
        self._counted_at = 0.0

    def reserve(self, conn: Connection, incoming: int) -> None:
        """Refuse the whole batch (QueueFull) if it does not fit."""
        stale = time.monotonic() - self._counted_at > _RECOUNT_EVERY_S
        if self.active is None or stale or self.active + incoming > self.limit:
            self.active = count_active(conn)
            self._counted_at = time.monotonic()
        if self.active + incoming > self.limit:
            raise QueueFull(self.active, incoming, self.limit)

    def added(self, n: int) -> None:
        self.active = (self.active or 0) + n

    def finished(self, n: int) -> None:
        if self.active is not None:
            self.active -= n
