"""Identical calls of several processes go out once: cache keys claimed in the store.

Within a process, an identical call in flight is awaited (single-flight, in :mod:`.calls`). Across
processes that share a store (two notebooks, two CLI runs, workers) a call looks like a cache
miss to each of them until its reply is committed; :class:`CallClaims` makes the first process
*claim* the key in the store (:mod:`promptlooper.store.claims`) and the others wait for its cache
entry, which they then use as a cache hit (nothing spent: the process that called paid).

Design, measured against a sweep alone (benchmarks/run.py a, b):

* **Alone, nothing per call.** A process sweeping alone claims nothing: it only writes a heartbeat
  every ``SOLO_TICK`` from a thread. In the transaction in which it first sees another live
  sharer it starts claiming, and claims at once the calls it already has out and those it made
  recently (their entries may not be committed yet). A process that starts beside others claims
  from its first call, but makes no claim until every live sharer says it claims, so a key is
  never called unclaimed by one process and claimed by another.
* **Alone again, solo again.** A claiming process that has seen no other live sharer for
  ``SOLO_AFTER`` says in its next tick that it claims no more, and stops claiming only if that same
  transaction (one at a time, see store/claims.py) saw no other live sharer: a process that joined
  before it read the old row and claims, and is seen, so this one claims on (the row is corrected
  at the next tick; meanwhile the other only waits); one that joins after it reads "not claiming"
  and waits for it to claim again, which it does as at the first meeting above. Its claims left
  from before are still renewed and released, and keys it waits for still polled, until none is
  left. It leans on heartbeats as joining does: a sharer silent for ``STALE_AFTER`` is gone.
* **Told at once on PostgreSQL.** The tick in which a process joins, or starts claiming, also
  notifies the sharers (store/postgres/notify.py), whose claims then tick at once: a newcomer
  waits a round trip or two for the others to claim, not a lone sweep's ``SOLO_TICK``, and the
  others see it claim without waiting for its next tick. (Three workers starting a sweep together
  waited up to 250 ms each: benchmarks/workers.py b, 0.79 of 3C/L before, see the commit.)
  Without notifications (SQLite) the ticks find out as before.
* **Claims batched per loop turn.** The keys missed in one turn of the event loop are claimed
  together (a :class:`~promptlooper.coalescing.Coalescer`), which also returns those already
  cached: on PostgreSQL awaited on the loop, in one round trip on an asynchronous connection
  (``aclaim_calls``, store/postgres/claims.py); on SQLite in one transaction in a thread (it may
  wait for the sweep's writer process, which the loop must not).
  Keys held by another process are polled together, one transaction every ``TICK``.
* **Claimed ahead, with the look-up ahead.** Where a batch is awaited on the loop (PostgreSQL),
  the keys a sweep looks up ahead for its next group of runs (engine/calls.py, ``prefetch``) are
  claimed in that same batch (:meth:`CallClaims.claim_ahead`): 32 keys a statement instead of the
  ~6 a loop turn misses, and the runs' calls then find their keys claimed, with no batch of their
  own. A key another process holds is left alone there: its run claims it when it calls, and
  waits, as any other. Each key claimed ahead carries its run's "still wanted?" (the sweep's gate
  open, not stopping, its configuration not redirected away); a tick that finds it no longer wanted
  releases it, so a pause, a stop, a redirect or a budget that drops the run frees the key for
  other processes within a tick instead of holding it until it expires.
* **A dead owner's claim is taken over.** The owner renews its claims while the calls are out; one
  not renewed for ``ttl`` seconds (``PROMPTLOOPER_CLAIM_TTL``, default 10) is taken by the next
  process polling it, which calls itself. A failed call's claim is deleted at the next tick; a
  successful one's once its cache entry is committed (the sweep's writer commits every 50 ms).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import socket
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..asyncutil import set_from_thread
from ..coalescing import Coalescer
from ..store.backend import StoreBackend
from ..store.claims import ClaimResult, ClaimTick

TICK = 0.1  # seconds between polls of the keys another process holds (and heartbeats) while claiming
SOLO_TICK = 0.25  # seconds between heartbeats while alone (how soon a newcomer may make its first claim)
STALE_AFTER = 5.0  # seconds without a heartbeat after which a sharer is gone
SOLO_AFTER = 5.0  # seconds without another live sharer after which a claiming process stops claiming
DEFAULT_TTL = 10.0  # seconds a claim holds unless renewed

CLAIMED = "claimed"  # the key is this process's to call
HELD = "held"  # another live process is calling it
Value = tuple[str, int, int, float]  # a cache entry: (response, tokens in, tokens out, latency ms)


def claim_ttl() -> float:
    """Seconds a claim holds without renewal: ``$PROMPTLOOPER_CLAIM_TTL``, else 10."""
    raw = os.environ.get("PROMPTLOOPER_CLAIM_TTL")
    return float(raw) if raw else DEFAULT_TTL


def new_owner() -> str:
    """This sweep's name in the claims table: host and pid, for whoever reads it, and a unique tail."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class CallClaims:
    """One sweeping process's claims (see the module docstring).

    ``recent`` gives the keys of the calls this process has out and of those it made lately: what it
    claims when another process appears. ``store`` is its own (the sweep's loop reads through
    another connection, which a write waiting for SQLite's lock must not hold).
    """

    def __init__(self, store: StoreBackend, recent: Callable[[], tuple[Iterable[str], Iterable[str]]], *,
                 owner: str | None = None, ttl: float | None = None, tick: float = TICK, solo_tick: float = SOLO_TICK,
                 stale_after: float = STALE_AFTER, solo_after: float = SOLO_AFTER,
                 is_open: Callable[[], bool] = lambda: True):
        self.store = store
        self.recent = recent
        # While the sweep is paused its claims are not renewed: after ``ttl`` another process may
        # take them over (a call this sweep then still makes on resume goes out twice, rather
        # than a colleague's sweep waiting for as long as this one stays paused).
        self.is_open = is_open
        self.owner = owner or new_owner()
        self.ttl = claim_ttl() if ttl is None else ttl
        self.tick = tick
        self.solo_tick = solo_tick
        self.stale_after = stale_after
        self.solo_after = solo_after
        self._alone_since: float | None = None  # while claiming: since when no other sharer was live
        self.claiming = False  # read by the call path on every miss: False while this process is alone
        self.others: dict[str, bool] = {}
        self._ready = asyncio.Event()  # set while every live sharer claims
        # On PostgreSQL a turn's claims are awaited on the loop (one round trip on an asynchronous
        # connection: no thread hop, which waited ~20 ms a turn for the GIL, and the loop does not
        # stand still for the round trip, which grows with the distance to the server and with the
        # machine's load: see store/postgres/claims.py); SQLite's may wait for its writer
        # process's lock, so they go to a thread.
        self._aclaim = getattr(store, "aclaim_calls", None)
        self._coalescer: Coalescer[str, Any] = Coalescer(self._claim_async if self._aclaim else self._claim_batch)
        self._waiting: dict[str, asyncio.Future[Any]] = {}  # keys another process holds
        self._calling: set[str] = set()  # own claims whose call is out (renewed)
        self._done: set[str] = set()  # own claims whose call was answered (released once cached)
        self._failed: set[str] = set()  # own claims whose call failed (released at the next tick)
        # Own claims made ahead of their run's call (see claim_ahead), each with its run's "still wanted?".
        self._ahead: dict[str, Callable[[], bool]] = {}
        self._renewed = 0.0
        self._task: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()  # another sharer joined or claims now: tick at once
        self._stop_listening: Callable[[], None] | None = None
        # Threads of its own: queued behind the sweep's other thread work (steering polls, scorers),
        # a claim waited ~40 ms a turn (measured on PostgreSQL, two sweeps of C = 64).
        self._executor = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="promptlooper-claims")
        self._warned = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Join the store's sharers (claiming at once if others sweep), and tick until :meth:`close`."""
        loop = asyncio.get_running_loop()
        # Connecting meanwhile: a notification sent before it listens waits for a tick instead.
        listening = loop.run_in_executor(self._executor, self.store.listen_sharers, set_from_thread(loop, self._poke))
        try:
            self._update(await self._run_tick(self._tick_of(claiming=None, announce=True)))
        except Exception as exc:  # noqa: BLE001 - the sweep runs unshared; the ticker tries again
            self._trouble(exc)
        try:
            self._stop_listening = await listening  # None: a store without notifications (SQLite)
        except Exception as exc:  # noqa: BLE001 - the ticks find the others out anyway
            self._trouble(exc)
        self._task = asyncio.ensure_future(self._ticker())

    async def close(self) -> None:
        """Leave: every claim of this process is deleted. Call it after the sweep's last commit
        (earlier, a waiter could claim and call a key whose entry is about to be committed)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._stop_listening is not None:
            self._stop_listening()
        for fut in self._waiting.values():
            fut.cancel()
        self._waiting.clear()
        try:
            aclose = getattr(self.store, "aclose_claims", None)
            if aclose is not None:
                await aclose()  # on this loop, where its connection was opened
            await asyncio.get_running_loop().run_in_executor(self._executor, self.store.leave_sharing, self.owner)
        finally:
            self._executor.shutdown(wait=True)
            self.store.close()

    # ------------------------------------------------------------------ the call path
    @property
    def ahead_ready(self) -> bool:
        """Whether :meth:`claim_ahead` claims now: claiming beside others that claim, on a store
        whose batches are awaited on the loop (a SQLite batch may wait for the writer's lock)."""
        return self._aclaim is not None and self.claiming and self._ready.is_set()

    async def claim_ahead(self, keys: list[str], wanted: Callable[[str], bool]) -> dict[str, Value]:
        """Claim ``keys`` for runs about to call them, in one batch: the entries of those cached.
        ``wanted(key)`` says whether the key's run still wants it; a tick releases those that do
        not (see the module docstring). Keys another process holds are not waited for here."""
        result = await self._aclaim(self.owner, keys, time.time(), self.ttl)  # type: ignore[misc]
        for key in result.claimed:
            if key not in self._calling:  # not a call of this process's already out with it
                self._ahead[key] = functools.partial(wanted, key)
                self._failed.discard(key)  # a failed call's claim, won again: no longer to release
        return result.found

    def covers(self, key: str) -> bool:
        """Whether a call of ``key`` goes through :meth:`acquire`: while claiming, or with ``key``
        claimed ahead (which the call takes, claiming or not by then)."""
        return self.claiming or key in self._ahead

    def forgo(self, key: str, *, answered: bool = True) -> None:
        """A run got ``key``'s reply from this process (a reply landed or in flight, the cache)
        instead of calling it: a claim made ahead for it goes once the entry is committed — or at
        the next tick if the call it waited for failed (``answered`` False: no entry will come)."""
        if self._ahead.pop(key, None) is not None and key not in self._calling:
            (self._done if answered else self._failed).add(key)

    async def acquire(self, key: str, gate: Callable[[], Awaitable[Any]]) -> Value | None:
        """The cache entry of ``key`` if another process called it (or it is cached), else None:
        the key is now claimed by this process, which must call and then say :meth:`finished`.
        ``gate`` is awaited while waiting for another process (a pause holds it, a stop raises)."""
        await gate()  # a paused sweep claims nothing (another process may call it meanwhile)
        if self._ahead.pop(key, None) is not None:  # claimed ahead (and renewed since): called now
            self._calling.add(key)
            return None
        while not self._ready.is_set():
            if not self.claiming:
                return None  # alone again meanwhile (see _poll): called unclaimed, as every call now
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ready.wait(), self.tick)
            await gate()
        try:
            outcome = await self._coalescer.get(key)
        except Exception as exc:  # noqa: BLE001 - the store failed: call unclaimed rather than not at all
            self._trouble(exc)
            return None
        while outcome == HELD:
            fut = self._waiting.get(key)
            if fut is None:
                fut = self._waiting[key] = asyncio.get_running_loop().create_future()
            try:
                while not fut.done():
                    await asyncio.wait((fut,), timeout=0.25)
                    await gate()
            except BaseException:
                if not fut.done():
                    fut.cancel()
                    self._waiting.pop(key, None)
                elif not fut.cancelled() and fut.result() == CLAIMED:
                    self.finished(key, ok=False)  # taken over for a run that no longer wants it
                raise
            outcome = fut.result()
        return None if outcome == CLAIMED else outcome

    def finished(self, key: str, *, ok: bool) -> None:
        """The call of a claimed key ended: its claim goes once its entry is committed, or now."""
        if key in self._calling:
            self._calling.discard(key)
            (self._done if ok else self._failed).add(key)

    # ------------------------------------------------------------------ store transactions
    async def _claim_batch(self, keys: list[str]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return self._outcomes(keys, await loop.run_in_executor(
            self._executor, self.store.claim_calls, self.owner, keys, time.time(), self.ttl))

    async def _claim_async(self, keys: list[str]) -> dict[str, Any]:
        return self._outcomes(keys, await self._aclaim(self.owner, keys, time.time(), self.ttl))  # type: ignore[misc]

    def _outcomes(self, keys: list[str], result: ClaimResult) -> dict[str, Any]:
        self._calling.update(result.claimed)
        return {key: result.found.get(key) or (CLAIMED if key in result.claimed else HELD) for key in keys}

    def _tick_of(self, *, claiming: bool | None, claim: list[str] | None = None, **rest: Any) -> ClaimTick:
        return ClaimTick(self.owner, time.time(), self.ttl, self.stale_after, claiming, claim or (), **rest)

    async def _run_tick(self, t: ClaimTick) -> ClaimResult:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.store.claims_tick, t)

    def _update(self, result: ClaimResult) -> None:
        self.claiming = result.claiming
        self.others = result.others
        if self.claiming and all(result.others.values()):
            self._ready.set()
        else:
            self._ready.clear()

    def _trouble(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(f"promptlooper: call claims unavailable ({type(exc).__name__}: {exc}); identical calls of "
                          "other processes may go out twice", stacklevel=2)

    def _pending(self) -> bool:
        """Claims of this process's, or keys it waits for, left from when it claimed."""
        return bool(self._waiting or self._calling or self._done or self._failed or self._ahead)

    def _release_unwanted(self) -> None:
        """Claims made ahead for runs that will not call (paused, stopped, redirected away): to
        the releases of this tick, unless a call of this process has the key out or answered."""
        for key in [k for k, wanted in self._ahead.items() if not wanted()]:
            del self._ahead[key]
            if key not in self._calling and key not in self._done:
                self._failed.add(key)

    async def _ticker(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.tick if self.claiming or self._pending() else self.solo_tick)
            self._poke.clear()
            try:
                await self._step()
            except Exception as exc:  # noqa: BLE001 - a store that failed once may answer the next tick
                self._trouble(exc)

    async def _step(self) -> None:
        if self.claiming or self._pending():
            await self._poll()
            return
        result = await self._run_tick(self._tick_of(claiming=False))  # alone: a heartbeat, and who else is there
        if result.others:
            await self._adopt()
        else:
            self._update(result)

    async def _adopt(self) -> None:
        """Another process sweeps now: claim what this one has out or just made, then claim on."""
        out, made = self.recent()
        out = set(out)
        self._alone_since = None
        self.claiming = True  # from here the call path claims (once the others claim too)
        self._calling.update(out)
        self._done.update(k for k in made if k not in out)
        result = await self._run_tick(self._tick_of(claiming=True, adopt=sorted(out | self._done), announce=True))
        self._renewed = time.monotonic()
        self._update(result)

    async def _poll(self) -> None:
        self._release_unwanted()
        waiting = [k for k, fut in self._waiting.items() if not fut.done()]
        failed, done = list(self._failed), list(self._done)
        renew: list[str] = []
        if time.monotonic() - self._renewed > self.ttl / 4 and self.is_open():
            renew = [*self._calling, *self._ahead]
            self._renewed = time.monotonic()
        # Alone long enough: this tick says it claims no more. It stops only if the same
        # transaction saw nobody else live; a newcomer after it sees it not claiming and waits for
        # it to claim again (the join below), as beside a process that never claimed.
        alone = self._alone_since is not None and time.monotonic() - self._alone_since >= self.solo_after
        claiming = self.claiming and not alone
        result = await self._run_tick(self._tick_of(claiming=claiming, claim=waiting, renew=renew, release=failed,
                                                    release_if_cached=done))
        self._failed.difference_update(failed)
        self._done.difference_update(result.released)
        if result.others:
            self._alone_since = None
            if not self.claiming:  # solo, with claims left from before, and another process came
                await self._adopt()
            else:
                # Still claiming (a tick that said otherwise is corrected by the next one: until
                # then the others only wait).
                self.others = result.others
                if all(result.others.values()):
                    self._ready.set()
                else:
                    self._ready.clear()
        else:
            if self._alone_since is None:
                self._alone_since = time.monotonic()
            self._update(result)  # not claiming from here if this tick said so
        self._calling.update(result.claimed)
        for key in waiting:
            outcome = result.found.get(key) or (CLAIMED if key in result.claimed else None)
            if outcome is None:
                continue
            fut = self._waiting.pop(key, None)
            if fut is None or fut.done():  # its waiter went away meanwhile
                if outcome == CLAIMED:
                    self.finished(key, ok=False)
                continue
            fut.set_result(outcome)
