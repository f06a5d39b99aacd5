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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..budgets import UNLIMITED, BudgetBook, BudgetState, Grant, Settled, cumulative
from ..db import ReadOnlyError

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

_DROP = """
WITH d AS (DELETE FROM budget_holds WHERE sweep_id = %(s)s AND {which} RETURNING tokens, nanos)
UPDATE sweep_budgets SET held_tokens = held_tokens - (SELECT COALESCE(sum(tokens), 0) FROM d),
    held_nanos = held_nanos - (SELECT COALESCE(sum(nanos), 0) FROM d)
WHERE sweep_id = %(s)s
RETURNING {columns}
"""


class PostgresBudgets(BudgetBook):
    """:class:`~promptlooper.store.budgets.Budgets`' grants, settlements and drops, each one statement (see the module docstring)."""

    budgets_on_loop = True  # one autocommit statement each: made on the sweep's loop, once a turn

    def _one(self, sql: str, params: dict[str, Any]) -> Any:
        if self.readonly:
            raise ReadOnlyError("this store is open read-only (a dashboard): nothing can be changed from here")
        with self.cx.connection() as conn:  # type: ignore[attr-defined]
            return conn.execute(sql, params).fetchone()

    def budget_reserve(self, sweep_id: str, owner: str, asked: Sequence[tuple[int, int]], max_tokens: int | None,
                       max_nanos: int | None, expires_at: float) -> Grant:
        tokens, nanos = cumulative(asked)
        row = self._one(_RESERVE, {"s": sweep_id, "o": owner, "t": tokens, "c": nanos, "e": expires_at,
                                   "mt": UNLIMITED if max_tokens is None else max_tokens,
                                   "mc": UNLIMITED if max_nanos is None else max_nanos})
        if row is None:  # no budget row, or no hold of the caller's: nothing granted
            return Grant(0, self.budget_state(sweep_id), held=False)
        n, *state, held = row
        if n and not held:
            # Only if the hold vanished between the lock and the update (it cannot, under the
            # lock; kept so that a grant is never left held without a hold): give it back.
            self._one("UPDATE sweep_budgets SET held_tokens = held_tokens - %(t)s, held_nanos = held_nanos - %(c)s"
                      " WHERE sweep_id = %(s)s RETURNING 1", {"s": sweep_id, "t": tokens[n - 1], "c": nanos[n - 1]})
            return Grant(0, self.budget_state(sweep_id), held=False)
        return Grant(int(n), BudgetState(*(int(v) for v in state)), held=bool(held))

    def budget_settle(self, sweep_id: str, owner: str, settled: Settled, expires_at: float) -> tuple[BudgetState | None, bool]:
        row = self._one(_SETTLE, {"s": sweep_id, "o": owner, "rt": settled.release_tokens, "rc": settled.release_nanos,
                                  "st": settled.spent_tokens, "sc": settled.spent_nanos, "n": settled.calls, "e": expires_at})
        if row is None:
            return None, False
        *state, held = row
        return BudgetState(*(int(v) for v in state)), bool(held)

    def _drop_holds(self, sweep_id: str, which: str, value: Any) -> BudgetState | None:
        condition = {"expires_at < ?": "expires_at < %(v)s", "owner = ?": "owner = %(v)s"}[which]
        row = self._one(_DROP.format(which=condition, columns=_COLUMNS), {"s": sweep_id, "v": value})
        return BudgetState(*(int(v) for v in row)) if row else None


__all__ = ["PostgresBudgets"]
