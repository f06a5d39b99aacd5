"""A budget several processes spend together: every call reserved in the store before it goes out.

Workers sharing a sweep (:mod:`promptlooper.workers`) spend one budget. Reading back what the
others have spent lets each of them start calls against money already promised to calls in
flight elsewhere (7–15 calls over the budget were measured with 6 in flight). So here, as a
bank holds an amount on a card before the charge, each call is paid for in advance:

* **Estimate** (:meth:`SharedBudget.ticket`): input tokens at most the bytes of the request's
  messages as JSON (and of its tools: prompt tokens too) — a byte-level BPE token is at least one
  byte, and the JSON's framing stands for each message's template tokens — plus output tokens at most the request's ``max_tokens``; priced with the model's price.
  A request without ``max_tokens`` has no bound: its output is estimated by the mean of this
  process's replies of that model so far (``DEFAULT_OUTPUT`` before the first), so such calls
  can cost more than reserved.
* **Reserve** (:meth:`SharedBudget.reserve`), once the call has its slot: granted only while the
  sweep's ``spent + held + estimate`` stays within the budget, atomically across processes
  (:mod:`promptlooper.store.budgets`). The reservations of one loop turn go out in one store
  write (a :class:`~promptlooper.coalescing.Coalescer`, as call claims do): on PostgreSQL one
  statement, awaited on the loop through an asyncio connection of its own; on SQLite from a
  thread of its own (its write may wait for another process's batch, which the loop must not).
* **Settle / release**: a reply turns its reservation into its real cost; a call that failed or
  was abandoned lets it go. Both are queued and written with the next reservation (or by the
  tick, every ``TICK``), which also renews this process's hold — except a reply that cost more
  than its reservation: it is written at once (:meth:`SharedBudget.write_now`, one write for a
  loop turn's), and its call keeps its slot until then (engine/calls.py). Queued, its excess
  would be invisible to the other processes, and the slot it freed could carry a call granted
  from credit without a write: the excess nobody saw grew with every reply of the last tick
  (13 replies of 204 tokens were served against a 2,000-token budget that 4 slots bound to 12).
  Written before the slot is free, what the store does not know yet is at most the calls out.
* **Credit**: what a settled call did not use of its estimate, a failed call's estimate, and as
  much again as a turn's calls asked for (if the budget has room) stay held by this process as
  credit; a call it covers is granted at once, without a write (a reservation waited 20–100 ms
  under load on PostgreSQL when each turn wrote; 2–20 ms with credit). Credit is used only while
  the hold is surely alive (renewed within ``ttl / 2``), and what is idle goes back every tick.
  The store's ``spent + held`` never counts less than is spent, promised or credited. Credit is
  spent only while the budget row last read has room for it (``spent + held`` within the limit):
  replies that cost more than reserved may have used the money it stands for.
* **Refused**: while the calls out elsewhere may still come in under their estimates, a refused
  call waits for them (the tick re-reads the budget); once even the spend already settled leaves
  no room for it (``spent + estimate > limit``), the budget is reached: ``on_exhausted`` pauses
  (or stops) the sweep, as a single process does when its spend reaches the budget.
* **A process killed** holding reservations stops renewing its hold; after ``ttl`` (the chunk's
  lease) the next process that reaps frees it, so the others can spend it. A process that stalled
  that long and finds its hold reaped counts its outstanding calls' estimates as freed (the
  reaper freed them) and joins again with an empty hold.

So with estimates that are upper bounds, the sweep's spend stays within the budget, whatever the
number of workers; and the spend beyond it is at most what the calls out at once (every worker's
slots) cost over their estimates.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

from ..coalescing import Coalescer
from ..hashing import canonical_json
from ..providers.pricing import cost
from ..store.backend import StoreBackend
from ..store.budgets import NANOS, BudgetState, Grant, Settled

TICK = 0.1  # seconds between the writes that renew this process's hold, settle calls and re-read the budget
DEFAULT_OUTPUT = 256  # tokens a reply without max_tokens is reserved for before any reply of its model landed


class Ticket:
    """One call's reservation: its estimate, and whether the store granted it."""

    __slots__ = ("tokens", "nanos", "granted", "orphan", "settled")

    def __init__(self, tokens: int, nanos: int):
        self.tokens = tokens
        self.nanos = nanos
        self.granted = False
        self.orphan = False  # granted under a hold that was reaped: its estimate was freed already
        self.settled = False  # its reply counted: nothing is released for it any more


def _nbytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


