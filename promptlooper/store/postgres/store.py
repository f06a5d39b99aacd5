"""A PostgreSQL store: the same :class:`~promptlooper.store.backend.StoreBackend` as the SQLite file.

Selected by a ``postgresql://`` URL (``DATABASE_URL``, ``--db``, ``Workbench(url)``). It is made
of the same noun classes as :class:`~promptlooper.store.Store` (their shared SQL rewritten by
:mod:`.dialect`), over a pool of psycopg 3 connections (:mod:`.connection`), with its own schema
(:mod:`.schema`) and its own bulk writes (:mod:`.batches`). Only what SQLite does differently is
written here: how the database opens, batches and event ids, SQLite's tuning knobs, which
have no meaning on a server and do nothing, and the notifications a file cannot send: steering
requests wake their sweep (:mod:`.notify`), and every write a live view shows wakes the views of
its experiment (:mod:`.changes`), in the writing transaction, so at its commit.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg

from ...errors import NotFoundError, StoreError
from ..batchwriter import Rows, now_iso
from ..cache import Cache
from ..chunks import Chunks, Claim, fenced_update
from ..claims import ClaimResult, Claims, ClaimTick
from ..db import ReadOnlyError
from ..events import Events
from ..experiments import Experiments
from ..housekeeping import Housekeeping
from ..outbox import Outbox
from ..records import ResultBatch, dumps
from ..runs import Runs
from ..scores import Scores
from ..store import Store
from ..sweeps import Sweeps
from . import batches, schema, ticks
from .budgets import PostgresBudgets
from .changes import (
    ChangeFeed,
    notify_changes,
    notify_everything_changed,
    notify_project_changed,
    notify_sweep_changed,
)
from .claims import AsyncClaimSession, ClaimSession
from .connection import Cursorish, PgConnection, PgDatabase, dead_peer_settings
from .dialect import translate
from .notify import (
    SHARERS_CHANNEL,
    SHARERS_PAYLOAD,
    WORK_CHANNEL,
    WORK_PAYLOAD,
    Listener,
    announce_work,
    notify,
)
from .reads import HeldReads

# Claims ticks take this lock ("PLclaim" as a number) instead of the store's write lock.
CLAIMS_LOCK = int.from_bytes(b"PLclaim", "big")
VIEWED_SETTINGS = frozenset({"prices"})  # settings a view shows (costs): changing one wakes every view



class PostgresStore(Experiments, Runs, Scores, Cache, Events, Sweeps, Chunks, Housekeeping, Outbox, Claims,
                    PostgresBudgets):
    """One PostgreSQL database. ``readonly=True``: every session refuses writes (a dashboard's store)."""

    def __init__(self, url: str, *, readonly: bool = False, create: bool = True):
        self.path = url
        self.readonly = readonly
        self._counted = False
        try:
            # One direct connection first: a wrong URL fails at once (a pool would keep retrying),
            # and it checks or migrates the schema before the pool opens. Not when this process has
            # a writable store open on the URL already (a worker opens one for each chunk's claims):
            # the URL is right, the schema current.
            if readonly or not create or not _opened(url):
                with psycopg.connect(url, autocommit=True, **dead_peer_settings(url)) as conn:
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
        if not readonly:
            _count(url, 1)
            self._counted = True
        self.db = PgDatabase(self.cx)
        self._claim_session = ClaimSession(self.cx)
        self._aclaim_session = AsyncClaimSession(self.cx)
        self._reads = HeldReads(self.cx)

    def close(self) -> None:
        if self._counted:
            self._counted = False
            _count(self.path, -1)
        self._claim_session.close()  # their connections back to the pool first, which then closes them
        self._reads.close()
        self.cx.close()

    write_results = Store.write_results

    def write_batch(self, batch: ResultBatch, sweep_update: dict[str, Any] | None = None) -> list[int]:
        """Write ``batch`` (and the sweep's progress row) in one transaction; returns the event ids.

        A connection lost on the way is replaced and the batch written again, once in all (see
        :meth:`.connection.PgConnection.write_retried` and :func:`.batches.write_once`). Inside
        another write (a worker's fenced batch), it is part of that one, which answers for a loss."""
        rows = batch.rows()
        if self.cx.in_write():
            with self.cx.write() as c:
                return self._write_rows(c, rows, sweep_update)
        batch_id = uuid.uuid4().hex
        return self.cx.write_retried(
            lambda c, first: batches.write_once(c.conn, batch_id, first, lambda: self._write_rows(c, rows, sweep_update)))

    def write_chunk_batch(self, batch: ResultBatch, update: dict[str, Any]) -> list[int]:
        """SQLite's (the lease's fence, then the batch, in one transaction), written once in all
        however often its connection is lost: the fence adds the batch's counts to the sweep's."""
        batch_id, rows = uuid.uuid4().hex, batch.rows()
        # Chunks.write_chunk_batch's statements, the fence first (it locks the chunk's row until the commit).
        return self.cx.write_retried(lambda c, first: batches.write_once(
            c.conn, batch_id, first, lambda: self._write_rows(c, rows, None), fence=lambda: fenced_update(c, update, self.CLOCK)))

    @staticmethod
    def _write_rows(c: Cursorish, rows: Rows, sweep_update: dict[str, Any] | None) -> list[int]:
        event_ids = batches.write_rows(c.conn, rows, sweep_update)
        # One statement: a batch's runs are its sweep's experiment's; a batch of progress only names the sweep.
        changed = {run[1] for run in rows[2]} | {event[1] for event in rows[5] if event[1]}
        if changed:
            notify_changes(c.conn, changed)
        elif sweep_update:
            notify_sweep_changed(c.conn, sweep_update["id"])
        return event_ids

    def _insert_events(self, c: Any, events: Sequence[tuple[str, str | None, str, dict[str, Any]]], ts: str) -> list[int]:
        rows = [(ev_ts, eid, etype, dumps(payload)) for ev_ts, eid, etype, payload in events]
        notify_changes(c.conn, {eid for _, eid, _, _ in events})  # ratings, decisions, requests: all as events
        return batches.insert_events(c.conn, rows, ts)

    def upsert_experiment(self, project: str, name: str, spec: dict[str, Any], description: str = "",
                          parent_id: str | None = None) -> str:
        with self.cx.write() as c:
            experiment_id = super().upsert_experiment(project, name, spec, description, parent_id)
            notify_changes(c.conn, [experiment_id])  # the overview lists it
            return experiment_id

    def begin_sweep(self, experiment_id: str, strategy: str, total: int, options: dict[str, Any], *,
                    stale_after: float = 10.0) -> str:
        with self.cx.write() as c:
            sweep_id = super().begin_sweep(experiment_id, strategy, total, options, stale_after=stale_after)
            notify_sweep_changed(c.conn, sweep_id)
            return sweep_id

    # A sweep's own writes besides its batches (steering applied, its end) set values, so writing
    # them again after a lost connection is harmless: they are retried as batches are.
    def update_sweep(self, sweep_id: str, **fields: Any) -> None:
        def write(c: Cursorish, first: bool) -> None:
            Sweeps.update_sweep(self, sweep_id, **fields)  # joins the transaction write_retried began
            notify_sweep_changed(c.conn, sweep_id)

        self.cx.write_retried(write)

    def set_experiment_status(self, experiment_id: str, status: str) -> None:
        self.cx.write_retried(lambda c, first: Experiments.set_experiment_status(self, experiment_id, status))

    def listen_changes(self, experiment_id: str | None, wake: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``wake`` (from another thread) after each commit that changes the experiment (every
        experiment for None), through the process's one listening connection to this database;
        returns what stops listening."""
        return ChangeFeed.listen(self.path, experiment_id, wake)

    def add_note(self, project_id: str, text: str, by: str = "") -> int:
        with self.cx.write() as c:
            note_id = int(c.execute("INSERT INTO project_notes (project_id, text, by, created_at) VALUES (?,?,?,?) RETURNING id",
                                    (project_id, text, by, now_iso())).fetchone()[0])
            notify_project_changed(c.conn, project_id)  # an experiment's summary shows its project's notes
            return note_id

    # Prices and endpoints: every view may show them (costs, endpoint names), so every view wakes.
    def save_endpoint(self, name: str, spec: dict[str, Any]) -> None:
        with self.cx.write() as c:
            super().save_endpoint(name, spec)
            notify_everything_changed(c.conn)

    def delete_endpoint(self, name: str) -> None:
        with self.cx.write() as c:
            super().delete_endpoint(name)
            notify_everything_changed(c.conn)

    def set_setting(self, key: str, value: Any) -> None:
        with self.cx.write() as c:
            super().set_setting(key, value)
            if key in VIEWED_SETTINGS:
                notify_everything_changed(c.conn)

    def cache_get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, int, int, float]]:
        """As SQLite's, in one statement of one shape (``= ANY(array)``), which the server keeps
        prepared, on a connection held for look-ups (one round trip each, see reads.py). A
        connection lost is replaced and the look-up made again, within the store's outage
        deadline: a run waits for its look-up rather than fail (see ``PgConnection.read_retried``)."""
        return self._reads.cache_get_many(keys)

    # A sweep reads the call cache in a thread, not on its loop: a round trip to a server that may
    # stall (see engine/calls.py, CacheReader).
    cache_reads_off_loop = True

    # Claim batches: one round trip each, on a connection of their own (see claims.py); a sweep's
    # are awaited on its loop (aclaim_calls).

    def claim_calls(self, owner: str, keys: Sequence[str], now: float, ttl: float) -> ClaimResult:
        if self.readonly:
            raise ReadOnlyError("this store is open read-only (a dashboard): nothing can be changed from here")
        return self._claim_session.claim(owner, keys, now, ttl)

    async def aclaim_calls(self, owner: str, keys: Sequence[str], now: float, ttl: float) -> ClaimResult:
        """:meth:`claim_calls`, awaited on the calling loop (one loop per store: a sweep's claims store)."""
        if self.readonly:
            raise ReadOnlyError("this store is open read-only (a dashboard): nothing can be changed from here")
        return await self._aclaim_session.claim(owner, keys, now, ttl)

    def claims_tick(self, tick: ClaimTick) -> ClaimResult:
        """As SQLite's, in one pipelined round trip whose statements keep one shape whatever the
        number of keys (see ticks.py), under the claims' own lock (:meth:`_sharing_write`)."""
        if self.readonly:
            raise ReadOnlyError("this store is open read-only (a dashboard): nothing can be changed from here")
        with self.cx.connection() as conn:
            return ticks.claims_tick(conn, CLAIMS_LOCK, tick)

    @contextlib.contextmanager
    def _sharing_write(self) -> Iterator[Cursorish]:
        """Claims ticks and leaving (``Claims._sharing_write``) one at a time under a lock of their
        own, not the store's write lock: under it each tick (every 0.1 s of each sharing sweep)
        queued behind the sweeps' batch writes and held them up in turn (pg_stat_statements: the
        write lock was waited for ~100 ms a take by three workers of C = 64)."""
        if self.readonly:
            raise ReadOnlyError("this store is open read-only (a dashboard): nothing can be changed from here")
        with self.cx.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIMS_LOCK,))
            yield Cursorish(conn)

    async def aclose_claims(self) -> None:
        """Close the connection :meth:`aclaim_calls` opened, on its loop (before :meth:`close`)."""
        await self._aclaim_session.close()

    # ------------------------------------------------------------------ leased chunks (store/chunks.py)
    # Leases run on the server's clock (see store/chunks.py): the time at each statement, not the
    # transaction's start (now()), since a batch's transaction may wait for the write lock.
    CLOCK = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"

    def claim_chunk(self, worker: str, lease: float, *, exclude: tuple[str, ...] = ()) -> Claim | None:
        """As SQLite's, but with row locks instead of the store's write lock: the candidate row is
        locked ``FOR UPDATE SKIP LOCKED``, so claims running at once take different chunks, and
        a chunk whose batch is being committed (its row locked by the fence) is passed over."""
        with self.cx.connection() as conn, conn.transaction():
            skip = list(exclude)
            while True:
                row = conn.execute(
                    translate(self.CANDIDATES.format(now=self.CLOCK)) + " AND NOT (c.sweep_id = ANY(%s)) ORDER BY s.started_at, c.idx"
                    " LIMIT 1 FOR UPDATE OF c SKIP LOCKED", (skip,)).fetchone()
                if row is None:
                    return None
                if conn.execute(translate(self.EARLIER_HELD.format(now=self.CLOCK)), (row[0], row[2])).fetchone() is None:
                    break
                skip.append(row[0])  # its new plan waits for the chunks of the earlier one: the other sweeps
            conn.execute(f"UPDATE sweep_chunks SET state = 'leased', owner = %s, generation = generation + 1, lease_until = {self.CLOCK} + %s"
                         " WHERE sweep_id = %s AND idx = %s", (worker, lease, row[0], row[1]))
            return self._lease_chunk(Cursorish(conn), row[0], row[1])

    # ------------------------------------------------------------------ steering by notification (notify.py)
    @staticmethod
    def _append_request(c: Any, sweep_id: str, request: str) -> None:
        Sweeps._append_request(c, sweep_id, request)
        notify(c, sweep_id)
        notify_sweep_changed(c.conn, sweep_id)  # the views show a request as soon as it is queued

    def listen_steering(self, sweep_id: str, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` (from another thread) whenever a steering request for the sweep commits;
        returns what stops listening."""
        return Listener(self.path, sweep_id, wake).stop

    def listen_work(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` (from another thread) whenever chunks are queued for workers (notify.py)."""
        return Listener(self.path, WORK_PAYLOAD, wake, channel=WORK_CHANNEL).stop

    def queue_sweep(self, experiment_id: str, strategy: str, total: int, done: int, options: dict[str, Any],
                    ranges: list[tuple[int, ...]], runs_per_configuration: int) -> str:
        # The chunks and the wake-up in one transaction (writes nest): PostgreSQL delivers a NOTIFY
        # when it commits, so a worker woken finds the chunks.
        with self.cx.write() as c:
            sweep_id = super().queue_sweep(experiment_id, strategy, total, done, options, ranges, runs_per_configuration)
            announce_work(c)
        return sweep_id

    def replan_shared_sweep(self, sweep_id: str, options: dict[str, Any], ranges: list[tuple[int, ...]],
                            runs_per_configuration: int, planned: set[str], request: str) -> dict[str, Any] | None:
        with self.cx.write() as c:  # the new plan's chunks and the wake-up of idle workers in one commit
            replanned = super().replan_shared_sweep(sweep_id, options, ranges, runs_per_configuration, planned, request)
            if replanned is not None:
                announce_work(c)
        return replanned

    def listen_sharers(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` (from another thread) whenever a call-cache sharer joins or starts
        claiming (notify.py); returns what stops listening."""
        return Listener(self.path, SHARERS_PAYLOAD, wake, channel=SHARERS_CHANNEL).stop

    # SQLite's page cache and WAL checkpoints: a server manages its own.
    def use_bulk_cache(self, megabytes: int = 32) -> None:
        pass

    def defer_checkpoints(self) -> None:
        pass

    def resume_checkpoints(self) -> None:
        pass


# Writable stores open in this process, by URL: one opened beside them skips the direct connection
# that checks the URL and the schema: an open cost the server 7.3 ms of CPU alone, 3.1 beside
# another, and this process 2.9 against 1.6 ms (measured on the 2-core machine); a worker opens
# one for each chunk's claims. A database dropped under open sessions (only
# forcibly, which ends them) leaves those stores broken anyway.
_OPEN: collections.Counter[str] = collections.Counter()
_OPEN_LOCK = threading.Lock()


def _opened(url: str) -> bool:
    with _OPEN_LOCK:
        return _OPEN[url] > 0


def _count(url: str, n: int) -> None:
    with _OPEN_LOCK:
        _OPEN[url] += n
        if _OPEN[url] <= 0:
            del _OPEN[url]


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    return f"{info.get('host', '')}:{info.get('port', '5432')}/{info.get('dbname', '')}"


__all__ = ["PostgresStore"]
