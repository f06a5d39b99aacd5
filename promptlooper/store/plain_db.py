"""The store's reads without sqlite-utils, and whether a database's schema is current.

``sqlite_utils`` imports pandas and numpy at import time whenever they are installed (about 0.3 s
and 90 MB here), and the store only reads through two methods of its ``Database``: ``query`` (rows
as dicts) and ``execute``. :class:`PlainDatabase` is those two over the store's own connection, with the
same behaviour, so a run, the CLI and the MCP server open an existing database without that cost.
The migrations still go through ``sqlite_utils.Migrations`` (``schema.py``), imported only when a
database is new or older than :data:`LATEST_MIGRATION`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

MIGRATION_SET = "promptlooper"
# The last migration in schema.py; tests/test_startup.py fails if a new one is added without this.
LATEST_MIGRATION = "m008_sweep_chunks"


class PlainDatabase:
    """``query`` and ``execute`` of ``sqlite_utils.Database``, on a plain sqlite3 connection."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] | None = None) -> sqlite3.Cursor:
        return self.conn.execute(sql) if parameters is None else self.conn.execute(sql, parameters)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        cursor = self.execute(sql, params)
        keys = [d[0] for d in cursor.description]
        for row in cursor:
            yield dict(zip(keys, row, strict=True))


def schema_is_current(conn: sqlite3.Connection) -> bool:
    """True when every migration up to :data:`LATEST_MIGRATION` has been applied."""
    try:
        row = conn.execute("SELECT 1 FROM _sqlite_migrations WHERE migration_set = ? AND name = ?",
                           (MIGRATION_SET, LATEST_MIGRATION)).fetchone()
    except sqlite3.OperationalError:  # no migrations table: a new database
        return False
    return row is not None
