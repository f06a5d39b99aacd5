"""The migration runner: :mod:`.schema`'s migrations, applied on the store's own sqlite3 connection.

It took over from ``sqlite_utils.Migrations``, whose import brings pandas, numpy and pyarrow (about
80 MB and 0.4 s on the first run in a new folder), and keeps its record table exactly as
sqlite-utils 4.2 makes it: a database migrated by either one is current for the other.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

# The DDL sqlite-utils 4.2 writes, to the byte: the schemas of both runners' databases compare equal.
RECORD_TABLE = ('CREATE TABLE "_sqlite_migrations" (\n   "id" INTEGER PRIMARY KEY,\n   "migration_set" TEXT,\n'
                '   "name" TEXT,\n   "applied_at" TEXT\n)')
RECORD_INDEX = ('CREATE UNIQUE INDEX "idx__sqlite_migrations_migration_set_name"\n'
                '    ON "_sqlite_migrations" ("migration_set", "name")')


def statements(script: str) -> list[str]:
    """The statements of ``script``, cut where SQLite's tokenizer says one is complete: a ``;``
    inside a string, a comment or a trigger's BEGIN … END does not end one."""
    found, pending = [], ""
    for piece in re.split(r"(?<=;)", script):
        pending += piece
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    if pending.strip():  # the last one, without its ';'
        found.append(pending.strip())
    return found


class MigrationDb:
    """What a migration is handed: the two calls of sqlite-utils' ``Database`` that schema.py uses."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, params: Any = None) -> sqlite3.Cursor:
        return self.conn.execute(sql) if params is None else self.conn.execute(sql, params)

    def executescript(self, sql: str) -> None:
        # One statement at a time: sqlite3's executescript COMMITs an open transaction first.
        for statement in statements(sql):
            self.conn.execute(statement)


Migration = Callable[[MigrationDb], None]


class Migrations:
    """Named migrations in the order they were registered (``@migrations()`` on each function);
    iterating gives (name, function) pairs."""

    def __init__(self, migration_set: str):
        self.migration_set = migration_set
        self._steps: dict[str, Migration] = {}

    def __call__(self, *, name: str | None = None) -> Callable[[Migration], Migration]:
        def register(fn: Migration) -> Migration:
            key = name or fn.__name__
            if key in self._steps:
                raise ValueError(f"migration {key!r} is already registered in {self.migration_set!r}")
            self._steps[key] = fn
            return fn
        return register

    def __iter__(self) -> Iterator[tuple[str, Migration]]:
        return iter(self._steps.items())

    def pending(self, conn: sqlite3.Connection) -> list[str]:
        """The registered migrations ``conn``'s database has not recorded, in order. Every one is
        checked, not the last: migrations written on parallel branches land in any order, and a
        database that has a later one may still lack an earlier one."""
        if not _has_records(conn):
            return list(self._steps)
        done = {name for (name,) in conn.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = ?",
                                                 (self.migration_set,))}
        return [name for name in self._steps if name not in done]

    def apply(self, conn: sqlite3.Connection) -> None:
        """Apply the pending migrations, recording each, in the caller's transaction: a write one
        (``BEGIN IMMEDIATE``), so a second process waits and then finds none pending, and a
        migration that raises leaves the caller's rollback nothing of the batch to keep."""
        if not conn.in_transaction:
            raise RuntimeError("apply the migrations inside a write transaction: all of them or none")
        if not _has_records(conn):
            conn.execute(RECORD_TABLE)
            conn.execute(RECORD_INDEX)
        db = MigrationDb(conn)
        for name in self.pending(conn):
            self._steps[name](db)
            conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES (?, ?, ?)",
                         (self.migration_set, name, str(datetime.now(UTC))))


def _has_records(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = '_sqlite_migrations'").fetchone() is not None
