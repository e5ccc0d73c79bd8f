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
            positional = names if dialect.positional else None
            found = _Compiled(compiled.string, positional, defaults, self.keys or list(defaults))
            self._compiled[dialect.name] = found
        return found

    def many(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
        """executemany over dict rows; returns the driver's total rowcount (-1: unknown)."""
        if not rows:
            return 0
        compiled = self._for(conn.dialect)
        return _run_many(conn, compiled.sql, [compiled.bind(row) for row in rows])

    def many_tuples(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        """executemany over tuples holding the values of `keys`, in that order: the hot paths'
        form (no dict per row; on SQLite usually handed to the driver as they are)."""
        if not rows:
            return 0
        compiled = self._for(conn.dialect)
        convert = compiled.from_tuple
        return _run_many(conn, compiled.sql, rows if convert is None else list(map(convert, rows)))

    def rows(self, conn: Connection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """execute once and fetch all rows (SELECT or ... RETURNING) as plain tuples."""
        compiled = self._for(conn.dialect)
        sql = compiled.sql
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, compiled.bind(params))
            return [tuple(r) for r in cursor.fetchall()]
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, sql, exc) from exc
        finally:
            cursor.close()


def _run_many(conn: Connection, sql: str, params: Sequence[Any]) -> int:
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


class _Compiled:
    """SQL text plus fast row -> driver parameters functions.

    Positional dialects (SQLite `?`) take tuples in the compiled order, which holds the caller's
    keys and literal values (guards such as `status = 'running'`, NULLs, column defaults) in
    the statement's own order. Both are built by itemgetter (C) over the caller's values with
    the constants appended: no per-column Python loop and no dict per row.
    """

    def __init__(
        self, sql: str, names: list[str] | None, defaults: dict[str, Any], keys: list[str]
    ) -> None:
        self.sql = sql
        self.defaults = defaults
        self._get: Callable[[dict[str, Any]], Any] | None = None
        self.from_tuple: Callable[[tuple[Any, ...]], Any] | None = None
        if names is None:  # named paramstyle (PostgreSQL drivers): dicts
            self.from_tuple = lambda t: {**defaults, **dict(zip(keys, t, strict=True))}
            return
        given = [n for n in names if n in keys]
        consts = tuple(defaults.get(n) for n in names if n not in keys)
        if given:
            by_name = _tuple_getter(given)
            # values in `names` order: the given ones (in names order) + constants, permuted
            slots, k, c = [], 0, len(given)
            for n in names:
                slots.append(k if n in keys else c)
                k, c = (k + 1, c) if n in keys else (k, c + 1)
            order = _tuple_getter_by_index(slots)
            self._get = lambda row: order(by_name(row) + consts)
        else:  # nothing from the caller
            self._get = lambda row: consts
        index, extra = [], len(keys)
        for n in names:
            if n in keys:
                index.append(keys.index(n))
            else:
                index.append(extra)
                extra += 1
        if index != list(range(len(keys))) or extra != len(keys):
            pick = _tuple_getter_by_index(index)
            self.from_tuple = lambda t: pick(t + consts)

    def bind(self, row: dict[str, Any]) -> Any:
        if self._get is None:
            return {**self.defaults, **row}
        try:
            return self._get(row)
        except KeyError:  # a row leaving out an optional key: its default
            return self._get({**self.defaults, **row})


def _tuple_getter(names: list[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    get = itemgetter(*names)
    return get if len(names) > 1 else (lambda row: (get(row),))


def _tuple_getter_by_index(index: list[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    get = itemgetter(*index)
    return get if len(index) > 1 else (lambda t: (get(t),))


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
