"""Concurrency that adapts to the endpoint.

Each endpoint gets an :class:`AdaptiveLimit`: it starts at the endpoint's concurrency, halves on
every sign of overload (a 429, a 5xx, a timeout; at most once per cool-down, so a burst from one
overload counts once), and grows back by one slot after a run of successes. Its first calls also
tell how many the server really serves at once (:mod:`.slots`); a server that queues the rest
inside itself gets no more than that. How long a retry waits is :mod:`promptlooper.retrying`'s
business; the engine calls :meth:`AdaptiveLimit.on_overloaded` from that policy's failure hook.
"""

from __future__ import annotations

import asyncio
import collections
import time

from .ramp import Ramp
from .slots import ALONE_CALLS, SlotEstimate, slots_for


class AdaptiveLimit:
    def __init__(self, limit: int, *, recover_after: int = 20, cooldown: float = 1.0):
        self.max = max(1, limit)
        self.limit = self.max
        self.in_use = 0
        self.recover_after = recover_after
        self.cooldown = cooldown
        self._successes = 0
        self._last_cut = 0.0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        # The first 2 * max answers (up to 128) are fitted for the server's slots; see observe().
        self.calibrating = self.max >= 4
        self._estimate = SlotEstimate(min(128, 2 * self.max))
        self._slope: float | None = None  # S / K, once the first calls said the server queues
        self._before = self.max  # the limit before the calls sent alone
        self._alone: list[float] = []
        # The first calls' spacing (engine/ramp.py), if the sweep asked for one.
        self.ramp: Ramp | None = None
        self._spacing_ms = 0.0

    def ramp_up(self, calls: int) -> None:
        """Send the first ``calls`` calls a little apart (see :mod:`.ramp`)."""
        self.ramp = Ramp(calls)
        self._spacing_ms = self.ramp.spacing * 1000.0

    def ramp_delay(self) -> float:
        """Seconds the call about to leave waits for the ramp (0 once it is over)."""
        ramp = self.ramp
        if ramp is None:
            return 0.0
        wait = ramp.delay()
        if ramp.left <= 0:
            self.ramp = None
        return wait

    async def acquire(self) -> None:
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # we were handed a slot just as we got cancelled
            else:
                self._waiters.remove(fut)
            raise

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_use < self.limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_use += 1
                fut.set_result(None)

    def on_overloaded(self) -> None:
        now = time.monotonic()
        self._successes = 0
        if now - self._last_cut >= self.cooldown:
            self._last_cut = now
            self.limit = max(1, self.limit // 2)

    def observe(self, in_flight: int, latency_ms: float) -> None:
        """An answered call while calibrating: ``in_flight`` calls were out when it was sent (see
        :mod:`.slots`)."""
        if self._slope is None:  # fitting the first calls
            if not self._estimate.add(in_flight, latency_ms):
                return
            slope = self._estimate.slope()
            # The fastest call bounds the service time from above, so fastest / slope bounds the
            # slots: above the limit, the rise is not queueing in the server (a client's own
            # turn, handling a burst of replies, also adds a little per call) and nothing changes.
            if slope is None or self.limit < 2 or self._estimate.fastest / slope > self.limit:
                self.calibrating = False
                return
            # The k-th call left (k - 1) x spacing after the first: a queue's latencies rose that
            # much less per call than the service time per slot (engine/ramp.py).
            self._slope, self._before = slope + self._spacing_ms, self.limit
            self.limit = 1  # the next calls go alone: their exchange is the service time
            return
        if in_flight != 1:
            return  # sent before the limit fell to 1
        self._alone.append(latency_ms)
        if len(self._alone) < ALONE_CALLS:
            return
        self.calibrating = False
        slots = slots_for(min(self._alone), self._slope)
        if slots <= self._before // 2:
            self.max = self.limit = slots  # and it never grows back past what the server serves
        else:
            self.limit = self._before
        self._wake()

    def on_success(self) -> None:
        if self.limit < self.max:
            self._successes += 1
            if self._successes >= self.recover_after:
                self._successes = 0
                self.limit += 1
                self._wake()

    async def __aenter__(self) -> AdaptiveLimit:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()
