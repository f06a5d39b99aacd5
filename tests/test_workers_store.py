"""The leased chunks of a shared sweep, at the store's interface, on both backends.

Adversarial cases first: a lease that runs out while its owner still writes (its batch must be
refused, whole), many claimers racing for the same chunks (each chunk exactly once), and a sweep
that belongs to workers outliving any process's heartbeat.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from backends import Opener

from promptlooper.errors import SweepConflictError
from promptlooper.store import RunRecord, Store, now_iso
from promptlooper.store.backend import StoreBackend
from promptlooper.store.chunks import LeaseLostError, chunk_ranges
from promptlooper.store.records import ResultBatch


def _queued(store: StoreBackend, chunks: int = 4) -> tuple[str, str]:
    eid = store.upsert_experiment("proj", "exp", {"name": "exp"})
    sid = store.queue_sweep(eid, "grid", chunks * 3, 0, {"workers": True}, chunk_ranges(chunks, 3, 3), 3)
    return eid, sid


def _batch(eid: str, sid: str, rid: str) -> ResultBatch:
    ts = now_iso()
    batch = ResultBatch()
    batch.add_run(RunRecord(id=rid, experiment_id=eid, config_id="c", sample_id="s0", sample_index=0, repeat=0, sweep_id=sid,
                            status="completed", started_at=ts, completed_at=ts, duration_ms=1.0, score=1.0, output="x"),
                  replace=False)
    return batch


def _update(sid: str, index: int, generation: int, tokens: int = 10) -> dict[str, object]:
    return {"id": sid, "fence": (index, generation, 5.0), "add": {"done": 1, "tokens_in": tokens}}


def test_a_worker_whose_lease_ran_out_and_was_taken_cannot_commit(open_backend: Opener) -> None:
    store = open_backend()
    eid, sid = _queued(store, chunks=1)
    slow = store.claim_chunk("slow", 0.2)
    assert slow is not None and slow.generation == 1
    store.write_chunk_batch(_batch(eid, sid, "r1"), _update(sid, slow.index, slow.generation))  # renews: 5 s now
    assert open_backend().claim_chunk("fast", 0.2) is None  # held
    time.sleep(5.1)
    fast = open_backend().claim_chunk("fast", 5.0)
    assert fast is not None and (fast.index, fast.generation) == (slow.index, 2)
    with pytest.raises(LeaseLostError):
        store.write_chunk_batch(_batch(eid, sid, "r2"), _update(sid, slow.index, slow.generation))
    assert store.finish_chunk(sid, slow.index, slow.generation) is None  # nor finish it
    assert not store.release_chunk(sid, slow.index, slow.generation)  # nor give it away
    row = store.sweep(sid)
    assert "r2" not in store.finished_run_ids(eid) and (row["done"], row["tokens_in"]) == (1, 10)  # nothing of it stayed
    store.write_chunk_batch(_batch(eid, sid, "r2"), _update(sid, fast.index, fast.generation))
    assert store.finish_chunk(sid, fast.index, fast.generation) == "completed"
    assert store.sweep(sid)["done"] == 2 and store.sweep_spent(sid) == (20, 0, 0.0)


def test_the_best_configuration_is_the_best_any_chunk_reported(open_backend: Opener) -> None:
    store = open_backend()
    eid, sid = _queued(store, chunks=2)
    a, b = store.claim_chunk("a", 5.0), store.claim_chunk("b", 5.0)
    assert a is not None and b is not None
    store.write_chunk_batch(_batch(eid, sid, "r1"), {**_update(sid, a.index, a.generation), "best": ("cfg-a", 0.7)})
    store.write_chunk_batch(_batch(eid, sid, "r2"), {**_update(sid, b.index, b.generation), "best": ("cfg-b", 0.5)})
    row = store.sweep(sid)
    assert (row["best_config_id"], row["best_score"]) == ("cfg-a", 0.7)


def test_claimers_racing_take_each_chunk_exactly_once(open_backend: Opener) -> None:
    _queued(open_backend(), chunks=40)
    stores = [open_backend() for _ in range(6)]
    taken: list[tuple[str, int]] = []
    lock = threading.Lock()
    start = threading.Barrier(len(stores))

    def claim_all(store: StoreBackend, name: str) -> None:
        start.wait()
        while (claim := store.claim_chunk(name, 60.0)) is not None:
            with lock:
                taken.append((claim.sweep_id, claim.index))

    threads = [threading.Thread(target=claim_all, args=(s, f"w{i}")) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(i for _, i in taken) == list(range(40))


def test_a_workers_sweep_lives_without_a_process_and_holds_the_experiment(open_backend: Opener) -> None:
    store = open_backend()
    eid, sid = _queued(store)
    store.update_sweep(sid, heartbeat=time.time() - 3600)  # no process beats for it
    assert store.settle_sweep(store.sweep(sid))["status"] == "running"
    with pytest.raises(SweepConflictError):
        store.begin_sweep(eid, "grid", 3, {})
    with pytest.raises(SweepConflictError):
        store.queue_sweep(eid, "grid", 3, 0, {}, [(0, 1)], 3)


def test_steering_is_a_log_every_worker_reads_and_a_stopped_sweep_is_not_claimed(open_backend: Opener) -> None:
    store = open_backend()
    eid, sid = _queued(store)
    store.request_steering(eid, "pause")
    store.add_steering(sid, "resume")
    assert store.steering_log(sid) == ["pause", "resume"]
    assert open_backend().steering_log(sid) == ["pause", "resume"]  # read, not taken
    claim = store.claim_chunk("w", 5.0)
    assert claim is not None
    assert store.end_sweep(sid, "stopped", "requested")
    assert store.claim_chunk("w", 5.0) is None
    assert store.experiment(eid)["status"] == "stopped"


def test_chunks_are_whole_configurations_of_about_the_asked_runs() -> None:
    assert chunk_ranges(10, 3, 7) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert chunk_ranges(2, 100, 16) == [(0, 1), (1, 2)]  # never less than one configuration
    assert chunk_ranges(0, 3, 16) == []


def test_a_store_from_before_the_chunks_gets_them_when_opened(tmp_path: Path) -> None:
    import sqlite3

    Store(tmp_path / "old.db").close()
    with sqlite3.connect(tmp_path / "old.db") as c:  # as a store of the release before (m007 last)
        c.execute("DROP TABLE sweep_chunks")
        c.execute("DELETE FROM _sqlite_migrations WHERE name IN ('m008_sweep_chunks', 'm009_chunk_plans', 'm010_chunk_samples',"
                  " 'm011_chunk_configurations')")
    store = Store(tmp_path / "old.db")
    try:
        _, sid = _queued(store)
        assert len(store.chunks(sid)) == 4
    finally:
        store.close()


def test_a_redirect_replaces_the_chunks_not_started_and_waits_for_those_in_progress(open_backend: Opener) -> None:
    store = open_backend()
    eid, sid = _queued(store, chunks=4)
    held = store.claim_chunk("old", 0.5)
    assert held is not None and held.plan == 0
    store.write_chunk_batch(_batch(eid, sid, "r1"), _update(sid, held.index, held.generation))  # renews: 5 s
    replanned = store.replan_shared_sweep(sid, {"spec": {"space": "new"}}, [(0, 1), (1, 2)], 3, {"r1", "n1", "n2", "n3"},
                                          "redirect")
    assert replanned == {"plan": 1, "chunks": 2, "remaining_runs": 3, "total": 4}  # 1 done + 3 planned not finished
    assert store.sweep_plan(sid) == 1 and store.steering_log(sid) == ["redirect"]
    assert [(c["plan"], c["state"]) for c in store.chunks(sid)] == [(0, "leased"), (0, "replaced"), (0, "replaced"),
                                                                    (0, "replaced"), (1, "queued"), (1, "queued")]
    # The old chunk's last runs still land (its lease holds), and a run beyond the recount grows the total.
    store.write_chunk_batch(_batch(eid, sid, "r2"), _update(sid, held.index, held.generation))
    store.write_chunk_batch(_batch(eid, sid, "r3"), _update(sid, held.index, held.generation))
    assert (store.sweep(sid)["done"], store.sweep(sid)["total"]) == (3, 4)
    assert open_backend().claim_chunk("new", 5.0) is None  # not while a chunk of the old plan is held
    assert store.finish_chunk(sid, held.index, held.generation, replaced=True) == "running"
    first = open_backend().claim_chunk("new", 5.0)
    assert first is not None and (first.plan, first.index, first.lo, first.hi) == (1, 4, 0, 1)
    assert first.options["spec"] == {"space": "new"} and first.options["workers"] is True
    store.write_chunk_batch(_batch(eid, sid, "r4"), _update(sid, first.index, first.generation))
    store.write_chunk_batch(_batch(eid, sid, "r5"), _update(sid, first.index, first.generation))
    assert (store.sweep(sid)["done"], store.sweep(sid)["total"]) == (5, 5)
    assert store.finish_chunk(sid, first.index, first.generation) == "running"
    second = store.claim_chunk("new", 5.0)
    assert second is not None and store.finish_chunk(sid, second.index, second.generation) == "completed"


def test_a_worker_killed_holding_a_replaced_chunk_delays_the_new_plan_by_its_lease_only(open_backend: Opener) -> None:
    store = open_backend()
    eid, sid = _queued(store, chunks=2)
    dead = store.claim_chunk("dead", 0.5)
    assert dead is not None
    store.replan_shared_sweep(sid, {}, [(0, 2)], 3, set(), "redirect")
    assert store.claim_chunk("new", 5.0) is None
    time.sleep(0.6)  # its lease ran out: the old chunk is nobody's, and never claimed again
    claim = store.claim_chunk("new", 5.0)
    assert claim is not None and claim.plan == 1
    assert store.claim_chunk("other", 5.0) is None
    assert store.finish_chunk(sid, claim.index, claim.generation) == "completed"


def test_a_chunk_of_an_earlier_plan_given_back_is_not_queued_again(open_backend: Opener) -> None:
    store = open_backend()
    _, sid = _queued(store, chunks=2)
    leaving = store.claim_chunk("leaving", 5.0)
    assert leaving is not None
    store.replan_shared_sweep(sid, {}, [(0, 2)], 3, set(), "redirect")
    assert store.release_chunk(sid, leaving.index, leaving.generation)  # SIGTERM'd worker gives it back
    assert [(c["plan"], c["state"]) for c in store.chunks(sid)] == [(0, "replaced"), (0, "replaced"), (1, "queued")]
    claim = open_backend().claim_chunk("new", 5.0)
    assert claim is not None and claim.plan == 1 and open_backend().claim_chunk("other", 5.0) is None


def test_two_workers_deciding_a_guided_search_at_once_queue_once(open_backend: Opener) -> None:
    store = open_backend()
    eid = store.upsert_experiment("proj", "exp", {"name": "exp"})
    sid = store.queue_sweep(eid, "guided", 27, 0, {"workers": True, "guided": True}, [], 9)
    assert store.add_guided_chunks(sid, 0, [("cfg-a", 0, 3, 3), ("cfg-b", 0, 3, 3)])
    assert not open_backend().add_guided_chunks(sid, 0, [("cfg-c", 0, 3, 3)])  # decided from what it read before: refused
    assert [(c["config_id"], c["samples_lo"], c["samples_hi"]) for c in store.chunks(sid)] == [("cfg-a", 0, 3), ("cfg-b", 0, 3)]
    claims = [store.claim_chunk("w", 5.0) for _ in range(2)]
    assert [(c.config_id, c.samples) for c in claims if c] == [("cfg-a", (0, 3)), ("cfg-b", (0, 3))]
    for c in claims:
        assert c is not None and store.finish_chunk(sid, c.index, c.generation) == "running"  # the search says when it is done
    assert store.add_guided_chunks(sid, 2, [("cfg-a", 3, 9, 6)])  # a promotion, decided from the 2 chunks
    assert [s["id"] for s in store.shared_sweeps()] == [sid]
