"""Live views on PostgreSQL read when the store announces a change (LISTEN/NOTIFY), not on a timer.

Each view here polls once a minute at most (``poll=60``), so only an announcement can bring a
commit made by another store (its own connections, as another process's) into it within the
test's bounds; the bounds are generous for a loaded machine and are not rates. An idle view makes
no read of a PostgreSQL store at all, and still polls a SQLite file. A listening connection that
the server drops (a restart) is made again, and what was committed meanwhile still shows. What no
commit announces (a view that skipped a change to pace itself, a sweep elsewhere that died) still
shows: a view reads on its interval for a while after the last announcement.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from helpers import db_rows, fake_experiment, runs_done, write_experiment

import promptlooper as pl
from promptlooper.testing import FakeModel, FakeServer
from promptlooper.ui.leaderboard import Leaderboard
from promptlooper.ui.live import LiveSweep
from promptlooper.ui.timeline import Timeline

pytestmark = pytest.mark.both_backends  # the idle-view test runs on both; the others name pg_url themselves

NEVER = 60.0  # a view's poll interval: longer than any test here


async def _until(predicate: Callable[[], Any], timeout: float) -> float:
    """Seconds until ``predicate()`` holds, on the loop (the views update on it); fails after ``timeout``."""
    began = time.perf_counter()
    while not predicate():
        if time.perf_counter() - began > timeout:
            raise AssertionError("the view did not show the change in time")
        await asyncio.sleep(0.002)
    return time.perf_counter() - began


def _configurations_now(db: str, key: str) -> int:
    fresh = pl.Workbench(db, readonly=True)
    try:
        return len(fresh.leaderboard(key))
    finally:
        fresh.close()


def _human_requests(view: Timeline) -> int:
    return sum(1 for e in view.events if e.get("type") == "human_needed")


@pytest.fixture
def two(pg_url: str, fake: FakeModel):
    """A finished experiment on PostgreSQL, and two workbenches on it (each its own connections)."""
    viewer, writer = pl.Workbench(pg_url), pl.Workbench(pg_url)
    exp = fake_experiment(fake.base_url, name="followed")
    writer.run(exp)
    yield viewer, writer, exp
    viewer.close()
    writer.close()


def test_a_commit_elsewhere_shows_in_a_view_that_never_polls(two) -> None:
    viewer, writer, exp = two

    async def scenario() -> list[float]:
        view = Timeline(viewer, exp, poll=NEVER)
        await asyncio.sleep(0.5)  # the view's loop subscribes
        latencies = []
        for i in range(10):
            await asyncio.sleep(0.3)  # an idle view, as between a person's clicks
            await asyncio.to_thread(writer.request_human, exp.key, f"look at this, {i}")  # committed on return
            latencies.append(await _until(lambda i=i: _human_requests(view) == i + 1, timeout=5))
        view.close()
        return latencies

    latencies = asyncio.run(scenario())
    print(f"commit -> timeline: median {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")


def test_a_sweep_in_another_store_drives_the_progress_view_and_the_leaderboard(pg_url: str) -> None:
    viewer, writer = pl.Workbench(pg_url), pl.Workbench(pg_url)
    model = FakeModel(latency=0.1)  # 24 runs, 2 at a time: about 1.2 s, several of the views' reads
    exp = fake_experiment(model.base_url, name="driven", space={"answer.temperature": [i / 10 for i in range(8)]}, concurrency=2)
    viewer.register(exp)

    async def scenario() -> None:
        progress = LiveSweep(viewer, exp, poll=NEVER)
        board = Leaderboard(viewer, exp, interval=NEVER)
        await asyncio.sleep(0.5)
        assert progress.state["status"] != "running" and len(board.rows) == 0
        sweep = asyncio.create_task(asyncio.to_thread(writer.run, exp))
        await _until(lambda: progress.state["status"] == "running", timeout=10)  # while it runs, not at its end
        assert not sweep.done()
        await sweep
        await _until(lambda: progress.state["status"] == "completed" and progress.state["display"]["progress"] == "24 / 24 runs",
                     timeout=10)
        await _until(lambda: len(board.rows) == 8, timeout=10)
        progress.close()
        board.close()

    try:
        asyncio.run(scenario())
    finally:
        viewer.close()
        writer.close()


def test_an_idle_view_reads_nothing_from_postgresql_and_polls_a_file(db: str, backend: str, fake: FakeModel) -> None:
    wb = pl.Workbench(db)
    exp = fake_experiment(fake.base_url, name="idle")
    wb.run(exp)

    async def scenario() -> int:
        view = LiveSweep(wb, exp, poll=0.05)
        await asyncio.sleep(0.5)  # started: one read, and the subscription where there is one
        before = view._reader.reads
        await asyncio.sleep(1.0)
        view.close()
        return view._reader.reads - before

    try:
        reads = asyncio.run(scenario())
    finally:
        wb.close()
    print(f"idle view on {backend}: {reads} reads in 1 s")
    if backend == "postgresql":
        assert reads == 0
    else:
        assert reads >= 5  # a file announces nothing: the view polls it (20 times a second here)


def test_a_dropped_listening_connection_comes_back_and_misses_nothing(two, pg_url: str) -> None:
    viewer, writer, exp = two

    async def scenario() -> None:
        view = Timeline(viewer, exp, poll=NEVER)
        await asyncio.sleep(0.5)
        with psycopg.connect(pg_url, autocommit=True) as admin:  # as a server restart would do to it
            dropped = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                    " WHERE datname = current_database() AND query = 'LISTEN promptlooper_changes'").fetchall()
        assert dropped == [(True,)]
        await asyncio.to_thread(writer.request_human, exp.key, "while nobody listened")
        await _until(lambda: _human_requests(view) == 1, timeout=10)
        await asyncio.to_thread(writer.request_human, exp.key, "once it listens again")
        await _until(lambda: _human_requests(view) == 2, timeout=5)
        view.close()

    asyncio.run(scenario())


def test_a_view_that_paces_itself_catches_up_with_a_sweep_killed_between_announcements(db: str, tmp_path) -> None:
    # The leaderboard skips a change that comes sooner than its interval after its last read. A
    # sweep killed just after such a change announces nothing more (its process is gone; the store
    # reads "interrupted" without a write): the view must still come to show what the store holds.
    viewer: Any = None
    with FakeServer(latency=0.1) as srv:
        exp = fake_experiment(srv.base_url, name="killed", concurrency=2,
                              space={"answer.temperature": [round(i * 0.02, 2) for i in range(40)]})
        f = write_experiment(tmp_path / "killed.yaml", exp)
        proc = subprocess.Popen([sys.executable, "-m", "promptlooper.cli", "--db", db, "run", str(f), "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        async def scenario() -> tuple[int, int]:
            nonlocal viewer
            while runs_done(db) < 3:
                await asyncio.sleep(0.05)
            viewer = pl.Workbench(db, readonly=True)  # as a dashboard opens the store
            board = Leaderboard(viewer, exp, interval=2.0, readonly=True)
            await asyncio.sleep(0.5)  # a few batches land within its interval, skipped
            proc.kill()
            proc.wait(10)
            await asyncio.sleep(2.0)  # a SQLite sweep's writer process commits what it was handed
            expected = await asyncio.to_thread(_configurations_now, db, exp.key)  # on connections of its own
            try:
                await _until(lambda: len(board.rows) == expected, timeout=15)
            finally:
                board.close()
            return len(board.rows), expected

        try:
            shown, expected = asyncio.run(scenario())
        finally:
            if proc.poll() is None:
                proc.kill()
            if viewer is not None:
                viewer.close()
    assert shown == expected > 0


def test_a_sweep_elsewhere_that_stops_beating_reads_interrupted_in_a_view(two, pg_url: str) -> None:
    # A sweep on another machine that dies writes nothing more: no announcement says so. Its last
    # beat is announced; the view goes on reading until the beat is stale (30 s), then shows it.
    viewer, writer, exp = two
    exp_id = writer.register(exp)
    sweep_id = writer.store.begin_sweep(exp_id, "grid", 12, {})

    async def scenario() -> float:
        view = LiveSweep(viewer, exp, poll=0.2)
        await asyncio.sleep(0.5)
        assert view.state["status"] == "running"
        await asyncio.to_thread(writer.store.update_sweep, sweep_id, owner_host="another-host", owner_pid=1)  # its last beat
        await asyncio.sleep(0.3)
        # As if that beat had been written 22 s ago (not announced): stale 8 s from now.
        await asyncio.to_thread(db_rows, pg_url, "UPDATE sweeps SET heartbeat = heartbeat - 22 WHERE id = ?", sweep_id)
        took = await _until(lambda: view.state["status"] == "interrupted", timeout=20)
        view.close()
        return took

    assert asyncio.run(scenario()) > 5  # read after the beat went stale, not at the update
