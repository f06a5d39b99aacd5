"""A shared sweep's budget, reserved before each call, at the store's interface, on both backends.

Adversarial cases first: many processes' connections racing for the last of a budget (no two
take it), a holder that dies (its hold is freed by whoever reaps it, once), a holder reaped while
it still lives (its late settlement must not free its estimates a second time), and a reply that
cost more than its estimate.
"""

from __future__ import annotations

import asyncio
import threading
import time

from backends import Opener

from promptlooper.store.backend import StoreBackend
from promptlooper.store.budgets import BudgetState, Settled
from promptlooper.store.chunks import chunk_ranges
from promptlooper.store.postgres import PostgresStore

LATER = 1e12  # an expiry no test reaches


def _sweep(store: StoreBackend) -> str:
    eid = store.upsert_experiment("proj", "exp", {"name": "exp"})
    return store.queue_sweep(eid, "grid", 12, 0, {"workers": True}, chunk_ranges(4, 3, 3), 3)


def _consistent(store: StoreBackend, sid: str) -> BudgetState:
    """The budget row's ``held`` is the sum of the holds, and nothing is negative."""
    state = store.budget_state(sid)
    assert state is not None
    holds = store.budget_holds(sid)
    assert (state.held_tokens, state.held_nanos) == (sum(h["tokens"] for h in holds), sum(h["nanos"] for h in holds))
    assert min(state.held_tokens, state.held_nanos, state.spent_tokens, state.spent_nanos) >= 0
    return state


