"""One leased chunk of a shared sweep, run by the ordinary engine.

:class:`ChunkSweep` is a :class:`~promptlooper.engine.sweep.Sweep` over the plan's configurations
``lo`` to ``hi - 1`` (every sample and repeat of each), or over a range of configuration ``lo``'s
samples, joined to the shared sweep's row instead of taking a lease of its own. Runs, calls,
retries, the cache, scorers and batching are the engine's; what differs is only what a share of a
sweep must do differently:

* **Writes are fenced** (:meth:`Store.write_chunk_batch`): each batch renews the chunk's lease if
  this worker still holds it (its generation), else :class:`~promptlooper.store.chunks.LeaseLostError`
  rolls it back and the chunk stops at once, committing nothing more. Batches add their runs,
  tokens and cost to the sweep's row, never overwrite it. Always from this process's write thread
  (no writer process: a refused batch must be dropped, not retried elsewhere).
* **Steering is a log**: every worker of the sweep applies every request, so none takes the queue
  (:meth:`Store.steering_log`). A chunk that joins late fast-forwards through the log without
  repeating its events (stopped, paused or running), then applies new entries as a sweep does.
  No call goes out before that: the gate opens only after the first read.
* **The budget is the sweep's**: each call's cost is reserved in the store before it goes out
  (:mod:`promptlooper.engine.budgets`, for as long as the chunk's lease), so together the workers
  do not pass it; after each commit the worker also reads what all workers have spent
  (``sweep_spent``) into its budget check, and the worker that reaches the budget writes the
  pause (or, for a sweep nobody steers, the stop) into the log for all.
* **Sweep-level events** (``experiment.started`` / ``completed`` / ``stopped``) are the shared
  sweep's, written when it is queued and ended; a chunk records ``chunk.started`` / ``chunk.ended``.

* **A part of a configuration** (a range of its samples) runs the plan's items of that range only,
  with the plan's run ids and sample indexes; it ranks nothing, not even when the other parts'
  runs are all in at its start: the store ranks the configuration when its last part is done
  (:meth:`~promptlooper.store.chunks.Chunks.finish_chunk`, called by the worker). Scorers
  are per run; the leaderboard reads every run from the store.
* **A redirect replaces the plan** (:mod:`.replanning` re-plans the sweep in the database): a
  chunk of an earlier plan stops at its next call — runs whose call is out land and are recorded,
  the others (not started, or waiting for their next stage's call) are left to the new plan's
  chunks, which skip what is finished and find the landed responses in the cache. A chunk claimed
  just before a redirect and joining after it runs nothing. Either way the worker marks it
  ``replaced`` and claims one of the new plan's chunks (claimable once no earlier chunk is held).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..asyncutil import set_from_thread
from ..engine.sharing import CallSharing
from ..engine.sweep import POLL_EVERY, Sweep, SweepOptions
from ..store import Store
from ..store.chunks import ADDED, Claim, LeaseLostError
from ..store.records import RunRecord
from ..store.store import ResultBatch
from ..store.sweeps import read_steering_request
from ..sweeps.runs import RunItem
from ..sweeps.space import Configuration

if TYPE_CHECKING:
    from ..compiled import CompiledExperiment

_SWEEP_EVENTS = frozenset({"experiment.started", "experiment.completed", "experiment.stopped"})


class ChunkSweep(Sweep):
    """The runs of one claimed chunk (see the module docstring)."""

    writer_process = False

    owns_pool = False  # the worker's chunks of one sweep share its endpoints' connections

    def __init__(self, store_path: str, compiled: CompiledExperiment, claim: Claim, *, lease: float, worker: str,
                 slots: asyncio.Semaphore | None = None, store: Store | None = None,
                 configuration: Configuration | None = None, sample_ids: set[str] | None = None,
                 sharing: CallSharing | None = None):
        opts = claim.options
        super().__init__(store_path, compiled, claim.experiment_id,
                         SweepOptions(stop_on_budget=bool(opts.get("stop_on_budget")),
                                      unhealthy_timeout=opts.get("unhealthy_timeout")))
        self.claim = claim
        self.lease = lease
        self.budget_hold_ttl = lease  # each call's cost reserved in the store, for as long as the lease (engine/budgets.py)
        self.worker = worker
        # A guided search's chunk names its configuration (and ``sample_ids``, a range of the
        # search's order); any other indexes the plan's.
        self.plan.configurations = [configuration] if configuration is not None else self.plan.configurations[claim.lo:claim.hi]
        # A part of a configuration: its samples' range. The plan keeps every sample (run ids and
        # sample indexes are the whole plan's); the items outside the range are passed over.
        if sample_ids is None and claim.samples is not None:
            sample_ids = {sid for sid, _ in self.plan.samples[claim.samples[0]:claim.samples[1]]}
        self.sample_ids = sample_ids
        self.progress.total = len(sample_ids) * self.plan.repeat if sample_ids is not None else self.plan.total
        self._expected_per_config = len(self.plan.samples) * self.plan.repeat
        # A part of a configuration is ranked by the store when its last part is done, once. Ranked
        # here too, the last part to start (the other parts' runs read at its start) announced it a
        # second time whenever its sum, taken in another order, came out a rounding error higher.
        self._ranks_configurations = not (claim.samples is not None and claim.config_id is None)
        self.lease_lost = False
        self._reported = (0, 0, 0.0)  # this chunk's tokens in / out and cost already added to the sweep's row
        self._others = (0, 0, 0.0)  # what the rest of the sweep had spent at this worker's last commit
        self._log_seen = 0  # entries of the steering log applied (or fast-forwarded)
        self._joined: tuple[str, str | None] = ("running", None)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gate.clear()  # opened after the steering log's first read (see _poller)
        self._slots = slots
        # The worker's for the sweep, shared by its chunks of it: one owner of call claims, so a
        # worker alone on the store claims nothing, and one single-flight (engine/sharing.py).
        self._sharing = sharing
        self._store = store  # the worker's (shared by its chunks), or None: the chunk opens its own
        self._steering_store: Store | None = None  # the reader store the poller uses (set when it starts)
        # Set once every run of the chunk has been handed to a worker coroutine and at most
        # ``concurrency`` are left: the worker may start its next chunk beside it (sharing the slots).
        self.drained = asyncio.Event()
        self._exhausted = False  # every run of the chunk handed to a worker coroutine
        self.replaced = False  # a redirect gave the sweep a new plan: this chunk stopped for it

    def _own_configs(self) -> list[str] | None:
        # Its own: it runs no other, and a redirect replaces the chunk instead of re-planning it.
        return [c.id for c in self.plan.configurations]

    def _call_slots(self) -> asyncio.Semaphore:
        return self._slots if self._slots is not None else super()._call_slots()

    def _call_sharing(self) -> CallSharing:
        return self._sharing if self._sharing is not None else super()._call_sharing()

    def _looking_ahead(self, items: Iterator[RunItem]) -> Iterator[RunItem]:
        if self.sample_ids is not None:
            only = self.sample_ids
            items = (item for item in items if item.sample_id in only)
        yield from super()._looking_ahead(items)
        self._exhausted = True
        self._maybe_drained()

    def _record(self, record: RunRecord, item: RunItem) -> None:
        super()._record(record, item)
        if self._exhausted:
            self._maybe_drained()

    def _maybe_drained(self) -> None:
        # Not before at most ``concurrency`` runs are left: a CPU-bound chunk has many more runs
        # started than calls out (its runs wait for the loop, not for a server), and a worker that
        # took its next chunk that early would hold work another, idle, worker could do.
        if len(self._inflight) <= self.concurrency:
            self.drained.set()

    @property
    def store_lost(self) -> bool:
        """Whether the chunk stopped because its results could not be written from here."""
        return self._writer_failed and not self.lease_lost

    async def run(self) -> Any:
        self._loop = asyncio.get_running_loop()
        return await super().run()

    # The worker's store, for reading and writing, for all its chunks: opening a PostgreSQL store
    # connects and checks the schema (~0.1 s, on the loop, while another chunk's calls are out),
    # and a store a chunk keeps a pool of connections (the server's connections are few).
    def _open_store(self) -> Store:
        return self._store if self._store is not None else super()._open_store()

    def _close_store(self, store: Store) -> None:
        if store is not self._store:
            store.close()

    # ------------------------------------------------------------------ joining the shared sweep
    def _begin(self, store: Store) -> str:
        sid = self.claim.sweep_id
        row = store.sweep(sid)
        self.budget = dict(json.loads(row.get("options") or "{}").get("budget") or self.budget)
        self._others = store.sweep_spent(sid)
        log = store.steering_log(sid)
        self._log_seen = len(log)
        self._joined = state_after(log)
        if self._joined[0] == "paused" and row.get("status") == "running":
            store.paused_by_log(sid, state_after)  # paused before any worker was there to apply it
        if store.sweep_plan(sid) > self.claim.plan:  # redirected since the claim: nothing of it is to run
            self.replaced = True
            self.plan.configurations = []
        return sid

    def emit(self, etype: str, payload: dict[str, Any], ts: str | None = None) -> None:
        if etype in _SWEEP_EVENTS:
            if etype != "experiment.started":
                return
            etype, payload = "chunk.started", {"sweep_id": self.sweep_id, "chunk": self.claim.index, "worker": self.worker,
                                               "configurations": [self.claim.lo, self.claim.hi], "runs": self.plan.total}
        super().emit(etype, payload, ts)

    # ------------------------------------------------------------------ fenced, additive writes
    def _write(self, store: Store, batches: list[ResultBatch], final: bool = False) -> None:
        if self.lease_lost:
            self._writing = [b for b in self._writing if b not in batches]
            return
        for batch in batches or [ResultBatch()]:
            spent = self._mine()
            try:
                store.write_chunk_batch(batch, self._update(batch, spent))
            except LeaseLostError:
                self._writing = [b for b in self._writing if b not in batches]
                self.lease_lost = True
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(self.failures.stop, "lease lost: another worker took the chunk")
                return
            self._reported = spent
            if batch in self._writing:
                self._writing.remove(batch)
        total = store.sweep_spent(self.claim.sweep_id)
        mine = self._reported
        self._others = (total[0] - mine[0], total[1] - mine[1], total[2] - mine[2])
        for listener in self.listeners:
            with contextlib.suppress(Exception):
                listener(self.progress)

    def _mine(self) -> tuple[int, int, float]:
        p = self.progress
        return (p.tokens_in, p.tokens_out, p.cost)

    def _update(self, batch: ResultBatch, spent: tuple[int, int, float]) -> dict[str, Any]:
        statuses = [row[7] for row in batch.runs]  # RUN_COLUMNS' status
        add = dict(zip(ADDED, (len(statuses), statuses.count("cached"), statuses.count("failed"),
                               spent[0] - self._reported[0], spent[1] - self._reported[1], spent[2] - self._reported[2]),
                       strict=True))
        p = self.progress
        best = (p.best_config_id, p.best_score) if p.best_score is not None else None
        return {"id": self.claim.sweep_id, "fence": (self.claim.index, self.claim.generation, self.lease), "add": add,
                "best": best}

    # ------------------------------------------------------------------ the sweep's budget
    def _check_budget(self) -> None:
        max_tokens = self.budget.get("max_tokens")
        max_cost = self.budget.get("max_cost")
        p = self.progress
        others_in, others_out, others_cost = self._others
        tokens, spent = p.tokens + others_in + others_out, p.cost + others_cost
        hit = (max_tokens and tokens >= max_tokens) or (max_cost and spent >= max_cost) or self._budget_refused
        if hit and self._gate.is_set() and p.status == "running":
            self._gate.clear()
            p.status = "paused"
            p.stop_reason = "budget"
            self.emit("budget.exhausted", {"token_count": tokens, "cost": round(spent, 6), "budget": self.budget})
            request = "stop:budget exhausted" if self.stop_on_budget else "pause:budget"
            if self.stop_on_budget:
                self.failures.stop("budget exhausted")
            # Every other worker of the sweep hears it through the log (within a poll, or at once by
            # NOTIFY), written through the poller's store: opening one would take longer than a call.
            # The sweep's row says paused at once (no worker claims another of its chunks), and this
            # worker's spend is committed now, so that a chunk starting meanwhile sees the total.
            store = self._steering_store
            if store is not None:
                asyncio.get_running_loop().run_in_executor(None, _tell_every_worker, store, self.claim.sweep_id, request)
            if self._store is not None:
                asyncio.ensure_future(self._flush(self._store))

    # ------------------------------------------------------------------ steering, as a log
    async def _poller(self, store: Store) -> None:
        loop = asyncio.get_running_loop()
        self._steering_store = store
        stop = await asyncio.to_thread(store.listen_steering, self.sweep_id, set_from_thread(loop, self._poke))
        try:
            self._open_as_joined()
            while True:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._poke.wait(), POLL_EVERY)
                self._poke.clear()
                log = await asyncio.to_thread(store.steering_log, self.sweep_id)
                for requested in log[self._log_seen:]:
                    self._log_seen += 1
                    if read_steering_request(requested)[0] != "redirect":
                        await self._apply(requested, store)
                    elif not self.replaced and await asyncio.to_thread(store.sweep_plan, self.sweep_id) > self.claim.plan:
                        self._leave_plan()
        finally:
            stop()

    def _leave_plan(self) -> None:
        """Stop at the next call, for the sweep's new plan: no run is taken any more, and a run
        asks for no call any more (the engine's redirect check, with no configuration allowed),
        so those waiting for one are abandoned unrecorded, and those with a call out land."""
        self.replaced = True
        self._allowed = set()
        self._items = iter(())
        self._gate.set()  # paused runs wake to be abandoned: no call can go out (nothing is allowed)
        self._exhausted = True
        self._maybe_drained()

    def _open_as_joined(self) -> None:
        state, reason = self._joined
        p = self.progress
        if state == "stopped":
            self._stopping = True
            p.stop_reason = reason or "requested"
            self._gate.set()
        elif state == "paused":
            p.status = "paused"
            p.stop_reason = reason or "requested"
        else:
            self._gate.set()
            self._check_budget()  # the others may have spent it all already


def _tell_every_worker(store: Store, sweep_id: str, request: str) -> None:
    store.add_steering(sweep_id, request)
    if request.startswith("pause"):
        store.update_sweep(sweep_id, status="paused", stop_reason="budget")


def state_after(log: list[str]) -> tuple[str, str | None]:
    """Where a sweep stands after its steering log: running, paused or stopped, and why."""
    state, why = "running", None
    for entry in log:
        verb, reason, _by = read_steering_request(entry)
        if verb == "stop":
            return "stopped", reason or None
        if verb in ("pause", "resume"):
            state, why = ("paused", reason or None) if verb == "pause" else ("running", None)
    return state, why


__all__ = ["ChunkSweep", "state_after"]
