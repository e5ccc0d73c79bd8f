"""Alerts: one message per condition while it lasts (updated), then a resolved follow-up;
history in the store; failure thresholds; failing sinks never break the caller or loop."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.alert_rules import AlertRules, Thresholds
from bot.alert_sinks import AlertNotice, LogSink, SlackSink
from bot.alerts import Alerter
from bot.store.engine import Store
from tests.conftest import FakeClock


class SlackStandIn:
    """Records what the Slack helper's posting callable was asked to do."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail = fail

    async def __call__(self, text: str, *, update: str | None, thread: str | None) -> str:
        if self.fail:
            raise ConnectionError("slack is down")
        self.calls.append({"text": text, "update": update, "thread": thread})
        return update or f"ts-{len(self.calls)}"

    @property
    def posts(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["update"] is None]


class Recorder:
    name = "webhook"
    updates = False

    def __init__(self) -> None:
        self.notices: list[AlertNotice] = []

    async def send(self, notice: AlertNotice) -> str | None:
        self.notices.append(notice)
        return None


@pytest.fixture
def slack() -> SlackStandIn:
    return SlackStandIn()


@pytest.fixture
def hook() -> Recorder:
    return Recorder()


@pytest.fixture
def alerter(store: Store, slack: SlackStandIn, hook: Recorder, clock: FakeClock) -> Alerter:
    return Alerter(store, [LogSink(), SlackSink(slack), hook], threshold=3, clock=clock)


async def test_repeated_condition_is_one_message_updated_then_resolved(
    alerter: Alerter, slack: SlackStandIn, hook: Recorder, clock: FakeClock
) -> None:
    assert await alerter.fire("circuit:notion", "Circuit opened: notion") == "opened"
    clock.advance(60)
    assert await alerter.fire("circuit:notion", "Circuit opened: notion") == "updated"
    assert await alerter.fire("circuit:notion", "Circuit opened: notion") == "updated"  # quiet
    assert await alerter.resolve("circuit:notion", "Circuit closed")
    await alerter.flush()

    assert len(slack.posts) == 2  # the alert, then the resolved follow-up in its thread
    first_ts = "ts-1"
    assert slack.posts[1]["thread"] == first_ts and "Resolved" in slack.posts[1]["text"]
    edits = [c for c in slack.calls if c["update"] == first_ts]
    # one edit for the first repeat; the second, within a minute, only counts; then resolved
    assert len(edits) == 2 and "seen 2 time(s)" in edits[0]["text"]
    assert "RESOLVED" in edits[-1]["text"] and "seen 3 time(s)" in edits[-1]["text"]
    assert [n.event for n in hook.notices] == ["opened", "resolved"]

    (row,) = await alerter.history()
    assert row["status"] == "resolved" and row["count"] == 3
    assert json.loads(row["refs"]) == {"slack": first_ts}


async def test_after_resolve_the_same_condition_opens_a_new_alert(
    alerter: Alerter, slack: SlackStandIn
) -> None:
    await alerter.fire("queue_depth", "deep")
    await alerter.resolve("queue_depth")
    assert await alerter.fire("queue_depth", "deep again") == "opened"
    await alerter.flush()
    assert len(await alerter.history()) == 2
    assert len(await alerter.active()) == 1


async def test_active_alert_survives_a_restart_without_a_second_message(
    store: Store, slack: SlackStandIn, clock: FakeClock
) -> None:
    first = Alerter(store, [SlackSink(slack)], clock=clock)
    await first.fire("circuit:trello", "Circuit opened: trello")
    await first.flush()
    second = Alerter(store, [SlackSink(slack)], clock=clock)  # a new process, same store
    assert await second.fire("circuit:trello", "Circuit opened: trello") == "updated"
    await second.flush()
    assert len(slack.posts) == 1
    assert slack.calls[-1]["update"] == "ts-1"  # it edits the message the first process sent


async def test_failure_threshold_fires_once_and_success_resets(
    alerter: Alerter, hook: Recorder
) -> None:
    for _ in range(2):
        await alerter.record_failure("notion.create_task", "HTTP 503")
    assert await alerter.active() == []
    for _ in range(3):
        await alerter.record_failure("notion.create_task", "HTTP 503")
    (active,) = await alerter.active()
    assert active["key"] == "failures:notion.create_task" and active["count"] == 3
    await alerter.record_success("notion.create_task")
    assert await alerter.active() == []
    assert alerter.failures == {}
    await alerter.record_failure("notion.create_task")  # the count starts again from zero
    assert await alerter.active() == []
    await alerter.flush()
    assert [n.event for n in hook.notices] == ["opened", "resolved"]


