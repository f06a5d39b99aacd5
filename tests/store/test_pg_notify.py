"""Steering wakes a sweep through PostgreSQL's LISTEN/NOTIFY: a request queued by any process
(another machine's notebook, an agent) reaches the listening sweep at its commit, not at its next poll."""

from __future__ import annotations

import threading
from pathlib import Path

from promptlooper.store import Store
from promptlooper.store.postgres import PostgresStore


def test_a_queued_request_wakes_the_sweeps_listener_and_no_other(pg_url: str) -> None:
    sweeper, steerer = PostgresStore(pg_url), PostgresStore(pg_url)
    try:
        eid = steerer.upsert_experiment("p", "e", {})
        sid = sweeper.begin_sweep(eid, "grid", 1, {})
        other = steerer.begin_sweep(steerer.upsert_experiment("p", "other", {}), "grid", 1, {})
        woke = threading.Event()
        stop = sweeper.listen_steering(sid, woke.set)
        try:
            steerer.add_steering(other, "pause")
            assert not woke.wait(0.5)  # not ours: no wake-up
            steerer.add_steering(sid, "pause")
            assert woke.wait(10)
            assert sweeper.take_steering(sid) == ["pause"]
            woke.clear()
            assert steerer.request_steering(eid, "resume")["id"] == sid
            assert woke.wait(10)
        finally:
            stop()
    finally:
        sweeper.close()
        steerer.close()


def test_sqlite_has_nothing_to_listen_to_and_the_sweep_polls(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    try:
        stop = store.listen_steering("sid", lambda: None)
        stop()
    finally:
        store.close()
