"""The sweep: runs every (configuration, sample, repeat) of a plan on one asyncio loop.

Shape: a fixed set of worker coroutines pulls run items from one lazy iterator (so a 100,000-run
sweep never holds 100,000 items), each run goes through the :class:`Runner`, and finished records
go to a writer that commits them in batches with their cache entries, events and the sweep's
progress row (one ``BEGIN IMMEDIATE`` per batch of at most ``FLUSH_MAX`` runs). Rows are built on
the loop as runs finish (see :class:`~promptlooper.store.store.ResultBatch`); a worker thread hands
each batch to the sweep's writer process (:mod:`~promptlooper.store.batchwriter`), where SQLite
works on the other core, and waits for its commit. When the writer falls ``MAX_BACKLOG`` batches
behind, workers wait for it, which bounds memory whatever the store's speed. Steering
requests written into the sweep's row by any process (pause / resume / stop) are polled a few
times a second; pausing lets the calls in flight finish and starts no new ones. Finished runs are
skipped on the next sweep, so an interrupted sweep resumes by running it again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import itertools
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..asyncutil import set_from_thread
from ..errors import StoreError, SweepConflictError
from ..hashing import canonical_text
from ..providers.pricing import cost
from ..store import CacheEntry, RunRecord, Store, now_iso, open_store
from ..store.batchwriter import WriterError, WriterProcess
from ..store.opening import uses_writer_process
from ..store.store import ResultBatch
from ..store.sweeps import read_steering_request, steering_request
from ..sweeps.runs import RunItem, run_id, run_id_from, run_id_head
from ..sweeps.space import Configuration
from .budgets import SharedBudget
from .calls import CacheReader, CallExecutor
from .failures import FailureWatch
from .gcfreeze import older_objects_frozen
from .progress import Progress
from .runner import Runner
from .shared_breakers import SharedBreakers
from .sharing import CallSharing, member_name
from .turns import TurnBudget

if TYPE_CHECKING:
    from ..compiled import CompiledExperiment  # built above the engine; the engine only reads it

_current_config: contextvars.ContextVar[str | None] = contextvars.ContextVar("promptlooper_run_config", default=None)


class RunAbandoned(BaseException):  # noqa: N818 - a control-flow signal, like CancelledError
    """Raised inside a run that the sweep stopped before its next call; it is not recorded."""


FLUSH_EVERY = 0.05  # seconds: how stale the store (and other processes' view) may be
FLUSH_MAX = 1024  # runs per transaction; a power of two, like the store's statement sizes (few statements)
MAX_BACKLOG = 4  # full batches waiting for the writer before workers wait for it
# Runs ahead, in rounds of ``concurrency``, for the first calls to leave a little apart
# (engine/ramp.py): it costs the burst's last call up to 0.1 s once and saves a few ms every round.
RAMP_ROUNDS = 8
POLL_EVERY = 0.25  # seconds between reads of steering requests
# Runs whose first call is rendered and looked up together, ahead of their workers, in one step of
# the loop: 64 held a notebook's loop about twice as long as 32 (tests/test_loop_latency.py), and 16
# cost a fully cached sweep ~10% more CPU a run (benchmarks/run.py c).
LOOKAHEAD = 32


@dataclass
class SweepPlan:
    experiment_id: str
    configurations: list[Configuration]
    samples: list[tuple[str, dict[str, Any]]]  # (sample id, sample)
    repeat: int
    strategy: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.configurations) * len(self.samples) * self.repeat

    def items(self, skip: set[str]) -> Iterator[RunItem]:
        sample_json = [canonical_text(sid) for sid, _ in self.samples]  # run_id()'s parts, encoded once
        for config in self.configurations:
            head = run_id_head(self.experiment_id, config.id)
            for index, (sid, sample) in enumerate(self.samples):
                for rep in range(self.repeat):
                    rid = run_id_from(head, sample_json[index], rep)
                    if rid in skip:
                        continue
                    yield RunItem(config, sample, sid, index, rep, rid)


def _start_writer_process(path: str) -> WriterProcess | None:
    """The child that commits this sweep's batches, or None to write from a thread of this process
    (an embedding application whose ``sys.executable`` is not a Python that can be started)."""
    try:
        return WriterProcess(path)
    except OSError as exc:
        warnings.warn(f"promptlooper: no writer process ({exc}); results are written from a thread", stacklevel=3)
        return None


class _Started:
    """``run.started`` for one run, emitted once, when it first waits for a model or runs a function."""

    __slots__ = ("sweep", "item")

    def __init__(self, sweep: Sweep, item: RunItem):
        self.sweep: Sweep | None = sweep
        self.item = item

    def __call__(self) -> None:
        sweep, item = self.sweep, self.item
        if sweep is not None:
            self.sweep = None
            sweep.emit("run.started", {"run_id": item.run_id, "config_id": item.config.id, "sample_id": item.sample_id})


@dataclass
class SweepOptions:
    """How a sweep runs, beyond what its compiled experiment says."""

    # Reaching the budget pauses the sweep for someone to raise it and resume (a notebook, an
    # agent); a process nobody steers (the CLI) stops instead: rerun resumes.
    stop_on_budget: bool = False
    # Seconds an endpoint may stay unhealthy (its breaker open) before the sweep stops; None: it
    # waits, paused, for a probe to be answered or a resume (a notebook); the CLI sets it.
    unhealthy_timeout: float | None = None
    listeners: list[Callable[[Progress], None]] = field(default_factory=list)  # after each commit
    # Who started it (promptlooper.actors): in experiment.started, and the asker of this process's own steering.
    actor: str = ""


class SearchDriver(Protocol):
    """A search that decides the configurations as it goes (guided search): it hands out run items,
    hears of every finished run, and runs beside the workers until it has seen enough."""

    total_bound: int  # runs it may ask for at most (the progress bar's total)

    async def source(self) -> RunItem | None: ...

    def on_run(self, record: RunRecord, item: RunItem) -> None: ...

    async def run(self, sweep: Sweep) -> None: ...


class Sweep:
    """One execution of a compiled experiment (see the module docstring).

    ``replan`` gives the configurations of a redirected space; ``driver`` is a search that decides
    the configurations itself (otherwise the compiled experiment's are run, in order)."""

    writer_process = True  # SQLite: commit batches from a child process (a worker's chunk writes its own, fenced)
    owns_pool = True  # closes the endpoints' connections at its end (a worker's chunks share them: the worker does)

    def __init__(
        self,
        store_path: str,
        compiled: CompiledExperiment,
        experiment_id: str,
        options: SweepOptions | None = None,
        *,
        replan: Callable[[dict[str, Any]], list[Configuration]] | None = None,
        driver: SearchDriver | None = None,
    ):
        options = options or SweepOptions()
        plan = SweepPlan(
            experiment_id=experiment_id, configurations=list(compiled.configurations), samples=compiled.samples,
            repeat=compiled.experiment.repeat, strategy=compiled.strategy,
            options={"max_configs": compiled.max_configs, "seed": compiled.seed},
        )
        self.store_path = store_path
        self.compiled = compiled
        self.plan = plan
        self.pool = compiled.pool
        self.scorers = compiled.scorers
        self.concurrency = compiled.concurrency
        self.budget = dict(compiled.budget)
        self.stop_on_budget = options.stop_on_budget
        # A sweep shared by workers reserves each call's cost in the store (engine/budgets.py), its
        # reservations expiring this many seconds after its process stops renewing them (a
        # worker's chunk: its lease). None: a sweep alone counts its spend as replies land.
        self.budget_hold_ttl: float | None = None
        self._budget_refused = False  # a reservation was refused for good: the budget is reached
        self.functions = compiled.functions
        self.progress = Progress(total=driver.total_bound if driver is not None else plan.total)
        self.sweep_id: str | None = None
        self.listeners: list[Callable[[Progress], None]] = list(options.listeners)
        self._gate = asyncio.Event()
        self._gate.set()
        self._stopping = False
        self._calls_over = False  # set once the sweep's runs are all done (see _wants)
        self._stopped_by = ""  # who asked to stop (promptlooper.actors), for experiment.stopped
        self._poke = asyncio.Event()
        self._turn = TurnBudget()  # the loop time the workers share per turn (see engine/turns.py)
        self._batch = ResultBatch()  # open: finished runs, cache entries and events go here
        self._full: list[ResultBatch] = []  # FLUSH_MAX runs each, waiting for the writer
        self._writing: list[ResultBatch] = []  # handed to the writer thread, not committed yet
        self._write_thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._flushed = asyncio.Event()  # set after each flush, for workers held by the backlog
        self._writer_failed = False
        self._config_stats: dict[str, list[float]] = {}
        # Whether this sweep ranks and announces the configurations whose runs it completes. A
        # worker's chunk holding a part of a configuration does not: the store ranks it once its
        # last part is done (store/chunks.py, finish_chunk).
        self._ranks_configurations = True
        self._priced: dict[str, bool] = {}  # endpoint/model -> has a price (see _spent)
        self._scorer_stats: dict[str, dict[str, list[float]]] = {}  # config -> scorer -> [sum, n]
        self._expected_per_config = len(plan.samples) * plan.repeat
        # Redirect: given the new space (from the store), the configurations that remain to run.
        self.replan = replan
        self._items: Iterator[RunItem] = iter(())
        # A guided search hands out run items (None ends a worker) and hears of each finished run.
        self.driver = driver
        self._finished: set[str] = set()
        self._unfinished: set[str] = set()
        self._inflight: dict[str, str] = {}  # run id -> configuration id, for runs being executed
        self._allowed: set[str] | None = None  # after a redirect: the configurations still wanted
        self.runner: Runner | None = None
        self._writer_process: WriterProcess | None = None
        # Failures: open breakers, retry waits that pause / stop cut short, a lost writer process.
        self.failures = FailureWatch(self)
        self.actor = options.actor
        self.failures.unhealthy_timeout = options.unhealthy_timeout

    # ------------------------------------------------------------------ public steering (in-process)
    def request(self, what: str) -> None:
        """Pause / resume / stop from this process; other processes write the store instead."""
        if self.sweep_id is None:
            return
        store = open_store(self.store_path)
        try:
            verb, _, reason = what.partition(":")
            store.add_steering(self.sweep_id, steering_request(verb, reason, self.actor))
        finally:
            store.close()
        self._poke.set()

    # ------------------------------------------------------------------ events
    def emit(self, etype: str, payload: dict[str, Any], ts: str | None = None) -> None:
        self._batch.add_event(ts or now_iso(), self.plan.experiment_id, etype, payload)

    # ------------------------------------------------------------------ main
    async def run(self) -> Progress:
        with older_objects_frozen():  # full collections skip the kernel's heap (engine/gcfreeze.py)
            return await self._run()

    async def _run(self) -> Progress:
        wstore = self._open_store()
        rstore = self._open_store()
        plan = self.plan
        self.failures.started()
        # Every write, and finally the close, runs on this one thread, in order: a cancelled flush
        # cannot be stopped in its thread, and the connection must outlive it.
        self._write_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="promptlooper-writer")
        # PostgreSQL: batches go through the store's pool from the writer thread (no writer process).
        self._writer_process = _start_writer_process(self.store_path) if uses_writer_process(self.store_path) and self.writer_process else None
        if self._writer_process is not None:
            wstore.defer_checkpoints()  # the writer process checkpoints, in the background
        else:
            wstore.use_bulk_cache()  # batches go through this connection
        try:
            # The lease first: what is read below cannot change under this sweep afterwards.
            self.sweep_id = await asyncio.to_thread(self._begin, wstore)
            finished = await asyncio.to_thread(rstore.finished_run_ids, plan.experiment_id, self._own_configs())
            # Runs stored but not finished (failed, or left by a crash) are replaced when run again;
            # any other run has no rows yet, and its writes skip the look-ups a replacement needs.
            self._unfinished = await asyncio.to_thread(rstore.unfinished_run_ids, plan.experiment_id)
            planned = {run_id(plan.experiment_id, c.id, sid, r) for c in plan.configurations for sid, _ in plan.samples for r in range(plan.repeat)} if len(finished) else set()
            self.progress.skipped = len(finished & planned) if finished else 0
            self.progress.done = self.progress.skipped
            self._load_best(rstore)
            self.progress.status = "running"
            self.emit("experiment.started", {"sweep_id": self.sweep_id, "strategy": plan.strategy, "total": plan.total,
                                             "already_done": self.progress.skipped, "configurations": len(plan.configurations),
                                             **_by(self.actor)})
            # Calls out, recent replies and the store claims, shared with the sweeps of this process
            # that run the same sweep's calls (a worker's chunks: engine/sharing.py).
            sharing = self._call_sharing()
            calls = CallExecutor(
                CacheReader(rstore), self._add_cache_entry,
                global_limit=self._call_slots(), gate=self._wait_gate, is_open=self._open,
                on_spent=self._spent,
                backoff=self.failures.backoff, on_unhealthy=self.failures.endpoint_unhealthy,
                on_healthy=self.failures.endpoint_healthy,
                # Many rounds ahead: worth spacing the first burst.
                ramp_calls=self.concurrency if self.progress.total - self.progress.skipped >= RAMP_ROUNDS * self.concurrency else 0,
                flights=sharing.flights,
            )
            self.calls = calls
            calls.wants = self._wants  # what frees the keys claimed ahead of dropped runs (engine/claims.py)
            # Calls shared with other processes sweeping this store (engine/claims.py): its own connection.
            claims = calls.claims = await sharing.join(self._open)
            # Breakers and the budget hold are this sweep's own, through the claims' connection.
            member = member_name()
            self.failures.shared = SharedBreakers(claims.store, member)
            if self.budget_hold_ttl is not None and self.budget:
                calls.budget = SharedBudget(claims.store, self.sweep_id, member, limits=lambda: self.budget,
                                            price=lambda endpoint, model: self.runner.price(endpoint, model),  # type: ignore[union-attr]
                                            on_exhausted=self._budget_reached, ttl=self.budget_hold_ttl, is_open=self._open)
                await calls.budget.start()
            runner = self.runner = Runner(plan.experiment_id, self.sweep_id, self.pool, calls, self.scorers, self.functions)
            self._finished = finished
            self._items = self._looking_ahead(plan.items(finished))
            writer = asyncio.ensure_future(self._writer(wstore))
            poller = asyncio.ensure_future(self._poller(rstore))
            n_workers = self.n_workers = self._workers_needed()
            # Judges and embedders reach the store, endpoints and this sweep's call path through a
            # context variable; tasks copy the context when created, so set it around their creation.
            scoring_env = self.compiled.scoring_env(store_path=self.store_path, pool=self.pool, calls=calls)
            with scoring_env.active():
                workers = [asyncio.ensure_future(self._worker(runner)) for _ in range(n_workers)]
            if self.driver is not None:
                workers.append(asyncio.ensure_future(self.driver.run(self)))
            try:
                await asyncio.gather(*workers)
            except BaseException:
                for w in workers:
                    w.cancel()
                self.progress.status = "interrupted"
                self.progress.stop_reason = "interrupted"
                raise
            finally:
                self._calls_over = True  # no run of this sweep calls any more: nothing claimed ahead is wanted
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
                await self.failures.aclose()
                self._finish_status()
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
                # Whatever finished is committed, even on Ctrl+C or cancellation.
                await asyncio.shield(self._flush(wstore, final=True))
                if calls.budget is not None:
                    await asyncio.shield(calls.budget.close())  # its calls ended: what it still holds is freed
                await asyncio.shield(sharing.leave(self._open))  # after the last commit: waiters now find every entry
                await scoring_env.aclose()
                if self.owns_pool:
                    await self.pool.aclose()
            return self.progress
        finally:
            if self._writer_process is not None:
                self._write_thread.submit(self._writer_process.close)  # after the last batch: it commits, then exits
            self._write_thread.submit(self._close_store, wstore)
            self._write_thread.shutdown(wait=True)  # at once, unless a cancellation left a write running
            self._close_store(rstore)

    def _open_store(self) -> Store:
        """A store for this sweep (it opens two: the writer's and the reader's), closed at its end
        by :meth:`_close_store`; a worker's chunks use the worker's instead."""
        return open_store(self.store_path)

    def _close_store(self, store: Store) -> None:
        store.close()

    def _call_sharing(self) -> CallSharing:
        """What this sweep's call path shares (engine/sharing.py): its own; a worker's chunks of one
        sweep share the worker's."""
        return CallSharing(self.store_path)

    def _begin(self, store: Store) -> str:
        """The sweep's row (on the write thread): a new one, holding the experiment's lease. A
        worker's chunk of a shared sweep joins that sweep's row instead (promptlooper/workers)."""
        plan = self.plan
        return store.begin_sweep(plan.experiment_id, plan.strategy, plan.total,
                                 {**plan.options, "budget": self.budget, "concurrency": self.concurrency,
                                  "started_by": self.actor})

    def _call_slots(self) -> asyncio.Semaphore:
        """The ``concurrency`` calls this sweep may have out (a worker's chunks share one)."""
        return asyncio.Semaphore(self.concurrency)

    def _workers_needed(self) -> int:
        """Workers (runs in progress at once) to keep ``concurrency`` calls out.

        A run holds a call slot only while its call is out. Runs that also wait for something else
        (a function stage, an async scorer: judge, embedding, webhook) need as many spare workers to
        keep every slot busy meanwhile. Otherwise spare workers only cost every call a hand-off: a
        finished call's slot goes to a worker queued for it, whose request then leaves one loop
        turn later (measured: ~1% of throughput at latency 100 ms, concurrency 64). At least 32, so
        that cache look-ups of later stages overlap even at concurrency 1.
        """
        waits_elsewhere = bool(self.functions) or any(s.is_async for s in self.scorers)
        return max(32, min(1024, self.concurrency * (2 if waits_elsewhere else 1)))

    def _finish_status(self) -> None:
        p = self.progress
        if p.status == "interrupted":
            return
        if self._stopping:
            p.status = "stopped"
            self.emit("experiment.stopped", {"sweep_id": self.sweep_id, "reason": p.stop_reason or "requested", **self._summary(),
                                             **_by(self._stopped_by)})
        else:
            p.status = "completed"
            self.emit("experiment.completed", {"sweep_id": self.sweep_id, "best_config_id": p.best_config_id,
                                               "best_score": p.best_score, **self._summary()})

    def _summary(self) -> dict[str, Any]:
        p = self.progress
        return {"done": p.done, "total": p.total, "completed": p.completed, "cached": p.cached, "failed": p.failed,
                "tokens": p.tokens, "cost": round(p.cost, 6), "cache_hit_rate": round(p.cache_hit_rate, 4),
                **({"unpriced_models": p.unpriced} if p.unpriced else {})}

    async def _wait_gate(self) -> None:
        if not self._gate.is_set():
            await self._gate.wait()
        if self._stopping:
            raise RunAbandoned  # stop: a run still waiting for its first call is left for the next sweep
        current = _current_config.get()
        if self._allowed is not None and current is not None and current not in self._allowed:
            raise RunAbandoned  # redirect dropped this run's configuration before its call

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _open(self) -> bool:
        """May a call that just got its slot go out? Not while paused or stopping, nor for a run
        whose configuration a redirect dropped while it queued for the slot (it is abandoned at
        the gate, unstarted, instead of spending a call on a configuration no longer wanted)."""
        return self._may_call(_current_config.get())

    def _may_call(self, config_id: str | None) -> bool:
        if not self._gate.is_set() or self._stopping:
            return False
        allowed = self._allowed
        return allowed is None or config_id is None or config_id in allowed

    def _wants(self, config_id: str) -> bool:
        """Does a run of ``config_id`` still want the key claimed ahead for it (engine/claims.py)?
        Not while paused or stopping, nor once redirected away or the sweep's runs are over."""
        return not self._calls_over and self._may_call(config_id)

    async def _worker(self, runner: Runner) -> None:
        turn = self._turn
        while not self._stopping:
            if not self._gate.is_set() or self._allowed is not None:
                try:
                    await self._wait_gate()
                except RunAbandoned:
                    return
            if self.driver is not None:
                item = await self.driver.source()  # a guided search hands out items as it decides them
            else:
                item = next(self._items, None)  # re-read: a redirect swaps the iterator
            if item is None:
                return
            self._inflight[item.run_id] = item.config.id  # taken: a redirect must not queue it again
            while len(self._full) >= MAX_BACKLOG and not self._writer_failed:
                self._flushed.clear()  # the writer is behind: let it catch up before starting more runs
                await self._flushed.wait()
            _current_config.set(item.config.id)  # per worker task: what a redirect may have dropped
            try:
                record = await self._execute(runner, item)
            finally:
                self._inflight.pop(item.run_id, None)
                _current_config.set(None)
            if record is None:
                if self._stopping:
                    return
                continue  # its configuration was redirected away before its first call
            self._record(record, item)
            if self.driver is not None:
                self.driver.on_run(record, item)
            # A cached run (looked up ahead, or made by this sweep) waits for nothing, so workers
            # could go through thousands without giving the loop back: see engine/turns.py.
            await turn.wait()

    async def _execute(self, runner: Runner, item: RunItem) -> RunRecord | None:
        """``item``'s record, or None if the sweep stopped or a redirect dropped its configuration
        before its first call."""
        started = _Started(self, item)  # one run.started, however many times it is tried
        while True:
            try:
                return await runner.execute(item, started)
            except RunAbandoned:
                if self._stopping or (self._allowed is not None and item.config.id not in self._allowed):
                    return None
                # Still wanted: it waited for a call that an identical, dropped run owned and gave
                # up with it (configurations that differ only in a later stage share the first
                # stage's calls). Run it again: it makes the call itself now.

    def _looking_ahead(self, items: Iterator[RunItem]) -> Iterator[RunItem]:
        """``items``, prepared LOOKAHEAD at a time (see :meth:`Runner.prepare`), a group ahead of
        the one being taken: a store read off the loop answers the next group's look-up in a
        thread while this one's runs start, instead of its first run waiting for it."""
        runner = self.runner
        assert runner is not None
        chunk = list(itertools.islice(items, LOOKAHEAD))
        runner.prepare(chunk)
        while chunk:
            following = list(itertools.islice(items, LOOKAHEAD))
            yield chunk[0]
            if following:  # at the second run taken, in a step of the loop of its own
                runner.prepare(following)
            yield from chunk[1:]
            chunk = following

    def _record(self, record: RunRecord, item: RunItem) -> None:
        p = self.progress
        p.done += 1
        p.total = max(p.total, p.done)  # a dropped run whose call was already out still lands
        p.calls = self.calls.calls
        p.cache_hits = self.calls.hits
        if record.status == "failed":
            p.failed += 1
            self.failures.run_failed(record.error)
            self.emit("run.failed", {"run_id": record.id, "config_id": record.config_id, "error": record.error})
        else:
            if record.status == "cached":
                p.cached += 1
            else:
                p.completed += 1
            self.emit(f"run.{record.status}", {"run_id": record.id, "config_id": record.config_id, "score": record.score},
                      record.completed_at)
            if record.score is not None:
                self._update_best(record, item)
        self._batch.add_run(record, replace=record.id in self._unfinished)
        if len(self._batch.run_ids) >= FLUSH_MAX:
            self._full.append(self._batch)
            self._batch = ResultBatch()
        self._check_budget()

    def _spent(self, endpoint: str, model: str, tokens_in: int, tokens_out: int) -> None:
        """A reply an endpoint served, for a stage or a scorer (judge, embeddings): counted the
        moment it lands, not when its run is recorded, so that no new call goes out once the
        budget is reached (only those already in flight still land)."""
        p = self.progress
        p.tokens_in += tokens_in
        p.tokens_out += tokens_out
        assert self.runner is not None
        p.cost += cost(tokens_in, tokens_out, self.runner.price(endpoint, model))
        ref = f"{endpoint}/{model}"
        if ref not in self._priced:
            self._priced[ref] = self.pool.has_price(endpoint, model)
            if not self._priced[ref]:
                p.unpriced = sorted({*p.unpriced, ref})
        self._check_budget()

    def _add_cache_entry(self, entry: CacheEntry) -> None:
        self._batch.add_cache(entry)

    def _load_best(self, store: Store) -> None:
        # Every configuration's: the best this sweep's own must beat before it says new_best_found.
        for config_id, (total, n) in store.finished_score_sums(self.plan.experiment_id).items():
            self._config_stats[config_id] = [total, float(n)]
        self._scorer_stats = store.scorer_sums(self.plan.experiment_id, self._own_configs())
        for config_id, (total, n) in self._config_stats.items():
            if self._ranks_configurations and n >= self._expected_per_config:
                mean = total / n
                if self.progress.best_score is None or mean > self.progress.best_score:
                    self.progress.best_score, self.progress.best_config_id = mean, config_id

    def _own_configs(self) -> list[str] | None:
        """The configurations whose finished runs and per-scorer sums this sweep reads at its start
        (None: every one of the experiment's, since a redirect may bring back any)."""
        return None

    def _update_best(self, record: RunRecord, item: RunItem) -> None:
        config_id = record.config_id
        assert record.score is not None
        stats = self._config_stats.setdefault(config_id, [0.0, 0.0])
        stats[0] += record.score
        stats[1] += 1
        per_scorer = self._scorer_stats.setdefault(config_id, {})
        for label, value, *_ in record.scores:
            if value is None:
                continue  # a missing score says nothing about the configuration
            sums = per_scorer.setdefault(label, [0.0, 0.0])
            sums[0] += value
            sums[1] += 1
        # A configuration is a candidate only once all its samples are in: never a lucky first run.
        if self._ranks_configurations and stats[1] == self._expected_per_config:
            mean = stats[0] / stats[1]
            p = self.progress
            if p.best_score is None or mean > p.best_score:
                p.best_score, p.best_config_id = mean, config_id
                # What a receiver needs to act on it without reading the store: the run that
                # completed the configuration, the mean of each scorer over its runs, and the
                # configuration itself (every stage's prompt, model and parameters).
                self.emit("new_best_found", {
                    "config_id": config_id, "run_id": record.id, "score": round(mean, 6), "n": int(stats[1]),
                    "scores": {label: round(total / n, 6) for label, (total, n) in per_scorer.items() if n},
                    "varied": item.config.varied, "configuration": item.config.as_record()})

    def _budget_reached(self) -> None:
        """A call's reservation was refused for good (engine/budgets.py): even the spend settled
        leaves it no room. The budget is reached, whatever this process's own spend says."""
        self._budget_refused = True
        self._check_budget()

    def _check_budget(self) -> None:
        max_tokens = self.budget.get("max_tokens")
        max_cost = self.budget.get("max_cost")
        p = self.progress
        hit = (max_tokens and p.tokens >= max_tokens) or (max_cost and p.cost >= max_cost) or self._budget_refused
        if hit and self._gate.is_set() and p.status == "running":
            self._gate.clear()
            p.status = "paused"
            p.stop_reason = "budget"
            self.emit("budget.exhausted", {"token_count": p.tokens, "cost": round(p.cost, 6), "budget": self.budget})
            self.emit("experiment.paused", {"reason": "budget exhausted", "sweep_id": self.sweep_id})
            if self.stop_on_budget:  # nobody is there to raise it and resume (the CLI): end, resumable
                self.failures.stop("budget exhausted")

    # ------------------------------------------------------------------ writer & poller
    def _sweep_row(self) -> dict[str, Any]:
        p = self.progress
        return {"id": self.sweep_id, "status": p.status, "total": p.total, "done": p.done, "cached": p.cached, "failed": p.failed,
                "tokens_in": p.tokens_in, "tokens_out": p.tokens_out, "cost": p.cost,
                "best_config_id": p.best_config_id, "best_score": p.best_score, "stop_reason": p.stop_reason,
                **({"finished_at": now_iso()} if p.status in ("completed", "stopped", "interrupted") else {})}

    def _take(self) -> list[ResultBatch]:
        # On the loop thread, which is the only one that adds to batches: nothing is lost between
        # the take and the write.
        batches = self._full
        if not self._batch.empty:
            batches.append(self._batch)
            self._batch = ResultBatch()
        self._full = []
        return batches

    async def _flush(self, store: Store, final: bool = False) -> None:
        batches = self._take()
        self._writing += batches
        assert self._write_thread is not None
        # Shielded: cancelling the wait (the sweep ending, Ctrl+C) must not cancel the write itself.
        # Unshielded, a write still queued for the thread was cancelled with it, and its batches lost.
        job = self._write_thread.submit(self._write, store, batches, final)
        try:
            await asyncio.shield(asyncio.wrap_future(job))
        finally:
            self._flushed.set()

    def _write(self, store: Store, batches: list[ResultBatch], final: bool = False) -> None:
        # One transaction per batch; an empty one still writes the progress row (the heartbeat).
        for batch in batches or [ResultBatch()]:
            if self._writer_process is not None:
                try:
                    self._writer_process.write(batch.rows(), self._sweep_row())
                except WriterError as exc:
                    if not self.failures.writer_lost(exc, store):
                        raise
                    store.write_batch(batch, self._sweep_row())  # the batch it did not confirm, here
            else:
                store.write_batch(batch, self._sweep_row())
            if batch in self._writing:
                self._writing.remove(batch)
        if final and self.progress.status in ("completed", "stopped"):
            store.set_experiment_status(self.plan.experiment_id, self.progress.status)
        for listener in self.listeners:
            with contextlib.suppress(Exception):
                listener(self.progress)

    async def _writer(self, store: Store) -> None:
        last_beat = time.monotonic()
        try:
            while True:
                if not self._full:  # full batches go at once; otherwise results gather for FLUSH_EVERY
                    await asyncio.sleep(FLUSH_EVERY)
                if self._full or not self._batch.empty or time.monotonic() - last_beat > 2.0:
                    last_beat = time.monotonic()
                    await self._flush(store)
        except Exception as exc:
            self._writer_failed = True  # workers must not wait for it; the final flush reports the error
            self._flushed.set()
            self.failures.writer_failed(exc)
            raise

    async def _poller(self, store: Store) -> None:
        loop = asyncio.get_running_loop()
        # A backend that can tell (PostgreSQL's NOTIFY) wakes the poll as soon as a request commits.
        stop = await asyncio.to_thread(store.listen_steering, self.sweep_id, set_from_thread(loop, self._poke))
        try:
            while True:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._poke.wait(), POLL_EVERY)
                self._poke.clear()
                try:
                    taken = await asyncio.to_thread(store.take_steering, self.sweep_id)
                except StoreError:
                    continue  # the database is away: steering waits for it (the writer reports a lasting loss)
                for requested in taken:
                    await self._apply(requested, store)
                await self.failures.follow_shared()  # breakers other processes opened (engine/shared_breakers.py)
        finally:
            stop()

    async def _redirect(self, store: Store, by: str = "") -> None:
        """Swap the remaining part of the plan for the new space; finished runs stay and count."""
        import json

        fresh = await asyncio.to_thread(store.sweep, self.sweep_id)
        options = json.loads(fresh.get("options") or "{}")
        space = options.get("redirect_space")
        if space is None or self.replan is None:
            return
        try:
            configs = self.replan(space)
        except Exception as exc:  # noqa: BLE001 - a bad redirect is reported, the sweep goes on
            self.emit("experiment.redirect_failed", {"error": str(exc), "space": space})
            return
        store.add_configurations(self.plan.experiment_id, ((c.id, c.as_record(), c.varied) for c in configs))

        def pending() -> set[str]:
            return {rid for batch in (*self._writing, *self._full, self._batch) for rid in batch.run_ids}

        # Recorded but not committed, before and after the store is read: a batch committed during
        # the read is in the first, a run finished during it in the second (else it ran twice).
        before = pending()
        stored = await asyncio.to_thread(store.finished_run_ids, self.plan.experiment_id)
        done_now = before | stored | pending()
        self.plan.configurations = configs
        keep = {c.id for c in configs}
        self._allowed = keep
        # Runs in flight are neither re-queued nor counted twice: kept ones finish and count,
        # dropped ones are abandoned at their next call (calls already sent still land).
        skip = done_now | self._finished | set(self._inflight)
        self._items = self._looking_ahead(self.plan.items(skip))
        new_ids = {run_id(self.plan.experiment_id, c.id, sid, r) for c in configs for sid, _ in self.plan.samples for r in range(self.plan.repeat)}
        remaining = len(new_ids - skip) + sum(1 for cid in self._inflight.values() if cid in keep)
        self.progress.total = self.progress.done + remaining
        self.emit("experiment.redirected", {"space": space, "configurations": len(configs), "remaining_runs": remaining,
                                            "total": self.progress.total, "sweep_id": self.sweep_id, **_by(by)})

    async def _apply(self, requested: str, store: Store) -> None:
        p = self.progress
        verb, reason, by = read_steering_request(requested)  # by: who asked (promptlooper.actors)
        if verb == "pause" and p.status == "running":
            self._gate.clear()
            p.status = "paused"
            p.stop_reason = reason or "requested"
            self.emit("experiment.paused", {"reason": p.stop_reason, "sweep_id": self.sweep_id, **_by(by)})
        elif verb == "resume" and p.status == "paused":
            fresh = await asyncio.to_thread(store.sweep, self.sweep_id)
            import json

            options = json.loads(fresh.get("options") or "{}")
            self.budget = options.get("budget") or self.budget
            self._budget_refused = False  # decided again against the budget as it is now
            p.status = "running"
            p.stop_reason = None
            self.emit("experiment.resumed", {"sweep_id": self.sweep_id, **_by(by)})
            self._gate.set()
            self._check_budget()  # still over a budget that was not raised: pause again
        elif verb == "redirect" and self.replan is not None:
            await self._redirect(store, by)
        elif verb == "stop":
            self._stopping = True
            p.stop_reason = reason or "requested"
            self._stopped_by = by
            self._gate.set()  # paused workers wake up to see they must stop
        self.failures.steered(verb)
        await asyncio.to_thread(store.update_sweep, self.sweep_id, status=p.status)
        if verb in ("pause", "resume") and p.status in ("paused", "running"):
            # The experiment's row says it too, for readers that list experiments.
            await asyncio.to_thread(store.set_experiment_status, self.plan.experiment_id, p.status)
        # No clearing of the poke here: the poller clears it before each read, and one set while
        # this request was applied is the next request's notification (cleared, it waited for the poll).


def _by(by: str) -> dict[str, str]:
    """``{"by": by}`` for an event's payload, nothing when no one is named."""
    return {"by": by} if by else {}


__all__ = ["SearchDriver", "Sweep", "SweepConflictError", "SweepOptions", "SweepPlan"]
