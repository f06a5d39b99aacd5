"""A shared sweep's budget, reserved before each call: what every worker may still spend.

Part of :class:`~promptlooper.store.Store` (the PostgreSQL store runs the same bookkeeping in
single statements: :mod:`.postgres.budgets`). Workers of one sweep spend one budget; reading back
what the others *have spent* lets every worker start calls on money already promised to the
calls in flight elsewhere. So a call is paid for before it goes out:

``sweep_budgets`` (sweep_id, spent_*, held_*, calls, last_grant)
    One row per sweep: what its settled calls cost (``spent``), what the calls out now may cost at
    most (``held``: the sum of their estimates), and how many calls settled. A reservation is
    granted only while ``spent + held + estimate <= limit``, checked and added in one write, so
    two processes never both take the last of it.
``budget_holds`` (sweep_id, owner, tokens, nanos, expires_at)
    The share of ``held`` each process holds. An owner renews ``expires_at`` while it lives; a
    hold past it (its process killed) is deleted by the next process that reaps, and its amount
    taken off ``held`` in the same write: the money it held is free again.

Cost is kept in whole nano-dollars (``nanos``): sums and differences of many reservations stay
exact, where floats would drift from zero. Limits come from the caller (the sweep's budget, which
``set_budget`` can raise while it runs); ``None`` is no limit on that measure.

A hold that vanished under a living owner (it stalled past the expiry and was reaped) is reported
(``held=False``): its amount was freed already, so the owner must not take it off again; it joins
again with an empty hold (:mod:`promptlooper.engine.budgets`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .db import Queries

NANOS = 1_000_000_000  # nano-dollars a dollar
UNLIMITED = 1 << 62  # a limit no sum reaches: "no limit" in one statement shape


@dataclass(frozen=True)
class BudgetState:
    """A sweep's budget row as of one write."""

    spent_tokens: int = 0
    spent_nanos: int = 0
    held_tokens: int = 0
    held_nanos: int = 0
    calls: int = 0  # calls settled (their real cost is in spent)


@dataclass(frozen=True)
class Grant:
    """The answer to one batch of reservations."""

    granted: int  # how many of the asked estimates, in order, are now held for the caller
    state: BudgetState | None  # None: the sweep has no budget row (never joined)
    held: bool = True  # False: the caller's hold was gone (reaped): nothing was granted


@dataclass(frozen=True)
class Settled:
    """What an owner's calls did since its last write: estimates to let go of, real spend to add."""

    release_tokens: int = 0
    release_nanos: int = 0
    spent_tokens: int = 0
    spent_nanos: int = 0
    calls: int = 0


def granted_prefix(state: BudgetState, asked: Sequence[tuple[int, int]], max_tokens: int | None,
                   max_nanos: int | None) -> tuple[int, int, int]:
    """How many of ``asked`` (tokens, nanos) fit, in order, and their sums: the grant rule."""
    limit_t = UNLIMITED if max_tokens is None else max_tokens
    limit_c = UNLIMITED if max_nanos is None else max_nanos
    used_t, used_c = state.spent_tokens + state.held_tokens, state.spent_nanos + state.held_nanos
    n = sum_t = sum_c = 0
    for tokens, nanos in asked:
        if used_t + sum_t + tokens > limit_t or used_c + sum_c + nanos > limit_c:
            break
        n, sum_t, sum_c = n + 1, sum_t + tokens, sum_c + nanos
    return n, sum_t, sum_c


