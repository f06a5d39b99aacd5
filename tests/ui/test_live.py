from __future__ import annotations

import asyncio
import threading
import time

from promptlooper.ui._base import live_loops
from promptlooper.ui.live import EtaEstimator, LiveSweep, progress_state, sweep_numbers


class FakeWB:
    db_path = ":fake:"


def test_progress_state_formats_in_python():
    s = progress_state("p/e", {"status": "running", "done": 25, "total": 100, "tokens": 12345, "cost": 0.5, "cache_hit_rate": 0.25,
                               "eta": 75, "rate": 3.14, "best_score": 0.8123, "best_config_id": "abcdef1234567890"},
                       {"temp": 0.5, "persona": "pirate"})
    assert s["fraction"] == 0.25 and s["status"] == "running"
    d = s["display"]
    assert d["progress"] == "25 / 100 runs" and d["tokens"] == "12,345" and d["cost"] == "$0.5000" and d["cache"] == "25%"
    assert d["eta"] == "1 min 15 s" and d["rate"] == "3.1 runs/s" and d["best"] == "0.812 · abcdef123456"
    assert d["best_params"] == "temp = 0.5, persona = pirate"
    paused = progress_state("p/e", {"status": "paused", "done": 1, "total": 2, "eta": 5, "stop_reason": "budget"})
    assert paused["display"]["eta"] == "–" and paused["display"]["status"] == "paused (budget)"


def test_sweep_numbers_from_a_store_row():
    n = sweep_numbers({"status": "running", "done": 10, "total": 40, "cached": 5, "tokens_in": 7, "tokens_out": 3, "cost": 0.1})
    assert n["tokens"] == 10 and n["cache_hit_rate"] == 0.5 and n["status"] == "running"
    assert sweep_numbers(None)["status"] == "not started"


def test_eta_from_recent_rate_and_none_while_paused():
    eta = EtaEstimator(window=10)
    assert eta.update(0, 100, "running", now=0.0) is None
    assert eta.update(10, 100, "running", now=2.0) == 18.0  # 5 runs/s, 90 left
    assert eta.update(10, 100, "paused", now=30.0) is None
    assert eta.update(10, 100, "running", now=60.0) is None  # the pause does not count as slowness
    assert eta.update(20, 100, "running", now=61.0) == 8.0
    assert eta.update(100, 100, "completed", now=70.0) == 0.0


def test_listener_only_marks_and_one_loop_pushes_at_most_four_a_second(fake_handle):
    FakeHandle = fake_handle  # noqa: N806
    calls = []

    async def scenario() -> None:
        handle = FakeHandle(total=10_000)
        view = LiveSweep(FakeWB(), "p/e", handle, interval=0.25)
        before = view.pushes
        stop = threading.Event()

        def engine_writer() -> None:  # the engine calls listeners from its writer thread
            while not stop.is_set():
                handle.progress.done += 1
                handle.fire()
                calls.append(1)
                time.sleep(0.005)

        t = threading.Thread(target=engine_writer)
        t.start()
        await asyncio.sleep(2.0)
        stop.set()
        t.join()
        pushes = view.pushes - before
        assert len(calls) > 100 and 4 <= pushes <= 9, (len(calls), pushes)
        await asyncio.sleep(0.3)
        assert view.state["done"] == handle.progress.done  # the last change is never lost
        handle.progress.status = "completed"
        handle.finished = True
        await asyncio.sleep(0.35)
        assert view._loop_task is None or view._loop_task.done()
        assert view.state["status"] == "completed"

    asyncio.run(scenario())


def test_rerun_cell_replaces_the_loop_instead_of_adding_one(fake_handle):
    FakeHandle = fake_handle  # noqa: N806
    async def scenario() -> None:
        first = LiveSweep(FakeWB(), "p/e", FakeHandle())
        second = LiveSweep(FakeWB(), "p/e", FakeHandle())  # the same cell run again
        await asyncio.sleep(0.01)
        assert first._loop_task is None and "stopped updating" in first.notice
        assert not second._loop_task.done()
        mine = [k for k in live_loops() if k[0] == "LiveSweep" and k[2] == "p/e"]
        assert len(mine) == 1
        other = LiveSweep(FakeWB(), "p/other", FakeHandle())  # another experiment keeps its own
        second.watch(FakeHandle())  # following a new sweep: still one loop for this view
        await asyncio.sleep(0.01)
        assert len([k for k in live_loops() if k[0] == "LiveSweep"]) == 2
        second.close()
        other.close()
        await asyncio.sleep(0.01)
        assert not [k for k in live_loops() if k[0] == "LiveSweep"]

    asyncio.run(scenario())


def test_follows_a_real_sweep_in_process_and_from_the_store(wb, server, make_exp):
    server.latency = 0.02
    exp = make_exp(space={"answer.temperature": [i / 10 for i in range(10)]}, concurrency=4)

    async def scenario() -> None:
        handle = wb.start(exp)
        mine = LiveSweep(wb, exp, handle)
        elsewhere = LiveSweep(wb, exp, poll=0.1, slot="store")  # what Voila or another kernel sees
        await handle
        await asyncio.sleep(0.5)
        for view in (mine, elsewhere):
            assert view.state["status"] == "completed" and view.state["done"] == view.state["total"] == 30
            assert view.state["display"]["best"] != "–" and view.state["display"]["best_params"].startswith("answer.temperature")
            assert view.pushes >= 2
        mine.close()
        elsewhere.close()

    asyncio.run(scenario())
