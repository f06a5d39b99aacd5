"""One sharing identity for the sweeps of one process that run the same sweep's calls.

A worker runs two chunks of a sweep at once at each hand-over (promptlooper/workers/worker.py).
Each chunk is a sweep of its own; with a :class:`~.claims.CallClaims` each, the two saw each other
as live sharers of the store, and from then on the lone worker claimed almost every call — a
database round trip on each call's critical path (3,750 keys claimed for 4,000 calls, measured
with pg_stat_statements on benchmarks/workers.py a). So the chunks a worker runs of one sweep
join one :class:`CallSharing`:

* **one CallClaims** (one owner in ``call_sharers``): alone on the store the worker stays solo and
  claims nothing; a second worker or process still makes both claim, as before. The claims start
  with the first chunk that joins and close when the last one leaves, after its last commit (each
  chunk leaves after its final flush): a waiter elsewhere then finds every entry committed. A
  chunk joining later gets a new CallClaims, with a new owner: the old one's leaving deletes only
  its own rows.
* **one Flights** (:mod:`.flights`): the chunks' identical calls are single-flight across chunks,
  and a reply one chunk got a moment ago serves the other at once. What the claims adopt when
  another process appears is every chunk's calls out and recent replies.

What else a sweep keeps in the store under a name — its budget hold (engine/budgets.py) and the
breakers it opens (engine/shared_breakers.py) — stays each chunk's own (:func:`member_name`):
a chunk that ends frees its hold, not the other chunk's. A sweep run by one process has a
CallSharing of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..store import open_store
from .claims import CallClaims, new_owner
from .flights import Flights


class CallSharing:
    """The call path state that the sweeps joining it share (see the module docstring)."""

    def __init__(self, store_path: str, *, flights: Flights | None = None):
        self.store_path = store_path
        self.flights = flights if flights is not None else Flights()
        self.claims: CallClaims | None = None
        self._members: list[Callable[[], bool]] = []  # each member's "may a call go out now?"
        self._lock = asyncio.Lock()  # a join waits for a leave that is closing the claims

    async def join(self, is_open: Callable[[], bool]) -> CallClaims:
        """This process's claims, started for the first member; ``is_open`` says whether the
        joining sweep may call now (claims are renewed while any member may)."""
        async with self._lock:
            if self.claims is None:
                # Its own connection (the sweep's loop reads through another one).
                claims = CallClaims(open_store(self.store_path), self.flights.claim_candidates, is_open=self._any_open)
                await claims.start()
                self.claims = claims
            self._members.append(is_open)  # a member once the claims are there (a store that failed: none)
            return self.claims

    async def leave(self, is_open: Callable[[], bool]) -> None:
        """The member that joined with ``is_open`` made its last commit; the last one closes the claims."""
        async with self._lock:
            self._members.remove(is_open)
            if not self._members and self.claims is not None:
                claims, self.claims = self.claims, None
                await claims.close()

    @property
    def idle(self) -> bool:
        """No member now (the claims are closed, or closing)."""
        return not self._members

    def _any_open(self) -> bool:
        return any(is_open() for is_open in self._members)


def member_name() -> str:
    """A sweep's own name for what it holds in the store besides claims (budget hold, breakers)."""
    return new_owner()


__all__ = ["CallSharing", "member_name"]
