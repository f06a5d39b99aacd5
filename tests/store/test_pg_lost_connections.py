"""A PostgreSQL store survives connections the server drops: a restart, a dropped link, an admin.

``pg_terminate_backend`` ends server sessions as a restart does (the client learns it on its next
statement). Two moments matter: a pooled connection dropped while idle (it must be replaced when
taken, not fail the store call that gets it), and a writer dropped while it waits for the store's
write lock inside its transaction (nothing was written on it yet: the write must go through on a
new connection). A sweep whose connections are dropped at both moments completes, every run
stored once.
"""

from __future__ import annotations

import threading

import psycopg
from helpers import fake_experiment, wait

import promptlooper as pl
from promptlooper.store import open_store
from promptlooper.store.postgres.connection import WRITE_LOCK
from promptlooper.testing import FakeModel

OTHERS = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
# The same, for the sessions sitting idle only: a sweep's pooled connections between two uses, and
# its steering listener. Sessions dropped inside a batch's transaction: test_pg_lost_connections_in_batches.py.
IDLE_OTHERS = OTHERS + " AND state = 'idle'"
LOCK_WAITERS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"


def test_reads_and_writes_after_every_pooled_connection_was_dropped(pg_url: str, admin: psycopg.Connection) -> None:
    store = open_store(pg_url)
    try:
        store.set_setting("before", 1)
        assert store.get_setting("before") == 1
        assert admin.execute(OTHERS).fetchall()  # the pool's idle connections, gone
        assert store.get_setting("before") == 1  # a read on a replaced connection
        store.set_setting("after", 2)  # a write too
        assert store.get_setting("after") == 2
    finally:
        store.close()


def test_a_writer_dropped_while_it_waits_for_the_write_lock_writes_on_a_new_connection(pg_url: str, admin: psycopg.Connection) -> None:
    store = open_store(pg_url)
    outcome: list[object] = []
    try:
        with psycopg.connect(pg_url, autocommit=True) as locker:
            with locker.transaction():
                locker.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))  # another writer holds it
                writer = threading.Thread(target=lambda: outcome.append(_try(store.set_setting, "k", "v")))
                writer.start()
                [(pid,)] = wait(lambda: admin.execute(LOCK_WAITERS).fetchall(), timeout=10)
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            writer.join(30)  # the lock is free again
        assert outcome == [None]
        assert store.get_setting("k") == "v"
    finally:
        store.close()


def test_a_sweep_whose_connections_are_dropped_completes_with_every_run_once(pg_url: str, admin: psycopg.Connection) -> None:
    model = FakeModel(f"lost-{id(admin)}", latency=0.05)  # 300 runs, 4 at a time: ~4 s, longer than the drops
    exp = fake_experiment(model.base_url, name="dropped", space={"answer.temperature": [i / 100 for i in range(100)]}, concurrency=4)
    wb = pl.Workbench(pg_url)
    try:
        handle = wb.start(exp)
        wait(lambda: handle.progress.done >= 20, timeout=30)
        assert admin.execute(IDLE_OTHERS).fetchall()  # idle pooled connections and the steering listener
        wait(lambda: handle.progress.done >= 60, timeout=30)
        with psycopg.connect(pg_url, autocommit=True) as locker:
            with locker.transaction():
                locker.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                [(pid,)] = wait(lambda: admin.execute(LOCK_WAITERS).fetchall(), timeout=10)  # the sweep's next batch
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        progress = handle.wait(60)
        assert (progress.status, progress.done, progress.failed) == ("completed", 300, 0)
        runs = wb.runs(exp.key, limit=1000)
        assert len(runs) == len({r["id"] for r in runs}) == 300
        model.reset()
        assert wb.run(exp).skipped == 300 and model.stats()["requests"] == 0
    finally:
        wb.close()


def _try(fn, *args):  # noqa: ANN001, ANN202 - the thread's outcome: None or the exception
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001
        return exc
    return None
