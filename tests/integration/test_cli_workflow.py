"""`opsbot workflow|schedule|alerts|audit|report|maintenance` through typer's CliRunner, and
exit codes/stderr through a real subprocess. Outcomes are rows in the SQLite file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
OPSBOT = ROOT / ".venv" / "bin" / "opsbot"
WORKFLOWS = """
notify:
  inputs: [who]
  steps:
    - name: first
      action: {type: echo, data: {hello: "{{ input.who }}"}}
    - name: second
      depends_on: first
      action: {type: echo, data: {after: "{{ steps.first.result }}"}}
"""
SCHEDULES = """
schedules:
  - name: hourly-notify
    schedule: hourly
    workflow: notify
    input: {who: ops}
  - name: ping
    schedule: "*/5 * * * *"
    action: {type: echo, data: {n: 1}}
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "workflows.yml").write_text(WORKFLOWS)
    (tmp_path / "schedules.yml").write_text(SCHEDULES)
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("OPSBOT_", "SLACK_"))}
    return {**keep, "OPSBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'ops.db'}", "LOGNAME": "ann"}


def rows(env: dict[str, str], sql: str, *params: Any) -> list[tuple[Any, ...]]:
    path = env["OPSBOT_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, params).fetchall()


def test_workflow_run_journals_the_run_and_queues_its_first_step(
    cli: Any, env: dict[str, str]
) -> None:
    listed = cli("workflow", "list", "--json")
    assert [w["name"] for w in json.loads(listed.stdout)] == ["notify"]
    started = cli("workflow", "run", "notify", "--input", "who=ann", "--key", "k1", "--json")
    assert started.exit_code == 0, started.output
    run = json.loads(started.stdout)
    assert run["status"] == "running" and run["current"] == ["first"]
    assert rows(env, "SELECT step_name, status FROM actions WHERE run_id = ?", run["id"]) == [
        ("first", "queued")
    ]
    again = json.loads(cli("workflow", "run", "notify", "-i", "who=ann", "--key", "k1",
                           "--json").stdout)  # fmt: skip
    assert again["id"] == run["id"] and again["duplicate"] is True
    status = cli("workflow", "status", run["id"])
    assert "first" in status.stdout and "running" in status.stdout
    assert run["id"] in cli("workflow", "runs").stdout


def test_workflow_errors_are_one_line_with_exit_codes(cli: Any) -> None:
    missing = cli("workflow", "run", "notify")
    assert missing.exit_code == 2 and "missing input" in missing.output
    unknown = cli("workflow", "status", "run_nope")
    assert unknown.exit_code == 1 and "no workflow run" in unknown.output
    refused = cli("workflow", "promote", "notify", "--to", "staging")
    assert refused.exit_code == 1 and "no successful run in dev" in refused.output
    bad_env = cli("workflow", "promote", "notify", "--to", "moon")
    assert bad_env.exit_code == 2


def started(cli: Any, env: dict[str, str], status: str | None = None) -> str:
    """A run of `notify` journaled by the CLI, optionally moved to `status` in the store."""
    run_id: str = json.loads(cli("workflow", "run", "notify", "-i", "who=x", "--json").stdout)["id"]
    if status is not None:
        rows(env, "UPDATE workflow_runs SET status = ? WHERE id = ?", status, run_id)
    return run_id


def test_run_records_its_source_and_list_shows_versions(cli: Any, env: dict[str, str]) -> None:
    run_id = started(cli, env)
    assert rows(env, "SELECT source FROM workflow_runs WHERE id = ?", run_id) == [("cli",)]
    listed = cli("workflow", "list")
    assert listed.stdout.splitlines()[2].split()[:2] == ["notify", "v1"], listed.stdout
    assert json.loads(cli("workflow", "list", "--json").stdout)[0]["version"] == 1


def test_refusals_say_what_is_wrong(cli: Any, env: dict[str, str]) -> None:
    bogus = cli("workflow", "runs", "--status", "bogus")
    assert bogus.exit_code == 2 and "--status: got 'bogus', expected one of: running," in (
        bogus.output
    )
    assert "rollback_failed, resolved" in bogus.output
    assert cli("workflow", "runs", "--status", "failed").stdout.strip() == "(no runs)"
    running = started(cli, env)
    for args in (("rollback", running), ("rollback", running, "--force"),
                 ("rollback:force", running)):  # fmt: skip
        refused = cli("workflow", *args)
        assert refused.exit_code == 1, refused.output
        assert "is still running: wait for it to finish" in refused.output
    resolve = cli("workflow", "resolve", running, "--comment", "fixed by hand")
    assert resolve.exit_code == 1 and "is still running" in resolve.output
    assert "comment" not in resolve.output
    empty = cli("workflow", "resolve", running, "--comment", " ")
    assert empty.exit_code == 2 and "resolve needs --comment" in empty.output
    export = cli("workflow", "export", "nope")
    assert export.exit_code == 1
    assert "no workflow named 'nope' (known: notify)" in export.output


def test_rollback_force_spelling_and_readable_outcome(cli: Any, env: dict[str, str]) -> None:
    finished = started(cli, env, "succeeded")
    plain = cli("workflow", "rollback", finished)
    assert plain.exit_code == 1
    assert "succeeded: roll it back only by force (rollback:force RUN" in plain.output
    forced = cli("workflow", "rollback:force", finished)
    assert forced.exit_code == 0, forced.output
    assert rows(env, "SELECT status FROM workflow_runs WHERE id = ?", finished) == [
        ("rolled_back",)
    ]
    assert "rollback:\n  rolled back      -\n  not rolled back  -\n" in forced.stdout
    assert "{" not in forced.stdout  # no raw JSON line
    other = started(cli, env, "succeeded")
    assert cli("workflow", "rollback", other, "--force").exit_code == 0  # still accepted
    audit = rows(env, "SELECT actor FROM audit WHERE entity_id = ? AND to_status = ?",
                 finished, "rolling_back")  # fmt: skip
    assert audit == [("cli:ann",)]


def test_promote_defaults_to_the_loaded_version(
    cli: Any, env: dict[str, str], tmp_path: Path
) -> None:
    original = (tmp_path / "workflows.yml").read_text()
    cli("workflow", "list")  # v1
    (tmp_path / "workflows.yml").write_text(original.replace("hello", "hi"))
    assert "v2" in cli("workflow", "list").stdout
    (tmp_path / "workflows.yml").write_text(original)  # the file is v1 again; v2 is the highest
    promoted = cli("workflow", "promote", "notify", "--to", "staging", "--force", "--json")
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.stdout)["version"] == 1
    assert rows(env, "SELECT version FROM workflow_promotions") == [(1,)]
    assert json.loads(cli("workflow", "export", "notify", "--json").stdout)["version"] == 1
    explicit = cli("workflow", "promote", "notify", "--to", "staging", "--force", "--version", "2")
    assert explicit.exit_code == 0 and "v2" in explicit.stdout


