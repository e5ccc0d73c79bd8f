"""State backup and restore (the runbook's procedure), and the lock that says opsbot is running.

`backup` uses SQLite's online backup API: a consistent snapshot while opsbot keeps writing (WAL
readers do not block the writer). The copy is checked (integrity_check, schema version) before
it is reported good. `restore` refuses while any opsbot process holds the run lock (`<db>.lock`,
held shared by every running process through `RunLock`, a runtime service) or while a live
worker holds a lease; it checks the backup first, keeps the current file as
`<db>.before-restore-<time>`, then copies the backup in through the same backup API.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import IO, Any

from bot.config import Settings
from bot.ops.context import BadInput, OpsError
from bot.store.tables import SCHEMA_VERSION

log = logging.getLogger(__name__)


class BackupInvalid(BadInput):
    """The file is not a usable opsbot backup (corrupt, not opsbot's, too new)."""


def _db_path(settings: Settings) -> Path:
    path = settings.database_path
    if path is None or str(path) in ("", ":memory:"):
        raise BadInput("backup/restore need a SQLite file database (OPSBOT_DATABASE_URL)")
    return path


def lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


class RunLock:
    """Held (shared) by every running opsbot process; `restore` needs it exclusively.
    A runtime Service: `runtime.services.insert(0, RunLock(settings))`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._file: IO[str] | None = None

    async def start(self) -> None:
        path = self.settings.database_path
        if path is not None and str(path) not in ("", ":memory:"):
            self._file = await asyncio.to_thread(self._take, path)

    @staticmethod
    def _take(path: Path) -> IO[str]:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = open(lock_path(path), "a+", encoding="utf-8")  # noqa: SIM115 - held while running
        try:
            fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            file.close()
            raise OpsError(f"a restore of {path} is in progress: start opsbot after it") from exc
        return file

    async def stop(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def backup(settings: Settings, dest: str, force: bool = False) -> dict[str, Any]:
    """Snapshot the database into `dest` (blocking: call from a thread or the CLI)."""
    source, target = _db_path(settings), Path(dest)
    if not source.exists():
        raise OpsError(f"no database at {source}")
    if target.exists() and not force:
        raise BadInput(f"{target} exists; choose another file or use --force")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    started = time.monotonic()
    with (
        contextlib.closing(sqlite3.connect(source, timeout=10)) as src,
        contextlib.closing(sqlite3.connect(partial)) as dst,
    ):
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    info = check_backup(str(partial))
    os.replace(partial, target)
    return {"file": str(target), "bytes": target.stat().st_size,
            "seconds": round(time.monotonic() - started, 3), **info}  # fmt: skip


def check_backup(path: str) -> dict[str, Any]:
    """integrity_check, an opsbot schema and a version this opsbot can run. BackupInvalid."""
    if not Path(path).is_file():
        raise BackupInvalid(f"no backup file at {path}")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            version = _schema_version(conn) if "meta" in tables else None
            actions = conn.execute("SELECT count(*) FROM actions").fetchone()[0] if (
                "actions" in tables) else None  # fmt: skip
    except sqlite3.DatabaseError as exc:
        raise BackupInvalid(f"{path} is not a SQLite database: {exc}") from exc
    if integrity != ["ok"]:
        raise BackupInvalid(f"{path} failed integrity_check: {'; '.join(integrity[:3])}")
    if version is None or actions is None:
        raise BackupInvalid(f"{path} is not an opsbot database (no schema version or actions)")
    if version > SCHEMA_VERSION:
        raise BackupInvalid(
            f"{path} has schema version {version}, newer than this opsbot ({SCHEMA_VERSION})"
        )
    return {"integrity": "ok", "schema_version": version, "actions": actions}


def _schema_version(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else None


def restore(settings: Settings, src: str, now: float | None = None) -> dict[str, Any]:
    """Put a checked backup in place of the database; only while no opsbot runs."""
    info = check_backup(src)
    db = _db_path(settings)
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path(db), "a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise OpsError(
                f"opsbot is running on {db} (run lock held): stop it before restoring"
            ) from exc
        _refuse_live_leases(db, now if now is not None else time.time())
        kept = _keep_current(db, now if now is not None else time.time())
        with (
            contextlib.closing(sqlite3.connect(src)) as source,
            contextlib.closing(sqlite3.connect(db, timeout=10)) as target,
        ):
            source.backup(target)
    return {"restored": str(db), "from": src, "previous_kept_as": kept, **info}


def _refuse_live_leases(db: Path, now: float) -> None:
    """A worker without the run lock (an older runtime) still shows itself by live leases."""
    if not db.exists():
        return
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        try:
            (live,) = conn.execute(
                "SELECT count(*) FROM actions WHERE status = 'running' AND lease_expires_at > ?",
                (now,),
            ).fetchone()
        except sqlite3.OperationalError:  # not an opsbot database yet: nothing runs on it
            return
    if live:
        raise OpsError(f"{live} action(s) are leased by a live worker: stop opsbot first")


def _keep_current(db: Path, now: float) -> str | None:
    if not db.exists():
        return None
    kept = db.with_name(f"{db.name}.before-restore-{int(now)}")
    with (
        contextlib.closing(sqlite3.connect(db, timeout=10)) as src,
        contextlib.closing(sqlite3.connect(kept)) as dst,
    ):
        src.backup(dst)  # reads through the WAL: the kept file is complete on its own
        dst.execute("PRAGMA journal_mode=DELETE")
    return str(kept)


def audit_file_command(
    settings: Settings, words: str, actor: str, error: str | None, now: float | None = None
) -> None:
    """The audit row of `opsbot backup` / `opsbot restore` (they do not open the Store, so no
    schema change happens): written with plain sqlite3 into the database, when it exists and is
    an opsbot one. Blocking; never raises (the command's own outcome is what the user sees)."""
    try:
        db = _db_path(settings)
        if not db.exists():
            return
        detail = json.dumps({"words": words, **({"error": error} if error else {})})
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn, conn:
            conn.execute(
                "INSERT INTO audit (at, entity, entity_id, from_status, to_status, actor, detail)"
                " VALUES (?, 'command', ?, NULL, ?, ?, ?)",
                (now if now is not None else time.time(), words.split()[0],
                 "error" if error else "ok", actor, detail),
            )  # fmt: skip
    except Exception as exc:
        log.warning("auditing %r failed: %s: %s", words, type(exc).__name__, exc)
