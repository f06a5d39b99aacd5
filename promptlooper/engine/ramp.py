"""The first burst of calls to an endpoint, sent a little apart instead of in one instant.

Calls that leave together stay together against an endpoint whose latency barely varies: their
replies land in one bunch, and every round the server and this process each handle the whole bunch
back to back, so each call waits for the ones handled before it. Measured against the fake server
at latency 100 ms and concurrency 64 (a bare aiohttp client shows the same): 64 calls started
together go round in 107.8 ms, the same calls started 1.5 ms apart in 101.3 ms, and keep that
spacing for the rest of the sweep. Against real endpoints, whose latencies vary, the bunch breaks
up on its own after a few rounds; spacing the first burst costs nothing there.

It is done once per endpoint: the k-th of the first calls waits until (k - 1) x ``spacing`` after
the first, at most ``MAX_RAMP`` for the whole burst. A call that finds the previous one left long
enough ago goes at once, so slow-arriving calls (cache hits in between, a function stage) are never
held. The sweep asks for it only when many rounds lie ahead (engine/sweep.py), since the last call
of the burst starts up to ``MAX_RAMP`` late and a short sweep would only pay that.

The server-slot fit of the first calls (:mod:`.slots`) sees the ramp: the k-th call was sent
(k - 1) x ``spacing`` later, so a queueing server's latencies rise ``spacing`` less per call in
flight than its service time per slot; :class:`~.limits.AdaptiveLimit` adds it back.
"""

from __future__ import annotations

import time

SPACING = 0.0015  # seconds between the first calls (what the measurement above used)
MAX_RAMP = 0.1  # seconds, for the whole burst: a huge concurrency gets closer spacing instead


class Ramp:
    __slots__ = ("spacing", "left", "_next")

    def __init__(self, calls: int, spacing: float = SPACING):
        self.spacing = min(spacing, MAX_RAMP / max(1, calls))
        self.left = calls  # calls still to pace
        self._next = 0.0  # monotonic time the next call may leave

    def delay(self) -> float:
        """Seconds the next call waits before it leaves (counted as sent)."""
        self.left -= 1
        now = time.monotonic()
        if self._next <= now:
            self._next = now + self.spacing
            return 0.0
        wait = self._next - now
        self._next += self.spacing
        return wait
