"""Connections of a PostgreSQL store: a psycopg 3 pool, one transaction per store method.

:class:`PgConnection` offers what the store's noun classes use of SQLite's
:class:`~promptlooper.store.db.Connection` (``write()`` and ``read()`` contexts yielding something
with ``execute``/``executemany``), and :class:`PgDatabase` what they use of SQLite's
:class:`~promptlooper.store.plain_db.PlainDatabase` (``query`` yielding dict rows), so the noun
classes' portable SQL runs on both engines and :mod:`.store` overrides, in PostgreSQL's syntax,
only the statements that differ.

Every statement passes through :func:`.dialect.translate` (placeholders, and the few SQLite-only
forms the shared SQL uses).

Transactions: ``write()`` takes a pooled connection, begins a transaction and takes one
transaction-scoped advisory lock shared by every writer of the database. That is SQLite's
``BEGIN IMMEDIATE`` (writers queue, readers never wait), which the store's read-then-write methods
and the webhook outbox's event cursors (ids visible in commit order) rely on. Row locks
(``FOR UPDATE``) would let unrelated writes overlap; they come with the workers of issue 18.
A ``write()`` or ``read()`` inside a ``write()`` of the same thread joins that transaction.

A server that vanishes without a word (its machine off the network, a cable out) is noticed in
about 20 s instead of the kernel's quarter of an hour: TCP keepalives and ``tcp_user_timeout`` on
the client's side, and the same on the server's side of each session (startup ``options``), so
that the server ends the session of a client gone dead and frees the write lock it held for the
other writers. A URL that sets any of these keeps its own (``?keepalives_idle=…``); one that sets
``options`` sends only its own (``?options=`` sends none, for a pooler that refuses them).
A pooled connection that rested over 2 s is checked before use, so one that died idle (the
network, a restart of the server) is replaced rather than failing the call that gets it. A
connection lost mid-call, or none to be had from the pool, raises
:class:`~promptlooper.errors.StoreError` saying so: what was committed is kept, and the same
command resumes once the server is back.

A sweep's result batches do not fail on the first loss: :meth:`PgConnection.write_retried` runs a
batch's transaction again on a fresh connection, with growing pauses, until it commits or the
database has stayed unreachable for ``write_deadline`` seconds (then the StoreError). A loss
before ``COMMIT`` rolled the attempt back on the server; a loss *during* it is ambiguous (the
server may have committed and the answer been lost), so the batch records its id in its own
transaction and a retry first looks for it (see :func:`.batches.write_once`): nothing is
written twice.

Values: ``SUM`` of an integer column is ``numeric`` in PostgreSQL; it is loaded as an ``int`` when
whole and as a ``float`` otherwise (``AVG``), the Python types SQLite gives for the same queries.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.adapt import Loader
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ...errors import StoreError
from ..db import ReadOnlyError
from .dialect import translate

# Every write transaction of a PromptLooper database takes this lock ("PLwrite" as a number).
WRITE_LOCK = int.from_bytes(b"PLwrite", "big")
LOCK_TRIES = 3  # connections found dropped before a write holds the lock: replaced this many times
# Seconds a result batch keeps trying while the database is unreachable: longer than a server's
# restart or failover, short enough that a database gone for good stops the sweep with a message.
WRITE_DEADLINE = 60.0
RETRY_PAUSES = (0.05, 1.0)  # the first pause between two attempts, and the longest (it doubles)

T = TypeVar("T")

# libpq's settings for a dead server: probes after 10 s idle, every 5 s, 2 unanswered = gone;
# data unacknowledged for 20 s = gone (the kernel's own default is about 15 minutes).
CLIENT_DEAD_PEER = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "2",
                    "tcp_user_timeout": "20000", "connect_timeout": "10"}
# The same for the server's end of each session: it ends the session of a client gone dead, and
# with it the transaction and the write lock it held (by default it would wait two hours).
SERVER_DEAD_PEER = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=2 -c tcp_user_timeout=20000"



def dead_peer_settings(url: str) -> dict[str, Any]:
    """libpq's dead-server settings the URL does not set itself, for ``psycopg.connect(url, **…)``."""
    given = conninfo_to_dict(url)
    return {k: v for k, v in CLIENT_DEAD_PEER.items() if k not in given}



# Databases this process lost a connection to: until one works again, every store of this process
# on them waits 1 s for a connection, not the pool's 30 s (a CLI that failed must not take minutes
# to close its stores, one after the other).
_LOST: set[str] = set()


