"""Guided search: Optuna proposes, the store remembers, intervals decide who gets more samples.

The space maps onto Optuna distributions (lists → categorical over their indices, so prompts and
models work as well as numbers; ranges → float / int, log-scaled if asked). Optuna's study lives
in memory only: it is rebuilt from the store at every start — measured configurations with their
mean score, plus values an outside driver *told* — so the store stays the only state and a guided
sweep resumes after a crash by running it again.

Successive halving with intervals: each proposed configuration runs on the first rung of samples;
it gets the next rung only while its 95% interval's upper bound still reaches what the leader has
surely earned (the highest lower bound of a fully evaluated configuration; the leader's mean is
biased upward by its selection as the leader, so it would drop true bests that started badly).
The driver stops at the configuration / call / token budget (by default a quarter of a finite
space's grid calls), when the space is exhausted, or when the best's interval lies above every
other configuration's; candidates still short of samples that may lead get them all first.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from .. import student_t
from ..intervals import mean as _mean
from ..intervals import std as _std
from ..leaderboard import per_sample
from ..spec import Experiment, GuidedOptions, Linked, Range
from ..store import RunRecord, Store, open_store
from .runs import RunItem, run_id
from .space import Configuration, build_configuration, grid_size


def guided_defaults(exp: Experiment, max_configs: int | None = None) -> Any:
    """Guided options with the space-relative defaults filled in."""
    finite = all(isinstance(v, list | Linked) or v.step is not None for v in exp.space.values())
    size = grid_size(exp) if finite else None
    opts = exp.guided
    n_max = max_configs or opts.max_configs or (min(size, max(20, math.ceil(0.5 * size))) if size else 60)
    n_min = opts.min_configs or (min(n_max, max(12, math.ceil(0.2 * size))) if size else 20)
    return opts.model_copy(update={"max_configs": n_max, "min_configs": min(n_min, n_max)})


GRID_SHARE = 0.25  # of a finite space's grid calls: what a guided search spends at most by default


def default_max_calls(exp: Experiment, options: GuidedOptions, runs_per_config: int) -> int | None:
    """A quarter of the grid's calls for a finite space (None for a continuous one), and at least
    what ``min_configs`` configurations cost on every sample, so a small space is still explored.

    Early dropping only stops candidates that surely cannot reach the leader, so on noisy scores
    (pass/fail at a few dozen samples) most candidates earn every sample; the budget, not the
    dropping, is then what keeps the search cheaper than the grid."""
    if any(isinstance(v, Range) and v.step is None for v in exp.space.values()):
        return None  # a continuous range: no grid to take a share of
    per_config = runs_per_config * (sum(1 for stage in exp.stages if stage.kind == "prompt") or 1)
    return max(math.ceil(GRID_SHARE * grid_size(exp) * per_config), (options.min_configs or 1) * per_config)


def distributions(exp: Experiment) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for key, value in exp.space.items():
        if isinstance(value, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value) \
                and value == sorted(value) and len(value) > 2:
            # Sorted numbers: an ordered index, so the sampler learns that 0.6 lies between 0.3 and 0.9.
            out[key] = IntDistribution(0, len(value) - 1)
        elif isinstance(value, list):
            out[key] = CategoricalDistribution(list(range(len(value))))
        elif isinstance(value, Linked):  # bundles are unordered choices, like prompts
            out[key] = CategoricalDistribution(list(range(len(value.linked))))
        elif value.integer:
            out[key] = IntDistribution(int(value.min), int(value.max), log=value.log, step=int(value.step or 1) if not value.log else 1)
        else:
            out[key] = FloatDistribution(value.min, value.max, log=value.log, step=None if value.log else value.step)
    return out


def params_to_point(exp: Experiment, params: dict[str, Any]) -> dict[str, Any]:
    point = {}
    for key, value in exp.space.items():
        raw = params[key]
        if isinstance(value, Linked):
            point[key] = value.linked[int(raw)]
        else:
            point[key] = value[int(raw)] if isinstance(value, list) else (int(raw) if value.integer else round(float(raw), 6))
    return point


def point_to_params(exp: Experiment, point: dict[str, Any]) -> dict[str, Any] | None:
    """Optuna params of a stored point, or None if it lies outside the current space."""
    params: dict[str, Any] = {}
    for key, value in exp.space.items():
        if key not in point:
            return None
        v = point[key]
        if isinstance(value, list | Linked):
            choices = value.linked if isinstance(value, Linked) else value
            matches = [i for i, x in enumerate(choices) if x == v]
            if not matches:
                return None
            params[key] = matches[0]
        else:
            assert isinstance(value, Range)
            if not isinstance(v, int | float) or not value.min <= v <= value.max:
                return None
            params[key] = int(v) if value.integer else float(v)
    return params


def _IntDist() -> type:  # noqa: N802 - a lazily imported class
    from optuna.distributions import IntDistribution

    return IntDistribution


def json_key(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)


def interval(values: list[float], confidence: float) -> tuple[float, float, float]:
    """(mean, low, high): Wilson's interval for pass/fail scores, else Student's t; infinite
    bounds for a single value.

    Student's t collapses to a point when every value is the same, and 0 passes out of 5 is no
    proof of a pass rate of 0: Wilson's interval bounds it below 0.44 (95%) instead."""
    arr = [float(v) for v in values]  # plain Python (no numpy or scipy on the sweep path), same figures
    mean, n = _mean(arr), len(arr)
    if n < 2:
        return mean, -math.inf, math.inf
    if all(v in (0.0, 1.0) for v in arr):
        z2 = NormalDist().inv_cdf(0.5 + confidence / 2) ** 2
        center = (mean + z2 / (2 * n)) / (1 + z2 / n)
        half = math.sqrt(z2 * (mean * (1 - mean) / n + z2 / (4 * n * n))) / (1 + z2 / n)
        return mean, center - half, center + half
    half = student_t.ppf(0.5 + confidence / 2, n - 1) * _std(arr) / math.sqrt(n)
    return mean, mean - half, mean + half


