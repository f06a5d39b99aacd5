"""How long a sweep's workers may hold the event loop in one turn before letting the rest in.

A run served from the cache never waits, so a sweep's workers could go through thousands of them
without giving the loop back; in a notebook that loop is the kernel's, and a cell the user runs
waits for it. Counting runs per turn does not bound the time (a cached run costs 25 µs with a
keyword scorer and milliseconds with a Python one), so the workers share a clock instead: a
:class:`TurnBudget` of ``TURN_BUDGET`` seconds per loop turn, all workers together.

A turn opens when a worker first asks (:meth:`TurnBudget.spent`) and closes when the loop comes
round to the callback that opening scheduled: ``call_soon`` queues it behind every handle already
ready, so it runs at the start of the next turn. Once the budget is spent, each worker checking in
hands the loop back (``asyncio.sleep(0)`` queues it behind what is ready: a cell's message, a
socket, a timer) and, on its return, waits again until a turn with budget left; so a turn lasts
about the budget plus the run each worker was finishing. A run that waited for an endpoint checks
in like any other, but its wait gave the loop back already: it opens a fresh turn and goes on.
"""

from __future__ import annotations

import asyncio
import time

# Seconds the workers together may run in one loop turn. A few ms keeps a notebook cell's wait
# short; each turn handed back costs every waiting worker a resumption (~5 µs): at 2 ms that was
# ~10% more CPU a run in a fully cached sweep (benchmarks/run.py c), at 3 ms within the noise.
TURN_BUDGET = 0.003


class TurnBudget:
    """The current loop turn's deadline, shared by a sweep's workers (see the module docstring)."""

    __slots__ = ("budget", "_ends")

    def __init__(self, budget: float = TURN_BUDGET):
        self.budget = budget
        self._ends: float | None = None  # perf_counter() at which the open turn's budget is spent

    def spent(self) -> bool:
        """Has this turn used its budget? The first question of a turn opens it."""
        now = time.perf_counter()
        ends = self._ends
        if ends is None:
            self._ends = now + self.budget
            asyncio.get_running_loop().call_soon(self._close)
            return False
        return now >= ends

    def _close(self) -> None:
        self._ends = None

    async def wait(self) -> None:
        """Hand the loop back until a turn has budget left (at once if this one has)."""
        while self.spent():
            await asyncio.sleep(0)
