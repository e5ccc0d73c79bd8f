"""Views of the workflow and schedule commands (the CLI's tables; JSON is the data itself)."""

from __future__ import annotations

import json
from typing import Any

from bot.render_text import pairs, seconds, table, when


def view_workflows(rows: list[dict[str, Any]]) -> str:
    return table(
        ["name", "version", "enabled", "transactional", "steps", "timeout", "hash"],
        [
            (
                r["name"],
                f"v{r['version']}",
                _yes(r["enabled"]),
                _yes(r["transactional"]),
                r["steps"],
                seconds(r["timeout_s"]),
                r["hash"],
            )
            for r in rows
        ],
        empty="(no workflows loaded: set OPSBOT_WORKFLOWS)",
    )


def view_workflow(r: dict[str, Any]) -> str:
    return f"{r['name']}  sha256:{r['hash']}\n" + json.dumps(r["definition"], indent=2)


def view_run(r: dict[str, Any]) -> str:
    head = pairs([
        ("run", r["id"] + (" (existing run: same idempotency key)" if r.get("duplicate") else "")),
        ("workflow", f"{r['workflow']} v{r['version']} ({r['env']})"),
        ("status", r["status"]),
        ("error", r["error"]),
        ("completed", ", ".join(r["completed"]) or "-"),
        ("current", ", ".join(r["current"]) or "-"),
        ("remaining", ", ".join(r["remaining"]) or "-"),
        ("started", when(r["started_at"])),
        ("duration", seconds(r["duration_s"])),
        ("comment", r.get("comment")),
    ])  # fmt: skip
    steps = table(
        ["step", "status", "attempts", "took", "action", "error"],
        [
            (
                s["name"],
                s["status"],
                s["attempts"],
                seconds(s.get("duration_s")),
                s["action_id"],
                s["error"],
            )
            for s in r["steps"]
        ],
    )
    out = [head, "", steps]
    if r.get("rollback"):
        out += ["", "rollback:", _indent(view_rollback(r["rollback"]))]
    return "\n".join(out)


def view_rollback(outcome: dict[str, Any]) -> str:
    """A rollback's outcome: steps undone (LIFO), not undone, irreversible, and why each failed."""
    irreversible = [f"{i['step']} ({i['reason']})" if i.get("reason") else i["step"]
                    for i in outcome.get("irreversible") or []]  # fmt: skip
    errors = [f"{step}: {why}" for step, why in (outcome.get("errors") or {}).items()]
    return pairs([  # an empty list shows as "-"
        ("rolled back", ", ".join(outcome.get("rolled_back") or [])),
        ("not rolled back", ", ".join(outcome.get("not_rolled_back") or [])),
        ("irreversible", ", ".join(irreversible)),
        ("errors", "; ".join(errors)),
    ])  # fmt: skip


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def view_runs(rows: list[dict[str, Any]]) -> str:
    return table(
        ["run", "workflow", "version", "env", "status", "created", "error"],
        [
            (
                r["id"],
                r["name"],
                r["version"],
                r["env"],
                r["status"],
                when(r["created_at"]),
                r["error"],
            )
            for r in rows
        ],
        empty="(no runs)",
    )


def view_artifact(r: dict[str, Any]) -> str:
    return json.dumps(r, indent=2, default=str)


def view_imported(r: dict[str, Any]) -> str:
    return f"imported {r['name']} as version {r['version']} (sha256:{r['hash'][:12]})"


def view_promoted(r: dict[str, Any]) -> str:
    forced = " (forced)" if r["forced"] else ""
    return f"promoted {r['name']} v{r['version']}: {r['from_env'] or '-'} -> {r['to_env']}{forced}"


def view_versions(rows: list[dict[str, Any]]) -> str:
    def runs(v: dict[str, Any]) -> str:
        return ", ".join(f"{x['env']} {x['status']} {x['count']}" for x in v["runs"]) or "-"

    def promos(v: dict[str, Any]) -> str:
        return ", ".join(f"{p['to_env']}{'!' if p['forced'] else ''}" for p in v["promotions"])

    return table(
        ["version", "hash", "created", "runs", "promoted to"],
        [(v["version"], v["hash"][:12], when(v["created_at"]), runs(v), promos(v)) for v in rows],
    )


def view_schedules(rows: list[dict[str, Any]]) -> str:
    def last(r: dict[str, Any]) -> str:
        x = r["last"]
        return "-" if not x else f"{when(x['fire_at'])} {x['outcome']}"

    return table(
        ["schedule", "cron", "tz", "target", "state", "next", "last"],
        [
            (
                r["name"],
                r["schedule"],
                r["timezone"],
                f"{r['target_kind']} {r['target']}",
                "paused" if r["paused"] else "on" if r["enabled"] else "disabled",
                when(r["next_fire_at"]),
                last(r),
            )
            for r in rows
        ],
        empty="(no schedules: set OPSBOT_SCHEDULES or add ./schedules.yml)",
    )


def view_schedule_change(r: dict[str, Any]) -> str:
    state = "paused" if r["paused"] else "resumed"
    return f"schedule {r['schedule']} {state}" + ("" if r["changed"] else " (already)")


def view_firing(r: dict[str, Any]) -> str:
    target = f" -> {r['target_kind']} {r['target_id']}" if r.get("target_id") else ""
    detail = r.get("detail")
    why = f" ({detail})" if isinstance(detail, str) else ""
    return f"schedule {r['schedule']}: {r['outcome']}{target}{why}"


def view_firings(rows: list[dict[str, Any]]) -> str:
    return table(
        ["fired", "kind", "outcome", "target", "detail"],
        [
            (
                when(r["fire_at"]),
                r["kind"],
                r["outcome"],
                r.get("target_id"),
                _detail(r.get("detail")),
            )
            for r in rows
        ],
        empty="(no firings yet)",
    )


def _detail(detail: Any) -> str | None:
    return detail if isinstance(detail, str) or detail is None else json.dumps(detail)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
