"""A sweep's cache look-ups on PostgreSQL: on one connection held from the store's pool, unchecked.

A sweep looks its calls up in the response cache every loop turn, from a worker thread
(:class:`~promptlooper.engine.calls.CacheReader`). Through the pool, each look-up was two round
trips: the pool's liveness check of the connection it hands out (an empty query, which the
lost-connection tests need for every other store call) and the look-up itself. Here the look-ups
go to one connection taken from the pool once (checked then) and kept: one round trip each.

Never prepared (``prepare=False``: planned for its own keys each time). Prepared on a connection
held from the sweep's start, the server kept the generic plan it made while the cache table was
still empty, a sequential scan: 151 pages read a look-up instead of a few (pg_stat_statements,
benchmarks/workers.py b: 0.77 ms a look-up instead of 0.27, and the database's CPU up by 0.4 s).

A look-up needs no check before it because it can be made again: when the held connection turns
out to be lost (a restart, an admin, the network), it is given back (the pool discards it) and
this look-up is made the pool's way, through :meth:`.connection.PgConnection.read_retried`,
which waits out an outage within the store's deadline; the next look-up holds a fresh connection.
Two look-ups at once (a sweep's turns overlap in its threads) take turns on the held connection:
a look-up takes a few milliseconds, less than the pool's way costs. One that waited
``BUSY_WAIT`` for the other (a server that stalls) goes the pool's way instead, as does one
inside a write transaction of its thread (it must see that transaction's rows).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg

from .connection import _LOST, PgConnection

# Seconds a look-up waits for the held connection before it goes the pool's way: far above a
# look-up's time (a third of the look-ups found it busy in benchmarks/workers.py b without waiting).
BUSY_WAIT = 0.1
LOOK_UP = "SELECT key, response, tokens_in, tokens_out, latency_ms FROM response_cache WHERE key = ANY(%s)"

CacheRows = dict[str, tuple[str, int, int, float]]


class HeldReads:
    """The cache look-ups of one store, on one connection held from its pool."""

    def __init__(self, cx: PgConnection):
        self.cx = cx
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()  # one look-up at a time on the held connection

    def cache_get_many(self, keys: Sequence[str]) -> CacheRows:
        params = (list(keys),)
        if not self.cx.in_write() and self._lock.acquire(timeout=BUSY_WAIT):
            try:
                conn = self._held()
                if conn is not None:
                    try:
                        return _rows(conn.execute(LOOK_UP, params, prepare=False).fetchall())
                    except psycopg.OperationalError:
                        if not conn.broken:
                            raise
                        self._drop()  # lost since its last look-up: this one the pool's way
            finally:
                self._lock.release()
        return _rows(self.cx.read_retried(lambda conn: conn.execute(LOOK_UP, params).fetchall()))

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _held(self) -> psycopg.Connection[Any] | None:
        """The held connection, taken (and checked) from the pool if none is held; None when the
        pool has none idle or the database was found lost (the pool's way waits it out)."""
        # Taken only from connections idle now: a look-up must not wait for the pool twice.
        if self._conn is None and self.cx.url not in _LOST and self.cx.pool.get_stats().get("pool_available"):
            try:
                self._conn = self.cx.pool.getconn(timeout=1.0)
            except psycopg.OperationalError:  # PoolTimeout: the pool's way answers for it
                return None
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self.cx.pool.putconn(conn)  # the pool discards a broken connection and opens another


def _rows(rows: list[Any]) -> CacheRows:
    return {key: (resp, tin or 0, tout or 0, lat or 0.0) for key, resp, tin, tout, lat in rows}
