"""Build one executor per configured platform.

Each platform module `executors/<platform>.py` exposes `build(settings, throttle) -> Executor`
and raises `PlatformDisabled(reason)` when its configuration is missing. Modules are imported
lazily, so a platform whose SDK or module is absent is reported as disabled instead of breaking
start-up; the built-in echo platform is always available.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

from bot.config import PLATFORMS, Settings
from executors.base import Executor, PlatformDisabled, Throttle
from executors.echo import EchoExecutor

log = logging.getLogger(__name__)

ThrottleFor = Callable[[str], Throttle]


def build_executors(
    settings: Settings, throttles: ThrottleFor
) -> tuple[dict[str, Executor], dict[str, str]]:
    """(executors by platform, reason by disabled platform). `throttles(platform)` rate-limits."""
    executors: dict[str, Executor] = {"echo": EchoExecutor(throttles("echo"))}
    disabled: dict[str, str] = {}
    for platform in PLATFORMS:
        try:
            module = importlib.import_module(f"executors.{platform}")
        except ImportError as exc:
            disabled[platform] = f"executor module not available ({exc.name or exc})"
            continue
        build = getattr(module, "build", None)
        if build is None:
            disabled[platform] = f"executors.{platform} has no build(settings, throttle)"
            continue
        try:
            executors[platform] = build(settings, throttles(platform))
        except PlatformDisabled as exc:
            disabled[platform] = exc.message
    for platform, reason in disabled.items():
        log.info("platform %s disabled: %s", platform, reason)
    return executors, disabled
