"""The call path's claim batch (``store.claim_calls``) under races and dropped connections.

On PostgreSQL a loop turn's claims and the cache look-up that must follow them go out in one
round trip, on a connection the claims keep for themselves (store/postgres/claims.py). These tests
hold what that must not lose, on both backends where both apply:

* two owners racing for the same keys never both call one: each key is won once, and an owner
  that claims a key after another cached it and let it go finds the entry instead;
* the claims' own connection dropped by the server between two turns (a restart, an admin) costs
  no claim: the next batch claims on a new connection rather than letting its calls go unclaimed.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from promptlooper.store import CacheEntry, open_store
from promptlooper.store.claims import ClaimTick

KEYS = [f"race-{i:04d}" for i in range(600)]
BATCH = 24  # keys a turn, about what a sweep of C = 64 misses in one turn


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "pl.db") if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


def _entry(key: str) -> CacheEntry:
    return CacheEntry(key, "http://x", "m", {"messages": []}, f"reply to {key}", 3, 4, 5.0)


def _together(*jobs: Callable[[], None]) -> None:
    """Run ``jobs`` in threads at once: a job that fails fails the test, and none can hang it."""
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,), daemon=True) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a job did not finish"
    if errors:
        raise errors[0]


def _race(store: Any, owner: str, order: list[str], start: threading.Barrier, won: list[str], found: list[str]) -> None:
    """One owner's sweep in miniature: claim a turn's keys, 'call' those won (the entry is committed),
    then let their claims go, as CallClaims does (release once cached). On PostgreSQL, owner "b"
    claims as a sweep's loop does (``aclaim_calls``), owner "a" as a thread does."""
    loop = asyncio.new_event_loop()
    claim = store.claim_calls
    if owner == "b" and hasattr(store, "aclaim_calls"):
        def claim(*args: Any) -> Any:
            return loop.run_until_complete(store.aclaim_calls(*args))
    try:
        start.wait()
        for i in range(0, len(order), BATCH):
            result = claim(owner, order[i : i + BATCH], time.time(), 30.0)
            won += result.claimed
            found += result.found
            if result.claimed:
                store.write_results([], cache=[_entry(k) for k in result.claimed])
                store.claims_tick(ClaimTick(owner, time.time(), 30.0, 5.0, True, release_if_cached=sorted(result.claimed)))
    finally:
        if hasattr(store, "aclose_claims"):
            loop.run_until_complete(store.aclose_claims())
        loop.close()


def test_two_owners_racing_for_the_same_keys_call_each_once(location: str) -> None:
    # One owner walks the keys forwards, the other backwards: they meet in the middle, where each
    # claims keys the other is claiming, calling, caching and releasing at that moment.
    won: dict[str, list[str]] = {"a": [], "b": []}
    found: dict[str, list[str]] = {"a": [], "b": []}
    start = threading.Barrier(2, timeout=30)
    stores = [open_store(location), open_store(location)]  # here: two threads creating one SQLite file race
    try:
        _together(lambda: _race(stores[0], "a", KEYS, start, won["a"], found["a"]),
                  lambda: _race(stores[1], "b", KEYS[::-1], start, won["b"], found["b"]))
    finally:
        for store in stores:
            store.close()
    both = won["a"] + won["b"]
    assert sorted(both) == KEYS  # every key called, and none twice
    # A key the other owner had called is found in the cache (or held while it is called: asked
    # again later, not counted here), never won a second time.
    assert not set(found["a"]) & set(won["a"]) and not set(found["b"]) & set(won["b"])
    assert set(found["a"]) <= set(won["b"]) and set(found["b"]) <= set(won["a"])


def test_a_claim_batch_after_the_claims_connection_was_dropped_still_claims(pg_url: str) -> None:
    store = open_store(pg_url)
    try:
        first = store.claim_calls("a", ["k1", "k2"], time.time(), 30.0)
        assert first.claimed == {"k1", "k2"}
        with psycopg.connect(pg_url, autocommit=True) as admin:  # as a restart of the server would
            assert admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
                                 " current_database() AND pid <> pg_backend_pid()").fetchall()
        time.sleep(0.2)  # the sessions are gone, which the client learns only when it next speaks
        again = store.claim_calls("a", ["k3", "k1"], time.time(), 30.0)
        assert again.claimed == {"k1", "k3"}  # k1: already this owner's, renewed
        other = store.claim_calls("b", ["k1", "k4"], time.time(), 30.0)
        assert other.claimed == {"k4"}  # k1 still held by a
        assert {c["key"]: c["owner"] for c in store.call_claims()} == {"k1": "a", "k2": "a", "k3": "a", "k4": "b"}
    finally:
        store.close()


def test_a_loop_claim_batch_after_its_connection_was_dropped_still_claims(pg_url: str) -> None:
    async def main() -> None:
        store = open_store(pg_url)
        try:
            first = await store.aclaim_calls("a", ["k1", "k2"], time.time(), 30.0)  # type: ignore[attr-defined]
            assert first.claimed == {"k1", "k2"}
            with psycopg.connect(pg_url, autocommit=True) as admin:
                assert admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
                                     " current_database() AND pid <> pg_backend_pid()").fetchall()
            await asyncio.sleep(0.2)
            again = await store.aclaim_calls("a", ["k3", "k1"], time.time(), 30.0)  # type: ignore[attr-defined]
            assert again.claimed == {"k1", "k3"}
            other = await store.aclaim_calls("b", ["k1", "k4"], time.time(), 30.0)  # type: ignore[attr-defined]
            assert other.claimed == {"k4"}
        finally:
            await store.aclose_claims()  # type: ignore[attr-defined]
            store.close()

    asyncio.run(main())


def test_two_processes_joining_at_once_never_both_find_themselves_alone(location: str) -> None:
    # Joining decides whether to claim from what the other sharers' rows say: two joiners that did
    # not decide one after the other could both see nobody and both call unclaimed.
    stores = [open_store(location), open_store(location)]
    try:
        for round_ in range(12):
            start = threading.Barrier(2, timeout=30)
            said: dict[str, bool] = {}

            def join(store: Any, owner: str, start: threading.Barrier, said: dict[str, bool]) -> None:
                start.wait()
                said[owner] = store.claims_tick(ClaimTick(owner, time.time(), 30.0, 5.0, None)).claiming

            owners = [f"a{round_}", f"b{round_}"]
            _together(*(functools.partial(join, store, owner, start, said) for store, owner in zip(stores, owners, strict=True)))
            assert sorted(said.values()) == [False, True], said  # the first alone, the second claiming
            for owner in owners:
                stores[0].leave_sharing(owner)
    finally:
        for store in stores:
            store.close()


def test_a_claims_tick_does_not_wait_for_the_stores_batch_writes(pg_url: str) -> None:
    # A sweep's batch write holds the store's write lock; the claims' ticks (every 0.1 s of every
    # sharing sweep) neither queue behind it nor hold it up.
    from promptlooper.store.postgres.connection import WRITE_LOCK

    store = open_store(pg_url)
    done: list[object] = []
    try:
        store.claims_tick(ClaimTick("a", time.time(), 30.0, 5.0, None))
        with psycopg.connect(pg_url, autocommit=True) as writer, writer.transaction():
            writer.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))  # a batch write under way
            tick = threading.Thread(target=lambda: done.append(store.claims_tick(
                ClaimTick("a", time.time(), 30.0, 5.0, True, claim=["k"]))), daemon=True)
            tick.start()
            tick.join(10)
            assert done and done[0].claimed == {"k"}  # type: ignore[attr-defined]
    finally:
        store.close()
