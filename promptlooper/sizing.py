"""The size of a sweep before it starts: configurations, runs, calls and an estimated cost.

A quick estimate, from the experiment alone (no cache look-up: that is ``plan``'s), for asking
before a large sweep starts (see :mod:`promptlooper.bounds`): each prompt stage is one call per
run, priced at its dearest model; a judge adds one call per run.
"""

from __future__ import annotations

from typing import Any

from .bounds import SweepSize, confirm_limits
from .providers.pricing import cost
from .providers.registry import EndpointPool, split_model
from .scorers import base as scorer_registry
from .spec import Experiment, FunctionStage
from .sweeps.space import values_of
from .validation import load_samples

TOKENS_PER_WORD = 1.3
DEFAULT_OUT = 128


def sweep_size(exp: Experiment, pool: EndpointPool, configurations: int, finished: int,
               samples: list[dict[str, Any]] | None = None) -> SweepSize:
    """``configurations`` x samples x repeat, less the ``finished`` runs, and what they would cost
    (``samples``: those a compiled experiment already read, else the experiment's are read)."""
    if samples is None:
        samples, _ = load_samples(exp)
    runs = configurations * len(samples) * exp.repeat
    runs -= min(runs, finished)
    words = sum(len(str(v).split()) for v in (samples[0].values() if samples else ()))
    per_run_calls, per_run_cost = 0, 0.0
    for stage in exp.stages:
        if isinstance(stage, FunctionStage):
            continue
        per_run_calls += 1
        models = [m for m in values_of(exp.space[f"{stage.name}.model"])] if f"{stage.name}.model" in exp.space \
            else [stage.model]
        turns = " ".join(getattr(m, "content", "") for m in stage.messages or [])  # a chat stage's templated turns
        tokens_in = TOKENS_PER_WORD * (words + len(f"{stage.system or ''} {turns} {stage.user or ''}".split()))
        tokens_out = float(stage.params.as_dict().get("max_tokens") or DEFAULT_OUT)
        prices = []
        for model in models:
            try:
                prices.append(cost(int(tokens_in), int(tokens_out), pool.price(*split_model(str(model)))))
            except Exception:  # noqa: BLE001 - an unknown model is validation's to report
                prices.append(0.0)
        per_run_cost += max(prices, default=0.0)
    for sc in exp.scorers:
        try:
            per_run_calls += bool(scorer_registry.get(sc.name).model_calls)
        except scorer_registry.ScorerError:
            pass
    calls_limit, cost_limit = confirm_limits()
    return SweepSize(configurations=configurations, runs=runs, calls=runs * per_run_calls,
                     estimated_cost=round(runs * per_run_cost, 4), confirm_calls=calls_limit, confirm_cost=cost_limit)


__all__ = ["sweep_size"]
