"""Backup while opsbot writes, and restore only when it is stopped, on real SQLite files."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from bot.actions import parse_action
from bot.backup import BackupInvalid, RunLock, backup, check_backup, restore
from bot.config import Settings
from bot.ops.context import OpsError
from bot.store.engine import Store


def _count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM actions").fetchone()[0])


async def test_backup_is_consistent_while_another_thread_writes(
    store: Store, queue: Any, settings: Settings, tmp_path: Path
) -> None:
    await queue.submit([parse_action({"type": "echo", "data": {"i": 0}})], actor="t")
    stop = threading.Event()

    def writer() -> None:  # a second connection committing all the time, as a running bot does
        with sqlite3.connect(settings.database_path, timeout=10) as conn:  # type: ignore[arg-type]
            i = 0
            while not stop.is_set():
                conn.execute("INSERT INTO meta (key, value) VALUES (?, 'x')", (f"k{i}",))
                conn.commit()
                i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        made = [backup(settings, str(tmp_path / f"b{i}.db")) for i in range(3)]
    finally:
        stop.set()
        thread.join()
    assert all(m["integrity"] == "ok" and m["actions"] == 1 for m in made)
    assert check_backup(made[-1]["file"])["schema_version"] == store.schema_version


async def test_restore_refuses_while_opsbot_runs_and_checks_the_file(
    store: Store, queue: Any, settings: Settings, tmp_path: Path
) -> None:
    snap = str(tmp_path / "snap.db")
    backup(settings, snap)
    await queue.submit([parse_action({"type": "echo", "data": {"i": 1}})], actor="t")
    lock = RunLock(settings)
    await lock.start()
    with pytest.raises(OpsError, match="opsbot is running"):
        restore(settings, snap)
    await lock.stop()
    store.close()
    done = restore(settings, snap, now=1000.0)
    assert _count(settings.database_path) == 0  # type: ignore[arg-type]
    assert done["previous_kept_as"].endswith(".before-restore-1000")
    assert _count(Path(done["previous_kept_as"])) == 1


def test_bad_backups_are_refused(tmp_path: Path, settings: Settings) -> None:
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("CREATE TABLE actions (id TEXT)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '999')")
    with pytest.raises(BackupInvalid, match="newer than this opsbot"):
        restore(settings, str(newer))
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(BackupInvalid, match="not an opsbot database"):
        check_backup(str(other))
    with pytest.raises(BackupInvalid, match="no backup file"):
        check_backup(str(tmp_path / "missing.db"))
