"""Every operator command leaves one audit row (actor, words, ok/error), whatever the door;
backup and restore too; `opsbot audit --action ID` answers for that action only."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from bot import commands
from bot.config import Settings
from bot.ops import OpsContext
from bot.store.engine import Store
from tests.conftest import FakeClock


def command_rows(env: dict[str, str]) -> list[tuple[Any, ...]]:
    path = env["OPSBOT_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT entity_id, to_status, actor, detail FROM audit WHERE entity = 'command' "
            "ORDER BY id"
        ).fetchall()


def test_cli_commands_read_only_and_failing_ones_are_audited(cli: Any, env: dict) -> None:
    assert cli("status").exit_code == 0
    secret_doc = [{"type": "echo", "data": {"password": "hunter2-very-secret"}}] * 2
    assert cli("submit", "-", input=json.dumps(secret_doc)).exit_code == 0
    assert cli("workflow", "import", "-", input="{}").exit_code != 0
    rows = command_rows(env)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("status", "ok", "cli:alice"),
        ("submit", "ok", "cli:alice"),
        ("workflow import", "error", "cli:alice"),
    ]
    assert json.loads(rows[1][3]) == {"words": "submit raw=<JSON, 2 items>"}
    assert "hunter2" not in "".join(str(r) for r in rows)
    assert json.loads(rows[2][3])["error"]


def test_backup_and_restore_are_audited(cli: Any, env: dict, tmp_path: Path) -> None:
    assert cli("status").exit_code == 0  # creates the database
    snap = str(tmp_path / "snap.db")
    assert cli("backup", snap).exit_code == 0
    assert cli("restore", str(tmp_path / "missing.db")).exit_code == 2
    assert cli("restore", snap).exit_code == 0
    rows = [(r[0], r[1], r[2], json.loads(r[3])["words"]) for r in command_rows(env)]
    # the restored file is the snapshot (status, backup's own row came after it) + restore
    assert rows[-1] == ("restore", "ok", "cli:alice", f"restore {snap}")
    before = tmp_path.glob("ops.db.before-restore-*")
    path = str(next(before))
    with sqlite3.connect(path) as conn:
        kept = conn.execute(
            "SELECT entity_id, to_status FROM audit WHERE entity = 'command' ORDER BY id"
        ).fetchall()
    assert kept == [("status", "ok"), ("backup", "ok"), ("restore", "error")]


async def test_slack_dispatch_records_one_row_with_the_slack_actor(
    settings: Settings, store: Store, queue: Any, clock: FakeClock
) -> None:
    ctx = OpsContext(store=store, settings=settings, queue=queue, clock=clock)
    command, args = commands.parse(["pause", "notion"])
    await commands.run(command, ctx, args, "slack:U123")
    rows = await store.read(
        lambda c: c.exec_driver_sql(
            "SELECT entity_id, to_status, actor, detail FROM audit WHERE entity = 'command'"
        ).fetchall()
    )
    assert [(r[0], r[1], r[2], json.loads(r[3])) for r in rows] == [
        ("pause", "ok", "slack:U123", {"words": "pause notion"})
    ]


def test_audit_by_action_lists_only_that_actions_rows(cli: Any) -> None:
    submitted = cli("submit", "-", input=json.dumps([{"type": "echo"}, {"type": "echo"}]))
    first, second = (line.split()[0] for line in submitted.stdout.splitlines())
    assert cli("action", "show", second).exit_code == 0
    result = cli("--json", "audit", "--action", first)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and {r["entity_id"] for r in rows} == {first}
    assert rows[0]["to_status"] == "queued" and rows[0]["entity"] == "action"
