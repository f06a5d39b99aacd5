"""SQLite connections shared safely by several processes (a kernel, the CLI, the MCP server).

Measured on these machines: deferred read-then-write transactions lose writes to an instant
"database is locked" (SQLITE_BUSY_SNAPSHOT, which the busy handler never retries) as soon as two
processes write, while ``BEGIN IMMEDIATE`` with a 30 s busy timeout and ``synchronous=NORMAL`` in
WAL mode lost none. So every write goes through :func:`write_txn`, and every connection is made by
:func:`connect`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PromptLooperError
from .batchwriter import BUSY_MS, WRITE_PRAGMAS

if TYPE_CHECKING:
    from .plain_db import PlainDatabase


class ReadOnlyError(PromptLooperError):
    """A write was attempted through a read-only store."""

DEFAULT_DB = "promptlooper.db"


def default_path() -> str:
    """$PROMPTLOOPER_DB, else $DATABASE_URL (a postgresql:// URL: the shared, production store), else ./promptlooper.db."""
    return os.environ.get("PROMPTLOOPER_DB") or os.environ.get("DATABASE_URL") or DEFAULT_DB


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        # mode=ro: nothing can be written through this connection, whatever a caller asks.
        conn = sqlite3.connect(
            f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=BUSY_MS / 1000,
            isolation_level=None, check_same_thread=False,
        )
    else:
        conn = sqlite3.connect(
            str(path), timeout=BUSY_MS / 1000, isolation_level=None, check_same_thread=False
        )
    if readonly:
        conn.execute(f"PRAGMA busy_timeout={BUSY_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
    else:
        for pragma in WRITE_PRAGMAS:  # the same as the sweep's writer process
            conn.execute(pragma)
    return conn


class Connection:
    """One sqlite3 connection with a lock, usable from the event loop's worker threads."""

    def __init__(self, conn: sqlite3.Connection, *, readonly: bool = False):
        self.conn = conn
        self.readonly = readonly
        self.lock = threading.RLock()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            # SQLite (mode=ro) would refuse too; this says why in words a dashboard user understands.
            raise ReadOnlyError("this store is open read-only (a dashboard): nothing can be changed from here")
        with self.lock:
            if self.conn.in_transaction:  # nested: the outer transaction commits
                yield self.conn
                return
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            yield self.conn


class Queries:
    """What every part of :class:`~promptlooper.store.Store` (one class per noun) works on."""

    cx: Connection
    db: PlainDatabase
    readonly: bool