def test_racing_processes_never_hold_more_than_the_budget_together(open_backend: Opener) -> None:
    first = open_backend()
    sid = _sweep(first)
    limit_tokens, limit_nanos = 1000, 7_000
    owners = [f"w{i}" for i in range(6)]
    stores = [open_backend() for _ in owners]  # a connection (pool) each, as separate processes have
    for store, owner in zip(stores, owners, strict=True):
        store.budget_join(sid, owner, LATER)
    granted: dict[str, list[tuple[int, int]]] = {o: [] for o in owners}
    start = threading.Barrier(len(owners))

    def reserve(store: StoreBackend, owner: str) -> None:
        start.wait()
        for round_ in range(40):
            asked = [(7 + (round_ + i) % 5, 31 + (i * 13) % 40) for i in range(3)]  # uneven estimates
            grant = store.budget_reserve(sid, owner, asked, limit_tokens, limit_nanos, LATER)
            assert grant.held and grant.state is not None
            granted[owner] += asked[:grant.granted]

    threads = [threading.Thread(target=reserve, args=(s, o)) for s, o in zip(stores, owners, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = _consistent(first, sid)
    total_tokens = sum(t for g in granted.values() for t, _ in g)
    total_nanos = sum(c for g in granted.values() for _, c in g)
    assert (state.held_tokens, state.held_nanos) == (total_tokens, total_nanos)  # every grant counted, once
    assert total_tokens <= limit_tokens and total_nanos <= limit_nanos
    # And the budget was used: a grant was refused only when the next estimate did not fit (tokens
    # bind here: ~110 calls of 7-11 tokens reach 1000 before their 31-70 nanos reach 7000).
    assert total_tokens > limit_tokens - 11
    by_owner = {h["owner"]: (h["tokens"], h["nanos"]) for h in first.budget_holds(sid)}
    assert by_owner == {o: (sum(t for t, _ in g), sum(c for _, c in g)) for o, g in granted.items()}


def test_settling_frees_the_estimate_and_counts_the_real_cost_even_above_it(open_backend: Opener) -> None:
    store = open_backend()
    sid = _sweep(store)
    store.budget_join(sid, "a", LATER)
    assert store.budget_reserve(sid, "a", [(40, 400), (40, 400), (40, 400)], 100, None, LATER).granted == 2
    # One call cost 25 tokens (less than its estimate), the other 78 (more: no max_tokens bound held).
    state, held = store.budget_settle(sid, "a", Settled(80, 800, 103, 1030, 2), LATER)
    assert held and state == BudgetState(103, 1030, 0, 0, 2)
    # Over the limit now: nothing more fits, however small.
    assert store.budget_reserve(sid, "a", [(1, 1)], 100, None, LATER).granted == 0
    _consistent(store, sid)


def test_a_dead_holders_reservations_are_freed_once_by_whoever_reaps_them(open_backend: Opener) -> None:
    a, b, c = open_backend(), open_backend(), open_backend()
    sid = _sweep(a)
    now = time.time()
    a.budget_join(sid, "dead", now + 0.2)
    b.budget_join(sid, "alive", LATER)
    c.budget_join(sid, "other", LATER)
    assert a.budget_reserve(sid, "dead", [(50, 0)], 60, None, now + 0.2).granted == 1  # then killed -9
    assert b.budget_reserve(sid, "alive", [(20, 0)], 60, None, LATER).granted == 0  # the dead one holds it
    time.sleep(0.3)
    # Two reapers at once: the hold is freed once, whichever wins.
    states: list[BudgetState | None] = []
    threads = [threading.Thread(target=lambda s=s: states.append(s.budget_reap(sid, time.time()))) for s in (b, c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _consistent(a, sid).held_tokens == 0
    assert [h["owner"] for h in a.budget_holds(sid)] == ["alive", "other"]
    assert b.budget_reserve(sid, "alive", [(20, 0), (20, 0), (20, 0), (20, 0)], 60, None, LATER).granted == 3


def test_a_holder_reaped_while_alive_does_not_free_its_estimates_twice(open_backend: Opener) -> None:
    slow, other = open_backend(), open_backend()
    sid = _sweep(slow)
    slow.budget_join(sid, "slow", time.time() + 0.1)
    other.budget_join(sid, "other", LATER)
    assert slow.budget_reserve(sid, "slow", [(30, 300)], 100, None, time.time() + 0.1).granted == 1
    assert other.budget_reserve(sid, "other", [(30, 300)], 100, None, LATER).granted == 1
    time.sleep(0.2)  # "slow" stalled past its expiry
    other.budget_reap(sid, time.time())
    # Its call ends now: the real cost counts, but the estimate was freed by the reaper already.
    state, held = slow.budget_settle(sid, "slow", Settled(30, 300, 12, 120, 1), LATER)
    assert not held and state == BudgetState(12, 120, 30, 300, 1)
    # It gets nothing until it joins again (then from an empty hold).
    grant = slow.budget_reserve(sid, "slow", [(10, 0)], 100, None, LATER)
    assert grant.granted == 0 and not grant.held
    slow.budget_join(sid, "slow", LATER)
    assert slow.budget_reserve(sid, "slow", [(10, 0)], 100, None, LATER).granted == 1
    _consistent(slow, sid)


def test_leaving_frees_what_is_still_held_and_limits_are_per_measure(open_backend: Opener) -> None:
    store = open_backend()
    sid = _sweep(store)
    store.budget_join(sid, "a", LATER)
    # No token limit, a cost limit: only the cost decides.
    assert store.budget_reserve(sid, "a", [(10**6, 10)] * 5, None, 35, LATER).granted == 3
    state = store.budget_leave(sid, "a")
    assert state is not None and state.held_nanos == 0 and store.budget_holds(sid) == []
    assert store.budget_reserve(sid, "a", [(1, 1)], None, 35, LATER).held is False  # left: must join again


def test_sweeps_on_postgresql_reserve_through_an_asyncio_link_as_atomically(pg_url: str) -> None:
    # What a worker's loop awaits (store/postgres/budgets.py BudgetLink): the same statements, on
    # asyncio connections of their own; six of them racing for the last of the budget.
    store = PostgresStore(pg_url)
    try:
        sid = _sweep(store)

        async def race() -> list[int]:
            links = [store.budget_link() for _ in range(6)]
            for i, link in enumerate(links):
                await link.budget_join(sid, f"w{i}", LATER)

            async def reserve(i: int) -> int:
                won = 0
                for _ in range(30):
                    grant = await links[i].budget_reserve(sid, f"w{i}", [(9, 0)] * 2, 500, None, LATER)
                    won += grant.granted
                    await links[i].budget_settle(sid, f"w{i}", Settled(), LATER)  # a renewal, interleaved
                return won

            try:
                return await asyncio.gather(*(reserve(i) for i in range(6)))
            finally:
                for link in links:
                    await link.aclose()

        won = asyncio.run(race())
        state = _consistent(store, sid)
        assert state.held_tokens == 9 * sum(won) <= 500 and sum(won) == 500 // 9
        assert sorted(h["tokens"] for h in store.budget_holds(sid)) == sorted(9 * w for w in won)
    finally:
        store.close()
