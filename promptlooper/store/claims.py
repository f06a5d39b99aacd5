"""Calls shared by processes: claimed cache keys, who shares the store, and open circuit breakers.

Part of :class:`~promptlooper.store.Store` (and of the PostgreSQL store, in the same SQL). Several
processes sweeping one store (two people's notebooks, two CLI runs, workers) make many identical
model calls; the response cache already serves a call made earlier, and these tables make one made
*now* go out once:

``call_claims`` (key, owner, expires_at)
    A process about to call a model for a cache key it did not find claims the key first. A key
    claimed by another owner is waited for (its cache entry appears) instead of called again. The
    owner renews ``expires_at`` while its call is out; a claim past it (its owner died) is taken
    over by the next process that asks. A claim is deleted once its cache entry is committed, or at
    once when the call failed (a waiter then claims it and calls itself).
``call_sharers`` (owner, heartbeat, claiming)
    The processes sweeping now, each with a heartbeat. A process alone claims nothing (no write per
    call); it starts claiming in the transaction in which it first sees another live sharer, and
    says so (``claiming``): a newcomer makes no claim until every live sharer claims, so no call
    goes out unclaimed beside a claimed one.
``endpoint_breakers`` (endpoint, owner, open_until, reason)
    An endpoint whose circuit breaker one process opened: the others read it on their steering
    poll and stop calling it too; the owner probes it and deletes the row when it answers.

Each method is one write transaction (SQLite's ``BEGIN IMMEDIATE``; on PostgreSQL a lock of the
claims' own, not the store's write lock, which a sweep's batch writes hold), so registering,
claiming and taking over are decided by one process at a time. Times are the callers'
``time.time()``: machines that share a store are expected to keep their clocks in sync (NTP), and
the expiry margins (seconds) are far above their skew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .db import Queries
from .in_lists import marks, parts

CHUNK = 300  # keys per statement: 3 bound values a row stays under SQLite's limit
FORGET_AFTER = 600.0  # seconds: rows of sharers gone this long (and claims expired this long) are deleted


@dataclass
class ClaimTick:
    """One process's call claims, as of one transaction (see :meth:`Claims.claims_tick`)."""

    owner: str
    now: float
    ttl: float  # seconds a claim made or renewed now holds
    stale_after: float  # seconds without a heartbeat after which a sharer is gone
    claiming: bool | None  # True / False: this process claims / does not; None (joining): it claims if others are live
    claim: Sequence[str] = ()  # keys to claim now (or find in the cache)
    adopt: Sequence[str] = ()  # keys claimed without looking (calls already out when claiming starts)
    renew: Sequence[str] = ()  # own claims still being called
    release: Sequence[str] = ()  # own claims to delete (a failed call)
    release_if_cached: Sequence[str] = ()  # own claims to delete once their cache entry is committed
    announce: bool = False  # tell the other sharers at commit (PostgreSQL: they tick at once, see notify.py)


@dataclass
class ClaimResult:
    claiming: bool  # what this process now says of itself
    others: dict[str, bool] = field(default_factory=dict)  # live sharers -> whether each claims
    found: dict[str, tuple[str, int, int, float]] = field(default_factory=dict)  # claim keys already cached
    claimed: set[str] = field(default_factory=set)  # claim keys now this process's to call
    released: set[str] = field(default_factory=set)  # release_if_cached keys whose claim is gone


