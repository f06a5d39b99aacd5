"""Processes that share a store share their calls: each distinct request goes out once, a dead
owner's claim is taken over, a failed call's claim is released, and a breaker one process opens
stops the others (promptlooper/engine/claims.py, store/claims.py). On both backends.

The processes are real CLI runs against one loopback FakeServer in this process, whose ``reply``
hook records every request it answers.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import fake_experiment, wait, write_experiment

from promptlooper.engine.claims import CallClaims
from promptlooper.store import CacheEntry, open_store
from promptlooper.store.claims import ClaimTick
from promptlooper.testing import FakeServer
from promptlooper.testing.fake_server import default_reply

CLI = [sys.executable, "-m", "promptlooper.cli"]


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "pl.db") if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


class Recorder:
    """The FakeServer's reply hook: counts each distinct request it answered."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: collections.Counter[str] = collections.Counter()

    def __call__(self, body: dict[str, Any]) -> str:
        key = json.dumps({k: body.get(k) for k in ("model", "messages", "temperature")}, sort_keys=True)
        with self.lock:
            self.seen[key] += 1
        return default_reply(body)


@pytest.fixture
def recorded() -> Iterator[tuple[FakeServer, Recorder]]:
    recorder = Recorder()
    with FakeServer(latency=0.2, reply=recorder) as srv:
        yield srv, recorder


def _experiment(base_url: str, name: str, temps: list[float], **endpoint: Any) -> Any:
    return fake_experiment(base_url, name=name, space={"answer.temperature": temps}, concurrency=4,
                           endpoints={"fake": {"base_url": base_url, "max_retries": 2, "max_concurrency": 16, **endpoint}})


