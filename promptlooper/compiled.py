"""The compiled experiment: an Experiment made ready to run, once, before any call.

Data flows one way: experiment file -> :class:`CompiledExperiment` -> engine -> store -> views.
:func:`compile_experiment` does every piece of preparation exactly once and hands the result down:

* the samples are read (one read of a samples file) and identified;
* the experiment is validated against them and the endpoint pool (every problem, with field
  paths, in one :class:`~promptlooper.errors.SpecError`);
* each scorer is built once: validation builds it to check its arguments, and that same function
  is what the sweep scores with (:class:`~promptlooper.engine.runner.BoundScorer`) and what the
  plan asks for the calls it would make;
* function stages are resolved to their callables (an MCP client's imports are checked here);
* the configurations are enumerated for the strategy (grid, random, given points; a guided search
  decides its own as it goes);
* the budget and concurrency the sweep runs with are settled.

The engine, the plan and the facade take a compiled experiment; none of them parses, reads,
validates or builds any of this again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .errors import SpecError
from .providers.registry import EndpointPool
from .samples import sample_id
from .scorers.base import computed
from .scorers.bound import BoundScorer
from .scorers.env import ScoringEnv
from .spec import Experiment
from .sweeps.space import Configuration, build_configuration, grid_points, grid_size, random_points
from .validation import load_samples, validate

DEFAULT_RANDOM_CONFIGS = 20


@dataclass(frozen=True)
class CompiledExperiment:
    """What a sweep, a plan or a re-plan needs, prepared once (see the module docstring)."""

    experiment: Experiment
    pool: EndpointPool
    samples: list[tuple[str, dict[str, Any]]]  # (sample id, sample), in the file's order
    built: dict[int, Any]  # scorer index in experiment.scorers -> its built function
    scorers: list[BoundScorer]  # the scorers a sweep computes (people's ratings are not computed)
    functions: dict[str, Callable[..., Any]]  # function stage name -> callable
    strategy: str
    seed: int
    max_configs: int | None
    points: list[dict[str, Any]] | None  # given points to run instead of the strategy's
    concurrency: int
    budget: dict[str, Any]

    @cached_property
    def configurations(self) -> list[Configuration]:
        """The configurations to run ([] for a guided search: it decides them as it goes), built
        on first use: sizing a sweep (to ask before a large one) counts them without building."""
        if self.points is not None:
            return [build_configuration(self.experiment, p) for p in self.points]
        if self.strategy == "guided":
            return []
        return configurations(self.experiment, strategy=self.strategy, max_configs=self.max_configs, seed=self.seed)

    def configuration_count(self) -> int:
        """How many configurations there are (a guided search: as many as it may try), without building them."""
        if self.points is not None:
            return len(self.points)
        return configuration_count(self.experiment, strategy=self.strategy, max_configs=self.max_configs)

    @property
    def key(self) -> str:
        return self.experiment.key

    @property
    def guided(self) -> bool:
        return self.strategy == "guided" and self.points is None

    @property
    def sample_values(self) -> list[dict[str, Any]]:
        return [s for _, s in self.samples]

    def scoring_env(self, *, store_path: str, pool: EndpointPool, calls: Any) -> ScoringEnv:
        """What this experiment's judges and embedders reach during a sweep: its store, endpoints
        and call path (see :mod:`promptlooper.scorers.env`)."""
        return ScoringEnv(store_path=store_path, pool=pool, calls=calls)


def problems_of(exp: Experiment, pool: EndpointPool, built: dict[int, Any] | None = None,
                functions: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], list[Any]]:
    """The samples (read once) and every problem of ``exp``; ``built`` collects the scorers built,
    ``functions`` the function stages resolved."""
    samples, problems = load_samples(exp)
    return samples, problems + validate(exp, pool, samples, built=built, functions=functions)


def compile_experiment(exp: Experiment, pool: EndpointPool, *, strategy: str | None = None, max_configs: int | None = None,
                       seed: int | None = None, concurrency: int | None = None,
                       points: list[dict[str, Any]] | None = None) -> CompiledExperiment:
    """``exp`` validated and prepared once; SpecError (every problem, with field paths) before any call.

    ``points`` (space key -> value) are the configurations to run instead of the strategy's."""
    built: dict[int, Any] = {}
    functions: dict[str, Callable[..., Any]] = {}
    samples, problems = problems_of(exp, pool, built, functions)
    if problems:
        raise SpecError(problems)
    strategy = strategy or exp.strategy
    seed = exp.seed if seed is None else seed
    to_compute = {id(s) for s in computed(exp.scorers)}
    return CompiledExperiment(
        experiment=exp, pool=pool, samples=[(sample_id(s), s) for s in samples], built=built,
        scorers=[BoundScorer(spec, built.get(i)) for i, spec in enumerate(exp.scorers) if id(spec) in to_compute],
        functions=functions,
        strategy=strategy, seed=seed, max_configs=max_configs, points=points,
        concurrency=concurrency or exp.concurrency, budget=budget_of(exp),
    )


def budget_of(exp: Experiment) -> dict[str, Any]:
    """The experiment's budget; ``$MAX_TOKENS_PER_SWEEP`` caps tokens when it sets none (an operator's cap)."""
    budget = exp.budget.model_dump(exclude_none=True)
    if "max_tokens" not in budget and os.environ.get("MAX_TOKENS_PER_SWEEP", "0") not in ("", "0"):
        budget["max_tokens"] = int(os.environ["MAX_TOKENS_PER_SWEEP"])
    return budget


def configurations(exp: Experiment, *, strategy: str | None = None, max_configs: int | None = None,
                   seed: int | None = None) -> list[Configuration]:
    """The configurations a sweep of ``strategy`` runs (for a guided one, as many random points as
    it may try: what planning counts)."""
    strategy = strategy or exp.strategy
    seed = exp.seed if seed is None else seed
    if strategy == "guided":
        n = _guided_configs(exp, max_configs)
        return [build_configuration(exp, p) for p in random_points(exp, n, seed)]
    if strategy == "random":
        n = max_configs or exp.max_configs or min(DEFAULT_RANDOM_CONFIGS, grid_size(exp))
        points = random_points(exp, n, seed)
    else:
        points = list(grid_points(exp))
        if max_configs:
            points = points[:max_configs]
    return [build_configuration(exp, p) for p in points]


def _guided_configs(exp: Experiment, max_configs: int | None) -> int:
    """How many configurations a guided search may try. Its module is imported only here: grid and
    random sweeps (every sweep of the 1,000-call start-up benchmark) never load it."""
    from .sweeps.guided import guided_defaults

    return guided_defaults(exp, max_configs).max_configs or 20


def configuration_count(exp: Experiment, *, strategy: str | None = None, max_configs: int | None = None) -> int:
    """How many configurations :func:`configurations` gives, counted without building them."""
    strategy = strategy or exp.strategy
    size = grid_size(exp)
    if strategy == "guided":
        return _guided_configs(exp, max_configs)
    if strategy == "random":
        n = max_configs or exp.max_configs or min(DEFAULT_RANDOM_CONFIGS, size)
        continuous = any(getattr(v, "step", 0) is None for v in exp.space.values())  # a Range without step
        return n if continuous else min(n, size)
    return min(size, max_configs) if max_configs else size


__all__ = ["CompiledExperiment", "compile_experiment", "configuration_count", "configurations", "problems_of"]
