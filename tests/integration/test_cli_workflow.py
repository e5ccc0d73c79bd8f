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
from typer.testing import CliRunner

from bot.cli import app

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


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Any:
        return runner.invoke(app, list(args), input=input, env=env)

    return invoke


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
    assert tampered.exit_code == 2 and "checksum" in tampered.output
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
