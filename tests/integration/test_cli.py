"""The `opsbot` CLI: typer's CliRunner for speed, real subprocesses for exit codes and stderr.

Outcomes are asserted in the SQLite file: action rows, pauses, circuits and audit rows.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
OPSBOT = ROOT / ".venv" / "bin" / "opsbot"
ECHO = {"type": "echo", "data": {"n": 1}}


def rows(env: dict[str, str], sql: str, *params: Any) -> list[tuple[Any, ...]]:
    path = env["OPSBOT_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, params).fetchall()


def opsbot(env: dict[str, str], cwd: Path, *args: str, input: str | None = None) -> Any:
    return subprocess.run(
        [str(OPSBOT), *args], input=input, env=env, cwd=cwd, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def test_submit_stdin_prints_ids_and_stores_queued_rows(cli: Any, env: dict[str, str]) -> None:
    result = cli("submit", "-", input=json.dumps([ECHO, {**ECHO, "priority": "high"}]))
    assert result.exit_code == 0, result.output
    ids = [line.split()[0] for line in result.stdout.splitlines()]
    assert len(ids) == 2
    stored = rows(env, "SELECT id, status, priority FROM actions ORDER BY seq")
    assert [(i, s) for i, s, _ in stored] == [(ids[0], "queued"), (ids[1], "queued")]
    assert rows(env, "SELECT actor FROM audit WHERE entity_id = ?", ids[0]) == [("cli:alice",)]


def test_submit_json_output_and_duplicate(cli: Any) -> None:
    action = json.dumps({**ECHO, "idempotency_key": "k-1"})
    first = json.loads(cli("--json", "submit", input=action).stdout)
    again = json.loads(cli("submit", "--json", input=action).stdout)
    assert again[0]["id"] == first[0]["id"] and again[0]["duplicate"] is True


def test_invalid_actions_one_line_per_problem_exit_2(cli: Any, env: dict[str, str]) -> None:
    bad = [{"type": "create_task", "data": {}}, {"type": "nope", "priority": "urgent"}]
    result = cli("submit", input=json.dumps(bad))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert any("data.title" in line and "expected a value" in line for line in lines)
    assert any("type" in line and "'nope'" not in line and "create_task" in line for line in lines)
    assert any("priority" in line and "urgent" in line for line in lines)
    assert all(line.startswith("opsbot: invalid action") for line in lines)
    assert rows(env, "SELECT count(*) FROM actions") == [(0,)]


def test_bad_json_and_missing_file_exit_2(cli: Any, tmp_path: Path) -> None:
    result = cli("submit", input="{not json")
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("opsbot: bad JSON in stdin:")
    missing = cli("submit", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "cannot read" in missing.stderr


def test_pause_resume_audited_and_unknown_platform(cli: Any, env: dict[str, str]) -> None:
    assert cli("pause", "notion").exit_code == 0
    assert cli("pause").exit_code == 0
    assert sorted(rows(env, "SELECT platform FROM pauses")) == [("*",), ("notion",)]
    assert rows(env, "SELECT to_status, actor FROM audit WHERE entity_id = 'notion'") == [
        ("paused", "cli:alice")
    ]
    status = json.loads(cli("status", "--json").stdout)
    assert status["paused"] == ["*", "notion"]
    assert "still paused: all platforms" in cli("resume", "notion").stdout
    assert cli("resume").exit_code == 0
    assert rows(env, "SELECT count(*) FROM pauses") == [(0,)]
    bad = cli("pause", "jira")
    assert bad.exit_code == 2
    assert "unknown platform 'jira'" in bad.stderr and "notion" in bad.stderr


def test_status_queue_and_action_views(cli: Any) -> None:
    ids = cli("submit", input=json.dumps(ECHO)).stdout.split()
    status = json.loads(cli("--json", "status").stdout)
    assert status["queued"] == 1
    assert {p["platform"]: p["enabled"] for p in status["platforms"]}["echo"] is True
    table = cli("queue", "status").stdout
    assert "total queued" in table and "normal 1" in table
    shown = cli("action", "show", ids[0])
    assert shown.exit_code == 0 and ids[0] in shown.stdout and "queued" in shown.stdout
    missing = cli("action", "show", "act_missing")
    assert missing.exit_code == 1 and "act_missing" in missing.stderr
    assert cli("queue", "stuck").stdout.strip() == "no stuck actions"


def test_clear_cancels_waiting_actions(cli: Any, env: dict[str, str]) -> None:
    cli("submit", input=json.dumps([ECHO, ECHO]))
    result = cli("clear")
    assert result.exit_code == 0 and "cancelled 2" in result.stdout
    assert rows(env, "SELECT DISTINCT status FROM actions") == [("cancelled",)]


def test_circuit_status_and_reset(cli: Any, env: dict[str, str]) -> None:
    cli("status")  # creates the schema
    path = env["OPSBOT_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO circuits (platform, state, consecutive_failures, half_open_successes,"
            " opened_at, updated_at, last_error) VALUES ('trello', 'open', 5, 0, ?, ?, '503')",
            (4e9, 4e9),
        )
    assert "OPEN" in cli("circuit", "status", "trello").stdout
    assert cli("circuit", "reset", "trello").exit_code == 0
    assert rows(env, "SELECT state FROM circuits WHERE platform = 'trello'") == [("closed",)]
    assert rows(
        env, "SELECT from_status, to_status, actor FROM audit WHERE entity = 'circuit'"
    ) == [("open", "closed", "cli:alice")]
    assert cli("circuit", "reset").exit_code == 2


def test_dlq_list_replay_purge(cli: Any, env: dict[str, str]) -> None:
    ids = cli("submit", input=json.dumps([ECHO, ECHO])).stdout.split()[::2]
    path = env["OPSBOT_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE actions SET status = 'dead_lettered', error = 'boom', attempts = 4")
    listed = json.loads(cli("dlq", "list", "--json").stdout)
    assert sorted(r["id"] for r in listed) == sorted(ids)
    assert cli("dlq", "replay").exit_code == 2  # neither ids nor --all
    assert cli("dlq", "replay", ids[0]).exit_code == 0
    assert rows(env, "SELECT status FROM actions WHERE id = ?", ids[0]) == [("queued",)]
    assert cli("dlq", "purge").exit_code == 0
    assert rows(env, "SELECT count(*) FROM actions WHERE status = 'dead_lettered'") == [(0,)]


def test_check_echo(cli: Any) -> None:
    result = cli("--json", "check", "echo")
    assert result.exit_code == 0
    assert json.loads(result.stdout)[0]["ok"] is True


# ---------------------------------------------------------------- real processes


@pytest.fixture(scope="module")
def installed() -> Path:
    if not OPSBOT.exists():
        pip = ROOT / ".venv" / "bin" / "pip"
        subprocess.run([str(pip), "install", "-q", "--no-deps", "-e", str(ROOT)], check=True)
    return OPSBOT


def test_process_paused_actions_stay_queued_until_resume(
    installed: Path, cli: Any, env: dict[str, str], tmp_path: Path
) -> None:
    """pause -> submit -> worker --drain leaves them queued; resume -> drain runs them all."""
    actions = tmp_path / "actions.json"
    actions.write_text(json.dumps([ECHO] * 20))
    assert cli("pause", "echo").exit_code == 0
    assert cli("submit", str(actions)).exit_code == 0
    assert opsbot(env, tmp_path, "worker", "--drain").returncode == 0
    assert rows(env, "SELECT status, count(*) FROM actions GROUP BY status") == [("queued", 20)]
    assert cli("resume", "echo").exit_code == 0
    drained = opsbot(env, tmp_path, "worker", "--drain")
    assert drained.returncode == 0, drained.stderr
    assert rows(env, "SELECT status, count(*) FROM actions GROUP BY status") == [("succeeded", 20)]


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["frobnicate"], 2, "No such command"),
        (["pause", "jira"], 2, "unknown platform"),
        (["circuit", "reset"], 2, "Missing argument 'platform'"),
    ],
)
def test_process_errors_are_one_line(
    installed: Path, env: dict[str, str], tmp_path: Path, args: list[str], code: int, words: str
) -> None:
    result = opsbot(env, tmp_path, *args)
    assert result.returncode == code
    assert words in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_process_unreadable_database_is_one_line(
    installed: Path, env: dict[str, str], tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    bad_env = {**env, "OPSBOT_DATABASE_URL": f"sqlite:///{garbage}"}
    result = opsbot(bad_env, tmp_path, "status")
    assert result.returncode == 1
    assert result.stderr.startswith("opsbot: database error")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_process_secret_never_printed(installed: Path, env: dict[str, str], tmp_path: Path) -> None:
    url = f"postgresql://opsbot:hunter2secret@127.0.0.1:1/{sys.platform}"
    result = opsbot({**env, "OPSBOT_DATABASE_URL": url}, tmp_path, "status")
    assert result.returncode == 1 and "hunter2secret" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_queue_full_is_a_failure_and_nothing_is_stored(cli: Any, env: dict[str, str]) -> None:
    env["QUEUE_MAX_SIZE"] = "1"
    result = cli("submit", input=json.dumps([ECHO, ECHO]))
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("opsbot: queue full")
    assert rows(env, "SELECT count(*) FROM actions") == [(0,)]


@pytest.mark.parametrize(
    "args",
    [["status"], ["queue", "status"], ["queue", "stuck"], ["circuit", "status"], ["errors"],
     ["approvals"], ["dlq", "list"], ["check"]],
)  # fmt: skip
def test_every_view_has_json_for_scripts(cli: Any, args: list[str]) -> None:
    result = cli("--json", *args)
    assert result.exit_code in (0, 1), result.output  # check: disabled platforms are fine
    json.loads(result.stdout)


def test_bad_setting_is_bad_input(cli: Any, env: dict[str, str]) -> None:
    env["QUEUE_WORKERS"] = "many"
    result = cli("status")
    assert result.exit_code == 2
    assert "QUEUE_WORKERS" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_process_locked_database_is_one_line(
    installed: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """Another process holds the write lock past the busy timeout: one line, exit 1, no hang."""
    assert opsbot(env, tmp_path, "status").returncode == 0  # creates the file
    holder = sqlite3.connect(env["OPSBOT_DATABASE_URL"].removeprefix("sqlite:///"))
    holder.isolation_level = None
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = opsbot(env, tmp_path, "pause", "notion")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 1
    assert result.stderr.strip().endswith("database is locked")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
