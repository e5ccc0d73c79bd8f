"""The scheduler on a real SQLite store and the real queue, with an injected clock.

Outcomes are rows: actions in the queue (one per firing, found by idempotency key) and the
firing history. "Restart" means a new Store, Queue and Scheduler on the same file.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bot.config import Settings
from bot.queue import Queue
from bot.scheduler import ScheduleNotFound, Scheduler
from bot.schedules.config import ScheduleInvalid, parse_schedules
from bot.schedules.service import SchedulerService, build_scheduler
from bot.schedules.state import ACTIONS, FIRINGS, RUNS, STATE
from bot.store.engine import Store
from tests.conftest import FakeClock

T0 = datetime(2026, 11, 2, 9, 58, tzinfo=UTC).timestamp()  # two minutes before a 5-min mark
FIVE = """
schedules:
  - name: ping
    schedule: "*/5 * * * *"
    action: {type: echo, data: {n: 1}}
    catch_up: %s
"""


class Bot:
    """A store + queue + scheduler, as one opsbot process would have them."""

    def __init__(self, settings: Settings, clock: FakeClock, text: str, **kw: Any) -> None:
        self.store = Store(settings.opsbot_database_url)
        self.queue = Queue(self.store, settings, clock=clock)
        schedules = parse_schedules(text, "schedules.yml")
        self.scheduler = Scheduler(self.store, self.queue, settings, schedules, clock=clock, **kw)

    async def close(self) -> None:
        await self.queue.close()
        self.store.close()

    def actions(self) -> list[dict[str, Any]]:
        query = select(ACTIONS.c.id, ACTIONS.c.idempotency_key, ACTIONS.c.status).order_by(
            ACTIONS.c.seq
        )
        return self.store.read_sync(lambda c: [dict(r._mapping) for r in c.execute(query)])

    def finish_all(self) -> None:
        self.store.write_sync(lambda c: c.execute(update(ACTIONS).values(status="succeeded")))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def bots(settings: Settings, clock: FakeClock) -> Iterator[list[Bot]]:
    made: list[Bot] = []
    yield made
    for bot in made:
        bot.store.close()


async def _bot(bots: list[Bot], settings: Settings, clock: FakeClock, policy: str = "once") -> Bot:
    bot = Bot(settings, clock, FIVE % policy)
    bots.append(bot)
    return bot


async def test_a_cron_firing_runs_exactly_once_across_a_restart(
    settings: Settings, clock: FakeClock, bots: list[Bot]
) -> None:
    bot = await _bot(bots, settings, clock)
    assert await bot.scheduler.tick() == []  # first sight: nothing due yet
    clock.advance(150)  # 10:00:30
    [fired] = await bot.scheduler.tick()
    assert fired["outcome"] == "enqueued"
    assert await bot.scheduler.tick() == []
    # A crash after enqueueing but before the anchor moved: the restart sees the firing as due.
    bot.store.write_sync(lambda c: c.execute(update(STATE).values(last_fire_at=None)))
    await bot.close()
    restarted = await _bot(bots, settings, clock)
    again = await restarted.scheduler.tick()
    assert [f.get("already") for f in again] == [True]
    [action] = restarted.actions()
    assert action["idempotency_key"] == "schedule:ping:2026-11-02T10:00:00+00:00"
    await restarted.close()


async def test_two_processes_fire_once(
    settings: Settings, clock: FakeClock, bots: list[Bot]
) -> None:
    one, two = await _bot(bots, settings, clock), await _bot(bots, settings, clock)
    await one.scheduler.tick()
    clock.advance(150)
    await one.scheduler.tick()
    await two.scheduler.tick()
    assert len(one.actions()) == 1
    assert len(await one.scheduler.history("ping")) == 1
    await one.close()
    await two.close()


async def test_overlap_skips_while_the_previous_action_is_active(
    settings: Settings, clock: FakeClock, bots: list[Bot]
) -> None:
    bot = await _bot(bots, settings, clock)
    await bot.scheduler.tick()
    clock.advance(150)
    await bot.scheduler.tick()  # 10:00 enqueued, still queued (no worker here)
    clock.advance(300)
    [skipped] = await bot.scheduler.tick()  # 10:05
    assert skipped["outcome"] == "skipped"
    bot.finish_all()
    clock.advance(300)
    [fired] = await bot.scheduler.tick()  # 10:10
    assert fired["outcome"] == "enqueued"
    outcomes = [h["outcome"] for h in await bot.scheduler.history("ping")]
    assert outcomes == ["enqueued", "skipped", "enqueued"]
    assert len(bot.actions()) == 2
    await bot.close()


@pytest.mark.parametrize(("policy", "enqueued"), [("once", 1), ("all", 12), ("skip", 0)])
async def test_missed_firings_follow_the_catch_up_policy(
    settings: Settings, clock: FakeClock, bots: list[Bot], policy: str, enqueued: int
) -> None:
    bot = await _bot(bots, settings, clock, policy)
    await bot.scheduler.tick()
    await bot.close()
    clock.advance(3600 + 100)  # down until 10:59:40: 10:00 .. 10:55 missed (12 firings)
    bot = await _bot(bots, settings, clock, policy)
    bot.scheduler.schedules["ping"] = bot.scheduler.schedules["ping"].__class__(
        **{**bot.scheduler.schedules["ping"].__dict__, "overlap": "allow"}
    )
    await bot.scheduler.tick()
    assert len(bot.actions()) == enqueued
    history = await bot.scheduler.history("ping")
    missed = [h for h in history if h["outcome"] == "missed"]
    assert sum(h["detail"]["missed"] for h in missed) == 12 - enqueued
    await bot.close()


async def test_pause_resume_and_run_now(
    settings: Settings, clock: FakeClock, bots: list[Bot]
) -> None:
    bot = await _bot(bots, settings, clock)
    await bot.scheduler.tick()
    assert (await bot.scheduler.set_paused("ping", True, "cli:ann"))["changed"]
    clock.advance(1000)
    assert await bot.scheduler.tick() == []
    await bot.scheduler.set_paused("ping", False, "cli:ann")
    assert await bot.scheduler.tick() == []  # the paused time is not caught up
    fired = await bot.scheduler.run_now("ping", "cli:ann")
    assert fired["outcome"] == "enqueued" and fired["kind"] == "manual"
    [listed] = await bot.scheduler.listing()
    assert listed["paused"] is False and listed["last"]["kind"] == "manual"
    with pytest.raises(ScheduleNotFound):
        await bot.scheduler.run_now("nope", "cli:ann")
    await bot.close()


async def test_jobs_run_once_and_failures_are_history(
    settings: Settings, clock: FakeClock, bots: list[Bot]
) -> None:
    calls: list[float] = []

    async def prune(now: float) -> dict[str, Any]:
        calls.append(now)
        return {"deleted": 0}

    async def report(now: float) -> dict[str, Any]:
        raise RuntimeError("no channel")

    text = """