def cumulative(asked: Sequence[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Running sums of the asked (tokens, nanos): a grant of the first k holds the k-th sums."""
    tokens: list[int] = []
    nanos: list[int] = []
    t = c = 0
    for dt, dc in asked:
        t, c = t + dt, c + dc
        tokens.append(t)
        nanos.append(c)
    return tokens, nanos


_STATE = "SELECT spent_tokens, spent_nanos, held_tokens, held_nanos, calls FROM sweep_budgets WHERE sweep_id = ?"


def _state(row: Any) -> BudgetState | None:
    return BudgetState(*(int(v or 0) for v in row)) if row else None


class BudgetBook(Queries):
    """What both backends' budget parts share: joining, reaping, leaving and reading. Each backend
    part (:class:`Budgets` here, ``PostgresBudgets``) grants, settles and drops holds its own way."""

    # Deletes the sweep's holds matching ``which`` (``"expires_at < ?"`` or ``"owner = ?"``) and
    # frees what they held, in one write: each backend's part.
    _drop_holds: Callable[[str, str, Any], BudgetState | None]

    def budget_join(self, sweep_id: str, owner: str, expires_at: float) -> BudgetState:
        """Make the sweep's budget row if it has none, and an empty hold for ``owner`` (or renew it)."""
        with self.cx.write() as c:
            c.execute("INSERT INTO sweep_budgets (sweep_id) VALUES (?) ON CONFLICT (sweep_id) DO NOTHING", (sweep_id,))
            c.execute("INSERT INTO budget_holds (sweep_id, owner, tokens, nanos, expires_at) VALUES (?,?,0,0,?)"
                      " ON CONFLICT (sweep_id, owner) DO UPDATE SET expires_at = excluded.expires_at",
                      (sweep_id, owner, expires_at))
            state = _state(c.execute(_STATE, (sweep_id,)).fetchone())
        assert state is not None
        return state

    def budget_reap(self, sweep_id: str, now: float) -> BudgetState | None:
        """Free the holds of the sweep's owners gone silent (``expires_at`` before ``now``)."""
        return self._drop_holds(sweep_id, "expires_at < ?", now)

    def budget_leave(self, sweep_id: str, owner: str) -> BudgetState | None:
        """``owner`` is done with the sweep: whatever it still holds is freed, its hold deleted."""
        return self._drop_holds(sweep_id, "owner = ?", owner)

    def budget_turn(self, sweep_id: str, owner: str, settled: Settled, asked: Sequence[tuple[int, int]],
                    max_tokens: int | None, max_nanos: int | None,
                    expires_at: float) -> tuple[tuple[BudgetState | None, bool], Grant]:
        """A sweep's writes of one loop turn, in one transaction (both or neither): ``budget_settle``,
        then ``budget_reserve`` (which so counts what just settled). PostgreSQL's link sends both in
        one round trip."""
        with self.cx.write():  # the two methods' writes join it
            after = self.budget_settle(sweep_id, owner, settled, expires_at)  # type: ignore[attr-defined]
            return after, self.budget_reserve(sweep_id, owner, asked, max_tokens, max_nanos, expires_at)  # type: ignore[attr-defined]

    def budget_state(self, sweep_id: str) -> BudgetState | None:
        """The sweep's budget row (None if no worker reserved for it)."""
        with self.cx.read() as c:
            return _state(c.execute(_STATE, (sweep_id,)).fetchone())

    def budget_holds(self, sweep_id: str) -> list[dict[str, Any]]:
        """Every owner's hold of the sweep (owner, tokens, nanos, expires_at): for tests and operators."""
        return list(self.db.query("SELECT owner, tokens, nanos, expires_at FROM budget_holds WHERE sweep_id = ? ORDER BY owner",
                                  [sweep_id]))


class Budgets(BudgetBook):
    """Reservations of a shared sweep's budget on SQLite (see the module docstring). Each method is
    one write transaction (``BEGIN IMMEDIATE``, which the grant's read-then-write relies on)."""

    def budget_link(self) -> None:
        """None: a sweep makes these writes from a thread of its own (a write may wait for another
        process's batch, which its event loop must not). PostgreSQL's part gives an asyncio link."""
        return None

    def budget_reserve(self, sweep_id: str, owner: str, asked: Sequence[tuple[int, int]], max_tokens: int | None,
                       max_nanos: int | None, expires_at: float) -> Grant:
        """Hold the longest prefix of ``asked`` (each a call's estimate: tokens, nano-dollars) that
        keeps ``spent + held`` within the limits, for ``owner``; its hold is renewed too."""
        with self.cx.write() as c:
            state = _state(c.execute(_STATE, (sweep_id,)).fetchone())
            if state is None:
                return Grant(0, None, held=False)
            if c.execute("UPDATE budget_holds SET expires_at = ? WHERE sweep_id = ? AND owner = ?",
                         (expires_at, sweep_id, owner)).rowcount != 1:
                return Grant(0, state, held=False)
            n, tokens, nanos = granted_prefix(state, asked, max_tokens, max_nanos)
            if n:
                c.execute("UPDATE sweep_budgets SET held_tokens = held_tokens + ?, held_nanos = held_nanos + ? WHERE sweep_id = ?",
                          (tokens, nanos, sweep_id))
                c.execute("UPDATE budget_holds SET tokens = tokens + ?, nanos = nanos + ? WHERE sweep_id = ? AND owner = ?",
                          (tokens, nanos, sweep_id, owner))
                state = BudgetState(state.spent_tokens, state.spent_nanos, state.held_tokens + tokens,
                                    state.held_nanos + nanos, state.calls)
        return Grant(n, state)

    def budget_settle(self, sweep_id: str, owner: str, settled: Settled, expires_at: float) -> tuple[BudgetState | None, bool]:
        """Let go of estimates and add real spend (calls that ended), renewing ``owner``'s hold:
        (the row after it, whether the hold was still there). Spend is added either way; a hold
        already reaped had its estimates freed by the reaper, so they are not taken off twice."""
        with self.cx.write() as c:
            held = c.execute("UPDATE budget_holds SET tokens = tokens - ?, nanos = nanos - ?, expires_at = ?"
                             " WHERE sweep_id = ? AND owner = ?",
                             (settled.release_tokens, settled.release_nanos, expires_at, sweep_id, owner)).rowcount == 1
            rt, rc = (settled.release_tokens, settled.release_nanos) if held else (0, 0)
            c.execute("UPDATE sweep_budgets SET held_tokens = held_tokens - ?, held_nanos = held_nanos - ?,"
                      " spent_tokens = spent_tokens + ?, spent_nanos = spent_nanos + ?, calls = calls + ? WHERE sweep_id = ?",
                      (rt, rc, settled.spent_tokens, settled.spent_nanos, settled.calls, sweep_id))
            return _state(c.execute(_STATE, (sweep_id,)).fetchone()), held

    def _drop_holds(self, sweep_id: str, which: str, value: Any) -> BudgetState | None:
        with self.cx.write() as c:
            dropped = c.execute(f"DELETE FROM budget_holds WHERE sweep_id = ? AND {which} RETURNING tokens, nanos",
                                (sweep_id, value)).fetchall()
            tokens, nanos = sum(r[0] for r in dropped), sum(r[1] for r in dropped)
            if tokens or nanos:
                c.execute("UPDATE sweep_budgets SET held_tokens = held_tokens - ?, held_nanos = held_nanos - ? WHERE sweep_id = ?",
                          (tokens, nanos, sweep_id))
            return _state(c.execute(_STATE, (sweep_id,)).fetchone())


__all__ = ["NANOS", "UNLIMITED", "BudgetBook", "BudgetState", "Budgets", "Grant", "Settled", "cumulative", "granted_prefix"]
