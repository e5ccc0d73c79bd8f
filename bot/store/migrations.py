"""Schema versions: a newer opsbot upgrades an older database file in place.

`create_all` adds missing tables; changes to existing tables are steps here, keyed by the version
they produce. Each step runs in the same transaction as the version bump.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, inspect, text

from bot.store.tables import CLAIM_INDEX_COLUMNS, RUN_ID_INDEX_WHERE, SCHEMA_VERSION


def _claim_index(conn: Connection) -> None:
    columns = ", ".join(CLAIM_INDEX_COLUMNS)
    conn.execute(text(f"CREATE INDEX IF NOT EXISTS ix_actions_claim ON actions ({columns})"))


def _lean_indexes(conn: Connection) -> None:
    """Drop the status index (ix_actions_claim starts with status) and make the run_id index
    partial: fewer index pages written per submit, claim and outcome."""
    conn.execute(text("DROP INDEX IF EXISTS ix_actions_status"))
    conn.execute(text("DROP INDEX IF EXISTS ix_actions_run_id"))
    conn.execute(
        text(f"CREATE INDEX ix_actions_run_id ON actions (run_id) WHERE {RUN_ID_INDEX_WHERE}")
    )


def _run_callback_url(conn: Connection) -> None:
    """workflow_runs.callback_url. The table may be newer than the stamp (create_all made it
    with the column before this step runs), so add the column only when it is missing."""
    columns = {column["name"] for column in inspect(conn).get_columns("workflow_runs")}
    if "callback_url" not in columns:
        conn.execute(text("ALTER TABLE workflow_runs ADD COLUMN callback_url VARCHAR"))


# version produced -> step.
STEPS: dict[int, Callable[[Connection], None]] = {
    2: _claim_index,
    3: _lean_indexes,
    4: _run_callback_url,
}


def current_version(conn: Connection) -> int:
    row = conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).first()
    return int(row[0]) if row else 0


def migrate(conn: Connection) -> int:
    """Bring the schema to SCHEMA_VERSION. A fresh database is stamped directly."""
    version = current_version(conn)
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {version} is newer than this opsbot ({SCHEMA_VERSION}): "
            "upgrade opsbot"
        )
    if version == 0:
        _stamp(conn, SCHEMA_VERSION, insert=True)
        return SCHEMA_VERSION
    for target in range(version + 1, SCHEMA_VERSION + 1):
        STEPS[target](conn)
        _stamp(conn, target, insert=False)
    return SCHEMA_VERSION


def _stamp(conn: Connection, version: int, *, insert: bool) -> None:
    sql = (
        "INSERT INTO meta (key, value) VALUES ('schema_version', :v)"
        if insert
        else "UPDATE meta SET value = :v WHERE key = 'schema_version'"
    )
    conn.execute(text(sql), {"v": str(version)})