class _NumericLoader(Loader):
    """``numeric`` → int when whole, else float: the types SQLite's SUM and AVG give."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        return int(text) if text.lstrip("-").isdigit() else float(text)


class Cursorish:
    """What the noun classes call on SQLite's connection, over one psycopg connection."""

    def __init__(self, conn: psycopg.Connection[Any]):
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self.conn.execute(translate(sql), list(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(translate(sql), rows)


class PgConnection:
    """A pool of connections to one database, and the store's transactions on it."""

    def __init__(self, url: str, *, readonly: bool = False, max_size: int = 8):
        self.url = url
        self.readonly = readonly
        given = conninfo_to_dict(url)
        kwargs = dead_peer_settings(url)
        # A read-only store's sessions refuse writes on the server's side too, whatever the URL says.
        options = [given.get("options", SERVER_DEAD_PEER), "-c default_transaction_read_only=on" if readonly else ""]
        # check: a connection the server dropped while it sat in the pool (a restart, a dropped link,
        # an idle timeout, pg_terminate_backend) is replaced when taken instead of failing the store
        # call that gets it. One empty round trip a take: ~20 µs on loopback (113 → 133 µs a pooled
        # statement, measured on the 2-core machine); benchmarks/store_backends.py saw no change.
        self._kwargs = {**kwargs, "autocommit": True, "options": " ".join(o for o in options if o)}
        self.pool = ConnectionPool(url, min_size=1, max_size=max_size, open=False, configure=self._configure,
                                   check=ConnectionPool.check_connection, kwargs=self._kwargs)
        self.pool.open(wait=True, timeout=10)
        self._local = threading.local()
        self.write_deadline = WRITE_DEADLINE
        # When the current loss began (None: the last write went through). One clock for all the
        # writes of this store: once the database has been away past the deadline, the writes
        # still queued (a sweep's last batches, its closing status) try once each, not a minute each.
        self._unreachable_since: float | None = None

    @staticmethod
    def _configure(conn: psycopg.Connection[Any]) -> None:
        conn.adapters.register_loader("numeric", _NumericLoader)

    def close(self) -> None:
        self.pool.close()

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """This thread's connection in a write, else a pooled one (autocommit: each read sees the latest commit)."""
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        with self._lost_as_store_error(), self.pool.connection(timeout=1.0 if self.url in _LOST else None) as conn:
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Cursorish]:
        if self.readonly:
            raise ReadOnlyError("this store is open read-only (a dashboard): nothing can be changed from here")
        current = getattr(self._local, "conn", None)
        if current is not None:  # nested: the outer transaction commits
            yield Cursorish(current)
            return
        with self._lost_as_store_error(), self._locked() as conn:
            self._local.conn = conn
            try:
                yield Cursorish(conn)
            finally:
                self._local.conn = None

    @contextlib.contextmanager
    def _lost_as_store_error(self) -> Iterator[None]:
        """The connection lost (or none had in the pool's time) as a StoreError; other errors as they are."""
        try:
            yield
        except psycopg.OperationalError as exc:
            if not _connection_lost(exc):
                raise
            raise self._lost(exc) from exc
        _LOST.discard(self.url)

    def _lost(self, exc: psycopg.OperationalError, tried: float | None = None) -> StoreError:
        _LOST.add(self.url)
        info = conninfo_to_dict(self.url)
        where = f"{info.get('host', '')}:{info.get('port', '5432')}/{info.get('dbname', '')}"
        during = f", unreachable for {tried:.0f} s" if tried is not None else ""
        return StoreError(f"lost the connection to the PostgreSQL database {where} ({str(exc).strip()}{during}); what was "
                          "written before is kept: run the same command again to resume once the server is reachable")

    def in_write(self) -> bool:
        """Whether this thread is inside a write transaction (a write now would join it)."""
        return getattr(self._local, "conn", None) is not None

    def write_retried(self, body: Callable[[Cursorish, bool], T]) -> T:
        """``body(c, first)`` in one write transaction, run again on a fresh connection whenever the
        connection is lost before the commit's answer arrived, until it commits or the database has
        been unreachable for ``write_deadline`` seconds (then the StoreError).

        ``first`` is False on every attempt after a lost one, which may have committed (the loss
        came during ``COMMIT``): ``body`` must then find out whether it did and not write again.
        Inside another write of this thread, ``body`` joins that transaction once: the outer write
        commits, and answers for a loss."""
        if self.readonly:
            raise ReadOnlyError("this store is open read-only (a dashboard): nothing can be changed from here")
        current = getattr(self._local, "conn", None)
        if current is not None:
            return body(Cursorish(current), True)

        def attempt(first: bool, direct: bool) -> T:
            with self._locked(min(self.write_deadline, 30.0), direct=direct) as conn:
                self._local.conn = conn
                try:
                    return body(Cursorish(conn), first)
                finally:
                    self._local.conn = None

        return self._retried(attempt)

    def read_retried(self, body: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``body(conn)`` on a connection, again on a fresh one whenever the connection is lost,
        within the same deadline as writes: a sweep's cache look-ups wait out an outage as its
        batches do, rather than fail the runs that look up."""
        current = getattr(self._local, "conn", None)
        if current is not None:
            return body(current)

        def attempt(first: bool, direct: bool) -> T:
            with self._session(min(self.write_deadline, 30.0), direct=direct) as conn:
                return body(conn)

        return self._retried(attempt)

    def _retried(self, attempt: Callable[[bool, bool], T]) -> T:
        """``attempt(first, direct)`` until it does not lose its connection, or the database has
        been away for ``write_deadline`` seconds (then the StoreError)."""
        first, pause = True, RETRY_PAUSES[0]
        while True:
            began_attempt = time.monotonic()
            # After a loss, a connection of its own: the pool reconnects in the background with
            # growing pauses (1, 2, 4 … s), so it may come back long after the server did. Pooled
            # connections again once the pool has one ready.
            direct = not first or (self.url in _LOST and not self.pool.get_stats().get("pool_available"))
            try:
                result = attempt(first, direct)
            except psycopg.OperationalError as exc:
                if not _connection_lost(exc):
                    raise
                _LOST.add(self.url)  # meanwhile, other calls wait 1 s for a pooled connection, not 30
                now = time.monotonic()
                began = self._unreachable_since = self._unreachable_since or began_attempt
                if now + pause - began > self.write_deadline:
                    raise self._lost(exc, now - began) from exc
                first = False
                time.sleep(pause)
                pause = min(pause * 2, RETRY_PAUSES[1])
                continue
            self._unreachable_since = None
            if not direct:
                _LOST.discard(self.url)
            return result

    @contextlib.contextmanager
    def _session(self, wait: float | None, *, direct: bool) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection, waited for at most ``wait`` seconds; ``direct``: a new one, closed after."""
        if direct:
            with psycopg.connect(self.url, **self._kwargs) as conn:
                self._configure(conn)
                yield conn
        else:
            with self.pool.connection(timeout=wait) as conn:
                yield conn

    @contextlib.contextmanager
    def _locked(self, wait: float | None = None, *, direct: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection (``direct``: a new one, closed after) in a transaction that holds the write lock.

        A connection the server drops before the lock is held (a restart while the writer queues
        behind another: the likeliest moment, since writers wait there) is replaced, and the lock
        asked for again: nothing was written on it, so nothing can be written twice. A connection
        lost later fails the write; its transaction is rolled back by the server."""
        for attempt in range(1, LOCK_TRIES + 1):
            stack = contextlib.ExitStack()
            conn: psycopg.Connection[Any] | None = None
            try:
                conn = stack.enter_context(self._session(1.0 if self.url in _LOST and wait is None else wait, direct=direct))
                stack.enter_context(conn.transaction())
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            except psycopg.OperationalError as exc:
                lost = conn is not None and conn.broken
                with contextlib.suppress(psycopg.Error):  # the pool discards a broken connection
                    stack.__exit__(type(exc), exc, exc.__traceback__)
                if lost and attempt < LOCK_TRIES:
                    continue
                raise
            with stack:
                yield conn
            return

    @contextlib.contextmanager
    def read(self) -> Iterator[Cursorish]:
        with self.connection() as conn:
            yield Cursorish(conn)


def _connection_lost(exc: psycopg.OperationalError) -> bool:
    # No SQLSTATE: the client's own failure (a broken socket, a timeout, the pool's PoolTimeout);
    # class 08 and 57P0x: the server says the connection is gone. Others (a serialization failure,
    # a lock not available) are the caller's to handle.
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


class PgDatabase:
    """The call of :class:`~promptlooper.store.plain_db.PlainDatabase` the noun classes make: ``query`` (dict rows)."""

    def __init__(self, cx: PgConnection):
        self.cx = cx

    def query(self, sql: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        with self.cx.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(translate(sql), list(params))
            rows = cur.fetchall()
        for row in rows:
            row.pop("rowid", None)  # an ordering column of PostgreSQL's own (see schema.py)
            yield row
