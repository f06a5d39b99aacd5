"""A process that claims goes back to claiming nothing once no other sharer has been live for a
while, and that keeps engine/claims.py's invariant: a key is never called unclaimed by one process
and claimed by another. On both backends, with real stores and two or more CallClaims in one test.

The adversarial case is a newcomer that joins just as the claiming process decides to go solo:
the decision is written in a transaction that also reads who else is live, and the process stops
claiming only if nobody else was (a newcomer that joins afterwards waits until it claims again).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import open_gate, until

from promptlooper.engine.claims import CallClaims
from promptlooper.store import CacheEntry, open_store
from promptlooper.store.claims import ClaimTick


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "pl.db") if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


def _entry(key: str) -> CacheEntry:
    return CacheEntry(key, "http://x", "m", {"messages": []}, f"reply to {key}", 3, 4, 5.0)




def test_a_process_left_alone_stops_claiming_and_claims_again_when_another_comes(location: str) -> None:
    out: set[str] = set()  # the keys `first` has out now, unclaimed

    async def main() -> None:
        first = CallClaims(open_store(location), lambda: (sorted(out), ()), ttl=30, tick=0.02, solo_tick=0.02,
                           solo_after=0.2)
        second = CallClaims(open_store(location), lambda: ((), ()), ttl=30, tick=0.02, solo_tick=0.02)
        await first.start()
        await second.start()
        third: CallClaims | None = None
        try:
            await until(lambda: first.claiming and second.claiming)
            assert await first.acquire("claimed-then", open_gate) is None
            first.finished("claimed-then", ok=False)
            await second.close()
            await until(lambda: not first.claiming, 5)  # alone for solo_after: no claims from here
            out.add("called-alone")  # a call it makes now, unclaimed
            third = CallClaims(open_store(location), lambda: ((), ()), ttl=30, tick=0.02, solo_tick=0.02)
            await third.start()
            # The newcomer must not claim the key `first` is calling unclaimed: it waits for
            # `first` to claim again, which claims its calls out first.
            waiting = asyncio.ensure_future(third.acquire("called-alone", open_gate))
            await until(lambda: first.claiming, 5)
            await asyncio.sleep(0.2)
            assert not waiting.done(), "the newcomer claimed a key the other process was calling"
            store = open_store(location)
            try:
                store.write_results([], cache=[_entry("called-alone")])
            finally:
                store.close()
            first.finished("called-alone", ok=True)
            assert await asyncio.wait_for(waiting, 5) == ("reply to called-alone", 3, 4, 5.0)
        finally:
            await first.close()
            if third is not None:
                await third.close()

    asyncio.run(main())


class HeldTick:
    """A real store whose first tick that says "not claiming" stops before its transaction until
    the test lets it go: the moment a claiming process decides to go solo, held open."""

    def __init__(self, location: str) -> None:
        self.store = open_store(location)
        self.armed = False
        self.entered = threading.Event()
        self.proceed = threading.Event()

    def claims_tick(self, tick: ClaimTick) -> Any:
        if self.armed and tick.claiming is False and not self.entered.is_set():
            self.entered.set()
            assert self.proceed.wait(10)
        return self.store.claims_tick(tick)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_newcomer_joining_while_the_process_decides_to_go_solo_is_seen_and_no_key_is_called_twice(
        location: str) -> None:
    held = HeldTick(location)

    async def main() -> None:
        first = CallClaims(held, lambda: ((), ()), ttl=30, tick=0.02, solo_tick=0.02, solo_after=0.3)  # type: ignore[arg-type]
        second = CallClaims(open_store(location), lambda: ((), ()), ttl=30, tick=0.02, solo_tick=0.02)
        await first.start()
        await second.start()
        newcomer: CallClaims | None = None
        try:
            await until(lambda: first.claiming and second.claiming)
            await second.close()
            held.armed = True  # `first` claims on for solo_after yet
            # `first` is alone; its tick that says "not claiming" waits, not yet written.
            assert await asyncio.to_thread(held.entered.wait, 5)
            newcomer = CallClaims(open_store(location), lambda: ((), ()), ttl=30, tick=0.02, solo_tick=0.02)
            await newcomer.start()  # sees `first` claiming (its row as it was): claims at once
            assert newcomer.claiming
            assert await asyncio.wait_for(newcomer.acquire("K", open_gate), 5) is None  # the newcomer calls K
            # `first` must not call K unclaimed: it still claims until a tick saw nobody else.
            assert first.claiming
            calling = asyncio.ensure_future(first.acquire("K", open_gate))
            held.proceed.set()  # the tick is written, and sees the newcomer
            await asyncio.sleep(0.3)
            assert first.claiming, "went solo though the newcomer was there"
            assert not calling.done(), "K was given to both"
            newcomer.finished("K", ok=True)
            store = open_store(location)
            try:
                store.write_results([], cache=[_entry("K")])
            finally:
                store.close()
            assert await asyncio.wait_for(calling, 5) == ("reply to K", 3, 4, 5.0)  # a cache hit for `first`
        finally:
            held.proceed.set()
            await first.close()
            if newcomer is not None:
                await newcomer.close()

    asyncio.run(main())