async def test_a_failing_sink_never_fails_the_caller(store: Store, hook: Recorder) -> None:
    broken = SlackStandIn(fail=True)
    alerter = Alerter(store, [SlackSink(broken), hook])
    assert await alerter.fire("auth:notion", "auth failure") == "opened"
    await alerter.flush()
    assert len(hook.notices) == 1  # the other sinks still got it
    assert len(await alerter.active()) == 1  # and no alert about the failed sink was raised


async def test_alert_about_slack_never_goes_through_slack(
    store: Store, slack: SlackStandIn, hook: Recorder, clock: FakeClock
) -> None:
    rules = AlertRules(Alerter(store, [SlackSink(slack), hook], clock=clock), clock=clock)
    rules.on_outcome(
        {
            "id": "a1",
            "status": "dead_lettered",
            "platform": "slack",
            "type": "send_dm",
            "error": "invalid_auth",
            "error_kind": "AuthError",
        }
    )
    await rules.drain()
    await rules.alerter.flush()
    assert slack.calls == []
    assert {n.key for n in hook.notices} == {"dead_letter:slack.send_dm", "auth:slack"}


async def _set_circuit(store: Store, platform: str, state: str) -> None:
    def write(conn: Any) -> None:
        conn.exec_driver_sql(
            "INSERT INTO circuits (platform, state, consecutive_failures, half_open_successes,"
            " updated_at, last_error) VALUES (?, ?, 5, 0, 0, 'HTTP 503') "
            "ON CONFLICT(platform) DO UPDATE SET state = excluded.state",
            (platform, state),
        )

    await store.write(write)


async def _add_finished(store: Store, status: str, n: int, at: float) -> None:
    def write(conn: Any) -> None:
        for i in range(n):
            conn.exec_driver_sql(
                "INSERT INTO actions (id, type, platform, priority, priority_rank, status, data,"
                " created_at, finished_at, available_at, attempts, max_attempts, requires_approval,"
                " notify, fallback_used) VALUES (?, 'echo', 'echo', 'normal', 2, ?, '{}', ?, ?, 0,"
                " 1, 4, 0, 0, 0)",
                (f"{status}-{at}-{i}", status, at, at if status != "queued" else None),
            )

    await store.write(write)


async def test_circuit_open_then_closed_gives_one_alert_and_a_resolve(
    store: Store, hook: Recorder, clock: FakeClock
) -> None:
    rules = AlertRules(Alerter(store, [hook], clock=clock), clock=clock)
    await _set_circuit(store, "notion", "open")
    await rules.evaluate()
    await rules.evaluate()  # still open: no second message
    await _set_circuit(store, "notion", "closed")
    await rules.evaluate()
    await rules.alerter.flush()
    assert [(n.event, n.key) for n in hook.notices] == [
        ("opened", "circuit:notion"),
        ("resolved", "circuit:notion"),
    ]


async def test_success_rate_below_threshold_over_the_window(
    store: Store, hook: Recorder, clock: FakeClock
) -> None:
    rules = AlertRules(Alerter(store, [hook], clock=clock), clock=clock)
    await _add_finished(store, "succeeded", 8, clock.now - 60)
    await _add_finished(store, "dead_lettered", 2, clock.now - 60)  # 80%
    await rules.evaluate()
    assert [a["key"] for a in await rules.alerter.active()] == ["success_rate"]
    clock.advance(16 * 60)  # those failures leave the 15-minute window
    await _add_finished(store, "succeeded", 10, clock.now - 10)
    await rules.evaluate()
    assert await rules.alerter.active() == []


async def test_queue_depth_must_last_ten_minutes(
    store: Store, hook: Recorder, clock: FakeClock
) -> None:
    rules = AlertRules(Alerter(store, [hook], clock=clock), Thresholds(queue_depth=5), clock)
    await _add_finished(store, "queued", 6, clock.now)
    await rules.evaluate()
    clock.advance(9 * 60)
    await rules.evaluate()
    assert await rules.alerter.active() == []
    clock.advance(61)
    await rules.evaluate()
    assert [a["key"] for a in await rules.alerter.active()] == ["queue_depth"]


