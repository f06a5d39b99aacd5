"""A sweep's claims ticks on PostgreSQL: one transaction, one round trip, one statement shape each.

:meth:`Claims.claims_tick <promptlooper.store.claims.Claims.claims_tick>` decides in the same order
and the same way (read its docstring for what a tick is); this is its SQL in PostgreSQL's terms:

* **keys as one array** (``= ANY(%s::text[])``, ``unnest``): the portable statements carry a
  placeholder per key, so each batch size was a statement text of its own that the server parsed
  and planned again (dozens of shapes of ``DELETE … key IN ($2,…,$N)`` in one run of
  benchmarks/workers.py b, a few hundred keys each). Here every tick sends the same few texts,
  which psycopg prepares once a connection has seen them a few times.
* **pipelined**: the claims' lock, the heartbeat, the others' rows, the renewals, the releases and
  the claims go in one round trip and are read back at one sync (the portable tick waits for the
  answer of each, ten round trips when it carries everything). Nothing waits on an answer: a
  joining process's ``claiming`` (whether another sharer is live) is decided by the heartbeat's
  own statement, and the others' rows are read under the same lock, so no sharer comes or goes in
  between.
* **released-if-cached in one statement**: the claims whose cache entry is committed are deleted
  and, in the same statement, the keys this owner no longer holds at all (taken over after its
  claim expired) are reported too. A data-modifying ``WITH`` is not seen by its own query, so a
  key deleted by it is found by the first half only.

As in the portable tick, the claim comes before the cache look-up in one transaction under READ
COMMITTED: the look-up's snapshot is taken after the claim was won, so it sees every entry
committed before (an owner deletes its claim only after its entry is committed). A key won and
found cached (rare) has its claim deleted in a second round trip.
"""

from __future__ import annotations

from typing import Any

import psycopg

from ..claims import FORGET_AFTER, ClaimResult, ClaimTick
from .claims import CLAIM, FORGET, LOOK_UP, _result
from .notify import announce_sharers

LOCK = "SELECT pg_advisory_xact_lock(%(lock)s)"
FORGET_GONE = ("WITH sharers AS (DELETE FROM call_sharers WHERE heartbeat < %(forget)s)"
               " DELETE FROM call_claims WHERE expires_at < %(forget)s")
# A joining process (claiming NULL) claims when another sharer is live: decided here, under the lock.
HEARTBEAT = ("INSERT INTO call_sharers (owner, heartbeat, claiming) SELECT %(owner)s, %(now)s,"
             " COALESCE(%(claiming)s::bigint, (SELECT count(*) FROM (SELECT 1 FROM call_sharers WHERE owner <> %(owner)s"
             " AND heartbeat > %(alive)s LIMIT 1) o)) ON CONFLICT (owner)"
             " DO UPDATE SET heartbeat = excluded.heartbeat, claiming = excluded.claiming RETURNING claiming")
OTHERS = "SELECT owner, claiming FROM call_sharers WHERE owner <> %(owner)s AND heartbeat > %(alive)s"
ADOPT = ("INSERT INTO call_claims (key, owner, expires_at) SELECT k, %(owner)s, %(expires)s"
         " FROM unnest(%(adopt)s::text[]) WITH ORDINALITY AS u(k, i) ORDER BY i ON CONFLICT (key) DO NOTHING")
RENEW = "UPDATE call_claims SET expires_at = %(expires)s WHERE owner = %(owner)s AND key = ANY(%(renew)s::text[])"
RELEASE = "DELETE FROM call_claims WHERE owner = %(owner)s AND key = ANY(%(release)s::text[])"
RELEASE_IF_CACHED = (
    "WITH gone AS (DELETE FROM call_claims c WHERE c.owner = %(owner)s AND c.key = ANY(%(done)s::text[])"
    " AND EXISTS (SELECT 1 FROM response_cache r WHERE r.key = c.key) RETURNING c.key)"
    " SELECT key FROM gone UNION ALL SELECT k FROM unnest(%(done)s::text[]) AS u(k)"
    " WHERE NOT EXISTS (SELECT 1 FROM call_claims c WHERE c.owner = %(owner)s AND c.key = u.k)")


def claims_tick(conn: psycopg.Connection[Any], lock: int, tick: ClaimTick) -> ClaimResult:
    """The tick in one transaction of ``conn`` (which must be idle, in autocommit)."""
    expires = tick.now + tick.ttl
    params: dict[str, Any] = {
        "lock": lock, "owner": tick.owner, "now": tick.now, "alive": tick.now - tick.stale_after,
        "forget": tick.now - FORGET_AFTER, "expires": expires,
        "claiming": None if tick.claiming is None else int(tick.claiming),
        # Sorted: every process locks rows in one order (see claims.py's CLAIM).
        "adopt": sorted(set(tick.adopt)), "renew": sorted(set(tick.renew)), "release": sorted(set(tick.release)),
        "done": sorted(set(tick.release_if_cached)), "keys": sorted(set(tick.claim))}
    with conn.transaction():
        with conn.pipeline():
            conn.execute(LOCK, params)
            if tick.claiming is None:  # joining: first forget the rows killed processes left long ago
                conn.execute(FORGET_GONE, params)
            said = conn.execute(HEARTBEAT, params)
            others = conn.execute(OTHERS, params)
            if tick.announce:
                announce_sharers(conn)
            for name, sql in (("adopt", ADOPT), ("renew", RENEW), ("release", RELEASE)):
                if params[name]:
                    conn.execute(sql, params)
            # Statements that read the cache are planned for their own keys each time, never from a
            # plan kept since the cache was small (see reads.py).
            released = conn.execute(RELEASE_IF_CACHED, params, prepare=False) if params["done"] else None
            if params["keys"]:
                won, found = conn.execute(CLAIM, params), conn.execute(LOOK_UP, params, prepare=False)
        if params["keys"]:
            result, cached = _result(won.fetchall(), found.fetchall())
            if cached:
                conn.execute(FORGET, {**params, "cached": cached})
        else:
            result = ClaimResult(True)
        result.claiming = bool(said.fetchone()[0])  # type: ignore[index]
        result.others = {owner: bool(claiming) for owner, claiming in others.fetchall()}
        if released is not None:
            result.released = {row[0] for row in released.fetchall()}
    return result
