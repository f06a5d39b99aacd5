"""While other processes sweep the store, the keys a sweep looks up ahead for its next runs are
claimed in that one batch (engine/claims.py, CallClaims.claim_ahead; engine/calls.py, prefetch):
the runs' calls then claim nothing more, a key another process claimed first is still waited for,
and the claims of runs that will not call (paused, stopped, redirected away) are released at the
next tick, not held until they expire. PostgreSQL only: claim batches are awaited on the loop
there (a SQLite sweep claims per loop turn, as before). Real stores (tests/pg.py), a FakeModel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from helpers import open_gate, until

from promptlooper.engine.calls import CacheReader, CallExecutor, call_key
from promptlooper.engine.claims import CallClaims
from promptlooper.hashing import canonical_json
from promptlooper.providers.registry import provider_for_url
from promptlooper.store import CacheEntry, open_store
from promptlooper.store.claims import ClaimResult
from promptlooper.store.postgres import PostgresStore
from promptlooper.testing import FakeModel

PARAMS = {"max_tokens": 8}


class CountingClaims(PostgresStore):
    """A claims store that records the keys of each claim batch awaited on the loop."""

    def __init__(self, url: str):
        super().__init__(url)
        self.batches: list[list[str]] = []

    async def aclaim_calls(self, owner: str, keys: Sequence[str], now: float, ttl: float) -> ClaimResult:
        self.batches.append(sorted(keys))
        return await super().aclaim_calls(owner, keys, now, ttl)




def _calls(name: str, n: int) -> tuple[Any, list[list[dict[str, str]]], list[str]]:
    provider = provider_for_url("fake", f"fake://{name}")
    messages = [[{"role": "user", "content": f"{name} question {i}"}] for i in range(n)]
    keys = [call_key(provider.identity, "fake-small", m, canonical_json(PARAMS))[0] for m in messages]
    return provider, messages, keys


def _entry(provider: Any, key: str, messages: list[dict[str, str]], text: str) -> CacheEntry:
    return CacheEntry(key, provider.identity, "fake-small", {"messages": messages, "params": PARAMS}, text, 3, 2, 5.0)


def _owners(url: str, keys: list[str]) -> dict[str, str]:
    store = open_store(url)
    try:
        return {row["key"]: row["owner"] for row in store.call_claims() if row["key"] in keys}
    finally:
        store.close()


def test_the_next_runs_are_claimed_in_one_batch_and_a_key_claimed_elsewhere_is_still_waited_for(pg_url: str) -> None:
    model = FakeModel("ahead", latency=0.05)
    provider, messages, keys = _calls("ahead", 8)
    reader_store = PostgresStore(pg_url)
    claims_store = CountingClaims(pg_url)
    written: list[CacheEntry] = []

    async def main() -> list[Any]:
        mine = CallClaims(claims_store, lambda: ((), ()), ttl=30, tick=0.02, solo_tick=0.02)
        other = CallClaims(open_store(pg_url), lambda: ((), ()), ttl=30, tick=0.02, solo_tick=0.02)
        await mine.start()
        await other.start()
        try:
            await until(lambda: mine.ahead_ready and other.claiming)
            assert await other.acquire(keys[0], open_gate) is None  # the other process calls the first key
            calls = CallExecutor(CacheReader(reader_store), written.append, global_limit=asyncio.Semaphore(8), gate=open_gate)
            calls.claims, calls.wants = mine, lambda config_id: True
            calls.prefetch(keys, ["c"] * len(keys))  # as Runner.prepare does for the next runs
            await asyncio.sleep(0)  # the batch is sent
            runs = [asyncio.ensure_future(calls.call(provider, "fake-small", m, PARAMS, key=k))
                    for m, k in zip(messages, keys, strict=True)]
            await asyncio.sleep(0.3)
            assert not runs[0].done(), "called a key another process holds"
            # Its reply lands: the first run gets it as a cache hit, paid by the other process.
            written_elsewhere = open_store(pg_url)
            try:
                written_elsewhere.write_results([], cache=[_entry(provider, keys[0], messages[0], "the other's reply")])
            finally:
                written_elsewhere.close()
            other.finished(keys[0], ok=True)
            return await asyncio.wait_for(asyncio.gather(*runs), 10)
        finally:
            await mine.close()
            await other.close()

    try:
        results = asyncio.run(main())
    finally:
        reader_store.close()
    assert results[0].cached and results[0].response.text == "the other's reply"
    assert [r.cached for r in results[1:]] == [False] * 7
    assert model.stats()["completions"] == 7 and len(written) == 7  # each key went out once in all
    # One batch for the eight runs; the one key it did not win was claimed again by its run.
    assert claims_store.batches[0] == sorted(keys), claims_store.batches
    assert claims_store.batches[1:] == [[keys[0]]], claims_store.batches


def test_keys_claimed_ahead_for_runs_dropped_before_their_call_are_released_at_the_next_tick(pg_url: str) -> None:
    FakeModel("dropped", latency=0.05)
    provider, messages, keys = _calls("dropped", 6)
    reader_store = PostgresStore(pg_url)
    wanted = {"kept": True, "dropped": True}

    async def main() -> None:
        mine = CallClaims(open_store(pg_url), lambda: ((), ()), ttl=30, tick=0.02, solo_tick=0.02)
        other = CallClaims(open_store(pg_url), lambda: ((), ()), ttl=30, tick=0.02, solo_tick=0.02)
        await mine.start()
        await other.start()
        try:
            await until(lambda: mine.ahead_ready and other.claiming)
            calls = CallExecutor(CacheReader(reader_store), lambda entry: None, global_limit=asyncio.Semaphore(8), gate=open_gate)
            calls.claims, calls.wants = mine, wanted.__getitem__
            # Three runs of a configuration that a redirect (or pause, stop, budget) then drops, three kept.
            calls.prefetch(keys, ["dropped"] * 3 + ["kept"] * 3)
            await until(lambda: set(_owners(pg_url, keys)) == set(keys), 5)
            wanted["dropped"] = False
            # Their claims go within a tick or so; the kept runs' claims stay (ttl 30: not by expiring).
            await until(lambda: set(_owners(pg_url, keys)) == set(keys[3:]), 2)
            await asyncio.sleep(0.2)
            assert set(_owners(pg_url, keys)) == set(keys[3:])
            # Another process now claims a dropped key at once, instead of waiting 30 s for it.
            assert await asyncio.wait_for(other.acquire(keys[0], open_gate), 2) is None
            other.finished(keys[0], ok=False)
            # A kept run still calls with the key claimed ahead for it: no claim of its own needed.
            result = await calls.call(provider, "fake-small", messages[3], PARAMS, key=keys[3])
            assert not result.cached
        finally:
            await mine.close()
            await other.close()

    try:
        asyncio.run(main())
    finally:
        reader_store.close()
    assert _owners(pg_url, keys) == {}  # every claim gone once both left


def test_a_key_claimed_ahead_whose_run_waited_for_a_call_that_failed_is_released_at_the_next_tick(pg_url: str) -> None:
    # A call of this process went out unclaimed (before another process came), the key was then
    # claimed ahead for a run, and that run waited for the call in flight instead of calling.
    # The call fails: nothing will be cached, so the claim must go now, not when it expires.
    FakeModel("fails", reply=[], latency=0.3)  # every call fails (not retried)
    provider, messages, keys = _calls("fails", 1)
    reader_store = PostgresStore(pg_url)

    async def main() -> None:
        mine = CallClaims(open_store(pg_url), lambda: ((), ()), ttl=30, tick=0.02, solo_tick=0.02)
        other = CallClaims(open_store(pg_url), lambda: ((), ()), ttl=30, tick=0.02, solo_tick=0.02)
        calls = CallExecutor(CacheReader(reader_store), lambda entry: None, global_limit=asyncio.Semaphore(8), gate=open_gate)
        first = asyncio.ensure_future(calls.call(provider, "fake-small", messages[0], PARAMS, key=keys[0]))
        await mine.start()
        await other.start()
        try:
            await until(lambda: mine.ahead_ready and other.claiming)
            assert not first.done()
            calls.claims, calls.wants = mine, lambda config_id: True
            calls.prefetch(keys, ["c"])
            await until(lambda: _owners(pg_url, keys) == {keys[0]: mine.owner}, 5)
            second = asyncio.ensure_future(calls.call(provider, "fake-small", messages[0], PARAMS, key=keys[0]))
            outcomes = await asyncio.gather(first, second, return_exceptions=True)
            assert all(isinstance(o, Exception) for o in outcomes), outcomes
            # Another process claims the key at once, instead of waiting 30 s for it.
            assert await asyncio.wait_for(other.acquire(keys[0], open_gate), 2) is None
            other.finished(keys[0], ok=False)
        finally:
            await mine.close()
            await other.close()

    try:
        asyncio.run(main())
    finally:
        reader_store.close()


def test_a_sweep_no_longer_wants_its_keys_claimed_ahead_once_paused_stopping_redirected_away_or_over() -> None:
    from promptlooper.engine.sweep import Sweep

    sweep = Sweep.__new__(Sweep)  # only the state _wants reads: what the claims ask each tick
    sweep._gate, sweep._stopping, sweep._allowed, sweep._calls_over = asyncio.Event(), False, None, False
    sweep._gate.set()
    assert sweep._wants("a") and sweep._wants("b")
    sweep._gate.clear()  # paused (by a person, an agent, a budget, an open breaker)
    assert not sweep._wants("a")
    sweep._gate.set()
    sweep._allowed = {"a"}  # a redirect kept configuration a only
    assert sweep._wants("a") and not sweep._wants("b")
    sweep._stopping = True
    assert not sweep._wants("a")
    sweep._stopping, sweep._calls_over = False, True  # its runs are over (a worker's next chunk may share the claims)
    assert not sweep._wants("a")
