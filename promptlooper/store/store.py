"""The store: the only code that touches SQLite, and the single source of truth.

Everything a sweep does lands here (runs, stage results, scores, cached responses, events,
progress), so a sweep survives a kernel restart or ``kill -9``: running it again skips every
finished run and serves every finished call from the cache. Other processes (the CLI, the MCP
server, a Voila dashboard) read the same file, and steer a sweep by writing requests into its
``sweeps`` row, which the engine polls.

The store speaks plain sqlite3: reads through :class:`~.plain_db.PlainDatabase` (rows as dicts),
result batches as multi-row statements (``batchwriter.py``, which a sweep runs in a writer process),
and the migrations through ``migrating.py``.

:class:`Store` is composed of one class per noun (experiments, runs, scores, cache, events,
sweeps, housekeeping, webhooks' outbox), each a module of its own over the same :class:`~.db.Connection`; together
they implement :class:`~promptlooper.store.backend.StoreBackend`, the interface a second backend
(PostgreSQL) implements too. No code outside this package reaches the connection
(``tests/test_architecture_sql.py``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import NotFoundError, StoreError
from . import batchwriter, schema
from .batchwriter import BUSY_MS, now_iso
from .budgets import Budgets
from .cache import Cache
from .chunks import Chunks
from .claims import Claims
from .db import Connection, connect, default_path
from .events import Events
from .experiments import Experiments
from .housekeeping import Housekeeping
from .liveness import READER_STALE_AFTER, sweep_owner_alive
from .outbox import Outbox
from .plain_db import PlainDatabase
from .records import CacheEntry, ResultBatch, RunRecord, StageRecord, new_id
from .runs import Runs
from .scores import Scores
from .sweeps import Sweeps


class Store(Experiments, Runs, Scores, Cache, Events, Sweeps, Chunks, Housekeeping, Outbox, Claims, Budgets):
    """One SQLite file. ``readonly=True`` opens it so that nothing can be written."""

    def __init__(self, path: str | Path | None = None, *, readonly: bool = False, create: bool = True):
        self.path = str(path or default_path())
        self.readonly = readonly
        if readonly and not Path(self.path).exists():
            raise NotFoundError(f"no PromptLooper database at {self.path}")
        if not create and self.path != ":memory:" and not Path(self.path).exists():
            # sqlite3.connect would create an empty file, and a typo in --db would look like "no experiments".
            raise NotFoundError(f"no PromptLooper database at {Path(self.path).resolve()}; run an experiment first "
                                "(promptlooper run FILE), or point --db / $PROMPTLOOPER_DB at an existing database")
        try:
            self._open(readonly)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the database {self.path}: {exc}; check the path, that its folder "
                             "exists and is writable, and that it is a PromptLooper database "
                             "(--db FILE or $PROMPTLOOPER_DB)") from exc

    def _open(self, readonly: bool) -> None:
        # Seen in CI: a worker opening the file while another process wrote to it got "database is
        # locked" here at once, not after the busy timeout (SQLite returns SQLITE_BUSY without
        # waiting in some cases, e.g. while the WAL index is being rebuilt). Opening waits as long
        # as a write would before it gives up.
        deadline = time.monotonic() + BUSY_MS / 1000
        while True:
            conn = None
            try:
                conn = connect(self.path, readonly=readonly)  # its pragmas may meet the lock too
                self.cx = Connection(conn, readonly=readonly)
                self.db = PlainDatabase(conn, self.cx.lock)
                if not readonly and schema.migrations.pending(conn):
                    self._migrate()
                return
            except sqlite3.OperationalError as exc:
                if conn is not None:
                    conn.close()
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _migrate(self) -> None:
        with self.cx.write():  # two processes opening a new file at once must not both migrate
            schema.migrations.apply(self.cx.conn)

    def close(self) -> None:
        with self.cx.lock:  # not while another thread is inside a transaction or query on it
            self.cx.conn.close()

    def write_results(
        self,
        runs: Sequence[RunRecord],
        cache: Sequence[CacheEntry] = (),
        events: Sequence[tuple[str, str | None, str, dict[str, Any]]] = (),
        sweep_update: dict[str, Any] | None = None,
    ) -> list[int]:
        """One transaction for a batch: cache entries first, then runs with their children."""
        batch = ResultBatch()
        for e in cache:
            batch.add_cache(e)
        for r in runs:
            batch.add_run(r)
        for ev in events:
            batch.add_event(*ev)
        return self.write_batch(batch, sweep_update)

    def use_bulk_cache(self, megabytes: int = 32) -> None:
        """A bigger page cache for a connection that writes a sweep's results.

        Runs, stage results and scores are keyed by hashes, so a batch's inserts land all over each
        index: past ~50,000 runs the default 2 MB cache misses most of those pages (measured at
        60,000 runs: 174 µs of writer CPU a run, 148 µs with 32 MB). Memory is only taken as used.
        """
        with self.cx.lock:
            self.cx.conn.execute(f"PRAGMA cache_size=-{int(megabytes) * 1024}")

    def defer_checkpoints(self) -> None:
        """No automatic WAL checkpoint inside this connection's commits.

        For the few writes a sweep makes beside its writer process, which checkpoints in the
        background: at the end of a large sweep, a one-row commit otherwise copied the whole WAL
        back into the database first (~80 ms, measured).
        """
        with self.cx.lock:
            self.cx.conn.execute("PRAGMA wal_autocheckpoint=0")

    def resume_checkpoints(self) -> None:
        """Automatic WAL checkpoints again (undoes :meth:`defer_checkpoints`): this connection now
        writes the sweep's batches itself, its writer process gone."""
        with self.cx.lock:
            self.cx.conn.execute("PRAGMA wal_autocheckpoint=1000")

    def listen_steering(self, sweep_id: str, wake: Callable[[], None]) -> Callable[[], None]:
        """Nothing to listen to in a file: the sweep polls its steering queue. Returns a no-op stop."""
        return _no_op

    def listen_changes(self, experiment_id: str | None, wake: Callable[[], None]) -> Callable[[], None] | None:
        """None: a file announces nothing, so live views poll it."""
        return None

    def listen_sharers(self, wake: Callable[[], None]) -> Callable[[], None] | None:
        """None: call-cache sharers find each other by their heartbeats (engine/claims.py)."""
        return None

    def listen_work(self, wake: Callable[[], None]) -> Callable[[], None] | None:
        """None: idle workers poll for chunks (workers/worker.py)."""
        return None

    def write_batch(self, batch: ResultBatch, sweep_update: dict[str, Any] | None = None) -> list[int]:
        """Write ``batch`` (and the sweep's progress row) in one transaction; returns the event ids."""
        with self.cx.write() as c:
            return batchwriter.write_rows(c, batch.rows(), sweep_update)


def _no_op() -> None:
    pass


__all__ = ["READER_STALE_AFTER", "CacheEntry", "ResultBatch", "RunRecord", "StageRecord", "Store", "new_id", "now_iso",
           "sweep_owner_alive"]
