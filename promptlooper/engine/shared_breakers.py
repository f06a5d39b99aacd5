"""Circuit breakers that hold across every process sweeping one store.

A breaker (:mod:`.breaker`) opens in the process whose calls failed; the others would keep calling
the dead endpoint until enough of their own calls failed too. :class:`SharedBreakers` writes an
open breaker to the store (``endpoint_breakers``, :mod:`promptlooper.store.claims`), keyed by the
endpoint's identity (its URL, not the name each experiment gives it); every sweep reads the rows
on its steering poll (every 0.25 s) and opens its own breakers for them (``Breaker.open_remotely``),
which pauses it as its own would.

Half-open: only the process that opened the breaker probes the endpoint; each failed probe
extends the row's ``open_until`` past the next probe. A probe answered deletes the row, and the
others close their breakers at their next poll. If that process dies, its row lapses at
``open_until`` and the others call again: the first to fail enough opens it afresh and probes.

Writes go through the sweep's claims connection (not the loop's), one at a time in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..store.backend import StoreBackend
from .breaker import Breaker

MARGIN = 10.0  # seconds a row outlives the next probe it announces (a late probe must not let it lapse)


class SharedBreakers:
    def __init__(self, store: StoreBackend, owner: str, *, margin: float = MARGIN):
        self.store = store
        self.owner = owner
        self.margin = margin
        self._writes: asyncio.Task[None] | None = None  # the last write: each waits for the one before

    def opened(self, breaker: Breaker) -> None:
        """This process's breaker opened (or a probe failed): the others stop until the next probe."""
        until = time.time() + breaker.next_probe_in() + self.margin
        self._write(self.store.open_breaker, breaker.identity, self.owner, until, breaker.reason)

    def closed(self, breaker: Breaker) -> None:
        """The endpoint answered this process: the row it wrote goes (a remote one is not its to delete)."""
        if not breaker.remote:
            self._write(self.store.close_breaker, breaker.identity, self.owner)

    def resumed(self, breakers: Iterable[Breaker]) -> None:
        """A person resumed the sweep: they say the endpoints are back, whoever opened them."""
        for breaker in breakers:
            if breaker.is_open:
                self._write(self.store.close_breaker, breaker.identity, None)

    async def open_elsewhere(self) -> dict[str, tuple[str, str]]:
        """Endpoints whose breaker another process holds open now: identity -> (owner, reason)."""
        rows = await asyncio.to_thread(self.store.open_breakers, time.time())
        return {endpoint: row for endpoint, row in rows.items() if row[0] != self.owner}

    def _write(self, method: Callable[..., Any], *args: Any) -> None:
        before = self._writes

        async def write() -> None:
            if before is not None:
                await asyncio.gather(before, return_exceptions=True)
            await asyncio.to_thread(method, *args)

        self._writes = asyncio.ensure_future(write())

    async def aclose(self) -> None:
        """Wait for the writes still under way (before the store they use closes)."""
        if self._writes is not None:
            await asyncio.gather(self._writes, return_exceptions=True)
