"""A guided search shared by workers: Optuna's shape, with the database as the only state.

A guided sweep is queued with no chunk. A worker with nothing to claim decides for it, as
Optuna's workers ask their sampler: it rebuilds the search from the runs in the database (the
single-process driver's own :meth:`~promptlooper.sweeps.guided.GuidedDriver.study`: measured
configurations, their scores per sample, told values), then queues chunks, each one
configuration on a range of the search's seeded sample order:

1. *promotions*: a configuration whose chunks are done and that may still reach what the leader
   has surely earned (its interval's upper bound) gets its next rung of samples;
2. otherwise *new configurations*, a batch asked of the sampler, on the first rung, until
   ``max_configs``, ``max_calls``, the space exhausted, or the best separated from the rest;
3. when nothing is left to run, the *contenders* (short of samples, may still lead) get all of
   them, and then the search is finished: the sweep completed, ``guided.finished`` recorded.

Two workers deciding at once: the chunks are queued only if the sweep still has the chunks the
decider read (:meth:`~promptlooper.store.chunks.Chunks.add_guided_chunks`), so one of them
decides again from what the other queued. Unlike one process, the next batch is asked while the
last one still runs (as Optuna's parallel workers do); the patience before declaring the best
separated is not kept between decisions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..scoring import weights_of
from ..sweeps.guided import GuidedDriver, distributions, guided_defaults, interval, params_to_point
from ..sweeps.space import build_configuration

if TYPE_CHECKING:
    from ..compiled import CompiledExperiment
    from ..store.backend import StoreBackend

ASK_TRIES = 60  # duplicates in a row after which the space counts as exhausted (as in one process)


def guided_driver(compiled: CompiledExperiment, store_path: str, experiment_id: str) -> GuidedDriver:
    """The single-process driver of the experiment, for its study, rungs and sample order."""
    exp = compiled.experiment
    return GuidedDriver(exp, guided_defaults(exp, compiled.max_configs), compiled.samples, exp.repeat, compiled.seed,
                        store_path, experiment_id, weights_of(exp.scorers))


def guided_bound(compiled: CompiledExperiment) -> int:
    """Runs a guided search may ask for at most (the progress bar's total until it is done)."""
    return guided_defaults(compiled.experiment, compiled.max_configs).max_configs * len(compiled.samples) * compiled.experiment.repeat


def decide(store: StoreBackend, sweep: dict[str, Any], compiled: CompiledExperiment, store_path: str) -> str:
    """One decision for the guided ``sweep`` (``shared_sweeps``' row): ``"queued"`` (chunks
    queued), ``"waiting"`` (its chunks run, or another worker decided first) or ``"finished"``."""
    from optuna.trial import (
        TrialState,  # optuna: imported when a guided search is decided, not at start-up
    )

    sid, eid = sweep["id"], sweep["experiment_id"]
    chunks = store.chunks(sid)
    if any(c["state"] == "queued" for c in chunks):
        return "waiting"
    driver = guided_driver(compiled, store_path, eid)
    # The sampler is rebuilt at every decision: seeded by the decision (its chunks so far), not by
    # the experiment alone, or each would start from the same random state and ask the points the
    # last one asked (the sample order keeps the experiment's seed: it was drawn above).
    driver.seed = compiled.seed + len(chunks)
    study = driver.study(store)  # fills driver.candidates from the runs in the database
    n, repeat, options = len(driver.samples), driver.repeat, driver.options
    covered: dict[str, int] = {}  # configuration -> samples of the order queued for it
    pending: set[str] = set()
    for c in chunks:
        if c["config_id"] is not None:
            covered[c["config_id"]] = max(covered.get(c["config_id"], 0), int(c["samples_hi"]))
            if c["state"] in ("queued", "leased"):
                pending.add(c["config_id"])
    parts: list[tuple[str, int, int, int]] = []
    for config_id, upto in covered.items():  # 1. promotions
        cand = driver.candidates.get(config_id)
        if config_id in pending or upto >= n or cand is None or not cand.values():
            continue
        floor = driver.earned(besides=cand)
        if floor is None or interval(cand.values(), options.confidence)[2] >= floor:
            nxt = next(size for size in driver.rung_sizes if size > upto)
            parts.append((config_id, upto, nxt, (nxt - upto) * repeat))
    reason = None
    if not parts:  # 2. new configurations
        reason = _stop_reason(store, sid, driver, compiled, len(covered))
        if reason is None:
            dists, new, duplicates = distributions(driver.exp), [], 0
            while len(new) < options.batch and len(covered) + len(new) < options.max_configs and duplicates <= ASK_TRIES:
                trial = study.ask(dists)
                config = build_configuration(driver.exp, params_to_point(driver.exp, trial.params))
                if config.id in covered or any(c.id == config.id for c in new):
                    study.tell(trial, state=TrialState.FAIL)
                    duplicates += 1
                    continue
                new.append(config)
            if not new:
                reason = "space exhausted"
            store.add_configurations(eid, ((c.id, c.as_record(), c.varied) for c in new))
            parts = [(c.id, 0, driver.rung_sizes[0], driver.rung_sizes[0] * repeat) for c in new]
    if not parts and not pending:  # 3. before declaring a winner: the contenders get every sample
        parts = [(c.config.id, covered.get(c.config.id, 0), n, (n - covered.get(c.config.id, 0)) * repeat)
                 for c in driver.contenders() if covered.get(c.config.id, n) < n]  # (failed runs do not make one queue forever)
    if parts:
        return "queued" if store.add_guided_chunks(sid, len(chunks), parts) else "waiting"
    if pending:
        return "waiting"
    best = driver.best()
    best_score = float(sum(best.values()) / len(best.values())) if best else None
    best_id = best.config.id if best else None
    done = int(store.sweep(sid).get("done") or 0)  # final: no chunk is pending
    # Before it ends: the best, and the total becomes what the search needed (as in one process).
    store.update_sweep(sid, best_config_id=best_id, best_score=best_score, total=done)
    store.end_sweep(sid, "completed", reason, events=[  # with the end, in its transaction
        ("guided.finished", {"reason": reason, "configurations_tried": len(covered), "best_config_id": best_id,
                             "best_score": best_score, "sweep_id": sid, "workers": True}),
        ("experiment.completed", {"sweep_id": sid, "done": done, "total": done,
                                  "best_config_id": best_id, "best_score": best_score, "workers": True})])
    return "finished"


def _stop_reason(store: StoreBackend, sweep_id: str, driver: GuidedDriver, compiled: CompiledExperiment, tried: int) -> str | None:
    """Why no new configuration is asked for (the single-process driver's reasons), or None."""
    options = driver.options
    if tried >= options.max_configs:
        return "max_configs reached"
    calls_per_run = sum(1 for stage in compiled.experiment.stages if stage.kind == "prompt") or 1
    if driver.max_calls and int(store.sweep(sweep_id).get("done") or 0) * calls_per_run >= driver.max_calls:
        return "max_calls reached"
    if options.stop_when_separated and tried >= options.min_configs and driver._covered() and driver._separated():
        return "best separated from the rest"
    return None


__all__ = ["decide", "guided_bound", "guided_driver"]