- {name: p, schedule: hourly, job: prune}
- {name: r, schedule: hourly, job: report}
"""
    bot = Bot(settings, clock, text, jobs={"prune": prune, "report": report})
    bots.append(bot)
    await bot.scheduler.tick()
    clock.advance(150)
    await bot.scheduler.tick()
    other = Bot(settings, clock, text, jobs={"prune": prune, "report": report})
    bots.append(other)
    await other.scheduler.tick()
    assert len(calls) == 1
    [failed] = await bot.scheduler.history("r")
    assert failed["outcome"] == "failed" and "no channel" in failed["detail"]["error"]
    await bot.close()
    await other.close()


async def test_history_keeps_the_last_100(
    settings: Settings, clock: FakeClock, bots: list[Bot]
) -> None:
    bot = await _bot(bots, settings, clock)
    for _ in range(105):
        clock.advance(1)
        await bot.scheduler.run_now("ping", "t")
    count = bot.store.read_sync(
        lambda c: c.execute(select(func.count()).select_from(FIRINGS)).scalar()
    )
    assert count == 100
    assert len(await bot.scheduler.history("ping")) == 100
    await bot.close()


async def test_the_service_catches_up_at_start_and_stops(
    settings: Settings, clock: FakeClock, bots: list[Bot]
) -> None:
    bot = await _bot(bots, settings, clock)
    await bot.scheduler.tick()
    clock.advance(600)  # 10:00 and 10:05 passed while "down": catch-up once at start
    await bot.scheduler.start()
    await bot.scheduler.stop()
    [action] = bot.actions()
    assert action["idempotency_key"] == "schedule:ping:2026-11-02T10:05:00+00:00"
    await bot.close()


async def test_a_workflow_target_starts_one_run_across_a_restart(
    settings: Settings, clock: FakeClock, bots: list[Bot]
) -> None:
    from bot.workflows.loader import loads
    from bot.workflows.runner import WorkflowRunner

    step = "{name: a, action: {type: echo, data: {who: '{{ input.who }}'}}}"
    [workflow], _ = loads(f"notify:\n  steps:\n    - {step}\n", "w.yml")
    text = "- {name: wf, schedule: hourly, workflow: notify, input: {who: ops}}\n"

    def process() -> Bot:
        bot = Bot(settings, clock, text)
        bots.append(bot)
        bot.scheduler.runner = WorkflowRunner(
            bot.store, bot.queue, {"notify": workflow}, settings, clock
        )
        return bot

    first = process()
    await first.scheduler.tick()
    clock.advance(150)
    [fired] = await first.scheduler.tick()
    assert fired["outcome"] == "enqueued" and fired["target_id"].startswith("run_")
    first.store.write_sync(lambda c: c.execute(update(STATE).values(last_fire_at=None)))
    await first.close()
    bot = process()  # restarted before the anchor moved: the firing is found, not redone
    assert [f.get("already") for f in await bot.scheduler.tick()] == [True]
    await bot.close()
    runs = bot.store.read_sync(
        lambda c: c.execute(select(RUNS.c.id, RUNS.c.idempotency_key, RUNS.c.source)).all()
    )
    assert [tuple(r)[1:] for r in runs] == [("schedule:wf:2026-11-02T10:00:00+00:00", "schedule")]


async def test_build_scheduler_runs_the_prune_job(
    settings: Settings, clock: FakeClock, bots: list[Bot]
) -> None:
    bot = await _bot(bots, settings, clock)
    sched = build_scheduler(bot.store, bot.queue, settings, clock=clock)
    assert "maintenance-prune" in sched.schedules
    assert "maintenance-report" not in sched.schedules  # no OPSBOT_REPORT_CHANNEL
    fired = await sched.run_now("maintenance-prune", "cli:ann")
    assert fired["outcome"] == "done" and "deleted" in fired["detail"]
    await bot.close()


def test_bad_definitions_are_reported_with_their_location() -> None:
    text = """
