"""Queueing a sweep for workers: its plan cut into chunks of a few seconds of work each.

A chunk is a range of the plan's configurations (all their samples and repeats), or a range of
one configuration's samples when a configuration has more runs than a chunk (a one-configuration
sweep of 200 samples is 13 chunks, not one that a single worker runs while the others idle). A
worker's Sweep over a chunk is the ordinary plan restricted to that range, and its run ids are
the ones a single process would make (resuming and skipping finished runs work unchanged).

Sizing: about ``RUNS_PER_SLOT`` runs per call slot of the sweep's concurrency (``concurrency ×
16`` runs), rounded to whole configurations. At the concurrency's throughput a chunk then lasts
about 16 call latencies — 1.6 s at 100 ms, 8–16 s against a hosted model — long enough that the
tail of a chunk (its last calls, when fewer than ``concurrency`` remain) costs a few percent, short
enough that a lost lease repeats little and that several workers share even a small sweep.
A sweep is cut into at least ``MIN_CHUNKS`` chunks where its configurations allow (so
that a small one is shared out evenly too), and a chunk is never under 16 runs: a chunk costs
two transactions (its claim and its end) beside its batches' commits, so lease traffic stays a
few percent of the store's writes even for runs of a few milliseconds (CPU-bound ones: 16 runs of
the embedded model are ~1 s). The same size applies to a configuration's sample ranges.
``chunk_runs`` overrides it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..store.chunks import chunk_ranges
from ..sweeps.runs import run_id
from .guided import guided_bound

if TYPE_CHECKING:
    from ..compiled import CompiledExperiment
    from ..store.backend import StoreBackend

RUNS_PER_SLOT = 16
MIN_CHUNKS = 16


def runs_per_chunk(concurrency: int, total: int) -> int:
    """About ``concurrency × RUNS_PER_SLOT`` runs, but at most a ``1 / MIN_CHUNKS`` share of the
    sweep, so that even a small sweep is shared out evenly (a CPU-bound sweep of 400 runs between
    two workers: 16 chunks, so that the last one leaves the other worker idle for 1/16 at most)."""
    return max(16, min(8192, concurrency * RUNS_PER_SLOT, -(-total // MIN_CHUNKS)))


def queue_for_workers(store: StoreBackend, ready: CompiledExperiment, experiment_id: str, *, stop_on_budget: bool = False,
                      unhealthy_timeout: float | None = None, chunk_runs: int | None = None) -> str:
    """Queue ``ready`` as a sweep for workers; returns the sweep's id. The options stored with it
    are what a worker compiles the stored experiment with (so it plans the same configurations)."""
    configurations = ready.configurations
    per_configuration = len(ready.samples) * ready.experiment.repeat
    # A guided search queues no chunk: the workers decide them as it goes (workers/guided.py).
    total = guided_bound(ready) if ready.guided else len(configurations) * per_configuration
    finished = store.finished_run_ids(experiment_id)
    done = sum(1 for c in configurations for sid, _ in ready.samples for r in range(ready.experiment.repeat)
               if run_id(experiment_id, c.id, sid, r) in finished) if finished else 0
    options: dict[str, Any] = {
        # The experiment as queued: workers compile this, whatever the experiment's row says later.
        "spec": ready.experiment.to_record(),
        "workers": True, "strategy": ready.strategy, "max_configs": ready.max_configs, "seed": ready.seed,
        "concurrency": ready.concurrency, "budget": ready.budget, "stop_on_budget": stop_on_budget,
        "unhealthy_timeout": unhealthy_timeout, **({"points": ready.points} if ready.points is not None else {}),
        "chunk_runs": chunk_runs,  # a redirect cuts the new plan as this one was cut
        **({"guided": True} if ready.guided else {}),
    }
    ranges = chunk_ranges(len(configurations), per_configuration, chunk_runs or runs_per_chunk(ready.concurrency, total),
                          samples=len(ready.samples))
    sweep_id = store.queue_sweep(experiment_id, ready.strategy, total, done, options, ranges, per_configuration)
    store.add_event(experiment_id, "experiment.started", {
        "sweep_id": sweep_id, "strategy": ready.strategy, "total": total, "already_done": done,
        "configurations": len(configurations), "chunks": len(ranges), "workers": True})
    if not ranges and not ready.guided:  # nothing to share out: no worker would ever complete it
        store.end_sweep(sweep_id, "completed", None)
    return sweep_id


__all__ = ["MIN_CHUNKS", "RUNS_PER_SLOT", "queue_for_workers", "runs_per_chunk"]
