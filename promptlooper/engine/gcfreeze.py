"""While a sweep runs, full garbage collections look only at what was allocated since it began.

A sweep keeps what it allocates alive for a while (finished run ids, recent cache entries,
batches waiting for the writer), so Python's collector now and then runs a full (generation 2)
collection, which walks every tracked object of the process. In a notebook kernel that has
imported pandas and plotly, that took 60-100 ms per collection, once or twice per 2,000-run sweep
(measured with ``gc.callbacks`` in the kernel of ``benchmarks/widget_latency.py``), and the
kernel's loop, a cell the user runs included, waited for it.

``gc.freeze()`` moves every object alive at the sweep's start to a permanent generation that
collections skip; ``gc.unfreeze()`` gives them back when the last sweep of the process ends.
Cycles among those older objects that become garbage meanwhile are collected after the sweep,
not during it. Sweeps may overlap (on one loop, or on threads): the first one in freezes, the
last one out unfreezes.

A live view that follows a sweep of another process (a terminal's ``promptlooper run``, workers)
allocates as it refreshes and set off the same full collections in the kernel (40-190 ms, with
the widgets' loop probe of ``benchmarks/widget_latency.py --sweep-in cli``). It takes a
:class:`HeapHold` while that sweep runs, and gives it back when the sweep ends or the view
closes: a share of the same freeze, counted with the sweeps'.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_sweeps = 0  # sweeps of this process running now, and views holding a share for one elsewhere


def _enter() -> None:
    global _sweeps
    with _lock:
        if _sweeps == 0:
            gc.freeze()
        _sweeps += 1


def _leave() -> None:
    global _sweeps
    with _lock:
        _sweeps -= 1
        if _sweeps == 0:
            gc.unfreeze()


@contextlib.contextmanager
def older_objects_frozen() -> Iterator[None]:
    """Freeze the heap for the time of the ``with`` block (see the module docstring)."""
    _enter()
    try:
        yield
    finally:
        _leave()


class HeapHold:
    """One owner's share of the freeze, taken and given back as the owner learns of a sweep's
    start and end (a view that follows a sweep of another process). Both are idempotent."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def take(self) -> None:
        if not self._held:
            _enter()
            self._held = True

    def give_back(self) -> None:
        if self._held:
            self._held = False
            _leave()
