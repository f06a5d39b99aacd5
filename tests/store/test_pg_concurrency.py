"""Two stores on one PostgreSQL database at once, as two processes would be: decisions made inside
a write transaction are made once (the store's write lock, connection.py), and a batch is all or nothing."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

import pytest

from promptlooper.errors import SweepConflictError
from promptlooper.store import RunRecord, StageRecord, now_iso
from promptlooper.store.postgres import PostgresStore


def _race(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run fn(0..n-1) in n threads released together; their results (or exceptions)."""
    barrier, out = threading.Barrier(n), [None] * n

    def one(i: int) -> None:
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as exc:  # noqa: BLE001  (the race's outcome is what is compared)
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def _take_lease(url: str, eid: str, start: Any, done: Any, results: Any) -> None:
    """A child process: take the experiment's lease when all start, stay alive until all tried."""
    store = PostgresStore(url)
    start.wait()
    try:
        results.put(store.begin_sweep(eid, "grid", 1, {}))
    except SweepConflictError:
        results.put("refused")
    done.wait()
    store.close()


def test_one_project_and_one_lease_when_stores_race(pg_url: str) -> None:
    stores = [PostgresStore(pg_url) for _ in range(4)]
    try:
        ids = _race(4, lambda i: stores[i].upsert_experiment("proj", "exp", {"name": "exp"}))
        assert len(set(ids)) == 1 and len(stores[0].projects()) == 1
        eid = ids[0]
        # The lease, across processes (a process replaces its own earlier sweeps by design).
        ctx = multiprocessing.get_context("spawn")
        start, done, results = ctx.Barrier(3), ctx.Barrier(3), ctx.Queue()
        procs = [ctx.Process(target=_take_lease, args=(pg_url, eid, start, done, results)) for _ in range(3)]
        for p in procs:
            p.start()
        outcomes = sorted(results.get(timeout=60) for _ in procs)
        for p in procs:
            p.join(30)
        assert outcomes[1:] == ["refused", "refused"] and outcomes[0] != "refused"
        won = outcomes[0]
        # Steering requests from several writers at once: none lost.
        _race(4, lambda i: stores[i].add_steering(won, f"req{i}"))
        assert sorted(stores[0].take_steering(won)) == ["req0", "req1", "req2", "req3"]
    finally:
        for s in stores:
            s.close()


def test_a_batch_that_fails_leaves_nothing(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    try:
        eid = store.upsert_experiment("proj", "exp", {"name": "exp"})
        ts = now_iso()
        good = RunRecord(id="r1", experiment_id=eid, config_id="c", sample_id="s", sample_index=0, repeat=0, sweep_id=None,
                         status="completed", started_at=ts, completed_at=ts, duration_ms=1.0,
                         stages=[StageRecord(0, "a", "prompt", prompt_sent="p")])
        orphan = RunRecord(id="r2", experiment_id="no-such-experiment", config_id="c", sample_id="s", sample_index=1,
                           repeat=0, sweep_id=None, status="completed", started_at=ts, completed_at=ts, duration_ms=1.0)
        with pytest.raises(Exception, match="foreign key"):
            store.write_results([good, orphan], events=[(ts, eid, "run.completed", {})])
        assert store.run_counts(eid) == {} and store.events(eid) == []
        store.write_results([good])  # the store is usable afterwards
        assert store.run_counts(eid) == {"completed": 1}
    finally:
        store.close()
