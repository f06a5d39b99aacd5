"""How many requests an endpoint really serves at once, from the first calls of a sweep.

A server with fewer slots than the sweep's concurrency queues the rest inside itself (llama.cpp's
server has one slot unless told otherwise): each call's HTTP exchange then includes its wait behind
the calls ahead of it, so the latency recorded for a call was up to C times the server's service
time (measured: 8x against a one-slot server at concurrency 8), and a timeout could fail healthy
calls. The client cannot see that queue, but it shows in how latency grows with the number of calls
in flight when a call is sent: on a server with K slots and service time S, the n-th call of a
burst answers after about ceil(n / K) * S, a straight line of slope S / K; on a server that serves
them all at once latency does not depend on n.

So the first calls of a sweep (a burst: 1, 2, ..., C in flight as they are sent) are fitted with a
line. When the fit is tight (r^2 >= R2_MIN) and rises, S is measured with the next calls sent one at
a time (the burst's first call also paid for a new connection), and K = S / slope. With K <= C / 2
the endpoint's concurrency becomes K: calls then wait in the engine, where the wait is not part of
the exchange, instead of in the server; otherwise it goes back to C.

Service times under ``MIN_SERVICE_MS`` are left alone: there the queue is in the cores this
process shares with the server (a loopback server at latency 0), not in the server's slots.
"""

from __future__ import annotations

import math

R2_MIN = 0.8  # how straight the line must be: latency that varies for other reasons stays well under
MIN_SERVICE_MS = 20.0


class SlotEstimate:
    __slots__ = ("needed", "n", "sx", "sy", "sxx", "sxy", "syy", "fastest")

    def __init__(self, needed: int):
        self.needed = needed  # observations before the estimate is made
        self.n = 0
        self.sx = self.sy = self.sxx = self.sxy = self.syy = 0.0
        self.fastest = math.inf

    def add(self, in_flight: int, latency_ms: float) -> bool:
        """One answered call (``in_flight``: calls out when it was sent, itself included); True once
        enough are in for :meth:`slope`."""
        self.n += 1
        self.sx += in_flight
        self.sy += latency_ms
        self.sxx += in_flight * in_flight
        self.sxy += in_flight * latency_ms
        self.syy += latency_ms * latency_ms
        if latency_ms < self.fastest:
            self.fastest = latency_ms
        return self.n >= self.needed

    def slope(self) -> float | None:
        """Milliseconds more per call in flight (S / K), if latency rises with it in a tight line."""
        n = self.n
        vx = n * self.sxx - self.sx * self.sx
        vy = n * self.syy - self.sy * self.sy
        cxy = n * self.sxy - self.sx * self.sy
        if vx <= 0 or vy <= 0 or cxy <= 0 or self.fastest < MIN_SERVICE_MS:
            return None
        if cxy * cxy / (vx * vy) < R2_MIN:
            return None
        return cxy / vx


ALONE_CALLS = 2  # calls sent one at a time to measure the service time


def slots_for(service_ms: float, slope_ms: float) -> int:
    """The slots of a server whose latency rises ``slope_ms`` per call in flight."""
    return max(1, int(service_ms / slope_ms + 0.5))