class SharedBudget:
    """This process's reservations against a shared sweep's budget (see the module docstring).

    ``limits`` gives the sweep's budget now (``max_tokens``, ``max_cost``; a resume may have raised
    it), ``price`` an (endpoint, model)'s price, ``on_exhausted`` is called (on the loop) when a
    call is refused for good.
    """

    def __init__(self, store: StoreBackend, sweep_id: str, owner: str, *, limits: Callable[[], dict[str, Any]],
                 price: Callable[[str, str], tuple[float, float]], on_exhausted: Callable[[], None], ttl: float,
                 tick: float = TICK, is_open: Callable[[], bool] = lambda: True):
        self.store = store
        self.sweep_id = sweep_id
        self.owner = owner
        self.limits = limits
        self.price = price
        self.on_exhausted = on_exhausted
        self.is_open = is_open  # False while the sweep is paused or stopping: a waiting call goes back to its gate
        self.ttl = ttl
        self.tick = tick
        self.state = BudgetState()  # the sweep's budget row as of this process's last write
        # PostgreSQL: an asyncio connection of the sweep's own; SQLite: None, writes from one thread.
        self._link = store.budget_link() if store is not None else None
        self._lock = asyncio.Lock()  # the link's writes, one at a time (the thread's are anyway)
        self._batches: Coalescer[Ticket, bool] = Coalescer(self._reserve_batch)
        self._writes: Coalescer[int, bool] = Coalescer(self._write_pending)  # write_now()'s, one per loop turn
        self._asked = 0  # write_now()'s keys
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="promptlooper-budget")
        self._outstanding: set[Ticket] = set()  # granted, not settled nor released yet
        # Held in the store, given to no call yet (tokens, nanos): what settled calls did not use of
        # their estimates, failed calls' estimates, and what a reservation got beyond its calls.
        # A call it covers goes out without a write; the tick gives the rest back.
        self._credit = [0, 0]
        self._pending = [0, 0, 0, 0, 0]  # to write: estimates released (tokens, nanos), spent (tokens, nanos), calls
        self._means: dict[tuple[str, str], list[int]] = {}  # (endpoint, model) -> [tokens out, replies]
        self._changed = asyncio.Event()  # set (and replaced) whenever the budget row was read again
        self._waiting = 0  # refused calls waiting for the calls out to settle
        self._must_join = True
        self._renewed = self._reaped = 0.0
        self._task: asyncio.Task[None] | None = None
        self._warned = False
        self.granted = self.refused = 0  # reservations, for tests and benchmarks

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Join the sweep's budget (a hold of this process's), and tick until :meth:`close`."""
        try:
            await self._join()
        except Exception as exc:  # noqa: BLE001 - the store away: the first reservation (or tick) joins
            self._trouble(exc)
        self._task = asyncio.ensure_future(self._ticker())

    async def close(self) -> None:
        """Write what is pending and free what this process still holds (after the sweep's calls ended)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            self._give_back_credit()
            await self._settle(self._take())
            await self._call("budget_leave", self.sweep_id, self.owner)
        except Exception as exc:  # noqa: BLE001 - its hold expires anyway; the sweep's results are written
            self._trouble(exc)
        finally:
            self._executor.shutdown(wait=True)
            if self._link is not None:
                with contextlib.suppress(Exception):
                    await self._link.aclose()

    # ------------------------------------------------------------------ the call path
    def ticket(self, endpoint: str, model: str, messages_json: str, params: dict[str, Any]) -> Ticket:
        """A call's estimate (see the module docstring); nothing is reserved yet. ``messages_json``
        is the canonical JSON of its messages: its bytes also cover each message's framing."""
        tokens_in = _nbytes(messages_json)
        if params.get("tools"):
            tokens_in += _nbytes(canonical_json(params["tools"]))
        out = params.get("max_tokens") or params.get("max_completion_tokens")
        if not isinstance(out, int) or isinstance(out, bool) or out <= 0:
            seen = self._means.get((endpoint, model))
            out = math.ceil(seen[0] / seen[1]) if seen else DEFAULT_OUTPUT
        return Ticket(tokens_in + out, math.ceil(cost(tokens_in, out, self.price(endpoint, model)) * NANOS))

    async def reserve(self, ticket: Ticket) -> bool:
        """True once ``ticket`` is held for this process; False if the budget is reached (after
        ``on_exhausted``), or if the sweep paused or is stopping while the call waited (it waits at
        the sweep's gate instead). A store that cannot be reached is waited for: no call goes out
        unpaid."""
        if self._from_credit(ticket):
            return True
        while True:
            try:
                if ticket.granted or await self._batches.get(ticket):
                    return True
            except Exception as exc:  # noqa: BLE001 - the store away (a restart): wait for it
                self._trouble(exc)
            else:
                self.refused += 1
                if self._beyond(ticket):
                    self.on_exhausted()
                    return False
            self._waiting += 1
            try:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 2 * self.tick)
            finally:
                self._waiting -= 1
            if not self.is_open():
                return False

    def settle(self, ticket: Ticket, endpoint: str, model: str, tokens_in: int, tokens_out: int) -> bool:
        """The reply landed: its reservation becomes its real cost (written with the next write).
        True if it cost more than was reserved for it (or its hold was reaped): the caller then
        writes it with :meth:`write_now` before its slot is free (see the module docstring).

        Of its estimate, the part the reply cost leaves the hold when the spend is written (so
        that the store's ``spent + held`` never counts less than is spent or promised); the rest
        becomes credit at once, for the next call."""
        seen = self._means.setdefault((endpoint, model), [0, 0])
        seen[0] += tokens_out
        seen[1] += 1
        tokens = tokens_in + tokens_out
        nanos = round(cost(tokens_in, tokens_out, self.price(endpoint, model)) * NANOS)
        pending, credit = self._pending, self._credit
        if ticket.granted and not ticket.orphan:
            used_t, used_c = min(tokens, ticket.tokens), min(nanos, ticket.nanos)
            pending[0] += used_t
            pending[1] += used_c
            credit[0] += ticket.tokens - used_t
            credit[1] += ticket.nanos - used_c
        pending[2] += tokens
        pending[3] += nanos
        pending[4] += 1
        ticket.settled = True
        self._outstanding.discard(ticket)
        return ticket.orphan or tokens > ticket.tokens or nanos > ticket.nanos

    async def write_now(self) -> None:
        """Write what is pending now, with the other writes asked for in this loop turn; a store
        that fails is warned about, and the tick writes it later."""
        self._asked += 1
        try:
            await self._writes.get(self._asked)
        except Exception as exc:  # noqa: BLE001 - the reply is good; only the store is away
            self._trouble(exc)

    def release(self, ticket: Ticket) -> None:
        """The call failed or was abandoned: its reservation becomes credit (nothing was spent)."""
        if ticket.settled:
            return  # its reply counted (the call was abandoned while its excess was written)
        if ticket.granted and not ticket.orphan:
            self._credit[0] += ticket.tokens
            self._credit[1] += ticket.nanos
        self._outstanding.discard(ticket)

    def _from_credit(self, ticket: Ticket) -> bool:
        """Grant ``ticket`` from credit, without a write: only while this process's hold is surely
        still there (renewed within half its ``ttl``: a hold is reaped only past it)."""
        credit = self._credit
        if (self._must_join or credit[0] < ticket.tokens or credit[1] < ticket.nanos
                or time.monotonic() - self._renewed > self.ttl / 2 or self._overdrawn()):
            return False
        credit[0] -= ticket.tokens
        credit[1] -= ticket.nanos
        ticket.granted = True
        self._outstanding.add(ticket)
        self.granted += 1
        return True

    def _give_back_credit(self) -> None:
        """Idle credit goes back to the store with the next write (others may need it)."""
        self._pending[0] += self._credit[0]
        self._pending[1] += self._credit[1]
        self._credit = [0, 0]

    # ------------------------------------------------------------------ decisions
    def _limits(self) -> tuple[int | None, int | None]:
        budget = self.limits()
        max_tokens, max_cost = budget.get("max_tokens"), budget.get("max_cost")
        return (int(max_tokens) if max_tokens else None, math.floor(max_cost * NANOS) if max_cost else None)

    def _overdrawn(self) -> bool:
        """Has spend beyond its estimates used money held (credit included), as last read?"""
        s = self.state
        return self._past(s.spent_tokens + s.held_tokens, s.spent_nanos + s.held_nanos)

    def _beyond(self, ticket: Ticket) -> bool:
        """Would ``ticket`` exceed the budget even if every call out now cost nothing?"""
        s = self.state
        return self._past(s.spent_tokens + ticket.tokens, s.spent_nanos + ticket.nanos)

    def _past(self, tokens: int, nanos: int) -> bool:
        max_tokens, max_nanos = self._limits()
        return bool((max_tokens is not None and tokens > max_tokens) or (max_nanos is not None and nanos > max_nanos))

    # ------------------------------------------------------------------ store writes
    async def _call(self, name: str, *args: Any) -> Any:
        # Every write of this process's budget goes one at a time, in order: through the link (the
        # lock) or on the one thread of its own, so each result says how things stood after the
        # previous one (a hold reaped is noticed before anything else is written for it).
        if self._link is not None:
            async with self._lock:
                return await getattr(self._link, name)(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, getattr(self.store, name), *args)

    def _take(self) -> Settled:
        pending, self._pending = self._pending, [0, 0, 0, 0, 0]
        return Settled(*pending)

    async def _join(self) -> None:
        sent = time.monotonic()
        state = await self._call("budget_join", self.sweep_id, self.owner, time.time() + self.ttl)
        if state is not None:
            self.state = state
        self._must_join = False
        self._renewed = sent

    async def _settle(self, settled: Settled) -> None:
        """Write ``settled`` (and renew the hold); put back if the store fails before it is written."""
        sent = time.monotonic()  # the hold's new expiry counts from here
        try:
            result = await self._call("budget_settle", self.sweep_id, self.owner, settled, time.time() + self.ttl)
        except Exception:
            self._restore(settled)
            raise
        self._renewed = sent
        self._read(*result)

    async def _write_pending(self, asked: list[int]) -> dict[int, bool]:
        await self._settle(self._take())  # in order after any write already under way (see _call)
        return dict.fromkeys(asked, True)

    async def _reserve_batch(self, tickets: list[Ticket]) -> dict[Ticket, bool]:
        """A loop turn's reservations, in one write (joining again first if the hold was reaped,
        and writing what settled since the last write, so that the grant counts it)."""
        if self._must_join:
            await self._join()
        # Credit that came back meanwhile (and tickets granted by a batch whose write then failed).
        waiting = [t for t in tickets if not t.granted and not self._from_credit(t)]
        if not waiting:
            return {t: True for t in tickets}
        settled = self._take()
        max_tokens, max_nanos = self._limits()
        # As much again, as credit for the calls of the next turns, if the budget has room for it
        # (asked after the calls: the grant is a prefix).
        largest = max(waiting, key=lambda t: t.tokens)
        asked = [(t.tokens, t.nanos) for t in waiting] + [(largest.tokens, largest.nanos)] * len(waiting)
        sent = time.monotonic()
        try:
            after, grant = await self._call("budget_turn", self.sweep_id, self.owner, settled, asked, max_tokens,
                                            max_nanos, time.time() + self.ttl)
        except Exception:
            self._restore(settled)  # the turn's transaction rolled back: written with the next one
            raise
        self._renewed = sent
        self._read(*after)
        extra = grant.granted - len(waiting)
        if extra > 0 and grant.held:
            self._credit[0] += extra * largest.tokens
            self._credit[1] += extra * largest.nanos
        self._granted(waiting, grant)
        return {t: t.granted for t in tickets}

    def _granted(self, tickets: list[Ticket], grant: Grant) -> None:
        if grant.state is not None:
            self.state = grant.state
        if not grant.held:
            self._reaped_alive()
        for ticket in tickets[:grant.granted]:
            ticket.granted = True
            self._outstanding.add(ticket)
        self.granted += min(grant.granted, len(tickets))
        self._wake()

    def _read(self, state: BudgetState | None, held: bool) -> None:
        if state is not None:
            self.state = state
        if not held:
            self._reaped_alive()

    def _reaped_alive(self) -> None:
        """This process's hold was reaped (it stalled past ``ttl``): the reaper freed every estimate
        it held, so none of them is released again; it joins again with an empty hold."""
        for ticket in self._outstanding:
            ticket.orphan = True
        self._outstanding.clear()
        self._pending[0] = self._pending[1] = 0
        self._credit = [0, 0]
        self._must_join = True

    def _restore(self, settled: Settled) -> None:
        for i, value in enumerate((settled.release_tokens, settled.release_nanos, settled.spent_tokens,
                                   settled.spent_nanos, settled.calls)):
            self._pending[i] += value

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            try:
                await self._step()
            except Exception as exc:  # noqa: BLE001 - a store that failed once may answer the next tick
                self._trouble(exc)

    async def _step(self) -> None:
        if self._must_join:
            await self._join()
        now = time.monotonic()
        self._give_back_credit()
        if any(self._pending) or self._waiting or now - self._renewed > self.ttl / 4:
            await self._settle(self._take())
        if self._waiting or now - self._reaped > self.ttl / 2:
            self._reaped = now
            state = await self._call("budget_reap", self.sweep_id, time.time())
            if state is not None:
                self.state = state
        self._wake()

    def _trouble(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(f"promptlooper: the shared budget cannot be reached ({type(exc).__name__}: {exc}); "
                          "calls wait for it", stacklevel=2)


__all__ = ["DEFAULT_OUTPUT", "TICK", "SharedBudget", "Ticket"]
