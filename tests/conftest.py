"""Shared fixtures: settings on a temporary SQLite file, a Store, a Queue, a controllable clock.

Every test gets its own database file under pytest's tmp_path, so tests never share state.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings, load_settings
from bot.store.engine import Store

# slack_sdk ignores NO_PROXY: a proxy in the environment would swallow requests to stand-ins.
for _name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
    os.environ.pop(_name, None)


class FakeClock:
    """A clock the test moves by hand: `clock()` returns now, `clock.advance(s)` moves it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def set(self, when: float) -> None:
        self.now = when


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "opsbot.db"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module (same fixture name) to change settings for its tests."""
    return {}


@pytest.fixture
def settings(db_path: Path, settings_overrides: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {
        "opsbot_database_url": f"sqlite:///{db_path}",
        "slack_bot_token": None,
        "slack_app_token": None,
    }
    values.update(settings_overrides)
    return load_settings(_env_file=None, **values)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    store = Store(settings.opsbot_database_url)
    yield store
    store.close()


@pytest.fixture
async def queue(store: Store, settings: Settings, clock: FakeClock) -> AsyncIterator[Any]:
    """A Queue on the test's store with the fake clock (bot.queue.Queue)."""
    from bot.queue import Queue

    q = Queue(store, settings, clock=clock)
    yield q
    await q.close()
