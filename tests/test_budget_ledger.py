"""A process's side of a shared budget (engine/budgets.py): what a call is reserved for (a bound of
its cost when the request bounds its reply, the mean reply of its model when it does not), and,
against a real store on both backends, a refused call waiting for the money a stalled process
held, and that process, reaped meanwhile, not freeing its estimates a second time; and a reply that
cost more than its reservation written before its call's slot carries another call."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers import open_gate

from promptlooper.engine.budgets import DEFAULT_OUTPUT, SharedBudget, Ticket
from promptlooper.engine.calls import CacheReader, CallExecutor
from promptlooper.hashing import canonical_json
from promptlooper.providers.registry import provider_for_url
from promptlooper.store import open_store
from promptlooper.store.budgets import NANOS, BudgetState
from promptlooper.store.chunks import chunk_ranges
from promptlooper.testing import FakeModel

pytestmark = pytest.mark.both_backends

PRICE = (2.5, 10.0)  # USD per million tokens in / out


def _budget() -> SharedBudget:
    return SharedBudget(None, "s", "o", limits=dict, price=lambda endpoint, model: PRICE,  # type: ignore[arg-type]
                        on_exhausted=lambda: None, ttl=10.0)


def _shared_sweep(db: str) -> tuple[Any, str]:
    """A store, and a sweep queued in it for workers: what a shared budget belongs to."""
    store = open_store(db)
    eid = store.upsert_experiment("proj", "exp", {"name": "exp"})
    return store, store.queue_sweep(eid, "grid", 12, 0, {"workers": True}, chunk_ranges(4, 3, 3), 3)


def test_a_bounded_request_is_reserved_at_its_bytes_plus_max_tokens_at_the_models_price() -> None:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Q: café?"}]
    text = canonical_json(messages)
    ticket = _budget().ticket("ep", "m", text, {"max_tokens": 50, "temperature": 0.2})
    nbytes = len(text.encode())  # "é" is two bytes: a token covers at least one
    assert nbytes > len(text)
    assert ticket.tokens == nbytes + 50
    assert ticket.nanos == -(-(nbytes * PRICE[0] + 50 * PRICE[1]) * NANOS // 1_000_000)  # rounded up


def test_tools_count_as_prompt_and_an_unbounded_reply_is_reserved_at_its_models_mean() -> None:
    budget = _budget()
    text = canonical_json([{"role": "user", "content": "weather in paris"}])
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    first = budget.ticket("ep", "m", text, {"tools": tools})
    assert first.tokens == len(text) + len(canonical_json(tools)) + DEFAULT_OUTPUT  # nothing seen yet
    for out in (100, 300):
        budget.settle(budget.ticket("ep", "m", text, {}), "ep", "m", 5, out)
    assert budget.ticket("ep", "m", text, {}).tokens == len(text) + 200
    assert budget.ticket("ep", "other", text, {}).tokens == len(text) + DEFAULT_OUTPUT  # per model


def test_a_call_waits_for_a_stalled_holder_to_be_reaped_and_the_stalled_one_frees_nothing_twice(db: str) -> None:
    store, sid = _shared_sweep(db)
    exhausted: list[str] = []

    def ledger(owner: str, ttl: float, tick: float) -> SharedBudget:
        return SharedBudget(open_store(db), sid, owner, limits=lambda: {"max_tokens": 100},
                            price=lambda endpoint, model: (0.0, 0.0), on_exhausted=lambda: exhausted.append(owner),
                            ttl=ttl, tick=tick)

    async def scenario() -> tuple[BudgetState, BudgetState]:
        stalled, alive = ledger("stalled", 0.3, 10.0), ledger("alive", 30.0, 0.05)  # "stalled" never renews
        await stalled.start()
        await alive.start()
        held = Ticket(40, 0)
        assert await stalled.reserve(held)
        # 40 + 80 > 100: the call waits (it is not the budget's end: 80 fits once the 40 is free),
        # until "alive" reaps the hold that "stalled" stopped renewing.
        assert await asyncio.wait_for(alive.reserve(Ticket(80, 0)), 5)
        after_reap = store.budget_state(sid)
        # "stalled" comes back: its reply (10 tokens) counts, its 40 are not freed again, and it
        # reserves again from a fresh hold.
        stalled.tick = 0.05
        stalled.settle(held, "ep", "m", 5, 5)
        assert await asyncio.wait_for(stalled.reserve(Ticket(5, 0)), 5)
        state = store.budget_state(sid)
        for ledger_ in (stalled, alive):
            await ledger_.close()
            ledger_.store.close()
        return after_reap, state

    try:
        after_reap, state = asyncio.run(scenario())
        assert after_reap is not None and after_reap.held_tokens == 80 and after_reap.spent_tokens == 0
        # Held: 80 ("alive"), and "stalled"'s new 5 with as much again reserved ahead as credit.
        assert state == BudgetState(spent_tokens=10, spent_nanos=0, held_tokens=80 + 5 + 5, held_nanos=0, calls=1)
        assert exhausted == []
        assert store.budget_holds(sid) == [] and store.budget_state(sid).held_tokens == 0  # type: ignore[union-attr]
    finally:
        store.close()


def test_a_call_waiting_for_room_goes_back_to_the_gate_when_the_sweep_pauses(db: str) -> None:
    store, sid = _shared_sweep(db)
    open_ = [True]
    exhausted: list[str] = []

    def ledger(owner: str) -> SharedBudget:
        return SharedBudget(open_store(db), sid, owner, limits=lambda: {"max_tokens": 100},
                            price=lambda endpoint, model: (0.0, 0.0), on_exhausted=lambda: exhausted.append(owner),
                            ttl=30.0, tick=0.05, is_open=lambda: open_[0])

    async def scenario() -> tuple[bool, bool]:
        holder, waiter = ledger("holder"), ledger("waiter")
        await holder.start()
        await waiter.start()
        assert await holder.reserve(Ticket(90, 0))  # its call out: 90 of the 100 promised
        waiting = asyncio.ensure_future(waiter.reserve(Ticket(20, 0)))  # fits once that call settles
        await asyncio.sleep(0.3)
        still_waiting = not waiting.done()
        open_[0] = False  # paused meanwhile: back to the gate, not "budget reached"
        got = await asyncio.wait_for(waiting, 2)
        for ledger_ in (holder, waiter):
            await ledger_.close()
            ledger_.store.close()
        return still_waiting, got

    try:
        still_waiting, got = asyncio.run(scenario())
        assert still_waiting and got is False and exhausted == []
    finally:
        store.close()


def test_a_reply_costlier_than_its_reservation_is_in_the_store_once_written_now(db: str) -> None:
    # Two members of one sweep's budget (two workers, or two chunks of one worker). A reply that
    # cost more than its reservation, written now (as a call does before giving up its slot), is
    # what the other member's next reservation is checked against: not the estimate it replaced.
    store, sid = _shared_sweep(db)
    exhausted: list[str] = []

    def ledger(owner: str) -> SharedBudget:
        return SharedBudget(open_store(db), sid, owner, limits=lambda: {"max_tokens": 200},
                            price=lambda endpoint, model: (0.0, 0.0), on_exhausted=lambda: exhausted.append(owner),
                            ttl=30.0, tick=10.0)  # no tick writes during the test

    async def scenario() -> tuple[bool, bool, BudgetState | None]:
        a, b = ledger("a"), ledger("b")
        await a.start()
        await b.start()
        ticket = Ticket(50, 0)
        assert await a.reserve(ticket)
        overran = a.settle(ticket, "ep", "m", 30, 150)  # 180 tokens against 50 reserved
        await a.write_now()
        state = store.budget_state(sid)
        # 180 spent leave no room for 50 more: the budget is reached, not granted on a stale 0.
        got = await b.reserve(Ticket(50, 0))
        for ledger_ in (a, b):
            await ledger_.close()
            ledger_.store.close()
        return overran, got, state

    try:
        overran, got, state = asyncio.run(scenario())
        assert overran is True
        assert state is not None and state.spent_tokens == 180
        assert got is False and exhausted == ["b"]
    finally:
        store.close()


def test_a_reply_within_its_reservation_needs_no_write_of_its_own() -> None:
    budget = _budget()
    ticket = Ticket(100, 10**9)
    ticket.granted = True
    assert budget.settle(ticket, "ep", "m", 20, 30) is False  # 50 of 100: credit, written with the next write



def test_a_call_that_cost_more_than_reserved_is_written_before_its_slot_carries_another(db: str) -> None:
    # One call slot; a server that ignores max_tokens, so every reply costs more than its
    # reservation. However the slot's calls are granted (the first one's reservation asks as much
    # again as credit, so the second goes out without a write), each call that leaves finds the
    # replies before it in the store: what another worker is checked against cannot lag behind
    # more than the calls out at that moment.
    store, sid = _shared_sweep(db)
    seen: list[int] = []  # the store's spend as each call reached the server

    def reply(body: dict[str, Any]) -> str:
        state = store.budget_state(sid)
        seen.append(state.spent_tokens if state is not None else 0)
        return " ".join(["word"] * 60)

    FakeModel("overrun", reply=reply)
    provider = provider_for_url("fake", "fake://overrun")

    async def sweep() -> list[int]:
        budget = SharedBudget(open_store(db), sid, "w", limits=lambda: {"max_tokens": 100_000},
                              price=lambda endpoint, model: (0.0, 0.0), on_exhausted=lambda: None, ttl=30.0, tick=10.0)
        await budget.start()
        calls = CallExecutor(CacheReader(store), lambda entry: None, global_limit=asyncio.Semaphore(1), gate=open_gate)
        calls.budget = budget
        results = await asyncio.gather(*(calls.call(provider, "fake-small", [{"role": "user", "content": f"q{i}"}],
                                                    {"max_tokens": 4}) for i in range(4)))
        await budget.close()
        budget.store.close()
        return [r.response.tokens_in + r.response.tokens_out for r in results]

    try:
        costs = asyncio.run(sweep())
        assert all(cost > 4 + 30 for cost in costs)  # each past its reservation (its bytes + 4)
        assert seen == [sum(costs[:i]) for i in range(4)]
        assert store.budget_state(sid).spent_tokens == sum(costs)  # type: ignore[union-attr]
    finally:
        store.close()


def test_credit_reserved_before_an_excess_was_written_is_not_spent_past_the_budget(db: str) -> None:
    # Credit is money held for calls to come, reserved while the budget had room for it. Once
    # replies that cost more than reserved have used that room (spent + held past the limit), the
    # credit is no longer there to spend: the next call waits for the store instead.
    store, sid = _shared_sweep(db)

    def ledger(owner: str) -> SharedBudget:
        return SharedBudget(open_store(db), sid, owner, limits=lambda: {"max_tokens": 300},
                            price=lambda endpoint, model: (0.0, 0.0), on_exhausted=lambda: None,
                            ttl=30.0, tick=10.0)  # no tick writes during the test

    async def scenario() -> tuple[int, BudgetState | None, bool]:
        a, b = ledger("a"), ledger("b")
        await a.start()
        await b.start()
        first = Ticket(50, 0)
        assert await a.reserve(first)  # 50, and 50 more as credit
        assert await b.reserve(Ticket(50, 0))  # the same: 200 of 300 held
        credit = a.granted
        if a.settle(first, "ep", "m", 30, 150):  # 180 spent where 50 was held
            await a.write_now()
        state = store.budget_state(sid)  # 180 spent + 150 held > 300
        try:
            granted = await asyncio.wait_for(a.reserve(Ticket(50, 0)), 0.5)
        except TimeoutError:
            granted = False
        for ledger_ in (a, b):
            await ledger_.close()
            ledger_.store.close()
        return credit, state, granted

    try:
        credit, state, granted = asyncio.run(scenario())
        assert credit == 1
        assert state is not None and (state.spent_tokens, state.held_tokens) == (180, 150)
        assert granted is False
    finally:
        store.close()
