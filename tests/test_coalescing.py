"""The one request coalescer (promptlooper/coalescing.py), used by the call cache and the embedder."""

from __future__ import annotations

import asyncio

import pytest

from promptlooper.coalescing import Coalescer

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)


def test_keys_of_one_turn_go_in_one_batch_answered_on_the_loop():
    batches: list[list[str]] = []

    def fetch(keys: list[str]) -> dict[str, int]:
        batches.append(keys)
        return {k: len(k) for k in keys if k != "missing"}

    async def main():
        c: Coalescer[str, int] = Coalescer(fetch)
        got = await asyncio.gather(*(c.get(k) for k in ["a", "bb", "a", "missing"]))
        again = await c.get("ccc")
        return got, again

    got, again = asyncio.run(main())
    assert got == [1, 2, 1, None]  # a key asked twice in a turn is fetched once; one not found is None
    assert batches == [["a", "bb", "missing"], ["ccc"]]


def test_an_async_fetch_runs_once_per_turn_and_a_key_already_out_waits_for_its_batch():
    batches: list[list[str]] = []

    async def main():
        release = asyncio.Event()

        async def fetch(keys: list[str]) -> dict[str, str]:
            batches.append(keys)
            await release.wait()
            return {k: k.upper() for k in keys}

        c: Coalescer[str, str] = Coalescer(fetch)
        first = [c.get("x"), c.get("y")]
        await asyncio.sleep(0.01)  # the batch is out now
        late = c.get("x")  # single-flight: joins the batch out
        other = c.get("z")  # a new key: the next batch
        release.set()
        return await asyncio.gather(*first, late, other)

    assert asyncio.run(main()) == ["X", "Y", "X", "Z"]
    assert batches == [["x", "y"], ["z"]]


def test_a_cancelled_caller_cancels_nobody_else_and_a_failure_reaches_every_waiter():
    async def main():
        release = asyncio.Event()

        async def fetch(keys: list[str]) -> dict[str, str]:
            await release.wait()
            if "boom" in keys:
                raise RuntimeError("backend down")
            return {k: k for k in keys}

        c: Coalescer[str, str] = Coalescer(fetch)
        a = asyncio.ensure_future(asyncio.wait_for(c.get("k"), 10))
        b = c.get("k")
        await asyncio.sleep(0.01)
        a.cancel()
        release.set()
        assert await b == "k"
        with pytest.raises(asyncio.CancelledError):
            await a
        failing = [c.get("boom"), c.get("other")]
        for fut in failing:
            with pytest.raises(RuntimeError, match="backend down"):
                await fut

    asyncio.run(main())


def test_each_event_loop_has_batches_of_its_own():
    seen: list[list[str]] = []
    c: Coalescer[str, str] = Coalescer(lambda keys: seen.append(keys) or {k: k for k in keys})

    async def ask(key: str) -> str | None:
        return await c.get(key)

    assert asyncio.run(ask("one")) == "one"
    assert asyncio.run(ask("two")) == "two"  # a new loop: nothing left from the first
    assert seen == [["one"], ["two"]]
