"""A worker: claims chunks of any queued sweep, one after the other, and runs each through the engine.

The loop is Optuna's worker's: ask the database for work, do it, record it, ask again; the
database is the only state, so any number of workers on any number of hosts share the sweeps,
and one that dies costs only its lease (:mod:`promptlooper.store.chunks`).

* Each sweep's experiment is compiled once per worker, from the spec stored with it and the
  options it was queued with (``compile_stored``, given by the caller: the workbench knows how to
  turn a stored experiment into a compiled one; this package stays below it). An experiment this
  worker cannot compile (a Python stage or scorer it cannot import) is reported — on stderr and
  as a ``worker.failed`` event of the experiment, for the notebook that queued it — its chunk
  given back at once for a worker that can, and its sweep skipped by this worker from then on.
* A chunk ends in one of five ways: all its runs recorded (done; the last chunk completes the
  sweep), a stop request or a stop the engine decided (an endpoint unhealthy too long, a budget
  with nobody to steer: the sweep ends ``stopped``), its lease taken (nothing more to do: the new
  owner records its runs), this worker told to exit (SIGTERM: the calls in flight land and are
  recorded, then the chunk is given back), or a fault (its results could not be written, say):
  said, and the chunk given back at once; after ``FAULTS_IN_A_ROW`` of a sweep's chunks in a row,
  the sweep is left to the other workers, as one this worker cannot compile.
* With nothing to claim, a worker decides for the guided searches that have nothing queued
  (:mod:`.guided`: the sampler rebuilt from the database, as Optuna's workers ask theirs).
* ``once``: exit when no chunk is left to claim; ``max_idle``: exit after that many seconds
  without one; otherwise wait for work, polling every ``IDLE_POLL`` seconds (on PostgreSQL also
  woken the moment chunks are queued: store/postgres/notify.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..asyncutil import set_from_thread
from ..engine.sharing import CallSharing
from ..store import open_store
from ..store.chunks import Claim, ConfigurationPart
from ..sweeps.space import build_configuration
from .chunk_sweep import ChunkSweep, state_after
from .guided import decide, guided_driver

if TYPE_CHECKING:
    from ..compiled import CompiledExperiment
    from ..store.backend import StoreBackend

IDLE_POLL = 0.25  # seconds between claims while there is no work
RETRY_AFTER = 2.0  # seconds before claiming again when the database could not be reached
GIVE_UP_AFTER = 120.0  # seconds of an unreachable database after which the worker exits (with the error)
FAULTS_IN_A_ROW = 3  # chunks of a sweep failing here one after another before this worker leaves the sweep
DEFAULT_LEASE = 10.0  # seconds a claim lasts without a commit (batches renew it at least every 2 s)


@dataclass
class WorkerStats:
    chunks: int = 0
    runs: int = 0
    lost: int = 0  # chunks whose lease another worker took
    failed_sweeps: dict[str, str] = field(default_factory=dict)  # sweep id -> why this worker cannot run it


class Worker:
    """One worker process's loop (see the module docstring)."""

    def __init__(self, store_path: str, compile_stored: Callable[[str, dict[str, Any]], CompiledExperiment], *,
                 concurrency: int | None = None, lease: float = DEFAULT_LEASE, max_idle: float | None = None,
                 once: bool = False, name: str | None = None, say: Callable[[str], None] | None = None):
        self.store_path = store_path
        self.compile_stored = compile_stored
        self.concurrency = concurrency
        self.lease = lease
        self.max_idle = max_idle
        self.once = once
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.stats = WorkerStats()
        self._compiled: dict[tuple[str, int], CompiledExperiment] = {}  # by (sweep id, plan): a redirect changes the spec
        self._current: set[ChunkSweep] = set()
        self._slots: dict[str, asyncio.Semaphore] = {}  # sweep id -> the calls its chunks here may have out
        self._sharing: dict[str, CallSharing] = {}  # sweep id -> what its chunks here share on the call path
        self._exiting = False
        self._decided: dict[str, tuple[tuple[int, str], ...] | None] = {}  # guided sweep -> its chunks when last decided
        self._faults: dict[str, int] = {}  # sweep id -> its chunks that failed here in a row
        self._wake = asyncio.Event()

    def exit_soon(self) -> None:
        """Finish the calls in flight, record them, give the chunks back and exit (SIGTERM)."""
        self._exiting = True
        self._wake.set()
        for sweep in list(self._current):
            sweep.failures.stop("worker exiting")

    async def run(self) -> int:
        """Work until told to exit (or idle, with ``once`` / ``max_idle``); 0, or 1 if a sweep
        could not be compiled here.

        At most two chunks at once: the next one is claimed when every run of the current one has
        started (only its last calls are out), so the worker's calls do not drain at each chunk's
        end; both share the sweep's ``concurrency`` call slots."""
        store = open_store(self.store_path)
        active: dict[asyncio.Task[None], ChunkSweep | None] = {}
        # PostgreSQL: woken when chunks are queued, instead of at the next IDLE_POLL (store/postgres/notify.py).
        try:
            stop_listening = await asyncio.to_thread(store.listen_work, set_from_thread(asyncio.get_running_loop(), self._wake))
        except Exception:  # noqa: BLE001 - the database away for now: polling finds the chunks (and says why it cannot)
            stop_listening = None
        try:
            idle_since = time.monotonic()
            unreachable = 0  # claims in a row that could not reach the database
            while not self._exiting:
                # Cleared before looking for work, not after: chunks queued while the claim below
                # finds none wake the wait that follows it.
                self._wake.clear()
                # Exiting idle takes a turn with no chunk out from its start: a chunk that ends while
                # this turn claims or decides was still out when a guided search was decided for.
                was_active = bool(active)
                busy = [t for t, sweep in active.items() if sweep is None or not sweep.drained.is_set()]
                if len(active) >= 2 or busy:
                    await self._until_changed(active)
                    continue
                try:
                    claim = await asyncio.to_thread(store.claim_chunk, self.name, self.lease,
                                                    exclude=tuple(self.stats.failed_sweeps))
                except Exception as exc:  # the database unreachable for now (psycopg's errors, unwrapped): retry
                    unreachable += 1
                    if unreachable * RETRY_AFTER > GIVE_UP_AFTER:
                        raise
                    self.say(f"{self.name}: cannot claim work ({type(exc).__name__}: {exc}); trying again")
                    await self._until_changed(active, RETRY_AFTER)
                    continue
                unreachable = 0
                if claim is None and not active and await asyncio.to_thread(self._settle_paused, store):
                    continue  # a sweep resumed while nobody ran it: its chunks are claimable now
                if claim is None and await self._decide_guided(store):
                    continue  # a guided search queued its next chunks
                if claim is None:
                    if not active and not was_active and (self.once or (self.max_idle is not None and
                                                                        time.monotonic() - idle_since >= self.max_idle)):
                        break
                    await self._until_changed(active, IDLE_POLL)
                    if active:
                        idle_since = time.monotonic()
                    continue
                task = asyncio.ensure_future(self._work(store, claim, active))
                active[task] = None
                task.add_done_callback(lambda t: (active.pop(t, None), self._wake.set()))
                idle_since = time.monotonic()
            if active:
                await asyncio.gather(*active)
        finally:
            if stop_listening is not None:
                stop_listening()
            for compiled in self._compiled.values():
                await compiled.pool.aclose()
            store.close()
        return 1 if self.stats.failed_sweeps else 0

    async def _decide_guided(self, store: StoreBackend) -> bool:
        """Decide for the guided searches that have nothing queued (workers/guided.py); True if one
        queued chunks. A search is decided again only once its chunks changed since this worker
        last did (a decision rebuilds the study: not at every idle poll)."""
        queued = False
        for sweep in await asyncio.to_thread(store.shared_sweeps):
            sid = sweep["id"]
            if not sweep["options"].get("guided") or sid in self.stats.failed_sweeps:
                continue
            seen = tuple((c["idx"], c["state"]) for c in await asyncio.to_thread(store.chunks, sid))
            if self._decided.get(sid) == seen:
                continue
            claim = Claim(sid, sweep["experiment_id"], -1, 0, 0, 0, sweep["options"])  # what _compile needs
            compiled = await self._compile(store, claim)
            if compiled is None:
                continue
            outcome = await asyncio.to_thread(decide, store, sweep, compiled, self.store_path)
            self._decided[sid] = None if outcome == "queued" else seen
            queued = queued or outcome == "queued"
        return queued

    @staticmethod
    def _settle_paused(store: StoreBackend) -> bool:
        """A paused sweep resumed while no worker ran it (``promptlooper resume``) says so in its
        log only: put it back to running, so that its chunks can be claimed again. True if any was."""
        settled = False
        for sweep_id in store.paused_shared_sweeps():
            state, reason = state_after(store.steering_log(sweep_id))
            if state == "running":
                settled = store.settle_idle_sweep(sweep_id, state, reason) or settled
            elif state == "stopped":
                store.settle_idle_sweep(sweep_id, state, reason)
        return settled

    async def _until_changed(self, active: dict[asyncio.Task[None], ChunkSweep | None], timeout: float | None = None) -> None:
        """Wait for a chunk to end or to hand out its last run, an exit, work queued, or ``timeout``."""
        waits = [asyncio.ensure_future(self._wake.wait())]
        waits += [asyncio.ensure_future(sweep.drained.wait()) for sweep in active.values()
                  if sweep is not None and not sweep.drained.is_set()]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _work(self, store: StoreBackend, claim: Claim, active: dict[asyncio.Task[None], ChunkSweep | None]) -> None:
        where = f"sweep {claim.sweep_id[:8]} chunk {claim.index} (configurations {claim.lo}–{claim.hi - 1}, try {claim.generation})"
        try:
            await self._run_chunk(store, claim, active, where)
        except Exception as exc:  # noqa: BLE001 - a chunk's fault is said, and the chunk made again
            await self._failed(store, claim, where, exc)
        else:
            self._faults.pop(claim.sweep_id, None)

    async def _failed(self, store: StoreBackend, claim: Claim, where: str, exc: Exception) -> None:
        """A chunk raised (its results could not be written, or it could not be marked done): what
        it recorded is kept; given back, it is claimed again at once (by this worker or another)
        and its other runs are made then, instead of after its lease."""
        why = f"{type(exc).__name__}: {exc}"
        given_back = await asyncio.to_thread(_suppressed(store.release_chunk), claim.sweep_id, claim.index, claim.generation)
        self.say(f"{self.name}: {where}: failed ({why}); "
                 + ("given back" if given_back else "another worker takes it when its lease runs out"))
        self._faults[claim.sweep_id] = self._faults.get(claim.sweep_id, 0) + 1
        if self._faults[claim.sweep_id] == FAULTS_IN_A_ROW:  # not a passing fault: leave the sweep to the others
            self.stats.failed_sweeps[claim.sweep_id] = why
            self.say(f"{self.name}: leaving sweep {claim.sweep_id[:8]}: {FAULTS_IN_A_ROW} of its chunks failed here in a row")
            with contextlib.suppress(Exception):
                await asyncio.to_thread(store.add_event, claim.experiment_id, "worker.failed",
                                        {"sweep_id": claim.sweep_id, "worker": self.name, "error": why})

    async def _run_chunk(self, store: StoreBackend, claim: Claim, active: dict[asyncio.Task[None], ChunkSweep | None],
                         where: str) -> None:
        compiled = await self._compile(store, claim)
        if compiled is None:
            return
        if self._exiting:  # told to exit while it compiled: nothing of the chunk has run
            await asyncio.to_thread(store.release_chunk, claim.sweep_id, claim.index, claim.generation)
            return
        slots = self._slots.setdefault(claim.sweep_id, asyncio.Semaphore(compiled.concurrency))
        sharing = self._sharing.get(claim.sweep_id)
        if sharing is None:
            sharing = self._sharing[claim.sweep_id] = CallSharing(self.store_path)
        configuration, sample_ids = None, None
        if claim.config_id is not None and claim.samples is not None:  # a guided search's: its configuration, by name
            row = await asyncio.to_thread(store.configuration, claim.experiment_id, claim.config_id)
            configuration = build_configuration(compiled.experiment, row["varied"])
            order = guided_driver(compiled, self.store_path, claim.experiment_id).samples
            sample_ids = {sid for sid, _ in order[claim.samples[0]:claim.samples[1]]}
        sweep = ChunkSweep(self.store_path, compiled, claim, lease=self.lease, worker=self.name, slots=slots,
                           store=store, configuration=configuration, sample_ids=sample_ids,  # type: ignore[arg-type]
                           sharing=sharing)
        task = asyncio.current_task()
        if task in active:
            active[task] = sweep  # type: ignore[index]
        self._current.add(sweep)
        self._wake.set()
        self.say(f"{self.name}: {where}: started")
        try:
            progress = await sweep.run()
        finally:
            self._current.discard(sweep)
            if sharing.idle and self._sharing.get(claim.sweep_id) is sharing:
                del self._sharing[claim.sweep_id]  # its recent replies go with it (a chunk joining later starts afresh)
        self.stats.runs += progress.done - progress.skipped
        if sweep.lease_lost:
            self.stats.lost += 1
            self.say(f"{self.name}: {where}: lease lost to another worker; its runs are theirs now")
        elif self._exiting:
            await asyncio.to_thread(store.release_chunk, claim.sweep_id, claim.index, claim.generation)
            self.say(f"{self.name}: {where}: given back ({progress.done - progress.skipped} runs recorded)")
        elif sweep.store_lost:
            # This worker cannot write (the database unreachable from here, a network cut): the
            # chunk's lease runs out and another worker finishes it; this one goes on claiming.
            self.say(f"{self.name}: {where}: results cannot be stored from here ({progress.stop_reason}); "
                     "the chunk goes to another worker when its lease runs out")
        elif sweep.stopping:  # a stop for the whole sweep: requested, its budget, an endpoint unhealthy too long
            await asyncio.to_thread(store.release_chunk, claim.sweep_id, claim.index, claim.generation)
            reason = progress.stop_reason or "requested"
            await asyncio.to_thread(store.end_sweep, claim.sweep_id, "stopped", reason,
                                    events=[("experiment.stopped", {"sweep_id": claim.sweep_id, "reason": reason})])
            self.say(f"{self.name}: {where}: stopped ({reason})")
        else:
            status = await asyncio.to_thread(store.finish_chunk, claim.sweep_id, claim.index, claim.generation,
                                             replaced=sweep.replaced, part=self._part(claim, compiled))
            self.stats.chunks += 1
            self.say(f"{self.name}: {where}: {'replaced by a redirect' if sweep.replaced else 'done'}, "
                     f"{progress.done - progress.skipped} runs" + (" — sweep completed" if status == "completed" else ""))

    @staticmethod
    def _part(claim: Claim, compiled: CompiledExperiment) -> ConfigurationPart | None:
        """The configuration a chunk holds a part of (a range of its samples), for the store to
        rank as a whole when its last part is done; None for a chunk of whole configurations."""
        if claim.samples is None or claim.config_id is not None:  # (a guided search's parts: its driver ranks them)
            return None
        config = compiled.configurations[claim.lo]
        return ConfigurationPart(config.id, len(compiled.samples) * compiled.experiment.repeat,
                                 {"varied": config.varied, "configuration": config.as_record()})

    async def _compile(self, store: StoreBackend, claim: Claim) -> CompiledExperiment | None:
        compiled = self._compiled.get((claim.sweep_id, claim.plan))  # a redirect's new plan compiles its new spec
        if compiled is not None:
            return compiled
        options = {**claim.options, **({"concurrency": self.concurrency} if self.concurrency else {})}
        try:
            compiled = await asyncio.to_thread(self.compile_stored, claim.experiment_id, options)
        except Exception as exc:  # noqa: BLE001 - any reason this worker cannot run it is reported, not fatal
            why = f"{type(exc).__name__}: {exc}"
            self.stats.failed_sweeps[claim.sweep_id] = why
            self.say(f"{self.name}: cannot run sweep {claim.sweep_id[:8]} here (its chunk is given back): {why}\n"
                     "  hint: a worker imports the experiment's Python stages and scorers by their import path;"
                     " install their module where the worker runs, or put it on PYTHONPATH")
            await asyncio.to_thread(store.release_chunk, claim.sweep_id, claim.index, claim.generation)
            await asyncio.to_thread(store.add_event, claim.experiment_id, "worker.failed",
                                    {"sweep_id": claim.sweep_id, "worker": self.name, "error": why})
            return None
        self._compiled[(claim.sweep_id, claim.plan)] = compiled
        return compiled


def _suppressed(call: Callable[..., bool]) -> Callable[..., bool]:
    """``call``, False instead of any exception (the database may be what failed)."""

    def quiet(*args: Any) -> bool:
        try:
            return call(*args)
        except Exception:  # noqa: BLE001
            return False

    return quiet


__all__ = ["DEFAULT_LEASE", "Worker", "WorkerStats"]
