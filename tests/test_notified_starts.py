"""On PostgreSQL, what a sweep's start waits for is announced instead of polled
(store/postgres/notify.py): chunks queued for workers wake the idle workers, and a process that
joins the call-cache sharers, or starts claiming, makes the others tick at once. Polled, three
workers starting a sweep together waited up to IDLE_POLL and then SOLO_TICK (250 ms each) before
all of them called (benchmarks/workers.py b). Real PostgreSQL (tests/pg.py); the polls here are
made 5 s long, so only a notification can be in time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from helpers import until

from promptlooper.engine.claims import CallClaims
from promptlooper.store import open_store
from promptlooper.store.chunks import chunk_ranges


def test_a_lone_sharer_claims_as_soon_as_another_joins_and_the_newcomer_is_told(pg_url: str) -> None:
    async def main() -> tuple[float, float]:
        # Heartbeats 5 s apart: only the join's notification can make them meet within a second.
        first = CallClaims(open_store(pg_url), lambda: ((), ()), ttl=30, tick=5.0, solo_tick=5.0)
        second = CallClaims(open_store(pg_url), lambda: ((), ()), ttl=30, tick=5.0, solo_tick=5.0)
        await first.start()
        await asyncio.sleep(0.2)  # its listener is up
        assert not first.claiming
        t0 = time.monotonic()
        await second.start()
        try:
            await until(lambda: first.claiming, 1.0)  # the newcomer's join woke it: it claims now
            first_at = time.monotonic() - t0
            # ... and its adopting tick woke the newcomer, which sees every sharer claim: ready.
            await until(lambda: second.ahead_ready, 1.0)
            return first_at, time.monotonic() - t0
        finally:
            await first.close()
            await second.close()

    first_at, ready_at = asyncio.run(main())
    assert first_at < 1.0 and ready_at < 1.0


def test_chunks_queued_or_replanned_for_workers_wake_the_idle_ones(pg_url: str) -> None:
    listening, queuing = open_store(pg_url), open_store(pg_url)
    woken = threading.Event()
    stop = listening.listen_work(woken.set)
    try:
        eid = queuing.upsert_experiment("proj", "exp", {"name": "exp"})
        assert not woken.wait(0.3)  # nothing queued yet
        sid = queuing.queue_sweep(eid, "grid", 12, 0, {"workers": True}, chunk_ranges(4, 3, 3), 3)
        assert woken.wait(2), "queue_sweep woke no idle worker"
        woken.clear()
        replanned = queuing.replan_shared_sweep(sid, {}, chunk_ranges(2, 3, 3), 3, set(), "redirect")
        assert replanned is not None
        assert woken.wait(2), "a redirect's new chunks woke no idle worker"
    finally:
        stop()
        listening.close()
        queuing.close()


def test_a_file_store_announces_nothing_and_its_workers_poll(tmp_path: Any) -> None:
    store = open_store(str(tmp_path / "pl.db"))
    try:
        assert store.listen_work(lambda: None) is None and store.listen_sharers(lambda: None) is None
    finally:
        store.close()
