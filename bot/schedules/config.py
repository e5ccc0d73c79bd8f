"""Schedule definitions: OPSBOT_SCHEDULES (YAML or JSON), default ./schedules.yml if present.

    schedules:
      - name: nightly-invoices
        schedule: "0 2 * * *"        # 5-field cron, or hourly | daily | weekly (alias: cron)
        timezone: Europe/Paris       # default UTC
        workflow: invoice-processing # target: a workflow with input ...
        input: {invoice_id: batch}
      - name: standup-ping
        schedule: daily
        action: {type: send_notification, data: {channel: "#ops", text: hi}}  # ... or an action
        overlap: skip                # skip (default) | allow
        catch_up: once               # missed firings while down: once | all | skip

A file may also be a plain list, or a mapping name -> body. Every problem is reported at once,
with its location, as ScheduleInvalid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from apscheduler.triggers.cron import CronTrigger

from bot.actions import ActionInvalid, parse_action

ALIASES = {"hourly": "0 * * * *", "daily": "0 0 * * *", "weekly": "0 0 * * 1"}  # the seed's
CATCH_UP = ("once", "all", "skip")
OVERLAP = ("skip", "allow")
JOBS = ("prune", "report")  # in-process maintenance jobs (bot.maintenance), not enqueued
FIELDS = (
    "name", "schedule", "cron", "timezone", "workflow", "input", "action", "job", "overlap",
    "catch_up", "enabled",
)  # fmt: skip
MAX_ENUMERATED = 10_000  # fire times looked at per tick (bounds a long outage of a 1-minute cron)


class ScheduleInvalid(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str  # the 5-field expression (aliases expanded)
    timezone: str = "UTC"
    workflow: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    action: dict[str, Any] | None = None
    job: str | None = None
    overlap: str = "skip"
    catch_up: str = "once"
    enabled: bool = True

    @property
    def target_kind(self) -> str:
        return "workflow" if self.workflow else "action" if self.action is not None else "job"

    @property
    def target(self) -> str:
        return self.workflow or (self.action or {}).get("type") or str(self.job)

    def trigger(self) -> CronTrigger:
        return cron_trigger(self.cron, ZoneInfo(self.timezone))

    def fire_times(self, after: float, until: float) -> list[float]:
        """Cron fire times t with after < t <= until, oldest first (at most MAX_ENUMERATED)."""
        trigger, out = self.trigger(), list[float]()
        current = datetime.fromtimestamp(after, UTC)
        while len(out) < MAX_ENUMERATED:
            nxt = trigger.get_next_fire_time(current, current)
            if nxt is None or nxt.timestamp() > until:
                break
            out.append(nxt.timestamp())
            current = nxt
        return out

    def next_fire(self, now: float) -> float | None:
        nxt = self.trigger().get_next_fire_time(None, datetime.fromtimestamp(now, UTC))
        return nxt.timestamp() if nxt is not None else None


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def cron_trigger(expr: str, tz: Any) -> CronTrigger:
    """A crontab expression as an APScheduler 3 trigger. APScheduler 3 numbers weekdays from
    Monday=0 while cron uses Sunday=0 (and 7), so numeric weekdays are translated to names."""
    minute, hour, day, month, dow = expr.split()
    return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                       day_of_week=_weekdays(dow), timezone=tz)  # fmt: skip


def _weekdays(field: str) -> str:
    if field in ("*", "?") or any(c.isalpha() for c in field):
        return field
    days: set[int] = set()
    for part in field.split(","):
        span, _, step = part.partition("/")
        if span == "*":
            low, high = 0, 6
        else:
            low_s, _, high_s = span.partition("-")
            low, high = int(low_s), int(high_s or (6 if step else low_s))
        if not (0 <= low <= 7 and 0 <= high <= 7):
            raise ValueError(f"day of week {part!r} is out of range 0-7")
        days.update(d % 7 for d in range(low, high + 1, int(step or 1)))
    return ",".join(_DAYS[d] for d in sorted(days))


def fire_iso(ts: float) -> str:
    """The fire time in idempotency keys: UTC ISO 8601, to the second (stable across zones)."""
    return datetime.fromtimestamp(ts, UTC).replace(microsecond=0).isoformat()


def load_schedules(
    configured: str | None, cwd: Path | None = None, catch_up: str = "once"
) -> dict[str, Schedule]:
    """The schedules of OPSBOT_SCHEDULES (or ./schedules.yml); {} when neither exists.
    `catch_up` is the policy of schedules that set none (OPSBOT_SCHEDULE_CATCH_UP)."""
    path = Path(configured) if configured else (cwd or Path.cwd()) / "schedules.yml"
    if not configured and not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScheduleInvalid([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    return parse_schedules(text, str(path), catch_up)


def parse_schedules(text: str, source: str, catch_up: str = "once") -> dict[str, Schedule]:
    try:
        raw = json.loads(text) if source.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ScheduleInvalid([f"{source}: not valid YAML/JSON: {exc}"]) from exc
    if isinstance(raw, dict) and "schedules" in raw:
        raw = raw["schedules"]
    if isinstance(raw, dict):
        raw = [{"name": k, **(v or {})} if isinstance(v, dict) else v for k, v in raw.items()]
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise ScheduleInvalid([f"{source}: expected a list of schedules"])
    schedules: dict[str, Schedule] = {}
    problems: list[str] = []
    for i, body in enumerate(raw):
        schedule = _parse_one(body, f"{source}: schedules[{i}]", problems, catch_up)
        if schedule is not None and schedule.name in schedules:
            problems.append(f"{source}: schedules[{i}]: duplicate name {schedule.name!r}")
        elif schedule is not None:
            schedules[schedule.name] = schedule
    if problems:
        raise ScheduleInvalid(problems)
    return schedules


def _parse_one(body: Any, at: str, problems: list[str], catch_up: str) -> Schedule | None:
    if not isinstance(body, dict):
        problems.append(f"{at}: expected a mapping")
        return None
    before = len(problems)
    problems += [f"{at}.{k}: unknown field (known: {', '.join(FIELDS)})"
                 for k in body if k not in FIELDS]  # fmt: skip
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or " " in name:
        problems.append(f"{at}.name: required, one word (got {name!r})")
    cron = _cron(body, at, problems)
    tz = str(body.get("timezone") or "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{at}.timezone: unknown time zone {tz!r}")
    _check_target(body, at, problems)
    for key, allowed in (("overlap", OVERLAP), ("catch_up", CATCH_UP)):
        if body.get(key, allowed[0]) not in allowed:
            problems.append(f"{at}.{key}: got {body[key]!r}, expected one of {', '.join(allowed)}")
    if len(problems) > before or cron is None:
        return None
    return Schedule(
        name=str(name), cron=cron, timezone=tz, workflow=body.get("workflow"),
        input=dict(body.get("input") or {}), action=body.get("action"), job=body.get("job"),
        overlap=body.get("overlap", "skip"), catch_up=body.get("catch_up", catch_up),
        enabled=bool(body.get("enabled", True)),
    )  # fmt: skip


def _cron(body: dict[str, Any], at: str, problems: list[str]) -> str | None:
    expr = body.get("schedule", body.get("cron"))
    if not isinstance(expr, str):
        problems.append(f"{at}.schedule: required: 5-field cron, or hourly|daily|weekly")
        return None
    expr = ALIASES.get(expr.strip().lower(), expr.strip())
    if len(expr.split()) != 5:
        problems.append(f"{at}.schedule: {expr!r} is not a 5-field cron expression")
        return None
    try:
        cron_trigger(expr, UTC)
    except ValueError as exc:
        problems.append(f"{at}.schedule: {expr!r}: {exc}")
        return None
    return expr


def _check_target(body: dict[str, Any], at: str, problems: list[str]) -> None:
    given = [k for k in ("workflow", "action", "job") if body.get(k) is not None]
    if len(given) != 1:
        problems.append(f"{at}: give exactly one target: workflow (with input), action or job")
        return
    if "workflow" in given and not isinstance(body["workflow"], str):
        problems.append(f"{at}.workflow: expected a workflow name")
    if body.get("input") is not None and not isinstance(body["input"], dict):
        problems.append(f"{at}.input: expected a mapping of input values")
    if "action" in given and not isinstance(body["action"], dict):
        problems.append(f"{at}.action: expected an action (type, data, ...)")
    elif "action" in given:
        try:
            parse_action(body["action"])
        except ActionInvalid as exc:
            problems += [f"{at}.action.{p}" for p in exc.problems]
    if "job" in given and body["job"] not in JOBS:
        problems.append(f"{at}.job: got {body['job']!r}, expected one of {', '.join(JOBS)}")


def builtin_schedules(prune_cron: str, report_cron: str | None) -> dict[str, Schedule]:
    """The maintenance jobs as schedules (UTC): retention pruning and the daily report."""
    out = {}
    if prune_cron:
        out["maintenance-prune"] = Schedule("maintenance-prune", prune_cron, job="prune")
    if report_cron:
        out["maintenance-report"] = Schedule("maintenance-report", report_cron, job="report")
    return out


CATCH_UP_WINDOW = timedelta(days=7).total_seconds()  # older missed firings are not looked at
