"""A long sandbox run keeps bounded records: the stand-ins' request log, per-path times and
Slack's calls and channel messages keep their newest entries only."""

from __future__ import annotations

import pytest

from executors.sandbox import measure
from executors.sandbox.measure import Recent, Recorded, Stats
from executors.sandbox.slack import MESSAGES_KEPT, SlackStandIn


def test_recent_keeps_the_newest_and_stays_a_list() -> None:
    kept = Recent(3, [1, 2])
    assert kept == [1, 2]
    for n in range(3, 8):
        kept.append(n)
    assert kept == [5, 6, 7] and kept[-1] == 7 and Recent(3) == []


def test_stats_keep_the_newest_requests_and_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure, "KEPT_PATHS", 2)
    stats = Stats(requests=Recent(4), served=Recent(4))
    for n in range(10):
        stats.record(Recorded("GET", f"/p/{n % 3}", {}, None, float(n)))
        stats.served.append(float(n))
    assert [r.at for r in stats.requests] == [6.0, 7.0, 8.0, 9.0]
    assert stats.served == [6.0, 7.0, 8.0, 9.0]
    assert list(stats.times) == ["/p/2", "/p/0"]  # the two paths seen last
    assert stats.received == 10 and stats.summary()["requests"] == 10


def test_a_bound_well_above_a_benchmark_run() -> None:
    stats = Stats()
    for n in range(600):  # one platform's run in bench/rate_limit_bench.py
        stats.record(Recorded("POST", "/x", {}, None, float(n)))
    assert len(stats.requests) == 600 and len(stats.times["/x"]) == 600


def test_slack_keeps_the_newest_messages_per_channel() -> None:
    slack = SlackStandIn()
    for n in range(MESSAGES_KEPT + 5):
        slack.m_chat_postMessage({"channel": "operations", "text": f"m{n}"})
    texts = [m["text"] for m in slack.messages("operations")]
    assert len(texts) == MESSAGES_KEPT and texts[-1] == f"m{MESSAGES_KEPT + 4}"
    assert texts[0] == "m5"
    assert isinstance(slack.calls, Recent) and slack.calls.maxlen == measure.KEPT
