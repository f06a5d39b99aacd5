"""A store read off the loop (PostgreSQL) is looked up ahead too: the keys of the next runs in one
query in a thread, which a call of one of them awaits instead of a round trip of its own
(engine/calls.py, CallExecutor.prefetch). The store is a real PostgreSQL database (tests/pg.py),
counted by a subclass that adds one to a counter on each look-up; the model is a FakeModel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from promptlooper.engine.calls import CacheReader, CallExecutor, call_key
from promptlooper.engine.sweep import LOOKAHEAD, Sweep
from promptlooper.hashing import canonical_json
from promptlooper.providers.registry import provider_for_url
from promptlooper.store import CacheEntry
from promptlooper.store.postgres import PostgresStore
from promptlooper.testing import FakeModel


class CountingStore(PostgresStore):
    def __init__(self, url: str):
        super().__init__(url)
        self.look_ups: list[int] = []  # keys asked, per look-up

    def cache_get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, int, int, float]]:
        self.look_ups.append(len(keys))
        return super().cache_get_many(keys)


async def _noop() -> None:
    return None


def test_the_calls_of_a_prefetch_off_the_loop_await_it_instead_of_looking_up_one_by_one(pg_url: str) -> None:
    model = FakeModel("prefetched", latency=0.01)
    provider = provider_for_url("fake", "fake://prefetched")
    params = {"max_tokens": 8}
    messages = [[{"role": "user", "content": f"question {i}"}] for i in range(12)]
    keys = [call_key(provider.identity, "fake-small", m, canonical_json(params))[0] for m in messages]
    store = CountingStore(pg_url)
    try:
        # The first 8 are cached (another sweep made them); the last 4 are not.
        store.write_results([], cache=[CacheEntry(k, provider.identity, "fake-small", {"messages": m, "params": params},
                                              f"reply {i}", 3, 2, 5.0) for i, (k, m) in enumerate(zip(keys[:8], messages[:8], strict=True))])
        assert store.cache_reads_off_loop
        written: list[CacheEntry] = []

        async def sweep() -> list[Any]:
            calls = CallExecutor(CacheReader(store), written.append, global_limit=asyncio.Semaphore(4), gate=_noop)
            calls.prefetch(keys)  # as Runner.prepare does for the next LOOKAHEAD runs
            results = []
            for m, key in zip(messages, keys, strict=True):  # one after the other: no turn coalesces them
                results.append(await calls.call(provider, "fake-small", m, params, key=key))
            return results

        results = asyncio.run(sweep())
    finally:
        store.close()
    assert [r.cached for r in results] == [True] * 8 + [False] * 4
    assert [r.response.text for r in results[:8]] == [f"reply {i}" for i in range(8)]
    assert store.look_ups == [12], store.look_ups  # one query for all, not one per call
    assert model.stats()["completions"] == 4 and len(written) == 4


class PreparingRunner:
    """Records each group of run items handed to prepare() (what the sweep looks up ahead)."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []

    def prepare(self, items: list[int]) -> None:
        self.groups.append(list(items))


def test_the_next_group_is_looked_up_while_the_current_one_is_taken() -> None:
    assert LOOKAHEAD == 32
    # A look-up off the loop takes a round trip: started when the next group's first run is
    # already wanted, that run (and those after it, taken faster than the answer) wait for it.
    runner = PreparingRunner()
    taken = Sweep._looking_ahead(SimpleNamespace(runner=runner), iter(range(70)))  # type: ignore[arg-type]
    assert next(taken) == 0 and runner.groups == [list(range(32))]
    assert next(taken) == 1 and runner.groups == [list(range(32)), list(range(32, 64))]
    rest = [next(taken) for _ in range(32)]  # up to the second run of the second group
    assert rest == list(range(2, 34)) and runner.groups[-1] == list(range(64, 70))
    assert list(taken) == list(range(34, 70)) and len(runner.groups) == 3