def test_export_import_promote_versions(cli: Any, env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "notify.json"
    assert cli("workflow", "export", "notify", "-o", str(out)).exit_code == 0
    artifact = json.loads(out.read_text())
    assert artifact["checksum"].startswith("sha256:") and artifact["environment"] == "dev"
    imported = cli("workflow", "import", str(out), "--json")
    assert imported.exit_code == 0, imported.output
    artifact["definition"]["steps"][0]["name"] = "tampered"
    out.write_text(json.dumps(artifact))
    tampered = cli("workflow", "import", str(out))
    assert tampered.exit_code == 2
    problems = tampered.output.strip().splitlines()  # each located once, from the name on
    assert problems[0].startswith("opsbot: artifact refused: notify.steps[1] (second).depends_on")
    assert problems[-1] == "notify.checksum: does not match the definition"
    forced = cli("workflow", "promote", "notify", "--to", "staging", "--force")
    assert forced.exit_code == 0, forced.output
    versions = json.loads(cli("workflow", "versions", "notify", "--json").stdout)
    assert versions[0]["promotions"][0]["to_env"] == "staging"
    assert rows(env, "SELECT to_env, forced FROM workflow_promotions") == [("staging", 1)]


def test_schedules_list_pause_resume_and_run_now(cli: Any, env: dict[str, str]) -> None:
    listed = json.loads(cli("schedule", "list", "--json").stdout)
    names = {s["name"] for s in listed}
    assert {"hourly-notify", "ping", "maintenance-prune"} <= names
    assert cli("schedule", "pause", "ping").exit_code == 0
    assert rows(env, "SELECT paused, paused_by FROM schedule_state WHERE name = 'ping'") == [
        (1, "cli:ann")
    ]
    assert cli("schedule", "resume", "ping").exit_code == 0
    fired = json.loads(cli("schedule", "run", "ping", "--json").stdout)
    assert fired["outcome"] == "enqueued"
    key = rows(env, "SELECT idempotency_key, source FROM actions")
    assert key[0][0].startswith("schedule:ping:manual:") and key[0][1] == "schedule"
    skipped = cli("schedule", "run", "ping")
    assert "skipped" in skipped.stdout  # the first action is still queued
    run = json.loads(cli("schedule", "run", "hourly-notify", "--json").stdout)
    assert run["outcome"] == "enqueued" and run["target_id"].startswith("run_")
    history = json.loads(cli("schedule", "history", "ping", "--json").stdout)
    assert [h["outcome"] for h in history] == ["skipped", "enqueued"]
    unknown = cli("schedule", "pause", "nope")
    assert unknown.exit_code == 1 and "no schedule named 'nope'" in unknown.output


def test_audit_alerts_report_prune(cli: Any, env: dict[str, str]) -> None:
    cli("schedule", "pause", "ping")
    audit = json.loads(cli("audit", "--since", "1h", "--actor", "cli:ann", "--json").stdout)
    assert any(r["entity"] == "schedule" and r["to_status"] == "paused" for r in audit)
    assert json.loads(cli("audit", "--actor", "nobody", "--json").stdout) == []
    assert cli("audit", "--since", "yesterday").exit_code == 2
    assert cli("alerts", "--json").stdout.strip() == "[]"
    report = json.loads(cli("report", "--json").stdout)
    assert report["health"]["status"] in ("healthy", "degraded", "unhealthy")
    assert report["database"]["bytes"] > 0
    assert "success rate 24h" in cli("report").stdout
    pruned = json.loads(cli("maintenance", "prune", "--json").stdout)
    assert pruned["deleted"]["audit"] == 0


def test_backup_and_restore(cli: Any, env: dict[str, str], tmp_path: Path) -> None:
    cli("schedule", "pause", "ping")
    snap = tmp_path / "snap.db"
    made = json.loads(cli("backup", str(snap), "--json").stdout)
    assert made["integrity"] == "ok" and snap.exists()
    assert cli("backup", str(snap)).exit_code == 2  # exists
    cli("schedule", "resume", "ping")
    restored = cli("restore", str(snap), "--json")
    assert restored.exit_code == 0, restored.output
    assert rows(env, "SELECT paused FROM schedule_state WHERE name = 'ping'") == [(1,)]
    junk = tmp_path / "junk.db"
    junk.write_text("not a database at all" * 100)
    refused = cli("restore", str(junk))
    assert refused.exit_code == 2 and "not a SQLite database" in refused.output


def test_usage_errors_in_a_real_process(env: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(
        [str(OPSBOT), "workflow", "run", "notify", "--input", "novalue"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    expected = "opsbot: --input: expected KEY=VALUE, got 'novalue'"
    assert done.stderr.strip().splitlines() == [expected]


def test_a_run_started_from_the_cli_finishes_under_opsbot_worker(
    cli: Any, env: dict[str, str]
) -> None:
    run_id = started(cli, env)
    drained = cli("worker", "--drain")
    assert drained.exit_code == 0, drained.output
    status = json.loads(cli("workflow", "status", run_id, "--json").stdout)
    assert status["status"] == "succeeded" and status["completed"] == ["first", "second"]
    steps = rows(
        env, "SELECT step_name, attempts FROM actions WHERE run_id = ? ORDER BY seq", run_id
    )
    assert steps == [("first", 1), ("second", 1)]
