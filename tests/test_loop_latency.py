"""A sweep shares its event loop: in a notebook it is the kernel's, and a cell waits for it.

A probe task sleeps 1 ms again and again on the sweep's loop and measures the CPU time the loop's
thread spent between its wake-ups: what ran in the loop turn(s) it waited through. CPU time, not
wall-clock time: a shared machine that preempts the process does not count, only work the sweep
did without letting the loop in. Cached runs never wait, so they are the hard case. The other
long stretch a sweep caused in a kernel was the collector's: full collections of the whole heap.
"""

from __future__ import annotations

import asyncio
import gc
import time

from helpers import fake_experiment

import promptlooper as pl
from promptlooper.engine.gcfreeze import older_objects_frozen
from promptlooper.engine.turns import TURN_BUDGET, TurnBudget
from promptlooper.testing import FakeModel

BURN = 0.0003  # CPU seconds of the scorer below: a Python scorer of modest cost


def costly_score(output: str) -> float:
    end = time.thread_time() + BURN
    while time.thread_time() < end:
        pass
    return 1.0


def _experiment(base_url: str, name: str, labels: int) -> pl.Experiment:
    # `label` renders as nothing: every configuration makes the same calls, one per sample.
    return fake_experiment(
        base_url, name=name, samples=[{"question": f"q{i}"} for i in range(30)],
        stages=[{"name": "answer", "model": "fake/fake-small", "user": "{{ question }}{{ label[:0] }}"}],
        space={"label": [f"v{i}" for i in range(labels)]},
        scorers=[{"name": "python", "function": costly_score}], concurrency=8)


async def _probe(gaps: list[float], progress: pl.Progress) -> None:
    """CPU seconds between wake-ups while runs are being done (compiling and opening the store,
    before, and the final commit, after, are the workbench's and the store's)."""
    while True:
        cpu, before = time.thread_time(), progress.done
        await asyncio.sleep(0.001)
        if 0 < before and progress.done < progress.total:
            gaps.append(time.thread_time() - cpu)


def test_cached_runs_let_the_loop_in_every_few_milliseconds(wb: pl.Workbench, fake: FakeModel) -> None:
    async def main() -> tuple[pl.Progress, list[float]]:
        await wb.sweep(_experiment(fake.base_url, "fill", 1))  # the calls, once; imports warmed up
        gaps: list[float] = []
        handle = wb.start(_experiment(fake.base_url, "cached", 20))  # on this loop, as in a notebook
        probe = asyncio.ensure_future(_probe(gaps, handle.progress))
        progress = await handle
        probe.cancel()
        return progress, gaps

    progress, gaps = asyncio.run(main())
    assert progress.done == 600 and progress.cached == 600
    # 600 runs of >= 0.3 ms: >= 180 ms of CPU, which the probe must see in slices. A gap spans a
    # turn or two: the workers hold one for ~TURN_BUDGET plus the run each is finishing, and the
    # look-ahead renders LOOKAHEAD runs in one step (measured: 16-25 gaps, the longest 10-11 ms).
    # Counting 8 cached runs per worker per turn (32 workers) and looking 64 runs ahead, the old
    # rules let the probe in 5 or 6 times, after 45-48 ms.
    assert len(gaps) >= 10
    assert max(gaps) < 0.020, f"longest stretch without the loop: {1000 * max(gaps):.1f} ms CPU"


def test_a_turn_closes_when_the_loop_comes_round() -> None:
    async def main() -> list[bool]:
        turn = TurnBudget(budget=0.001)
        seen = [turn.spent()]  # opens the turn
        end = time.perf_counter() + 0.002
        while time.perf_counter() < end:
            pass
        seen.append(turn.spent())  # the budget is used up within this turn
        await asyncio.sleep(0)  # the next turn: the opening's callback closed it
        seen.append(turn.spent())
        return seen

    assert asyncio.run(main()) == [False, True, False]


def test_wait_returns_at_once_while_the_turn_has_budget() -> None:
    async def main() -> int:
        turn = TurnBudget(TURN_BUDGET)
        waited = 0
        for _ in range(100):
            await turn.wait()  # cheap work: all in one turn, never handed back
            waited += 1
        assert not turn.spent()
        return waited

    assert asyncio.run(main()) == 100


def test_objects_older_than_a_sweep_are_left_out_of_its_collections(wb: pl.Workbench, fake: FakeModel) -> None:
    """A full collection during a sweep walks only what was allocated since it began; the heap
    is handed back to the collector when the last sweep ends (two sweeps overlap here)."""
    old_objects = [[i] for i in range(50_000)]  # what a kernel holds: imports, the user's data
    frozen_during: list[int] = []

    async def main() -> None:
        async def watch() -> None:
            while True:
                frozen_during.append(gc.get_freeze_count())
                await asyncio.sleep(0.002)

        watcher = asyncio.ensure_future(watch())
        await wb.sweep(_experiment(fake.base_url, "warm", 1))
        assert gc.get_freeze_count() == 0
        frozen_during.clear()
        await asyncio.gather(wb.sweep(_experiment(fake.base_url, "one", 4)), wb.sweep(_experiment(fake.base_url, "two", 4)))
        watcher.cancel()

    asyncio.run(main())
    assert max(frozen_during) >= len(old_objects)
    assert gc.get_freeze_count() == 0  # unfrozen once both are done


def test_the_last_sweep_out_unfreezes() -> None:
    with older_objects_frozen():
        with older_objects_frozen():
            pass
        assert gc.get_freeze_count() > 0  # the outer sweep still runs
    assert gc.get_freeze_count() == 0
