"""Hot-path statements: a Core statement compiled once per dialect, run on the DBAPI cursor.

SQLAlchemy's per-row parameter processing costs several microseconds per row in an
executemany; the queue's hot paths (submit, claim, record) write tens of thousands of rows a
second, so they compile their statements once and hand plain tuples (or dicts, for named
paramstyles) to the driver. The SQL text still comes from SQLAlchemy's compiler for the
connection's dialect, so it stays portable (SQLite `?`, PostgreSQL `%(name)s`). Only for values
the driver adapts itself: str, int, float, bool, None.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import BindParameter, Connection, Dialect, bindparam
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement


class Prepared:
    def __init__(self, stmt: ClauseElement, keys: Sequence[str] | None = None) -> None:
        self.stmt = stmt
        self.keys = list(keys) if keys is not None else None
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.stmt.compile(dialect=dialect, column_keys=self.keys)
            defaults = {k: _scalar_default(self.stmt, k, v) for k, v in compiled.params.items()}
            names = list(getattr(compiled, "positiontup", None) or [])
            found = _Compiled(compiled.string, names if dialect.positional else None, defaults)
            self._compiled[dialect.name] = found
        return found

    def _params(self, dialect: Dialect, rows: Sequence[dict[str, Any]]) -> tuple[str, list[Any]]:
        compiled = self._for(dialect)
        return compiled.sql, [compiled.bind(row) for row in rows]

    def many(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
        """executemany; returns the driver's total rowcount (-1 when it does not know)."""
        if not rows:
            return 0
        sql, params = self._params(conn.dialect, rows)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if len(params) == 1:
                cursor.execute(sql, params[0])
            else:
                cursor.executemany(sql, params)
            return int(cursor.rowcount)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, sql, exc) from exc
        finally:
            cursor.close()

    def rows(self, conn: Connection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """execute once and fetch all rows (SELECT or ... RETURNING) as plain tuples."""
        sql, values = self._params(conn.dialect, [params])
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, values[0])
            return [tuple(r) for r in cursor.fetchall()]
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, sql, exc) from exc
        finally:
            cursor.close()


class _Compiled:
    """SQL text plus a fast row -> driver parameters function."""

    def __init__(self, sql: str, names: list[str] | None, defaults: dict[str, Any]) -> None:
        self.sql = sql
        self.defaults = defaults
        self._get: Callable[[dict[str, Any]], Any] | None = None
        if names:
            # itemgetter is C: one call per row instead of a generator over the columns
            get = itemgetter(*names)
            self._get = get if len(names) > 1 else (lambda row: (get(row),))

    def bind(self, row: dict[str, Any]) -> Any:
        if self._get is None:
            return {**self.defaults, **row}
        try:
            return self._get(row)
        except KeyError:
            return self._get({**self.defaults, **row})


def _wrapped(conn: Connection, sql: str, exc: Exception) -> Exception:
    """The driver's error as SQLAlchemy's (IntegrityError, OperationalError, ...), as callers
    using Core would see it; parameters are left out (they may carry action data)."""
    dbapi = conn.dialect.loaded_dbapi
    return DBAPIError.instance(sql, None, exc, dbapi.Error, hide_parameters=True)


def _scalar_default(stmt: Any, key: str, value: Any) -> Any:
    """Bind defaults: literal values as compiled; for an INSERT, the column's scalar default."""
    if value is not None and not _is_required(value):
        return value
    table = getattr(stmt, "table", None)
    column = table.c.get(key) if table is not None else None
    default = getattr(column, "default", None)
    return getattr(default, "arg", None) if default is not None else None


def _is_required(value: Any) -> bool:
    return type(value).__name__ == "symbol"


class PreparedIn:
    """A statement with one `IN (...)` list of bound values, compiled once per list length
    (an expanding IN would be re-rendered by SQLAlchemy on every execution)."""

    def __init__(self, build: Callable[[list[BindParameter[Any]]], ClauseElement]) -> None:
        self._build = build
        self._by_size: dict[int, Prepared] = {}

    def rows(
        self, conn: Connection, values: Sequence[Any], params: dict[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        size = len(values)
        prepared = self._by_size.get(size)
        if prepared is None:
            binds: list[BindParameter[Any]] = [bindparam(f"in_{k}") for k in range(size)]
            prepared = self._by_size[size] = Prepared(self._build(binds))
        bound = {f"in_{k}": v for k, v in enumerate(values)}
        return prepared.rows(conn, {**(params or {}), **bound})
