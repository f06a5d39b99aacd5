"""A shared sweep's budget on PostgreSQL: each reservation batch, settlement and reaping is one statement.

The bookkeeping is :mod:`promptlooper.store.budgets`'; only how it is made atomic differs. SQLite
decides inside ``BEGIN IMMEDIATE``; here every write is one autocommit statement, without the
store's write lock (a sweep's batches hold that lock for milliseconds, and a reservation is made
on the sweep's event loop once a loop turn, like its call claims), and the row locks of that one
statement make it atomic:

* **Reserve**: one ``UPDATE sweep_budgets`` computes, from the row it has locked, how many of the
  asked estimates fit (``spent + held + running sum <= limit``) and adds their sum to ``held``.
  PostgreSQL evaluates every ``SET`` expression against the same, latest version of the row (a
  writer that waited re-evaluates them on the row the other committed), so two workers never
  both take the last of the budget. The count is kept in ``last_grant`` because ``RETURNING``
  sees only the new row. The caller's hold row is locked first (``FOR UPDATE``, the order every
  statement here takes: hold, then budget row) and must exist: a hold reaped meanwhile grants
  nothing. The same statement adds the grant to that hold.
* **Settle**: the hold gives back estimates only if it still exists (a reaped hold's estimates
  were freed already); spend is added in any case.
* **Reap / leave**: the deleted holds' amounts come off ``held`` in the statement that deletes
  them; two reapers cannot both free one hold (the second finds it deleted).

A sweep makes these writes from its event loop once a loop turn: through :class:`BudgetLink`, an
asyncio connection of its own (psycopg's ``AsyncConnection``), so that a round trip neither blocks
the loop (a blocking statement on the loop cost a worker a third of its calls under load, measured)
nor waits for the GIL in a thread (~20 ms a turn, measured for call claims).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import psycopg

from ..budgets import UNLIMITED, BudgetBook, BudgetState, Grant, Settled, cumulative
from ..db import ReadOnlyError
from .connection import dead_peer_settings

_COLUMNS = "spent_tokens, spent_nanos, held_tokens, held_nanos, calls"

# The asked estimates' running sums that fit, from the budget row being updated (its columns).
_FITS = ("FROM unnest(%(t)s::bigint[], %(c)s::bigint[]) AS a(t, c)"
         " WHERE sweep_budgets.spent_tokens + sweep_budgets.held_tokens + a.t <= %(mt)s"
         " AND sweep_budgets.spent_nanos + sweep_budgets.held_nanos + a.c <= %(mc)s")

_RESERVE = f"""
WITH mine AS (SELECT 1 FROM budget_holds WHERE sweep_id = %(s)s AND owner = %(o)s FOR UPDATE),
b AS (
    UPDATE sweep_budgets SET
        last_grant = (SELECT count(*) {_FITS}),
        held_tokens = held_tokens + COALESCE((SELECT max(a.t) {_FITS}), 0),
        held_nanos = held_nanos + COALESCE((SELECT max(a.c) {_FITS}), 0)
    WHERE sweep_id = %(s)s AND EXISTS (SELECT 1 FROM mine)
    RETURNING last_grant, {_COLUMNS}),
h AS (
    UPDATE budget_holds SET tokens = tokens + COALESCE((%(t)s::bigint[])[b.last_grant], 0),
        nanos = nanos + COALESCE((%(c)s::bigint[])[b.last_grant], 0), expires_at = %(e)s
    FROM b WHERE budget_holds.sweep_id = %(s)s AND budget_holds.owner = %(o)s RETURNING 1)
SELECT b.*, EXISTS (SELECT 1 FROM h) FROM b
"""

_SETTLE = f"""
WITH h AS (
    UPDATE budget_holds SET tokens = tokens - %(rt)s, nanos = nanos - %(rc)s, expires_at = %(e)s
    WHERE sweep_id = %(s)s AND owner = %(o)s RETURNING 1)
UPDATE sweep_budgets SET
    held_tokens = held_tokens - CASE WHEN EXISTS (SELECT 1 FROM h) THEN %(rt)s ELSE 0 END,
    held_nanos = held_nanos - CASE WHEN EXISTS (SELECT 1 FROM h) THEN %(rc)s ELSE 0 END,
    spent_tokens = spent_tokens + %(st)s, spent_nanos = spent_nanos + %(sc)s, calls = calls + %(n)s
