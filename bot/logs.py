"""Structured logging: JSON lines off a terminal, readable lines on one, secrets always redacted.

`configure_logging(settings)` is called once by the runtime or the CLI. Every line passes through
one `Redactor`, so Slack/Notion tokens, `Bearer ...` and `Authorization:` values, and the value of
every configured SecretStr are replaced before they reach a handler, whatever logged them.

`log_attempt(...)` writes the one line per action attempt with the seed's field names
(timestamp, actionId, type, platform, priority, status, duration, retries, queueTime, workerId).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any

from pydantic import SecretStr

from bot.config import Settings

REDACTED = "[REDACTED]"
ATTEMPT_LOGGER = "opsbot.attempts"

# Token shapes that must never be printed, whoever logs them. Each keeps a short prefix so the
# reader still sees what kind of credential was there.
_PATTERNS = [
    re.compile(r"(xox[abposre]-)[A-Za-z0-9-]+"),
    re.compile(r"(xapp-)[A-Za-z0-9-]+"),
    re.compile(r"(secret_)[A-Za-z0-9]+"),
    re.compile(r"(ntn_)[A-Za-z0-9]+"),
    re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE),
    re.compile(r"(Authorization[\"']?\s*[:=]\s*[\"']?(?:[A-Za-z]+\s+)?)[^\s\"',}]+", re.I),
    re.compile(r"((?:api_?key|token|password|secret)[\"']?\s*[:=]\s*[\"']?)[^\s\"',&}]{6,}", re.I),
]


class Redactor:
    """Replaces known token shapes and the given secret values in any text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values: set[str] = set()
        for secret in secrets:
            if len(secret) >= 4:  # shorter values would blank out ordinary words
                # as is, as printed by repr(), and both of those inside a JSON string
                for form in (secret, repr(secret)[1:-1]):
                    values.update((form, json.dumps(form)[1:-1]))
        self._secrets = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        return text


def secrets_of(settings: Settings) -> list[str]:
    """Every SecretStr value the settings hold."""
    return [
        value.get_secret_value()
        for value in (getattr(settings, name) for name in type(settings).model_fields)
        if isinstance(value, SecretStr) and value.get_secret_value()
    ]


class RedactFilter(logging.Filter):
    """Renders the message once and redacts it, so any handler it sits on sees no secret."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor(record.getMessage())
        record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra={"fields": {...}}` is merged into it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self.redactor(json.dumps(entry, default=str))


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal: time, level, logger, message, then key=value fields."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None) or {}
        if fields:
            line += " " + " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in fields.items())
        return self.redactor(line)


CHATTY_LIBRARIES = ("httpx", "apscheduler", "slack_bolt", "slack_sdk", "aiohttp.access")


def configure_logging(
    settings: Settings, stream: IO[str] | None = None, *, json_lines: bool | None = None
) -> logging.Handler:
    """Install one handler on the root logger (replacing any earlier opsbot handler)."""
    stream = stream if stream is not None else sys.stderr
    if json_lines is None:
        json_lines = not (hasattr(stream, "isatty") and stream.isatty())
    redactor = Redactor(secrets_of(settings))
    handler = logging.StreamHandler(stream)
    handler.set_name("opsbot")
    handler.addFilter(RedactFilter(redactor))
    handler.setFormatter(JsonFormatter(redactor) if json_lines else TextFormatter(redactor))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "opsbot"]:
        root.removeHandler(old)
    root.addHandler(handler)
    level = _level(settings.log_level)
    root.setLevel(level)
    # Libraries that log every request or job at INFO: opsbot logs one line per attempt itself.
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else logging.WARNING)
    return handler


def log_attempt(
    *,
    action_id: str,
    type: str,
    platform: str,
    priority: str,
    status: str,
    duration_ms: float,
    retries: int,
    queue_time_ms: float | None,
    worker_id: str,
    error: str | None = None,
    logger: logging.Logger | None = None,
    **extra: Any,
) -> None:
    """The per-attempt line. Level follows the seed: retries WARN, failures ERROR, else INFO."""
    fields: dict[str, Any] = {
        "actionId": action_id,
        "type": type,
        "platform": platform,
        "priority": priority,
        "status": status,
        "duration": round(duration_ms),
        "retries": retries,
        "queueTime": None if queue_time_ms is None else round(queue_time_ms),
        "workerId": worker_id,
    }
    if error:
        fields["error"] = error
    fields.update(extra)
    level = {"retry": logging.WARNING, "retry_scheduled": logging.WARNING}.get(status)
    if level is None:
        level = logging.ERROR if status in ("dead", "dead_lettered", "failed") else logging.INFO
    (logger or logging.getLogger(ATTEMPT_LOGGER)).log(
        level, "%s %s %s", platform, type, status, extra={"fields": fields}
    )


def log_attempt_view(view: dict[str, Any]) -> None:
    """Queue outcome-bus subscriber: the per-attempt line from a recorded outcome's view."""
    if view.get("run_ms") is None:  # not an attempt (an expiry, a rejection)
        return
    retry = view.get("event") == "retry"
    log_attempt(
        action_id=str(view.get("id")),
        type=str(view.get("type")),
        platform=str(view.get("served_by") or view.get("platform")),
        priority=str(view.get("priority")),
        status="retry_scheduled" if retry else str(view.get("status")),
        duration_ms=float(view["run_ms"]),
        retries=max(0, int(view.get("attempts") or 1) - 1),
        queue_time_ms=view.get("queue_wait_ms"),
        worker_id=str(view.get("worker")),
        error=view.get("error"),
    )


def _level(name: str) -> int:
    level = logging.getLevelName(name.strip().upper())
    return level if isinstance(level, int) else logging.INFO


def _iso(created: float) -> str:
    return (
        datetime.fromtimestamp(created, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
