"""Change announcements of a PostgreSQL store (what live views wake on): each write a view shows
announces its experiment at commit, only its experiment, and nothing when it rolls back.

Two stores on one database stand for two processes: the listener's wake-ups come through the
server. A SQLite file announces nothing (``listen_changes`` is None: its views poll).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import db_value

from promptlooper.store import Store
from promptlooper.store.postgres import PostgresStore
from promptlooper.store.records import ResultBatch


class Woken:
    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self) -> None:
        self.event.set()

    def by(self, action: Callable[[], object], timeout: float = 10.0) -> bool:
        """Whether ``action`` woke the listener (a miss waits ``timeout``)."""
        self.event.clear()
        action()
        return self.event.wait(timeout)


@pytest.fixture
def stores(pg_url: str):
    listener, writer = PostgresStore(pg_url), PostgresStore(pg_url)
    yield listener, writer
    listener.close()
    writer.close()


def test_each_write_a_view_shows_wakes_the_views_of_its_experiment_and_no_other(stores) -> None:
    listener, writer = stores
    mine, other = writer.upsert_experiment("p", "mine", {}), writer.upsert_experiment("p", "other", {})
    woken = Woken()
    stop = listener.listen_changes(mine, woken)
    assert stop is not None
    try:
        sweep = writer.begin_sweep(other, "grid", 1, {})
        assert not woken.by(lambda: writer.update_sweep(sweep, done=1), timeout=0.5)  # another experiment's
        assert not woken.by(lambda: writer.add_event(other, "human_needed", {}), timeout=0.5)
        assert woken.by(lambda: writer.begin_sweep(mine, "grid", 3, {}))
        sweep = writer.latest_sweep(mine)["id"]
        assert woken.by(lambda: writer.update_sweep(sweep, done=1))  # progress, a heartbeat
        assert woken.by(lambda: writer.add_steering(sweep, "pause"))
        assert woken.by(lambda: writer.add_event(mine, "run.rated", {"by": "ana"}))  # ratings, decisions: events
        progress_only = ResultBatch()
        assert woken.by(lambda: writer.write_batch(progress_only, {"id": sweep, "done": 2}))
        events_only = ResultBatch()
        events_only.add_event(None, mine, "new_best_found", {})
        assert woken.by(lambda: writer.write_batch(events_only))
    finally:
        stop()


def test_a_write_that_rolls_back_announces_nothing(stores) -> None:
    listener, writer = stores
    mine = writer.upsert_experiment("p", "mine", {})
    woken = Woken()
    stop = listener.listen_changes(mine, woken)
    try:
        def rolled_back() -> None:
            with pytest.raises(RuntimeError), writer.cx.write():
                writer.add_event(mine, "human_needed", {})  # announced in its transaction...
                raise RuntimeError("...which is rolled back")

        assert not woken.by(rolled_back, timeout=0.5)
        assert writer.events(mine) == []
        assert woken.by(lambda: writer.add_event(mine, "human_needed", {}))  # the same write, committed
    finally:
        stop()


def test_one_listening_connection_serves_every_view_of_a_process(stores, pg_url: str) -> None:
    listener, writer = stores
    mine = writer.upsert_experiment("p", "mine", {})
    views = [Woken() for _ in range(6)]  # a dashboard page's views
    stops = [listener.listen_changes(mine if i else None, w) for i, w in enumerate(views)]
    try:
        listening = db_value(pg_url, "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
                                     " AND query = 'LISTEN promptlooper_changes'")
        assert listening == 1
        writer.add_event(mine, "human_needed", {})
        assert all(w.event.wait(10) for w in views)
    finally:
        for stop in stops:
            stop()


def test_sqlite_announces_nothing_and_its_views_poll(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    try:
        assert store.listen_changes(None, lambda: None) is None
    finally:
        store.close()
