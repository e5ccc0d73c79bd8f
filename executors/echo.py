"""The built-in `echo` platform: returns its data. Serves tests, benchmarks and smoke checks.

Data options (all optional):
  delay: seconds to sleep before answering;
  fail: "retryable" | "rate_limited" | "permanent" | "auth" - raise that error;
  fail_times: with `fail`, fail only the first N calls carrying the same `key`;
  retry_after: seconds, for retryable / rate_limited failures;
  record: a file path; one JSON line (the data) is appended per execution, so a test can count
          side effects across processes.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Mapping

from executors.base import (
    JSON,
    AuthError,
    CheckResult,
    ExecutorError,
    Operation,
    PermanentError,
    RateLimited,
    RetryableError,
    Throttle,
    no_throttle,
)

_FAILURES: dict[str, type[ExecutorError]] = {
    "retryable": RetryableError,
    "rate_limited": RateLimited,
    "permanent": PermanentError,
    "auth": AuthError,
}


class EchoExecutor:
    platform = "echo"

    def __init__(self, throttle: Throttle = no_throttle) -> None:
        self._throttle = throttle
        self._calls: Counter[str] = Counter()

    @property
    def operations(self) -> Mapping[str, Operation]:
        return {"echo": self.echo}

    def reversible(self, action_type: str) -> bool:
        return True

    async def echo(self, data: JSON) -> JSON:
        await self._throttle()
        delay = data.get("delay")
        if delay:
            await asyncio.sleep(float(delay))
        self._maybe_fail(data)
        if data.get("record"):
            await asyncio.to_thread(_append_line, str(data["record"]), data)
        return {"echo": data}

    async def compensate(self, action_type: str, data: JSON, result: JSON) -> JSON:
        if data.get("fail_compensation"):
            raise RetryableError("echo compensation failed on purpose", platform="echo")
        if data.get("record"):
            await asyncio.to_thread(_append_line, str(data["record"]), {"undo": data})
        return {"undone": result}

    async def check(self) -> CheckResult:
        return CheckResult("echo", True, "built in")

    async def aclose(self) -> None:
        return None

    def _maybe_fail(self, data: JSON) -> None:
        kind = data.get("fail")
        if not kind:
            return
        error = _FAILURES.get(str(kind))
        if error is None:
            raise PermanentError(
                f"data.fail: got {kind!r}, expected one of {', '.join(_FAILURES)}",
                platform="echo",
            )
        key = str(data.get("key", ""))
        self._calls[key] += 1
        limit = data.get("fail_times")
        if limit is not None and self._calls[key] > int(limit):
            return
        message = f"echo failing on purpose ({kind})"
        if issubclass(error, RetryableError):
            raise error(message, platform="echo", retry_after=data.get("retry_after"))
        raise error(message, platform="echo")


def _append_line(path: str, data: JSON) -> None:
    # O_APPEND writes of one short line are atomic enough for counting side effects.
    line = (json.dumps(data, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
