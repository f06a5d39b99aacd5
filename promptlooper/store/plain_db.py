"""The store's reads, and whether a database's schema is current.

``sqlite_utils`` imports pandas and numpy at import time whenever they are installed (about 0.3 s
and 90 MB here), and the store only read through two methods of its ``Database``: ``query`` (rows
as dicts) and ``execute``. :class:`PlainDatabase` is those two over the store's own connection, with the
same behaviour, so a run, the CLI and the MCP server open a database without that cost. The
migrations (``schema.py``, applied by ``migrating.py``) are imported only when a database lacks one
of :data:`MIGRATIONS`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from typing import Any

MIGRATION_SET = "promptlooper"
# Every migration of schema.py (tests/test_startup.py fails if one is added without this). All of
# them, not the last one: migrations written on parallel branches land in any order, and a store
# that has a later one may still lack an earlier one.
MIGRATIONS = frozenset({
    "m001_initial", "m002_told_values", "m003_missing_scores", "m004_definitions", "m005_webhook_outbox",
    "m006_archive_and_notes", "m007_embedding_cache", "m008_sweep_chunks", "m009_chunk_plans", "m010_chunk_samples",
    "m011_chunk_configurations", "m020_call_claims", "m040_sweep_budgets", "m050_written_batches",
})


class PlainDatabase:
    """``query`` and ``execute`` as ``sqlite_utils.Database`` has them, on a plain sqlite3 connection.

    ``lock``: the one the store's :class:`~promptlooper.store.db.Connection` serializes its
    transactions with. A query's rows are all read under it: a statement left stepping holds a
    snapshot of the database, and a write this connection then begins from another thread fails
    at once ("database is locked", which no busy timeout retries) if another process committed
    since."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock):
        self.conn = conn
        self.lock = lock

    def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] | None = None) -> sqlite3.Cursor:
        """For statements whose rows are not read; read with :meth:`query`."""
        with self.lock:
            return self.conn.execute(sql) if parameters is None else self.conn.execute(sql, parameters)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        with self.lock:
            cursor = self.conn.execute(sql) if params is None else self.conn.execute(sql, params)
            keys = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        return (dict(zip(keys, row, strict=True)) for row in rows)


def schema_is_current(conn: sqlite3.Connection) -> bool:
    """True when every migration of :data:`MIGRATIONS` has been applied."""
    try:
        applied = {name for (name,) in conn.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = ?",
                                                    (MIGRATION_SET,))}
    except sqlite3.OperationalError:  # no migrations table: a new database
        return False
    return MIGRATIONS <= applied
