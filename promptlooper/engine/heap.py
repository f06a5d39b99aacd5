"""The cycle collector during sweeps: objects older than the sweeps are not scanned.

A notebook's heap (DataFrames of objects, figures, the kernel's history) can hold millions of
objects, and every full collection scans them all. During a sweep such a collection stops the event
loop, and every call in flight with it, for as long as it takes (~40 ms on the benchmark's small
heap, ~1% of a latency-bound sweep). ``gc.freeze()`` when the first sweep of the process starts moves
what exists then out of the collector's sight; ``gc.unfreeze()`` when the last one ends gives it back
as the oldest generation, so cyclic garbage among those objects is collected later, not lost.
A process that froze objects itself (a pre-fork server) is left as it is.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_sweeps = 0  # sweeps running in this process (a notebook may run several, on one loop or more)
_ours = False  # whether the frozen objects are frozen by us


@contextlib.contextmanager
def older_objects_frozen() -> Iterator[None]:
    global _sweeps, _ours
    with _lock:
        if _sweeps == 0:
            _ours = gc.get_freeze_count() == 0
            if _ours:
                gc.freeze()
        _sweeps += 1
    try:
        yield
    finally:
        with _lock:
            _sweeps -= 1
            if _sweeps == 0 and _ours:
                gc.unfreeze()
                _ours = False
