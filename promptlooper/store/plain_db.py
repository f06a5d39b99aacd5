"""The store's reads: rows as dicts on its own sqlite3 connection.

``sqlite_utils`` imports pandas and numpy at import time whenever they are installed (about 0.3 s
and 90 MB here), and the store only read through two methods of its ``Database``: ``query`` (rows
as dicts) and ``execute``. :class:`PlainDatabase` is those two over the store's own connection, with the
same behaviour, so a run, the CLI and the MCP server open a database without that cost.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from typing import Any


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

