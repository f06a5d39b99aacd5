"""A sweep's claim batches on PostgreSQL: one round trip a loop turn, awaited, on a connection of their own.

The call path claims the keys a loop turn missed (:mod:`promptlooper.engine.claims`). Made with
the portable :meth:`Claims._claim_keys <promptlooper.store.claims.Claims._claim_keys>` on the
sweep's loop, a batch took a pooled connection (whose liveness check is a round trip of its own),
then claimed and looked up in two statements: three round trips a turn during which the loop
stood still; py-spy put a third of a worker's loop in them (benchmarks/workers.py b, three
workers of C = 64, a loaded machine). One pipelined round trip still held the loop about as long
(there a round trip is mostly the wait for the server's process to be scheduled; with the server
on another machine it is the network's), so the sweep's loop *awaits* its batches on an
asynchronous connection (:meth:`AsyncClaimSession.claim`): the loop sends and reads other calls
meanwhile, and no thread is involved (a thread hop waited for the GIL, measured in
engine/claims.py). The share of the loop's samples in claims fell from 0.30 to 0.21 (what is
left is psycopg's own work for the batch). Threads and tests use the blocking :class:`ClaimSession`.

Either way the batch is:

* **pipelined**: the claim (``INSERT … ON CONFLICT … RETURNING``) and the cache look-up are sent
  together and read back at one sync. They run in that order in one implicit transaction; under
  READ COMMITTED each statement takes its snapshot when it starts, so the look-up still sees every
  entry committed before a claim this batch won (an owner deletes its claim only after its entry
  committed): the claim-then-look order of the portable code, without waiting between the two.
  A key won *and* found cached (its entry committed meanwhile) is rare; its claim is deleted in
  a second round trip then (a third statement in every pipeline, a join with the cache, cost the
  server more than the two others together: ~250 µs a batch of 8 keys, measured).
* **on a held connection**: the blocking one taken from the store's pool once and kept, the
  asynchronous one opened with the pool's settings; neither checked before each batch. One the
  server dropped (a restart, an admin) fails the next batch on its first use; that batch is sent
  again once on a fresh connection. Sending it again is safe: a batch whose transaction never
  committed left nothing, and one that committed before the link broke is found again as this
  owner's claims (``owner = excluded.owner``).
* **one statement shape**: keys travel as one array, so the server plans each statement once
  (psycopg prepares statements it sees repeatedly) whatever the batch size.
"""

from __future__ import annotations

import asyncio
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
# Never prepared: a plan kept on this long-held connection from when the cache was small scans
# the whole table once it has grown (see store/postgres/reads.py, which measured it).
LOOK_UP = ("SELECT key, response, tokens_in, tokens_out, latency_ms FROM response_cache"
           " WHERE key = ANY(%(keys)s::text[])")
# Keys found cached whose claim this batch won (a rare race): their claims go at once.
FORGET = "DELETE FROM call_claims WHERE owner = %(owner)s AND key = ANY(%(cached)s::text[])"


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
            won = conn.execute(CLAIM, params)
            found = conn.execute(LOOK_UP, params, prepare=False)  # see LOOK_UP
        result, cached = _result(won.fetchall(), found.fetchall())
        if cached:
            conn.execute(FORGET, {**params, "cached": cached})
        return result


class AsyncClaimSession:
    """The claim batches of one sweep's event loop, awaited on an asynchronous connection of their
    own (opened on first use, with the settings of the store's pool)."""

    def __init__(self, cx: PgConnection):
        self.cx = cx
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock: asyncio.Lock | None = None  # made on the loop that uses it

    async def claim(self, owner: str, keys: Sequence[str], now: float, ttl: float) -> ClaimResult:
        params = {"owner": owner, "keys": sorted(set(keys)), "now": now, "expires": now + ttl}
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # a batch's pipeline at a time; the next turn's waits for it
            with self.cx._lost_as_store_error():
                try:
                    return await self._batch(await self._held(), params)
                except psycopg.OperationalError:
                    if self._conn is None or not self._conn.broken:
                        raise
                    await self.close()  # dropped between two batches: once more, on a new connection
                    return await self._batch(await self._held(), params)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def _held(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None:
            pool = self.cx.pool
            self._conn = await psycopg.AsyncConnection.connect(pool.conninfo, **pool.kwargs)  # type: ignore[arg-type]
        return self._conn

    @staticmethod
    async def _batch(conn: psycopg.AsyncConnection[Any], params: dict[str, Any]) -> ClaimResult:
        async with conn.pipeline():
            won = await conn.execute(CLAIM, params)
            found = await conn.execute(LOOK_UP, params, prepare=False)  # see LOOK_UP
        result, cached = _result(await won.fetchall(), await found.fetchall())
        if cached:
            await conn.execute(FORGET, {**params, "cached": cached})
        return result


def _result(won_rows: list[Any], found_rows: list[Any]) -> tuple[ClaimResult, list[str]]:
    """The batch's outcome, and the keys it won that were found cached (whose claims must go)."""
    result = ClaimResult(True)
    for key, resp, tin, tout, lat in found_rows:
        result.found[key] = (resp, tin or 0, tout or 0, lat or 0.0)
    won = {row[0] for row in won_rows}
    result.claimed = won - result.found.keys()
    return result, sorted(won & result.found.keys())
