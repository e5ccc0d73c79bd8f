"""Attempt-derived counters of EVERY process, read from the store at scrape time.

Several processes may work one queue (`opsbot run` plus any `opsbot worker`), but only the one
serving HTTP is scraped. So actions by outcome, attempts (and their durations), retries,
fallbacks, 429s, dead letters and finished workflow runs are not counted from this process's
outcome bus: they are read from the rows every process writes in the same transaction as the
outcome, the `attempts` table (one row per attempt) and the `audit` table (one row per status
change, of actions and of runs).

At each scrape `Ledger.catch_up` reads the rows added since the previous scrape, a range on the
integer primary keys (indexed, at most BATCH rows per table per scrape: a backlog is caught up
over a few scrapes), and adds them to the ordinary prometheus-client Counters and Histogram of
`Metrics`. The cursors start at the tables' current ends, so the counters start at zero with the
serving process, as any Prometheus counter does; retention pruning removes old rows only, below
the cursors (a table emptied and renumbered is noticed and read from its start). SQLite commits
one writer at a time, so a row never becomes visible after a higher id already was.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from bot.store.engine import Store
from bot.workflows.runner import FINAL as RUN_FINAL

if TYPE_CHECKING:
    from bot.metrics import Metrics

BATCH = 50_000
FINAL = ("succeeded", "dead_lettered", "rejected", "expired", "cancelled")
_ENDS = text("SELECT (SELECT MAX(id) FROM attempts), (SELECT MAX(id) FROM audit)")
_ATTEMPTS = text(
    "SELECT t.platform, COALESCE(a.type, 'unknown'), t.outcome, t.error_kind, "
    "t.finished_at - t.started_at FROM attempts t LEFT JOIN actions a ON a.id = t.action_id "
    "WHERE t.id > :after AND t.id <= :upto"
)
_TRANSITIONS = text(
    "SELECT u.to_status, COALESCE(a.platform, 'unknown'), COALESCE(a.type, 'unknown'), "
    "a.fallback_used, a.served_by, COUNT(*) FROM audit u LEFT JOIN actions a ON a.id = u.entity_id "
    "WHERE u.id > :after AND u.id <= :upto AND u.entity = 'action' "
    f"AND u.to_status IN ('retry_scheduled', {', '.join(repr(s) for s in FINAL)}) "
    "GROUP BY u.to_status, a.platform, a.type, a.fallback_used, a.served_by"
)


_RUN_ENDS = text(
    "SELECT u.to_status, COUNT(*) FROM audit u WHERE u.id > :after AND u.id <= :upto "
    f"AND u.entity = 'run' AND u.to_status IN ({', '.join(repr(s) for s in RUN_FINAL)}) "
    "GROUP BY u.to_status"
)


class Ledger:
    def __init__(self, store: Store, metrics: Metrics) -> None:
        """Reads the tables' ends once (blocking: call from a thread, or at startup)."""
        self.store = store
        self.metrics = metrics
        self._lock = threading.Lock()  # two scrapes at once must not count a row twice
        self.attempts_seen, self.audit_seen = store.read_sync(_ends)

    def catch_up(self) -> None:
        """Count the rows written since the last call (sync: the scrape's thread)."""
        with self._lock:
            self.store.read_sync(self._read)

    def _read(self, conn: Connection) -> None:
        last_attempt, last_audit = _ends(conn)
        after, upto = _window(self.attempts_seen, last_attempt)
        for platform, type_, outcome, kind, seconds in conn.execute(
            _ATTEMPTS, {"after": after, "upto": upto}
        ):
            label = "succeeded" if outcome == "succeeded" else kind or "failed"
            self.metrics.observe_attempt(platform, type_, label, float(seconds or 0.0))
            if kind == "RateLimited":
                self.metrics.observe_429(platform)
        self.attempts_seen = upto
        after, upto = _window(self.audit_seen, last_audit)
        for row in conn.execute(_TRANSITIONS, {"after": after, "upto": upto}):
            self._transition(*row)
        for status, n in conn.execute(_RUN_ENDS, {"after": after, "upto": upto}):
            self.metrics.observe_workflow_run(status, n)
        self.audit_seen = upto

    def _transition(
        self, status: str, platform: str, type_: str, fallback: Any, served: Any, n: int
    ) -> None:
        if status == "retry_scheduled":
            self.metrics.observe_retry(platform, n)
            return
        self.metrics.observe_action(platform, type_, status, n)
        if fallback and served:
            self.metrics.observe_fallback(platform, served, n)


def _ends(conn: Connection) -> tuple[int, int]:
    attempts, audit = conn.execute(_ENDS).one()
    return int(attempts or 0), int(audit or 0)


def _window(seen: int, last: int) -> tuple[int, int]:
    """(after, upto] to read: at most BATCH rows; from the start if the table was renumbered."""
    after = 0 if last < seen else seen
    return after, min(last, after + BATCH)
