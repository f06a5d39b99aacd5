"""A sweep's result batch survives its connection being lost inside its transaction, on PostgreSQL.

Two moments, each with a real fault: a session ended by the server (``pg_terminate_backend``)
after it wrote the batch's runs and events but before its ``COMMIT`` (nothing committed: the batch
goes again on a new connection), and a ``COMMIT`` that the server carried out but whose answer
never came back (tests/pg_proxy.py cuts the link right there: the batch must not be written a
second time). A database that stays away past the write deadline fails the write with the
store's StoreError; one back before it is waited for, by a batch and by a whole sweep.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from helpers import fake_experiment, wait
from pg_proxy import CuttingProxy

import promptlooper as pl
from promptlooper.errors import StoreError
from promptlooper.store import open_store
from promptlooper.store.chunks import chunk_ranges
from promptlooper.store.records import ResultBatch, RunRecord
from promptlooper.testing import FakeModel

# The session writing a batch, stopped at its last statement (the sweep's progress row, which the
# test holds locked): by then it has written the batch's runs and events in its open transaction.
BATCH_WAITING = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                 " AND query LIKE 'UPDATE sweeps SET %heartbeat%'")


@pytest.fixture
def proxy(pg_url: str):
    relay = CuttingProxy(pg_url)
    yield relay
    relay.close()


def test_a_sweep_whose_batch_transactions_are_ended_before_commit_completes_with_every_run_and_event_once(
        pg_url: str, admin: psycopg.Connection) -> None:
    model = FakeModel(f"in-batch-{id(admin)}", latency=0.05)  # 300 runs, 4 at a time: ~4 s
    exp = fake_experiment(model.base_url, name="ended", space={"answer.temperature": [i / 100 for i in range(100)]}, concurrency=4)
    wb = pl.Workbench(pg_url)
    ended: set[int] = set()
    try:
        handle = wb.start(exp)
        wait(lambda: handle.progress.done >= 10, timeout=30)
        sweep_id = handle.sweep_id
        with psycopg.connect(pg_url, autocommit=True) as locker:
            while len(ended) < 5:
                # The sweep's row locked: its next batch stops at its last statement. (Watched from
                # another session: pg_stat_activity is read once per transaction.)
                with locker.transaction():
                    locker.execute("SELECT 1 FROM sweeps WHERE id = %s FOR UPDATE", (sweep_id,))
                    # Not the session ended last round: it may still be listed while it exits.
                    [pid] = wait(lambda: {r[0] for r in admin.execute(BATCH_WAITING)} - ended, timeout=10)
                    assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
                ended.add(pid)
        progress = handle.wait(60)
        assert (progress.status, progress.done, progress.failed) == ("completed", 300, 0)
        runs = wb.runs(exp.key, limit=1000)
        assert len(runs) == len({r["id"] for r in runs}) == 300
        events = [(e["type"], repr(e["payload"])) for e in wb.store.events(wb.store.experiment(exp.key)["id"])]
        assert len(events) == len(set(events)), "an event was written twice"
        assert [t for t, _ in events].count("experiment.started") == [t for t, _ in events].count("experiment.completed") == 1
        model.reset()
        assert wb.run(exp).skipped == 300 and model.stats()["requests"] == 0
    finally:
        wb.close()


def _batch(experiment_id: str, n: int, tag: str) -> ResultBatch:
    batch = ResultBatch()
    for i in range(n):
        now = "2026-01-01T00:00:00.000+00:00"
        batch.add_run(RunRecord(id=f"{tag}-{i}", experiment_id=experiment_id, config_id="c", sample_id=str(i), sample_index=i,
                                repeat=0, sweep_id=None, status="completed", started_at=now, completed_at=now, duration_ms=1.0),
                      replace=False)
        batch.add_event(None, experiment_id, "test.written", {"tag": tag, "i": i})
    return batch


@pytest.fixture
def proxied(pg_url: str, proxy: CuttingProxy):
    """A store whose every connection goes through the relay, and the id of an experiment in it."""
    store = open_store(proxy.url)
    experiment_id = store.upsert_experiment("tests", "batches", {})
    yield store, experiment_id
    store.close()


def test_a_batch_whose_commit_answer_is_lost_is_written_once(proxied, proxy: CuttingProxy, admin: psycopg.Connection) -> None:
    store, experiment_id = proxied
    proxy.cut_after_next_commit()
    ids = store.write_batch(_batch(experiment_id, 3, "ambiguous"))
    assert proxy.commits_cut == 1  # the batch's own COMMIT was the one cut
    stored = admin.execute("SELECT id FROM events WHERE type = 'test.written' ORDER BY id").fetchall()
    assert [r[0] for r in stored] == ids and len(ids) == 3  # once, and the ids its commit gave them
    assert admin.execute("SELECT count(*) FROM runs WHERE id LIKE 'ambiguous-%'").fetchone()[0] == 3
    # The next batch on the same store goes through as usual.
    assert len(store.write_batch(_batch(experiment_id, 2, "after"))) == 2


def test_a_batch_waits_out_an_outage_shorter_than_the_deadline(proxied, proxy: CuttingProxy, admin: psycopg.Connection) -> None:
    store, experiment_id = proxied
    proxy.down()
    threading.Timer(1.0, proxy.up).start()
    ids = store.write_batch(_batch(experiment_id, 2, "outage"))
    assert [r[0] for r in admin.execute("SELECT id FROM events WHERE type = 'test.written' ORDER BY id")] == ids


def test_a_batch_fails_with_a_store_error_once_the_database_stays_away_past_the_deadline(
        proxied, proxy: CuttingProxy, admin: psycopg.Connection) -> None:
    store, experiment_id = proxied
    store.cx.write_deadline = 2.0
    proxy.down()
    began = time.monotonic()
    with pytest.raises(StoreError, match="lost the connection"):
        store.write_batch(_batch(experiment_id, 2, "gone"))
    assert time.monotonic() - began < 10  # the deadline, and one attempt begun before it
    # The database still away: the next write (a sweep's last batch) tries once, not for the deadline again.
    began = time.monotonic()
    with pytest.raises(StoreError, match="lost the connection"):
        store.write_batch(_batch(experiment_id, 2, "still gone"))
    assert time.monotonic() - began < 1.0
    assert admin.execute("SELECT count(*) FROM events WHERE type = 'test.written'").fetchone()[0] == 0
    proxy.up()
    assert len(store.write_batch(_batch(experiment_id, 2, "back"))) == 2


def test_a_workers_batch_whose_commit_answer_is_lost_adds_its_progress_once(proxied, proxy: CuttingProxy) -> None:
    store, experiment_id = proxied
    sweep_id = store.queue_sweep(experiment_id, "grid", 6, 0, {"workers": True}, chunk_ranges(2, 3, 3), 3)
    claim = store.claim_chunk("worker-a", 30.0)
    assert claim is not None
    proxy.cut_after_next_commit()
    update = {"id": sweep_id, "fence": (claim.index, claim.generation, 30.0), "add": {"done": 3, "tokens_in": 70}}
    store.write_chunk_batch(_batch(experiment_id, 3, "chunk"), update)
    assert proxy.commits_cut == 1
    row = store.sweep(sweep_id)
    assert (row["done"], row["tokens_in"]) == (3, 70)  # the batch's counts added once, not twice
    assert len(store.events(experiment_id, types=["test.written"])) == 3


# The outage may also meet the call claims' heartbeat, which then says once, as it should, that
# identical calls of other processes may go out twice (whether it does depends on the tick's timing).
@pytest.mark.filterwarnings("ignore:promptlooper. call claims unavailable:UserWarning")
def test_a_sweep_goes_on_through_a_short_outage_of_its_database(proxy: CuttingProxy) -> None:
    model = FakeModel(f"outage-{time.monotonic_ns()}", latency=0.05)
    exp = fake_experiment(model.base_url, name="outage", space={"answer.temperature": [i / 100 for i in range(100)]},
                          concurrency=4)
    wb = pl.Workbench(proxy.url)  # every connection through the relay
    try:
        handle = wb.start(exp)
        wait(lambda: handle.progress.done >= 20, timeout=30)
        proxy.freeze()  # statements on their way stay there (look-ups, a batch) ...
        time.sleep(0.3)
        proxy.down()  # ... until every connection is cut, and none accepted: a restart of the server
        time.sleep(2.0)
        proxy.thaw()
        proxy.up()
        progress = handle.wait(60)
        assert (progress.status, progress.done, progress.failed) == ("completed", 300, 0)
        runs = wb.runs(exp.key, limit=1000)
        assert len(runs) == len({r["id"] for r in runs}) == 300
    finally:
        wb.close()


STATUS_WAITING = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                  " AND query LIKE 'UPDATE experiments SET status%'")


def test_a_sweep_whose_last_status_write_is_ended_still_ends_completed(pg_url: str, admin: psycopg.Connection) -> None:
    model = FakeModel(f"status-{id(admin)}", latency=0.02)
    exp = fake_experiment(model.base_url, name="status", space={"answer.temperature": [i / 10 for i in range(10)]}, concurrency=4)
    wb = pl.Workbench(pg_url)
    try:
        experiment_id = wb.register(exp)
        handle = wb.start(exp)
        wait(lambda: handle.progress.done >= 1, timeout=30)
        with psycopg.connect(pg_url, autocommit=True) as locker:
            # The experiment's row locked against updates (not against the runs' foreign keys): the
            # sweep's closing write of its status stops there, after every batch was committed.
            with locker.transaction():
                locker.execute("SELECT 1 FROM experiments WHERE id = %s FOR NO KEY UPDATE", (experiment_id,))
                [(pid,)] = wait(lambda: admin.execute(STATUS_WAITING).fetchall(), timeout=30)
                assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        progress = handle.wait(60)
        assert (progress.status, progress.done, progress.failed) == ("completed", 30, 0)
        assert wb.store.experiment(experiment_id)["status"] == "completed"
    finally:
        wb.close()



def test_a_cache_look_up_while_the_database_is_away_waits_for_it(proxied, proxy: CuttingProxy, admin: psycopg.Connection) -> None:
    store, experiment_id = proxied
    store.cx.write_deadline = 0.5
    proxy.down()
    with pytest.raises(StoreError):  # the outage, as the sweep's writer met it first
        store.write_batch(_batch(experiment_id, 1, "first"))
    store.cx.write_deadline = 30.0
    threading.Timer(1.5, proxy.up).start()
    # The look-ups of the runs in flight: a miss once the server is back, not a failed run.
    assert store.cache_get_many(["a-key"]) == {}
