"""Live views that follow a sweep of another process keep the kernel's older heap out of full
collections while that sweep runs (engine/gcfreeze.py), as a sweep of the kernel itself does.

A view's refresh builds a few thousand objects a second (frames, rows, JSON); now and then that
sets off a full collection, which walks every object of the kernel (pandas, plotly, IPython, the
user's data) while holding the GIL: 40-190 ms measured in benchmarks/widget_latency.py
(``--sweep-in cli``, loop probe), with the kernel's loop and any cell waiting. The sweep here is
a real ``promptlooper run`` process on a loopback fake server, as from a terminal.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from helpers import temperature_sweep, write_experiment

import promptlooper as pl
from promptlooper.testing import FakeServer
from promptlooper.ui._base import TERMINAL
from promptlooper.ui.leaderboard import Leaderboard
from promptlooper.ui.live import LiveSweep

CLI = [sys.executable, "-m", "promptlooper.cli"]


def _start_other_process(wb: pl.Workbench, srv: FakeServer, tmp_path: Path, n_temps: int) -> tuple[subprocess.Popen[bytes], str]:
    exp = temperature_sweep(srv.base_url, "elsewhere", n_temps)
    f = write_experiment(tmp_path / "elsewhere.yaml", exp)
    proc = subprocess.Popen([*CLI, "--db", wb.db_path, "run", str(f), "--quiet"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if (wb.status(exp.key).get("sweep") or {}).get("status") == "running":
                return proc, exp.key
        except pl.NotFoundError:
            pass
        assert proc.poll() is None, "promptlooper run ended before its sweep ran"
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("the other process's sweep did not start")


def test_a_view_freezes_the_older_heap_while_the_sweep_it_follows_runs(wb: pl.Workbench, tmp_path: Path) -> None:
    old_objects = [[i] for i in range(50_000)]  # what a kernel holds: imports, the user's data
    assert gc.get_freeze_count() == 0
    seen: list[tuple[str, int]] = []
    with FakeServer(latency=0.05) as srv:
        proc, key = _start_other_process(wb, srv, tmp_path, 20)  # 60 runs, 4 at a time: about a second

        async def main() -> None:
            view = LiveSweep(wb, key, poll=0.05)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                status = view.state["status"]
                seen.append((status, gc.get_freeze_count()))
                if status in TERMINAL:
                    break
                await asyncio.sleep(0.01)
            view.close()

        asyncio.run(main())
        assert proc.wait(timeout=60) == 0
    running = [frozen for status, frozen in seen if status == "running"]
    assert running and all(frozen >= len(old_objects) for frozen in running), seen[:5]
    assert seen[-1] == ("completed", 0)  # the heap is handed back as soon as the view sees the end
    assert gc.get_freeze_count() == 0


def test_a_view_closed_mid_sweep_hands_the_heap_back(wb: pl.Workbench, tmp_path: Path) -> None:
    with FakeServer(latency=0.2) as srv:
        proc, key = _start_other_process(wb, srv, tmp_path, 40)  # 120 runs, 4 at a time: 6 s

        async def main() -> tuple[int, int, int]:
            board = Leaderboard(wb, key, interval=0.05)
            for _ in range(500):
                if gc.get_freeze_count() > 0:
                    break
                await asyncio.sleep(0.01)
            held = gc.get_freeze_count()
            board.close()
            closed = gc.get_freeze_count()
            status = wb.status(key)["sweep"]["status"]
            return held, closed, status

        try:
            held, closed, status = asyncio.run(main())
        finally:
            proc.kill()
            proc.wait(timeout=10)
    assert status == "running"  # the other process's sweep still ran when the view was closed
    assert held > 0 and closed == 0


def test_a_view_replaced_by_a_rerun_cell_hands_its_share_back(wb: pl.Workbench, tmp_path: Path) -> None:
    from promptlooper.ui.charts import Charts

    with FakeServer(latency=0.2) as srv:
        proc, key = _start_other_process(wb, srv, tmp_path, 40)

        async def until(check: Any) -> None:
            for _ in range(500):
                if check():
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("timed out")

        async def main() -> tuple[int, int, str]:
            first = Charts(wb, key, interval=0.05)  # polls the store itself (no leaderboard to follow)
            await until(lambda: gc.get_freeze_count() > 0)
            again = Charts(wb, key, interval=0.05)  # the same cell run again: replaces the first's loop
            await until(lambda: again._heap.held)
            await asyncio.sleep(0.1)
            held = gc.get_freeze_count()
            again.close()
            after = gc.get_freeze_count()  # the replaced view, never closed, holds nothing either
            first.close()
            return held, after, wb.status(key)["sweep"]["status"]

        try:
            held, after, status = asyncio.run(main())
        finally:
            proc.kill()
            proc.wait(timeout=10)
    assert status == "running"
    assert held > 0 and after == 0


def test_a_view_of_an_unknown_experiment_leaves_no_loop_behind(wb: pl.Workbench) -> None:
    from promptlooper.ui._base import live_loops

    async def main() -> dict[Any, Any]:
        try:
            LiveSweep(wb, "nowhere/nothing", poll=0.05)
        except pl.NotFoundError:
            pass
        else:
            raise AssertionError("an unknown experiment was shown")
        await asyncio.sleep(0.1)
        return live_loops()

    assert asyncio.run(main()) == {}
    assert gc.get_freeze_count() == 0