def _start(location: str, path: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, "--db", location, "run", str(path), "--quiet", "--yes", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def _finish(proc: subprocess.Popen[str], timeout: float = 40.0) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode in (0, 1), err  # 1: a --fail-under verdict would say so; nothing here sets one
    return out


def _runs(location: str, name: str) -> collections.Counter[str]:
    store = open_store(location)
    try:
        exp = store.experiment(f"tests/{name}")
        return collections.Counter(r["status"] for r in store.runs(exp["id"], limit=1000))
    finally:
        store.close()


def _spent(location: str, name: str) -> int:
    store = open_store(location)
    try:
        sweep = store.latest_sweep(store.experiment(f"tests/{name}")["id"])
        assert sweep is not None
        return int(sweep["tokens_in"]) + int(sweep["tokens_out"])
    finally:
        store.close()


def _completed_tokens(location: str, name: str) -> int:
    store = open_store(location)
    try:
        runs = store.runs(store.experiment(f"tests/{name}")["id"], limit=1000)
        return sum(int(r["tokens_in"]) + int(r["tokens_out"]) for r in runs if r["status"] == "completed")
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------- two CLI runs
def test_two_cli_runs_with_overlapping_calls_send_each_request_once(location: str, recorded: Any, tmp_path: Path) -> None:
    srv, recorder = recorded
    shared = [round(0.05 + i * 0.01, 2) for i in range(5)]  # first in both: their calls are out at the same time
    a = write_experiment(tmp_path / "a.yaml", _experiment(srv.base_url, "left", shared + [0.0, 0.01, 0.02, 0.03, 0.04]))
    b = write_experiment(tmp_path / "b.yaml", _experiment(srv.base_url, "right", shared + [0.1, 0.11, 0.12, 0.13, 0.14]))
    open_store(location).close()  # migrated once, before the two race to open it
    procs = [_start(location, a), _start(location, b)]
    for proc in procs:
        _finish(proc)
    # 2 x 10 temperatures x 3 samples, 5 temperatures shared: 45 distinct requests, each sent once.
    assert len(recorder.seen) == 45
    assert max(recorder.seen.values()) == 1, [k for k, n in recorder.seen.items() if n > 1]
    left, right = _runs(location, "left"), _runs(location, "right")
    assert sum(left.values()) == sum(right.values()) == 30 and not left["failed"] and not right["failed"]
    # Each request paid once: 45 runs called their model, 15 used the other process's reply.
    assert left["completed"] + right["completed"] == 45 and left["cached"] + right["cached"] == 15
    assert _spent(location, "left") + _spent(location, "right") == (
        _completed_tokens(location, "left") + _completed_tokens(location, "right"))
    store = open_store(location)
    try:
        assert store.call_claims() == []  # every claim released
    finally:
        store.close()


def test_a_claim_whose_owner_is_killed_is_taken_over_after_it_expires(location: str, recorded: Any, tmp_path: Path) -> None:
    srv, recorder = recorded
    srv.latency = 1.0
    temps = [0.0, 0.01]  # 6 calls, 4 at a time: the owner has some out when killed
    a = write_experiment(tmp_path / "a.yaml", _experiment(srv.base_url, "owner", temps))
    b = write_experiment(tmp_path / "b.yaml", _experiment(srv.base_url, "waiter", temps))
    open_store(location).close()
    env = {"PROMPTLOOPER_CLAIM_TTL": "1.5"}
    owner = _start(location, a, env=env)
    wait(lambda: srv.stats()["requests"] > 0, timeout=20, every=0.02)  # alone, calling: the first sweeper
    waiter = _start(location, b, env=env)
    store = open_store(location)
    try:
        # The owner has seen the waiter: its calls out (and all it queued) are claimed.
        wait(lambda: any(c["owner"].split(":")[1] == str(owner.pid) for c in store.call_claims()), timeout=20, every=0.02)
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        sent_by_owner = srv.stats()["requests"]  # out or answered, maybe not yet committed: may go out again
        started = time.monotonic()
        _finish(waiter, timeout=40)
        assert time.monotonic() - started < 30  # nothing hangs
    finally:
        store.close()
    done = _runs(location, "waiter")
    assert done["completed"] + done["cached"] == 6 and not done["failed"]  # nothing lost
    # Only the calls the killed owner had made can have gone out twice.
    assert len(recorder.seen) == 6 and 0 < sent_by_owner and sum(n - 1 for n in recorder.seen.values()) <= sent_by_owner


# ---------------------------------------------------------------------------------------------- the store's claims
def _tick(owner: str, now: float, **over: Any) -> ClaimTick:
    return ClaimTick(**{"owner": owner, "now": now, "ttl": 10.0, "stale_after": 5.0, "claiming": True, **over})


def test_the_store_decides_claims_one_process_at_a_time(location: str) -> None:
    store = open_store(location)
    try:
        now = time.time()
        # Alone, a joining process claims nothing; the next one sees it and claims from the start.
        assert store.claims_tick(_tick("a", now, claiming=None)).claiming is False
        joined = store.claims_tick(_tick("b", now, claiming=None))
        assert joined.claiming is True and joined.others == {"a": False}
        # A live claim is held; an expired one is taken over; a cached key is found, not claimed.
        store.write_results([], cache=[_entry("cached")])
        first = store.claims_tick(_tick("a", now, claim=["k", "old", "cached"], ttl=1.0))
        assert first.claimed == {"k", "old"} and set(first.found) == {"cached"}
        store.claims_tick(_tick("a", now, renew=["k"], ttl=10.0))
        later = store.claims_tick(_tick("b", now + 5, claim=["k", "old"]))
        assert later.claimed == {"old"} and not later.found
        assert {c["key"]: c["owner"] for c in store.call_claims()} == {"k": "a", "old": "b"}
        # An owner's claim goes once its entry is committed, not before.
        assert store.claims_tick(_tick("a", now, release_if_cached=["k"])).released == set()
        store.write_results([], cache=[_entry("k")])
        assert store.claims_tick(_tick("a", now, release_if_cached=["k"])).released == {"k"}
        store.leave_sharing("b")
        assert store.call_claims() == [] and store.claims_tick(_tick("a", now + 6, claiming=None)).others == {}
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------- claims, two owners in one test
def _entry(key: str) -> CacheEntry:
    return CacheEntry(key, "http://x", "m", {"messages": []}, f"reply to {key}", 3, 4, 5.0)


async def _gate() -> None:
    pass


async def _two_owners(location: str, body: Any) -> None:
    first = CallClaims(open_store(location), lambda: ((), ()), ttl=30)
    second = CallClaims(open_store(location), lambda: ((), ()), ttl=30)
    await first.start()
    await second.start()
    try:
        await wait_async(lambda: first.claiming and second.claiming)
        await body(first, second)
    finally:
        await first.close()
        await second.close()


async def wait_async(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_a_failed_call_releases_its_claim_and_a_waiter_calls_itself(location: str) -> None:
    async def body(first: CallClaims, second: CallClaims) -> None:
        assert await first.acquire("k1", _gate) is None  # claimed: first calls
        waiting = asyncio.ensure_future(second.acquire("k1", _gate))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # held by a live owner: second waits
        first.finished("k1", ok=False)  # the call failed
        # Released at first's next tick, claimed by second at its next: long before the 30 s expiry.
        assert await asyncio.wait_for(waiting, 3) is None
        assert [c["owner"] for c in store.call_claims()] == [second.owner]

    store = open_store(location)
    try:
        asyncio.run(_two_owners(location, body))
    finally:
        store.close()


def test_a_waiter_uses_the_entry_the_owner_committed_and_the_claim_goes(location: str) -> None:
    async def body(first: CallClaims, second: CallClaims) -> None:
        assert await first.acquire("k2", _gate) is None
        waiting = asyncio.ensure_future(second.acquire("k2", _gate))
        await asyncio.sleep(0.3)
        first.finished("k2", ok=True)
        await asyncio.sleep(0.3)
        assert [c["key"] for c in store.call_claims()] == ["k2"]  # answered, not committed: still claimed
        store.write_results([], cache=[_entry("k2")])
        assert await asyncio.wait_for(waiting, 3) == ("reply to k2", 3, 4, 5.0)
        await wait_async(lambda: not store.call_claims())

    store = open_store(location)
    try:
        asyncio.run(_two_owners(location, body))
    finally:
        store.close()


def test_a_paused_owner_stops_renewing_and_its_claim_is_taken_over(location: str) -> None:
    open_ = [True]

    async def main() -> None:
        first = CallClaims(open_store(location), lambda: ((), ()), ttl=0.6, is_open=lambda: open_[0])
        second = CallClaims(open_store(location), lambda: ((), ()), ttl=0.6)
        await first.start()
        await second.start()
        try:
            await wait_async(lambda: first.claiming and second.claiming)
            assert await first.acquire("k3", _gate) is None
            waiting = asyncio.ensure_future(second.acquire("k3", _gate))
            await asyncio.sleep(1.0)  # renewed while open: still held past its ttl
            assert not waiting.done()
            open_[0] = False  # paused: not renewed, taken over within a ttl
            assert await asyncio.wait_for(waiting, 3) is None
        finally:
            await first.close()
            await second.close()

    asyncio.run(main())


class CountingStore:
    """A real store that counts its claim transactions."""

    def __init__(self, location: str) -> None:
        self.store = open_store(location)
        self.ticks: list[int] = []  # keys claimed by each transaction that claimed any

    def claim_calls(self, owner: str, keys: list[str], now: float, ttl: float) -> Any:
        self.ticks.append(len(keys))
        return self.store.claim_calls(owner, keys, now, ttl)

    @property
    def aclaim_calls(self) -> Any:  # PostgreSQL's: awaited on the sweep's loop
        inner = self.store.aclaim_calls  # AttributeError on SQLite, as the store's own

        async def counted(owner: str, keys: list[str], now: float, ttl: float) -> Any:
            self.ticks.append(len(keys))
            return await inner(owner, keys, now, ttl)
        return counted

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_the_misses_of_one_loop_turn_are_claimed_in_one_transaction(location: str) -> None:
    counting = CountingStore(location)

    async def main() -> None:
        first = CallClaims(counting, lambda: ((), ()), ttl=30)  # type: ignore[arg-type]
        second = CallClaims(open_store(location), lambda: ((), ()), ttl=30)
        await first.start()
        await second.start()
        try:
            await wait_async(lambda: first.claiming and second.claiming)
            await wait_async(lambda: first._ready.is_set())
            # 64 calls missing the cache at once (C = 64): one round trip claims them all.
            got = await asyncio.gather(*(first.acquire(f"key{i}", _gate) for i in range(64)))
            assert got == [None] * 64 and counting.ticks == [64]
        finally:
            await first.close()
            await second.close()

    asyncio.run(main())


def test_a_sweep_alone_claims_nothing(location: str, recorded: Any, tmp_path: Path) -> None:
    srv, recorder = recorded
    path = write_experiment(tmp_path / "alone.yaml", _experiment(srv.base_url, "alone", [0.0, 0.1, 0.2, 0.3]))
    proc = _start(location, path)
    store = open_store(location)
    try:
        claims_seen = []
        while proc.poll() is None:
            claims_seen += store.call_claims()
            time.sleep(0.01)
        _finish(proc)
        assert not claims_seen and len(recorder.seen) == 12
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------- breakers
def test_a_breaker_one_process_opens_stops_the_other_calling_that_endpoint(location: str, tmp_path: Path) -> None:
    from promptlooper.testing.scripted import Faults

    with FakeServer(latency=0.1) as srv:
        temps = [round(i * 0.01, 2) for i in range(60)]
        opener = _experiment(srv.base_url, "opener", temps, max_retries=0, breaker_failures=2, breaker_cooldown=60)
        # The follower's own breaker would take 1,000 failures: only the shared one can stop it.
        follower = _experiment(srv.base_url, "follower", temps, max_retries=0, breaker_failures=1000, breaker_cooldown=60)
        follower.stages[0].model = "fake/fake-large"
        a = write_experiment(tmp_path / "a.yaml", opener)
        b = write_experiment(tmp_path / "b.yaml", follower)
        open_store(location).close()
        procs = [_start(location, a), _start(location, b)]
        store = open_store(location)
        try:
            by_model = lambda: srv.stats()["by_model"]  # noqa: E731
            wait(lambda: by_model().get("fake-small", 0) > 4 and by_model().get("fake-large", 0) > 4, timeout=20, every=0.02)
            srv.set_faults(Faults(server_error=1.0))
            wait(lambda: store.open_breakers(time.time()), timeout=10, every=0.02)
            time.sleep(1.0)  # the follower reads it on its steering poll (every 0.25 s); calls out then land
            after_a_second = by_model().get("fake-large", 0)
            time.sleep(1.0)
            assert by_model().get("fake-large", 0) == after_a_second  # no call to the endpoint since
            for proc in procs:  # both paused, as for their own open breaker: Ctrl+C ends them (resumable)
                proc.send_signal(signal.SIGINT)
                proc.communicate(timeout=20)
            events = store.events(store.experiment("tests/follower")["id"], types=["endpoint.unhealthy"])
            assert events and events[0]["payload"]["opened_by"].split(":")[1] == str(procs[0].pid)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
            store.close()