async def test_event_alerts_resolve_after_a_quiet_period(
    store: Store, hook: Recorder, clock: FakeClock
) -> None:
    rules = AlertRules(Alerter(store, [hook], clock=clock), clock=clock)
    for action_id in ("a1", "a2"):
        rules.on_outcome(
            {"id": action_id, "status": "expired", "platform": "trello", "type": "archive_card"}
        )
    await rules.drain()
    (active,) = await rules.alerter.active()
    assert active["key"] == "approval_expired" and active["count"] == 2
    clock.advance(16 * 60)
    await rules.evaluate()
    assert await rules.alerter.active() == []


async def test_dead_letter_from_the_real_queue_raises_one_alert(
    store: Store, queue: Any, hook: Recorder, clock: FakeClock
) -> None:
    from bot.actions import parse_actions
    from bot.queue import Outcome

    rules = AlertRules(Alerter(store, [hook], clock=clock), clock=clock)
    unsubscribe = queue.subscribe(rules.on_outcome)
    results = await queue.submit(parse_actions([{"type": "echo"}, {"type": "echo"}]))
    await queue.claim("w", 10)
    now = clock()
    await queue.record(
        [
            Outcome(r.id, "dead", now, now, "w", error="HTTP 400", error_kind="PermanentError")
            for r in results
        ]
    )
    await rules.drain()
    await rules.alerter.flush()
    unsubscribe()
    (active,) = await rules.alerter.active()
    assert active["key"] == "dead_letter:echo.echo" and active["count"] == 2
    assert [n.event for n in hook.notices] == ["opened"]


async def test_webhook_sink_posts_a_signed_json_body(store: Store, clock: FakeClock) -> None:
    from aiohttp import web

    from bot.alert_sinks import WebhookSink
    from bot.signing import Verifier

    got: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        Verifier("alert-secret").verify(request.headers, body)  # raises -> 500 -> sink fails
        got.append(json.loads(body))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/alerts", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/alerts"
        alerter = Alerter(store, [WebhookSink(url, "alert-secret")], clock=clock)
        await alerter.fire("queue_depth", "Queue depth 150")
        await alerter.flush()
    finally:
        await runner.cleanup()
    (payload,) = got
    assert payload["event"] == "opened" and payload["key"] == "queue_depth"
    assert payload["source"] == "opsbot"


async def test_email_sink_sends_through_smtp(settings: Any, store: Store, clock: FakeClock) -> None:
    import asyncio

    from bot.alert_sinks import sinks_from_settings

    received: list[bytes] = []

    async def smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 standin ESMTP\r\n")
        data = False
        while line := await reader.readline():
            if data:
                received.append(line)
                if line == b".\r\n":
                    data = False
                    writer.write(b"250 queued\r\n")
            elif line.upper().startswith(b"DATA"):
                data = True
                writer.write(b"354 go on\r\n")
            elif line.upper().startswith(b"QUIT"):
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(smtp, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    configured = settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False,
                "alert_email_recipients": "ops@example.com", "alert_channels": "email"}
    )  # fmt: skip
    sinks = sinks_from_settings(configured, clock=clock)
    assert [s.name for s in sinks] == ["log", "email"]
    alerter = Alerter(store, sinks, clock=clock)
    await alerter.fire("auth:notion", "notion: authentication failure", severity="critical")
    await alerter.flush()
    server.close()
    await server.wait_closed()
    mail = b"".join(received).decode()
    assert "Subject: [opsbot] opened: notion: authentication failure" in mail
    assert "ops@example.com" in mail


async def test_health_checks_raise_and_resolve_the_auth_alert(
    store: Store, hook: Recorder, clock: FakeClock
) -> None:
    from bot.health import Health

    rules = AlertRules(Alerter(store, [hook], clock=clock), clock=clock)
    answers = {"ok": False, "detail": "AuthError: invalid_auth (401)"}

    async def checks() -> list[dict[str, Any]]:
        return [{"platform": "notion", **answers}]

    health = Health(store, checks, clock=clock, on_auth_failure=rules.auth_failure,
                    on_auth_ok=rules.auth_ok)  # fmt: skip
    await health.run_checks()
    await health.run_checks()  # still failing: the same alert, no second message
    answers.update(ok=True, detail="ok")
    await health.run_checks()
    await rules.alerter.flush()
    assert [(n.event, n.key) for n in hook.notices] == [
        ("opened", "auth:notion"),
        ("resolved", "auth:notion"),
    ]
    snapshot = await health.snapshot()
    assert snapshot["status"] == "healthy" and snapshot["platforms"]["notion"]["ok"]
