"""A PostgreSQL store: the same :class:`~promptlooper.store.backend.StoreBackend` as the SQLite file.

Selected by a ``postgresql://`` URL (``DATABASE_URL``, ``--db``, ``Workbench(url)``). It is made
of the same noun classes as :class:`~promptlooper.store.Store` (their shared SQL rewritten by
:mod:`.dialect`), over a pool of psycopg 3 connections (:mod:`.connection`), with its own schema
(:mod:`.schema`) and its own bulk writes (:mod:`.batches`). Only what SQLite does differently is
written here: how the database opens, batches and event ids, and SQLite's tuning knobs, which
have no meaning on a server and do nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from ...errors import NotFoundError, StoreError
from ..batchwriter import now_iso
from ..cache import Cache
from ..chunks import Chunks, Claim
from ..events import Events
from ..experiments import Experiments
from ..housekeeping import Housekeeping
from ..outbox import Outbox
from ..records import ResultBatch, dumps
from ..runs import Runs
from ..scores import Scores
from ..store import Store
from ..sweeps import Sweeps
from . import batches, schema
from .connection import Cursorish, PgConnection, PgDatabase
from .notify import Listener, notify


class PostgresStore(Experiments, Runs, Scores, Cache, Events, Sweeps, Chunks, Housekeeping, Outbox):
    """One PostgreSQL database. ``readonly=True``: every session refuses writes (a dashboard's store)."""

    def __init__(self, url: str, *, readonly: bool = False, create: bool = True):
        self.path = url
        self.readonly = readonly
        try:
            # One direct connection first: a wrong URL fails at once (a pool would keep retrying),
            # and it checks or migrates the schema before the pool opens.
            with psycopg.connect(url, autocommit=True) as conn:
                if readonly or not create:
                    known = conn.execute("SELECT to_regclass('_promptlooper_migrations') IS NOT NULL").fetchone()[0]  # type: ignore[index]
                    if not known:
                        raise NotFoundError(f"no PromptLooper database at {_shown(url)}; run an experiment first "
                                            "(promptlooper run FILE), or point --db / $DATABASE_URL at an existing database")
                if not readonly:
                    schema.apply(conn)
            self.cx = PgConnection(url, readonly=readonly)
        except (psycopg.Error, TimeoutError) as exc:  # the pool gives up with a TimeoutError of its own
            raise StoreError(f"cannot connect to the PostgreSQL database {_shown(url)}: {exc}; check DATABASE_URL / --db, "
                             "that the server is running and that this role may connect") from exc
        self.db = PgDatabase(self.cx)

    def close(self) -> None:
        self.cx.close()

    write_results = Store.write_results

    def write_batch(self, batch: ResultBatch, sweep_update: dict[str, Any] | None = None) -> list[int]:
        """Write ``batch`` (and the sweep's progress row) in one transaction; returns the event ids."""
        with self.cx.write() as c:
            return batches.write_rows(c.conn, batch.rows(), sweep_update)

    def _insert_events(self, c: Any, events: Sequence[tuple[str, str | None, str, dict[str, Any]]], ts: str) -> list[int]:
        rows = [(ev_ts, eid, etype, dumps(payload)) for ev_ts, eid, etype, payload in events]
        return batches.insert_events(c.conn, rows, ts)

    def add_note(self, project_id: str, text: str, by: str = "") -> int:
        with self.cx.write() as c:
            return int(c.execute("INSERT INTO project_notes (project_id, text, by, created_at) VALUES (?,?,?,?) RETURNING id",
                                 (project_id, text, by, now_iso())).fetchone()[0])

    def cache_get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, int, int, float]]:
        """As SQLite's, in one statement of one shape (``= ANY(array)``), which the server keeps
        prepared: a sweep looks keys up on its event loop every turn, so each round trip counts."""
        with self.cx.connection() as conn:
            rows = conn.execute("SELECT key, response, tokens_in, tokens_out, latency_ms FROM response_cache"
                                " WHERE key = ANY(%s)", (list(keys),)).fetchall()
        return {key: (resp, tin or 0, tout or 0, lat or 0.0) for key, resp, tin, tout, lat in rows}

    # ------------------------------------------------------------------ leased chunks (store/chunks.py)
    def claim_chunk(self, worker: str, lease: float, *, exclude: tuple[str, ...] = ()) -> Claim | None:
        """As SQLite's, but with row locks instead of the store's write lock: the candidate row is
        locked ``FOR UPDATE SKIP LOCKED``, so claims running at once take different chunks, and
        a chunk whose batch is being committed (its row locked by the fence) is passed over."""
        now = time.time()
        with self.cx.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT c.sweep_id, c.idx FROM sweep_chunks c JOIN sweeps s ON s.id = c.sweep_id"
                " WHERE s.status = 'running' AND (c.state = 'queued' OR (c.state = 'leased' AND c.lease_until < %s))"
                " AND NOT (c.sweep_id = ANY(%s)) ORDER BY s.started_at, c.idx LIMIT 1 FOR UPDATE OF c SKIP LOCKED",
                (now, list(exclude))).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE sweep_chunks SET state = 'leased', owner = %s, generation = generation + 1, lease_until = %s"
                         " WHERE sweep_id = %s AND idx = %s", (worker, now + lease, row[0], row[1]))
            return self._claim(Cursorish(conn), row[0], row[1])

    # ------------------------------------------------------------------ steering by notification (notify.py)
    @staticmethod
    def _append_request(c: Any, sweep_id: str, request: str) -> None:
        Sweeps._append_request(c, sweep_id, request)
        notify(c, sweep_id)

    def listen_steering(self, sweep_id: str, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` (from another thread) whenever a steering request for the sweep commits;
        returns what stops listening."""
        return Listener(self.path, sweep_id, wake).stop

    # SQLite's page cache and WAL checkpoints: a server manages its own.
    def use_bulk_cache(self, megabytes: int = 32) -> None:
        pass

    def defer_checkpoints(self) -> None:
        pass

    def resume_checkpoints(self) -> None:
        pass


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    return f"{info.get('host', '')}:{info.get('port', '5432')}/{info.get('dbname', '')}"


__all__ = ["PostgresStore"]