class Claims(Queries):
    """Claimed call keys, the processes that share calls, and breakers opened for all of them."""

    def claims_tick(self, tick: ClaimTick) -> ClaimResult:
        """Heartbeat, claim, renew and release in one write transaction; what the others are doing."""
        with self._sharing_write() as c:
            if tick.claiming is None:  # joining: first forget the rows killed processes left long ago
                c.execute("DELETE FROM call_sharers WHERE heartbeat < ?", (tick.now - FORGET_AFTER,))
                c.execute("DELETE FROM call_claims WHERE expires_at < ?", (tick.now - FORGET_AFTER,))
            others = {owner: bool(claiming) for owner, claiming in c.execute(
                "SELECT owner, claiming FROM call_sharers WHERE owner <> ? AND heartbeat > ?",
                (tick.owner, tick.now - tick.stale_after))}
            claiming = bool(others) if tick.claiming is None else tick.claiming
            c.execute("INSERT INTO call_sharers (owner, heartbeat, claiming) VALUES (?,?,?) ON CONFLICT (owner)"
                      " DO UPDATE SET heartbeat = excluded.heartbeat, claiming = excluded.claiming",
                      (tick.owner, tick.now, int(claiming)))
            result = ClaimResult(claiming, others)
            expires = tick.now + tick.ttl
            for chunk in parts(tick.adopt, CHUNK):
                c.execute(f"INSERT INTO call_claims (key, owner, expires_at) VALUES {_rows(len(chunk))}"
                          " ON CONFLICT (key) DO NOTHING", _bind(chunk, tick.owner, expires))
            for chunk in parts(tick.renew, CHUNK):
                c.execute(f"UPDATE call_claims SET expires_at = ? WHERE owner = ? AND key IN ({marks(len(chunk))})",
                          (expires, tick.owner, *chunk))
            for chunk in parts(tick.release, CHUNK):
                c.execute(f"DELETE FROM call_claims WHERE owner = ? AND key IN ({marks(len(chunk))})", (tick.owner, *chunk))
            for chunk in parts(tick.release_if_cached, CHUNK):
                placeholders = marks(len(chunk))
                result.released.update(r[0] for r in c.execute(
                    f"DELETE FROM call_claims WHERE owner = ? AND key IN ({placeholders})"
                    f" AND key IN (SELECT key FROM response_cache WHERE key IN ({placeholders})) RETURNING key",
                    (tick.owner, *chunk, *chunk)))
                # Claims someone else took over (ours expired) are not ours to wait for either.
                result.released.update(set(chunk) - {r[0] for r in c.execute(
                    f"SELECT key FROM call_claims WHERE owner = ? AND key IN ({placeholders})", (tick.owner, *chunk))})
            for chunk in parts(sorted(tick.claim), CHUNK):
                self._claim_keys(c, chunk, tick.owner, tick.now, expires, result)
        return result

    def claim_calls(self, owner: str, keys: Sequence[str], now: float, ttl: float) -> ClaimResult:
        """Claim ``keys`` (those already cached are found instead): the call path's transaction,
        one per loop turn. It needs no other write to wait: see :meth:`_claims_write`."""
        result = ClaimResult(True)
        with self._claims_write() as c:
            for chunk in parts(sorted(keys), CHUNK):  # one order for every process: no two wait for each other
                self._claim_keys(c, chunk, owner, now, now + ttl, result)
        return result

    def _claims_write(self) -> Any:
        """The transaction :meth:`claim_calls` runs in: SQLite's only kind, ``BEGIN IMMEDIATE``.
        (PostgreSQL's store claims in a pipeline of its own, without the store's write lock: each
        claim is one row's atomic upsert, and under it every claim waited for a sweep's batch
        writes, ~40 ms a turn measured with two sweeps of C = 64; see store/postgres/claims.py.)"""
        return self.cx.write()

    @staticmethod
    def _claim_keys(c: Any, keys: list[str], owner: str, now: float, expires: float, result: ClaimResult) -> None:
        # Claim first, then look in the cache: a claim won means any earlier owner's claim is gone,
        # and an owner deletes its claim only after its cache entry committed, so the look-up that
        # follows sees that entry (a key cached meanwhile is not called twice).
        won = {r[0] for r in c.execute(
            f"INSERT INTO call_claims (key, owner, expires_at) VALUES {_rows(len(keys))} ON CONFLICT (key) DO UPDATE"
            " SET owner = excluded.owner, expires_at = excluded.expires_at"
            " WHERE call_claims.expires_at < ? OR call_claims.owner = excluded.owner RETURNING key",
            (*_bind(keys, owner, expires), now))}
        for key, resp, tin, tout, lat in c.execute(
                f"SELECT key, response, tokens_in, tokens_out, latency_ms FROM response_cache WHERE key IN ({marks(len(keys))})",
                keys):
            result.found[key] = (resp, tin or 0, tout or 0, lat or 0.0)
        cached_and_won = [k for k in won if k in result.found]
        if cached_and_won:
            c.execute(f"DELETE FROM call_claims WHERE owner = ? AND key IN ({marks(len(cached_and_won))})",
                      (owner, *cached_and_won))
        result.claimed.update(won.difference(result.found))

    def _sharing_write(self) -> Any:
        """The transaction of :meth:`claims_tick` and :meth:`leave_sharing`: one at a time, so that
        two processes joining at once do not both find themselves alone. On SQLite the store's
        write transaction; PostgreSQL's store takes a lock of the claims' own (see there)."""
        return self.cx.write()

    def leave_sharing(self, owner: str) -> None:
        """This process no longer sweeps: its heartbeat row and every claim it holds go."""
        with self._sharing_write() as c:
            c.execute("DELETE FROM call_claims WHERE owner = ?", (owner,))
            c.execute("DELETE FROM call_sharers WHERE owner = ?", (owner,))

    def call_claims(self) -> list[dict[str, Any]]:
        """Every claim row (owner, key, expires_at): what a test or an operator looks at."""
        return list(self.db.query("SELECT key, owner, expires_at FROM call_claims ORDER BY key"))

    # ------------------------------------------------------------------ breakers open for every process
    def open_breaker(self, endpoint: str, owner: str, open_until: float, reason: str) -> None:
        """Say that ``endpoint`` is down until ``open_until`` (renewed by its owner while it probes)."""
        with self.cx.write() as c:
            c.execute("INSERT INTO endpoint_breakers (endpoint, owner, open_until, reason) VALUES (?,?,?,?)"
                      " ON CONFLICT (endpoint) DO UPDATE SET owner = excluded.owner, open_until = excluded.open_until,"
                      " reason = excluded.reason", (endpoint, owner, open_until, reason))

    def close_breaker(self, endpoint: str, owner: str | None = None) -> None:
        """The endpoint answered (``owner``'s probe) or someone resumed (``owner=None``: whoever opened it)."""
        with self.cx.write() as c:
            if owner is None:
                c.execute("DELETE FROM endpoint_breakers WHERE endpoint = ?", (endpoint,))
            else:
                c.execute("DELETE FROM endpoint_breakers WHERE endpoint = ? AND owner = ?", (endpoint, owner))

    def open_breakers(self, now: float) -> dict[str, tuple[str, str]]:
        """Endpoints down now: endpoint -> (owner, reason)."""
        with self.cx.read() as c:
            return {endpoint: (owner, reason) for endpoint, owner, reason in c.execute(
                "SELECT endpoint, owner, reason FROM endpoint_breakers WHERE open_until > ?", (now,))}


def _rows(n: int) -> str:
    return ",".join(["(?,?,?)"] * n)


def _bind(keys: Sequence[str], owner: str, expires: float) -> list[Any]:
    out: list[Any] = []
    for key in keys:
        out += (key, owner, expires)
    return out
