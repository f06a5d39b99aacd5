"""A sweep's claim batches on PostgreSQL: one round trip a loop turn, on a connection of their own.

The call path claims the keys a loop turn missed (:mod:`promptlooper.engine.claims`), on the
sweep's event loop, so every round trip is time the loop stands still. The portable
:meth:`Claims._claim_keys <promptlooper.store.claims.Claims._claim_keys>` takes a pooled
connection (whose liveness check is a round trip of its own) and then claims and looks up in two
statements: three round trips a turn, which cost three workers of C = 64 about 0.08 of 3C/L
(benchmarks/workers.py b; py-spy put a third of a worker's loop in them).

Here the batch is:

* **pipelined**: the claim (``INSERT … ON CONFLICT … RETURNING``), the cache look-up and the
  deletion of the claims on keys found cached are sent together and read back at one sync. They
  run in that order in one implicit transaction; under READ COMMITTED each statement takes its
  snapshot when it starts, so the look-up still sees every entry committed before a claim this
  batch won (an owner deletes its claim only after its entry committed): the claim-then-look
  order of the portable code, without waiting between the two.
* **on a held connection**: taken from the store's pool once and kept (not checked before each
  batch). One the server dropped (a restart, an admin) fails the next batch on its first use;
  that batch is sent again once on a fresh connection from the pool (which checks it). Sending it
  again is safe: a batch whose transaction never committed left nothing, and one that committed
  before the link broke is found again as this owner's claims (``owner = excluded.owner``).
* **one statement shape**: keys travel as one array, so the server plans each statement once
  (psycopg prepares statements it sees repeatedly) whatever the batch size.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg

from ..claims import ClaimResult
from .connection import _LOST, PgConnection

# Sorted keys claimed in array order: every process takes the row locks of a batch in one order, so
# two batches that overlap wait for each other instead of deadlocking.
CLAIM = ("INSERT INTO call_claims (key, owner, expires_at)"
         " SELECT k, %(owner)s, %(expires)s FROM unnest(%(keys)s::text[]) WITH ORDINALITY AS u(k, i) ORDER BY i"
         " ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at"
         " WHERE call_claims.expires_at < %(now)s OR call_claims.owner = excluded.owner RETURNING key")
LOOK_UP = ("SELECT key, response, tokens_in, tokens_out, latency_ms FROM response_cache"
           " WHERE key = ANY(%(keys)s::text[])")
# A key cached meanwhile needs no claim: this owner's (just won) goes. Its own snapshot may see an
# entry the look-up did not; such a key is neither found nor claimed, so the caller asks again
# later (held) and then finds it.
FORGET_CACHED = ("DELETE FROM call_claims c USING response_cache r WHERE c.owner = %(owner)s"
                 " AND c.key = ANY(%(keys)s::text[]) AND r.key = c.key RETURNING c.key")


class ClaimSession:
    """The claim batches of one store, on one connection held from its pool."""

    def __init__(self, cx: PgConnection):
        self.cx = cx
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()  # one batch at a time on the held connection

    def claim(self, owner: str, keys: Sequence[str], now: float, ttl: float) -> ClaimResult:
        """Claim ``keys`` for ``owner`` (those already cached are found instead), in one round trip."""
        params = {"owner": owner, "keys": sorted(set(keys)), "now": now, "expires": now + ttl}
        # A lost database raises StoreError as every store call does (the pool's own wrapper).
        with self._lock, self.cx._lost_as_store_error():
            try:
                return self._batch(self._held(), params)
            except psycopg.OperationalError:
                if self._conn is None or not self._conn.broken:
                    raise
                self._drop()  # dropped while it sat between two batches: once more, on a checked connection
                return self._batch(self._held(), params)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self.cx.pool.putconn(self._conn)
                self._conn = None

    def _held(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            # As PgConnection.connection: 1 s for a connection once the database was found lost.
            self._conn = self.cx.pool.getconn(timeout=1.0 if self.cx.url in _LOST else None)
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self.cx.pool.putconn(conn)  # the pool discards a broken connection and opens another

    @staticmethod
    def _batch(conn: psycopg.Connection[Any], params: dict[str, Any]) -> ClaimResult:
        with conn.pipeline():
            won_cur = conn.execute(CLAIM, params)
            found_cur = conn.execute(LOOK_UP, params)
            gone_cur = conn.execute(FORGET_CACHED, params)
        won = {row[0] for row in won_cur.fetchall()}
        result = ClaimResult(True)
        for key, resp, tin, tout, lat in found_cur.fetchall():
            result.found[key] = (resp, tin or 0, tout or 0, lat or 0.0)
        gone = {row[0] for row in gone_cur.fetchall()}
        result.claimed = won - gone - result.found.keys()
        return result
