"""What every runbook operation receives, and the errors it raises for people."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.routing import PLATFORMS
from bot.store.engine import Store
from bot.store.tables import ActionRow, AttemptRow, PauseRow

# Core table handles: the operations use SQLAlchemy Core statements, not ORM objects.
A = ActionRow.__table__  # type: ignore[attr-defined]
T = AttemptRow.__table__  # type: ignore[attr-defined]
P = PauseRow.__table__  # type: ignore[attr-defined]

ALL = "*"  # the pauses-table key that pauses every platform


class OpsError(Exception):
    """A runbook operation could not be done; the message is written for people."""


class BadInput(OpsError):
    """The request itself is wrong (unknown platform, bad id list): exit code 2."""


class NotFound(OpsError):
    """No such action (or dead letter)."""


@dataclass
class OpsContext:
    """What the operations work on. A live runtime adds its breakers, pool and executor report."""

    store: Store
    settings: Settings
    queue: Any = None  # bot.queue.Queue, for submit and action views
    clock: Callable[[], float] = time.time
    breakers: Any = None  # the running process's circuit breakers, fresher than the table
    pool: Any = None  # the running worker pool, for utilisation
    disabled: Mapping[str, str] | None = None  # platform -> why it is disabled
    runner: Any = None  # the live WorkflowRunner; built from OPSBOT_WORKFLOWS when None
    scheduler: Any = None  # the live Scheduler; built from OPSBOT_SCHEDULES when None


def check_platform(platform: str) -> str:
    """Return `platform` if opsbot knows it, else BadInput listing the valid ones."""
    if platform not in PLATFORMS:
        raise BadInput(f"unknown platform {platform!r}: expected one of {', '.join(PLATFORMS)}")
    return platform
