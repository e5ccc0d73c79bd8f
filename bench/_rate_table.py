"""The rate-limit benchmark's figures: what they mean, how they are computed, the table."""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass

DEFINITIONS = """\
requests   requests the stand-in received (every HTTP request counts against the limit)
achieved   steady-state pace: request k may go no earlier than one window after request k-N
           (N = limit per window), so the last request k is compared with request k mod N in
           the opening window: achieved = limit x (k div N) windows / (t_k - t_{k mod N}),
           arrival times at the stand-in, requests answered below 400. 100% = exactly at the
           limit. n/a: the requests fit in one window, the limit never bound.
max/win    most requests served in any window-long interval, vs the limit N
429s       answered by the stand-in's enforced limit
wait       queue wait (actions.queue_wait_ms): available -> claimed by the pool. All actions
           are submitted at t=0; the pool claims up to 200 ahead, so time spent claimed (in
           its memory and at the limiter) is not in it, but is in wall
wall       submit -> last action of that platform final"""


@dataclass
class Row:
    platform: str
    actions: int
    succeeded: int
    requests: int
    limit: tuple[int, float]
    achieved_pct: float | None
    max_in_window: int
    rate_limited: int
    wait_p50_ms: float
    wait_p99_ms: float
    wall_s: float
    refused_at: tuple[float, ...] = ()  # arrival of each 429, seconds after the first request


def achieved_pct(stamps: list[float], limit: int, window: float) -> float | None:
    """100 x the ideal time of the pacing chain ending at the last request over its real time."""
    k = len(stamps) - 1
    if k < limit:
        return None
    stamps = sorted(stamps)
    elapsed = stamps[k] - stamps[k % limit]
    return 100.0 * (k // limit) * window / elapsed if elapsed > 0 else None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


HEADER = (
    f"{'platform':<8} {'actions':>7} {'ok':>4} {'requests':>8} {'limit':>10} "
    f"{'achieved':>9} {'max/win':>9} {'429s':>5} {'wait p50':>9} {'wait p99':>9} "
    f"{'wall':>7}"
)


def format_row(row: Row) -> str:
    limit, window = row.limit
    pct = "n/a" if row.achieved_pct is None else f"{row.achieved_pct:.1f}%"
    return (
        f"{row.platform:<8} {row.actions:>7} {row.succeeded:>4} {row.requests:>8} "
        f"{f'{limit}/{window:g}s':>10} {pct:>9} {f'{row.max_in_window}/{limit}':>9} "
        f"{row.rate_limited:>5} {row.wait_p50_ms / 1000:>8.1f}s {row.wait_p99_ms / 1000:>8.1f}s "
        f"{row.wall_s:>6.1f}s"
    )


def median_rows(runs: list[list[Row]]) -> list[Row]:
    """Per platform: the median of each figure over the runs (max/win and 429s: the worst)."""
    out = []
    for rows in zip(*runs, strict=True):
        pcts = [r.achieved_pct for r in rows if r.achieved_pct is not None]
        first = rows[0]
        out.append(
            Row(
                first.platform,
                first.actions,
                min(r.succeeded for r in rows),
                round(statistics.median(r.requests for r in rows)),
                first.limit,
                statistics.median(pcts) if pcts else None,
                max(r.max_in_window for r in rows),
                max(r.rate_limited for r in rows),
                statistics.median(r.wait_p50_ms for r in rows),
                statistics.median(r.wait_p99_ms for r in rows),
                statistics.median(r.wall_s for r in rows),
            )
        )
    return out


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n{title}\n{HEADER}")
    for row in rows:
        print(format_row(row))
    refused = [
        f"{r.platform} " + ", ".join(f"+{t:.2f}s" for t in r.refused_at[:5])
        for r in rows
        if r.refused_at
    ]
    if refused:
        print("429s arrived at:", "; ".join(refused))
    sys.stdout.flush()
