"""Crash test with real processes: SIGKILL the worker mid-run, restart, lose nothing.

500 echo actions append one line per execution to a side-effect file. The worker process
(`python -m bot worker`) is killed with SIGKILL several times; a short lease lets the next
process take over the killed one's actions. Afterwards every action has succeeded exactly once
or, if it was in flight at a kill, possibly more than once: at-least-once delivery.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.actions import parse_actions
from bot.config import Settings
from bot.queue import Queue
from bot.store.engine import Store

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = 500
KILLS = 4


def _env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSBOT_", "QUEUE_"))}
    env.update(
        OPSBOT_DATABASE_URL=f"sqlite:///{db}",
        OPSBOT_LEASE_SECONDS="1.0",
        QUEUE_WORKERS="5",
        LOG_LEVEL="WARNING",
    )
    return env


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _running(store: Store) -> set[int]:
    sql = text("SELECT data FROM actions WHERE status = 'running'")
    return {json.loads(row[0])["n"] for row in store.read_sync(lambda c: c.execute(sql).all())}


@pytest.mark.slow
def test_sigkill_loses_nothing_and_repeats_only_in_flight_actions(tmp_path: Path) -> None:
    db, record = tmp_path / "crash.db", tmp_path / "effects.jsonl"
    store = Store(f"sqlite:///{db}")
    # Each kill costs the actions it held an attempt (max_attempts is fixed at submit): allow
    # more than the default so none ends in the dead letters.
    settings = Settings(  # type: ignore[call-arg]
        opsbot_database_url=f"sqlite:///{db}", max_retry_attempts=10, _env_file=None
    )
    specs = parse_actions(
        [{"type": "echo", "data": {"n": n, "delay": 0.04, "record": str(record)}}
         for n in range(ACTIONS)]
    )  # fmt: skip
    Queue(store, settings).submit_sync(specs)
    env = _env(db)
    command = [sys.executable, "-m", "bot", "worker"]

    in_flight: Counter[int] = Counter()  # action -> number of kills it was in flight at
    for kill in range(1, KILLS + 1):
        worker = subprocess.Popen(command, cwd=ROOT, env=env)
        target = kill * ACTIONS // (KILLS + 1)
        deadline = time.monotonic() + 30
        while _lines(record) < target and time.monotonic() < deadline:
            time.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        in_flight.update(_running(store))

    final = subprocess.run([*command, "--drain"], cwd=ROOT, env=env, timeout=45, check=False)
    assert final.returncode == 0

    statuses = store.read_sync(
        lambda c: c.execute(text("SELECT status, count(*) FROM actions GROUP BY status")).all()
    )
    store.close()
    assert dict(statuses) == {"succeeded": ACTIONS}
    effects = Counter(json.loads(line)["n"] for line in record.read_text().splitlines())
    assert set(effects) == set(range(ACTIONS))  # none lost
    repeated = {n for n, count in effects.items() if count > 1}
    duplicates = sum(effects.values()) - ACTIONS
    print(f"\ncrash test: {KILLS} kills, {sum(in_flight.values())} actions in flight at the "
          f"kills, {duplicates} duplicated side effects ({len(repeated)} actions)")  # fmt: skip
    assert repeated <= set(in_flight)
    for n in repeated:
        assert effects[n] - 1 <= in_flight[n]


@pytest.mark.slow
def test_sigterm_finishes_running_actions_and_releases_the_rest(tmp_path: Path) -> None:
    db, record = tmp_path / "stop.db", tmp_path / "effects.jsonl"
    store = Store(f"sqlite:///{db}")
    settings = Settings(opsbot_database_url=f"sqlite:///{db}", _env_file=None)  # type: ignore[call-arg]
    specs = parse_actions(
        [{"type": "echo", "data": {"n": n, "delay": 0.5, "record": str(record)}}
         for n in range(20)]
    )  # fmt: skip
    Queue(store, settings).submit_sync(specs)
    env = {**_env(db), "OPSBOT_LEASE_SECONDS": "30", "OPSBOT_DRAIN_TIMEOUT": "5"}
    worker = subprocess.Popen([sys.executable, "-m", "bot", "worker"], cwd=ROOT, env=env)
    deadline = time.monotonic() + 20
    while not _running(store) and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    rows = store.read_sync(
        lambda c: c.execute(text("SELECT status, lease_owner FROM actions")).all()
    )
    store.close()
    statuses = Counter(status for status, _ in rows)
    assert set(statuses) <= {"succeeded", "queued"} and statuses["succeeded"] >= 1
    assert all(owner is None for status, owner in rows if status == "queued")
    assert statuses["succeeded"] == _lines(record)  # each started action finished once