@dataclass
class Candidate:
    config: Configuration
    trial: Any = None
    scores: dict[str, list[float]] = field(default_factory=dict)  # sample id -> weighted scores
    rung: int = 0
    full: bool = False

    def values(self) -> list[float]:
        return [_mean(list(v)) for v in self.scores.values() if v]


class GuidedDriver:
    """Feeds a Sweep's workers with the run items the search decides on."""

    def __init__(self, exp: Experiment, options: GuidedOptions, samples: list[tuple[str, dict[str, Any]]], repeat: int,
                 seed: int, store_path: str, experiment_id: str, weights: dict[str, float]):
        self.exp = exp
        self.options = options
        self.repeat = repeat
        self.store_path = store_path
        self.experiment_id = experiment_id
        self.weights = weights
        order = list(samples)
        random.Random(seed).shuffle(order)  # rungs take samples in a seeded, fixed order
        self.samples = order
        n = len(order)
        self.rung_sizes = sorted({min(n, max(options.min_samples, math.ceil(f * n))) for f in options.rungs})
        self.seed = seed
        self.max_calls = options.max_calls or default_max_calls(exp, options, n * repeat)
        self.queue: asyncio.Queue[RunItem | None] = asyncio.Queue()
        self.pending: dict[str, asyncio.Future[RunRecord]] = {}
        self.candidates: dict[str, Candidate] = {}
        self.stop_reason: str | None = None
        self.tried = 0
        self.added_configs: list[Configuration] = []
        self.total_bound = options.max_configs * n * repeat  # runs it may ask for at most

    # ------------------------------------------------------------------ plumbing with the Sweep
    async def source(self) -> RunItem | None:
        return await self.queue.get()

    def on_run(self, record: RunRecord, item: RunItem) -> None:
        fut = self.pending.pop(record.id, None)
        if fut is not None and not fut.done():
            fut.set_result(record)

    # ------------------------------------------------------------------ the study
    def study(self, store: Store) -> Any:
        import optuna
        from optuna.trial import create_trial

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if self.options.sampler == "tpe":
            # multivariate: prompts and temperatures interact (each prompt has its own best temperature).
            sampler = optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=self.options.startup,
                                                 multivariate=True)
        else:
            sampler = optuna.samplers.RandomSampler(seed=self.seed)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        dists = distributions(self.exp)
        for config_id, (point, scores) in self._measured(store).items():
            params = point_to_params(self.exp, point)
            if params is None or not scores:
                continue
            study.add_trial(create_trial(params=params, distributions=dists, value=_mean(list(scores.values()))))
            self._remember(config_id, point, scores)
        told = store.told_values(self.experiment_id)
        for row in store.configurations(self.experiment_id):
            if row["id"] in told and row["id"] not in self.candidates:
                params = point_to_params(self.exp, row["varied"])
                if params is not None:
                    study.add_trial(create_trial(params=params, distributions=dists, value=told[row["id"]]))
        return study

    def _measured(self, store: Store) -> dict[str, tuple[dict[str, Any], dict[str, float]]]:
        """Configurations in the store: their point and weighted score per sample id."""
        configs = {c["id"]: c["varied"] for c in store.configurations(self.experiment_id)}
        out: dict[str, tuple[dict[str, Any], dict[str, float]]] = {}
        for row in per_sample(store, self.experiment_id, self.weights).rows:  # sorted by configuration
            if row["config_id"] in configs:
                _, scores = out.setdefault(str(row["config_id"]), (configs[row["config_id"]], {}))
                if not math.isnan(row["score"]):
                    scores[str(row["sample_id"])] = float(row["score"])
        return out

    def _remember(self, config_id: str, point: dict[str, Any], scores: dict[str, float]) -> None:
        config = build_configuration(self.exp, point)
        # Keyed by sample id, so that evaluating it further runs only the samples it lacks.
        cand = Candidate(config, scores={sid: [v] for sid, v in scores.items()})
        cand.full = all(sid in scores for sid, _ in self.samples)
        cand.rung = len(self.rung_sizes) - 1 if cand.full else 0
        self.candidates[config_id] = cand

    def earned(self, besides: Candidate | None = None) -> float | None:
        """What the leader has surely earned: the highest lower bound of a fully evaluated candidate.

        Not the leader's mean: the leader is the one whose samples came out best so far, so its
        mean is biased upward by that selection, and a candidate dropped against it may be the
        true best that had a poor first rung."""
        lows = [interval(c.values(), self.options.confidence)[1] for c in self.candidates.values()
                if c.full and c is not besides and c.values()]
        return max(lows, default=None)

    def contenders(self) -> list[Candidate]:
        """Candidates lacking samples that may still reach what the leader has surely earned.

        A search leaves none behind by itself; an earlier sweep of the same search that was
        interrupted, or whose runs failed, does. They get every sample before a winner is declared."""
        floor = self.earned()
        return [c for c in self.candidates.values() if not c.full and c.values()
                and (floor is None or interval(c.values(), self.options.confidence)[2] >= floor)]

    def best(self) -> Candidate | None:
        full = [c for c in self.candidates.values() if c.full and c.values()]
        return max(full, key=lambda c: _mean(list(c.values())), default=None)

    # ------------------------------------------------------------------ the loop
    async def run(self, sweep: Any) -> None:
        from optuna.trial import TrialState

        store = open_store(self.store_path)
        try:
            study = await asyncio.to_thread(self.study, store)
            dists = distributions(self.exp)
            seen = set(self.candidates)
            self.tried = len(self.candidates)  # a resumed search counts what it already measured
            duplicates = 0
            stable, last_best = 0, None  # batches in a row the best has not changed
            while self.stop_reason is None and not sweep.stopping:
                reason = self._budget_reason(sweep)
                if reason:
                    self.stop_reason = reason
                    break
                batch: list[Candidate] = []
                while len(batch) < self.options.batch and self.tried + len(batch) < self.options.max_configs:
                    trial = study.ask(dists)
                    point = params_to_point(self.exp, trial.params)
                    config = build_configuration(self.exp, point)
                    if config.id in seen:
                        known = self.candidates.get(config.id)
                        if known and known.values():
                            study.tell(trial, _mean(list(known.values())))
                        else:
                            study.tell(trial, state=TrialState.FAIL)
                        duplicates += 1
                        if duplicates > 60:
                            break
                        continue
                    duplicates = 0
                    seen.add(config.id)
                    cand = Candidate(config, trial)
                    self.candidates[config.id] = cand
                    batch.append(cand)
                if not batch:
                    self.stop_reason = "space exhausted" if duplicates > 60 else "max_configs reached"
                    break
                self.tried += len(batch)
                store.add_configurations(self.experiment_id, ((c.config.id, c.config.as_record(), c.config.varied) for c in batch))
                await asyncio.gather(*(self._evaluate(c, sweep) for c in batch))
                for cand in batch:
                    values = cand.values()
                    if values:
                        study.tell(cand.trial, _mean(list(values)))
                    else:
                        study.tell(cand.trial, state=TrialState.FAIL)
                best = self.best()
                best_id = best.config.id if best else None
                stable = stable + 1 if best_id is not None and best_id == last_best else 0
                last_best = best_id
                if (self.options.stop_when_separated and self.tried >= self.options.min_configs
                        and stable >= self.options.patience and self._covered() and self._separated()):
                    self.stop_reason = "best separated from the rest"
            # Before declaring a winner: the leading candidates get every sample (even past max_calls).
            while not sweep.stopping and (contenders := self.contenders()):
                await asyncio.gather(*(self._evaluate(c, sweep) for c in contenders))
            if sweep.stopping and self.stop_reason is None:
                self.stop_reason = "stopped"
        finally:
            if self.stop_reason is None:
                self.stop_reason = "interrupted"
            best = self.best()
            sweep.emit("guided.finished", {"reason": self.stop_reason, "configurations_tried": self.tried,
                                           "best_config_id": best.config.id if best else None,
                                           "best_score": _mean(list(best.values())) if best else None,
                                           "calls": sweep.progress.calls})
            sweep.progress.stop_reason = self.stop_reason
            sweep.progress.total = sweep.progress.done  # the upper bound becomes what was needed
            for _ in range(getattr(sweep, "n_workers", 1)):
                self.queue.put_nowait(None)
            store.close()

    def _budget_reason(self, sweep: Any) -> str | None:
        p = sweep.progress
        if self.max_calls and p.calls >= self.max_calls:
            return "max_calls reached"
        if p.status == "paused" and p.stop_reason == "budget":
            return "token/cost budget reached"
        if self.tried >= self.options.max_configs:
            return "max_configs reached"
        return None

    async def _evaluate(self, cand: Candidate, sweep: Any) -> None:
        for rung, size in enumerate(self.rung_sizes):
            already = set(cand.scores)
            todo = [(i, sid, s) for i, (sid, s) in enumerate(self.samples[:size]) if sid not in already]
            if todo:
                await self._run_samples(cand, todo, sweep)
            cand.rung = rung
            if sweep.stopping:
                return
            if size >= len(self.samples):
                cand.full = True
                return
            floor = self.earned(besides=cand)
            if floor is not None and interval(cand.values(), self.options.confidence)[2] < floor:
                return  # cannot reach what the leader has surely earned: no more samples for it

    async def _run_samples(self, cand: Candidate, todo: list[tuple[int, str, dict[str, Any]]], sweep: Any) -> None:
        loop = asyncio.get_running_loop()
        futures = []
        for index, sid, sample in todo:
            for rep in range(self.repeat):
                item = RunItem(cand.config, sample, sid, index, rep, run_id(self.experiment_id, cand.config.id, sid, rep))
                fut: asyncio.Future[RunRecord] = loop.create_future()
                self.pending[item.run_id] = fut
                futures.append((sid, fut))
                self.queue.put_nowait(item)
        for sid, fut in futures:
            while not fut.done():
                if sweep.stopping:
                    return
                await asyncio.wait([fut], timeout=0.25)
            record = fut.result()
            if record.score is not None:
                cand.scores.setdefault(sid, []).append(record.score)

    def _covered(self) -> bool:
        """Every choice of every unordered key (prompt, model…) was tried at least once."""
        for key, value in self.exp.space.items():
            choices = value.linked if isinstance(value, Linked) else value
            if isinstance(choices, list) and not isinstance(distributions(self.exp)[key], _IntDist()):
                tried = {json_key(c.config.varied.get(key)) for c in self.candidates.values() if c.values()}
                if any(json_key(v) not in tried for v in choices):
                    return False
        return True

    def _separated(self) -> bool:
        best = self.best()
        if best is None or len(best.values()) < 2:
            return False
        others = [c for c in self.candidates.values() if c is not best and c.values()]
        if len(others) < self.options.startup:
            return False
        _, low, _ = interval(best.values(), self.options.confidence)
        return all(interval(c.values(), self.options.confidence)[2] < low for c in others)


__all__ = ["GuidedDriver", "distributions", "params_to_point", "point_to_params"]