WHERE sweep_id = %(s)s
RETURNING {_COLUMNS}, EXISTS (SELECT 1 FROM h)
"""

_JOIN = """
WITH b AS (INSERT INTO sweep_budgets (sweep_id) VALUES (%(s)s) ON CONFLICT (sweep_id) DO NOTHING),
h AS (INSERT INTO budget_holds (sweep_id, owner, tokens, nanos, expires_at) VALUES (%(s)s, %(o)s, 0, 0, %(e)s)
      ON CONFLICT (sweep_id, owner) DO UPDATE SET expires_at = excluded.expires_at)
SELECT 1
"""

_DROP = """
WITH d AS (DELETE FROM budget_holds WHERE sweep_id = %(s)s AND {which} RETURNING tokens, nanos)
UPDATE sweep_budgets SET held_tokens = held_tokens - (SELECT COALESCE(sum(tokens), 0) FROM d),
    held_nanos = held_nanos - (SELECT COALESCE(sum(nanos), 0) FROM d)
WHERE sweep_id = %(s)s
RETURNING {columns}
"""


def _grant(row: Any, tokens: list[int], nanos: list[int]) -> tuple[Grant, dict[str, Any] | None]:
    """The grant a reservation's row says, and the statement's parameters that give back a grant
    left without a hold (only if the hold vanished between the lock and the update: it cannot,
    under the lock; kept so that a grant is never held without a hold)."""
    if row is None:  # no budget row, or no hold of the caller's: nothing granted
        return Grant(0, None, held=False), None
    n, *state, held = row
    if n and not held:
        return Grant(0, None, held=False), {"t": tokens[n - 1], "c": nanos[n - 1]}
    return Grant(int(n), BudgetState(*(int(v) for v in state)), held=bool(held)), None


_GIVE_BACK = ("UPDATE sweep_budgets SET held_tokens = held_tokens - %(t)s, held_nanos = held_nanos - %(c)s"
              " WHERE sweep_id = %(s)s RETURNING 1")


def _reserve_params(sweep_id: str, owner: str, tokens: list[int], nanos: list[int], max_tokens: int | None,
                    max_nanos: int | None, expires_at: float) -> dict[str, Any]:
    return {"s": sweep_id, "o": owner, "t": tokens, "c": nanos, "e": expires_at,
            "mt": UNLIMITED if max_tokens is None else max_tokens, "mc": UNLIMITED if max_nanos is None else max_nanos}


def _settle_params(sweep_id: str, owner: str, settled: Settled, expires_at: float) -> dict[str, Any]:
    return {"s": sweep_id, "o": owner, "rt": settled.release_tokens, "rc": settled.release_nanos,
            "st": settled.spent_tokens, "sc": settled.spent_nanos, "n": settled.calls, "e": expires_at}


def _settled(row: Any) -> tuple[BudgetState | None, bool]:
    if row is None:
        return None, False
    *state, held = row
    return BudgetState(*(int(v) for v in state)), bool(held)


def _drop_sql(which: str) -> str:
    condition = {"expires_at < ?": "expires_at < %(v)s", "owner = ?": "owner = %(v)s"}[which]
    return _DROP.format(which=condition, columns=_COLUMNS)


class BudgetLink:
    """A sweep's budget writes on its event loop, through one asyncio connection of its own: the
    same statements as :class:`PostgresBudgets`, awaited (see the module docstring)."""

    def __init__(self, url: str):
        self.url = url
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def _one(self, sql: str, params: dict[str, Any]) -> Any:
        return (await self._pipelined((sql, params)))[0]

    async def _pipelined(self, *statements: tuple[str, dict[str, Any]]) -> list[Any]:
        """Each statement's first row; sent together, in one round trip (psycopg's pipeline mode),
        in order, in one transaction when there are several (all of them or none)."""
        conn = self._conn
        if conn is None or conn.closed:
            conn = self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, **dead_peer_settings(self.url))
        try:
            async with conn.pipeline():
                async with conn.transaction() if len(statements) > 1 else contextlib.nullcontext():
                    cursors = [await conn.execute(sql, params) for sql, params in statements]
            return [await cur.fetchone() for cur in cursors]
        except psycopg.OperationalError:
            if conn.broken:  # the next write connects again (a restarted server)
                self._conn = None
            raise

    async def budget_turn(self, sweep_id: str, owner: str, settled: Settled, asked: Sequence[tuple[int, int]],
                          max_tokens: int | None, max_nanos: int | None,
                          expires_at: float) -> tuple[tuple[BudgetState | None, bool], Grant]:
        """A loop turn's writes in one round trip and one transaction: ``settled`` (see
        ``budget_settle``), then the reservation of ``asked`` (``budget_reserve``), which so counts
        what just settled."""
        tokens, nanos = cumulative(asked)
        settle_row, reserve_row = await self._pipelined(
            (_SETTLE, _settle_params(sweep_id, owner, settled, expires_at)),
            (_RESERVE, _reserve_params(sweep_id, owner, tokens, nanos, max_tokens, max_nanos, expires_at)))
        grant, give_back = _grant(reserve_row, tokens, nanos)
        if give_back is not None:
            await self._one(_GIVE_BACK, {"s": sweep_id, **give_back})
        return _settled(settle_row), grant

    async def budget_join(self, sweep_id: str, owner: str, expires_at: float) -> BudgetState | None:
        await self._one(_JOIN, {"s": sweep_id, "o": owner, "e": expires_at})
        return _settled(await self._one(_SETTLE, _settle_params(sweep_id, owner, Settled(), expires_at)))[0]

    async def budget_reserve(self, sweep_id: str, owner: str, asked: Sequence[tuple[int, int]], max_tokens: int | None,
                             max_nanos: int | None, expires_at: float) -> Grant:
        tokens, nanos = cumulative(asked)
        grant, give_back = _grant(await self._one(_RESERVE, _reserve_params(sweep_id, owner, tokens, nanos, max_tokens,
                                                                            max_nanos, expires_at)), tokens, nanos)
        if give_back is not None:
            await self._one(_GIVE_BACK, {"s": sweep_id, **give_back})
        return grant

    async def budget_settle(self, sweep_id: str, owner: str, settled: Settled, expires_at: float) -> tuple[BudgetState | None, bool]:
        return _settled(await self._one(_SETTLE, _settle_params(sweep_id, owner, settled, expires_at)))

    async def budget_reap(self, sweep_id: str, now: float) -> BudgetState | None:
        row = await self._one(_drop_sql("expires_at < ?"), {"s": sweep_id, "v": now})
        return BudgetState(*(int(v) for v in row)) if row else None

    async def budget_leave(self, sweep_id: str, owner: str) -> BudgetState | None:
        row = await self._one(_drop_sql("owner = ?"), {"s": sweep_id, "v": owner})
        return BudgetState(*(int(v) for v in row)) if row else None

    async def aclose(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


class PostgresBudgets(BudgetBook):
    """:class:`~promptlooper.store.budgets.Budgets`' grants, settlements and drops, each one statement (see the module docstring)."""

    def budget_link(self) -> BudgetLink | None:
        """An asyncio connection for one sweep's budget writes on its loop (see :class:`BudgetLink`)."""
        if self.readonly:
            raise ReadOnlyError("this store is open read-only (a dashboard): nothing can be changed from here")
        return BudgetLink(self.path)  # type: ignore[attr-defined]

    def _one(self, sql: str, params: dict[str, Any]) -> Any:
        if self.readonly:
            raise ReadOnlyError("this store is open read-only (a dashboard): nothing can be changed from here")
        with self.cx.connection() as conn:  # type: ignore[attr-defined]
            return conn.execute(sql, params).fetchone()

    def budget_reserve(self, sweep_id: str, owner: str, asked: Sequence[tuple[int, int]], max_tokens: int | None,
                       max_nanos: int | None, expires_at: float) -> Grant:
        tokens, nanos = cumulative(asked)
        grant, give_back = _grant(self._one(_RESERVE, _reserve_params(sweep_id, owner, tokens, nanos, max_tokens, max_nanos,
                                                                      expires_at)), tokens, nanos)
        if give_back is not None:
            self._one(_GIVE_BACK, {"s": sweep_id, **give_back})
        return grant if grant.state is not None else Grant(0, self.budget_state(sweep_id), held=False)

    def budget_settle(self, sweep_id: str, owner: str, settled: Settled, expires_at: float) -> tuple[BudgetState | None, bool]:
        return _settled(self._one(_SETTLE, _settle_params(sweep_id, owner, settled, expires_at)))

    def _drop_holds(self, sweep_id: str, which: str, value: Any) -> BudgetState | None:
        row = self._one(_drop_sql(which), {"s": sweep_id, "v": value})
        return BudgetState(*(int(v) for v in row)) if row else None


__all__ = ["BudgetLink", "PostgresBudgets"]