- {name: a, schedule: "61 * * * *", action: {type: echo}}
- {name: b, schedule: daily, timezone: Mars/Base, workflow: w, catch_up: sometimes}
- {name: c, schedule: daily}
- {name: d, schedule: "* * *", job: prune, colour: red}
- {name: e, schedule: daily, action: {type: nope}}
"""
    with pytest.raises(ScheduleInvalid) as info:
        parse_schedules(text, "s.yml")
    text_ = "\n".join(info.value.problems)
    for expected in (
        "schedules[0].schedule",
        "Mars/Base",
        "catch_up",
        "schedules[2]: give exactly",
        "schedules[3].colour",
        "schedules[3].schedule",
        "schedules[4].action.type",
    ):
        assert expected in text_, expected


def test_aliases_and_time_zones() -> None:
    schedules = parse_schedules(
        "- {name: w, schedule: weekly, timezone: Europe/Paris, workflow: x}\n", "s.yml"
    )
    assert schedules["w"].cron == "0 0 * * 1"
    monday = datetime(2026, 11, 2, 0, 0, tzinfo=UTC).timestamp()  # a Monday, 01:00 in Paris
    nxt = schedules["w"].next_fire(monday - 7200)
    assert nxt == monday - 3600  # midnight in Paris is 23:00 UTC (CET)


async def test_the_runtime_runs_the_scheduler_service_and_holds_the_run_lock(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.backup import RunLock, backup, restore
    from bot.ops.context import OpsError
    from bot.runtime import Runtime

    (tmp_path / "schedules.yml").write_text(FIVE % "once")
    monkeypatch.chdir(tmp_path)
    runtime = Runtime(settings)
    service = SchedulerService(runtime)
    runtime.services += [RunLock(settings), service]
    async with runtime:
        assert service.scheduler is not None and "ping" in service.scheduler.schedules
        snap = str(tmp_path / "snap.db")
        backup(settings, snap)
        with pytest.raises(OpsError, match="opsbot is running"):
            restore(settings, snap)
    assert service.scheduler._aps is None  # stopped with the runtime


async def test_schedules_without_catch_up_follow_the_setting(
    settings: Settings, clock: FakeClock, bots: list[Bot], tmp_path: Path
) -> None:
    path = tmp_path / "schedules.yml"
    path.write_text(
        "- {name: quiet, schedule: hourly, action: {type: echo}}\n"
        "- {name: loud, schedule: hourly, action: {type: echo}, catch_up: all}\n"
    )
    bot = await _bot(bots, settings, clock)
    default = build_scheduler(
        bot.store, bot.queue, settings.model_copy(update={"opsbot_schedules": str(path)})
    )
    assert default.schedules["quiet"].catch_up == "once"  # the default: run once
    skipping = settings.model_copy(
        update={"opsbot_schedules": str(path), "opsbot_schedule_catch_up": "skip"}
    )
    chosen = build_scheduler(bot.store, bot.queue, skipping)
    assert chosen.schedules["quiet"].catch_up == "skip"
    assert chosen.schedules["loud"].catch_up == "all"  # a schedule's own word wins
    await bot.close()


def test_a_bad_catch_up_setting_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="opsbot_schedule_catch_up") as caught:
        Settings(_env_file=None, opsbot_schedule_catch_up="sometimes")  # type: ignore[call-arg, arg-type]
    assert "once" in str(caught.value)
