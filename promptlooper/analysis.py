"""Sweep analysis, as Optuna Dashboard shows it, on the stored runs of any sweep (grid, random or
guided): one row per configuration in the order the sweep finished them, the best score so far,
and the importance of each varied parameter.

Importance reuses Optuna's evaluators: mean decrease impurity (a random forest, ~0.2 s for 200
configurations) when scikit-learn is installed (the ``analysis`` extra), else PED-ANOVA, which needs
nothing beyond Optuna but only says which values the best configurations share. fANOVA (Optuna
Dashboard's default) is there on request: it took 3 s for 50 configurations over a parameter of
10 values and did not finish in 10 minutes for 200 over 40 (its cost grows with the categories). The stored
configurations become the completed trials of an in-memory Optuna study (each parameter a
distribution over the values the sweep tried, each trial's value the configuration's mean score),
so nothing is written anywhere and any sweep can be analysed, not only a guided one.
The figures are built in :mod:`promptlooper.ui.sweep_plots`.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import pandas as pd

from .errors import PromptLooperError
from .hashing import short

IMPORTANCE_EVALUATORS = ("auto", "fanova", "mean_decrease_impurity", "ped_anova")
FANOVA_TREES = 16  # Optuna's 64 took 1.6 s for 200 configurations of 3 parameters, for the same shares to 0.01


def configuration_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration with a finished run: ``order`` (1 = finished first), its varied
    parameters, mean ``score`` over samples (repeats averaged), ``n``, total ``cost`` (USD) and
    tokens, median latency, ``finished_at`` and ``best_so_far`` (the best score up to it)."""
    params: list[str] = runs.attrs.get("params", [])
    done = runs[runs["status"].isin(["completed", "cached"])]
    columns = ["order", "config_id", *params, "score", "n", "cost", "tokens", "latency_ms", "finished_at", "best_so_far",
               "full_config_id"]
    if done.empty:
        out = pd.DataFrame(columns=columns)
        out.attrs["params"] = params
        return out
    per_sample = done.groupby(["config_id", "sample_id"], observed=True)["score"].mean().reset_index()
    scores = per_sample.groupby("config_id", observed=True)["score"].agg(["mean", "count"])
    grouped = done.groupby("config_id", observed=True)
    table = pd.DataFrame({
        "score": scores["mean"], "n": per_sample.dropna(subset=["score"]).groupby("config_id", observed=True).size(),
        "cost": grouped["cost"].sum(), "tokens": grouped["tokens"].sum(), "latency_ms": grouped["latency_ms"].median(),
        "finished_at": grouped["completed_at"].max(),
    })
    firsts = grouped[params].first() if params else pd.DataFrame(index=table.index)
    table = table.join(firsts)
    table["n"] = table["n"].fillna(0).astype(int)
    table = table.sort_values(["finished_at"], kind="stable").reset_index()
    table["order"] = range(1, len(table) + 1)
    table["best_so_far"] = table["score"].cummax()
    table["full_config_id"] = table["config_id"].astype(str)
    table["config_id"] = table["full_config_id"].map(short)
    out = table[columns]
    out.attrs["params"] = params
    return out


def optuna_study(configs: pd.DataFrame) -> Any:
    """An in-memory Optuna study whose completed trials are the scored configurations."""
    try:
        import optuna
    except ImportError as exc:
        raise PromptLooperError("sweep analysis needs Optuna: pip install 'promptlooper[analysis]'") from exc
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    params: list[str] = configs.attrs.get("params", [])
    scored = configs.dropna(subset=["score"])
    distributions: dict[str, Any] = {}
    for p in params:
        values = [v for v in scored[p].tolist() if not _missing(v)]
        numeric = values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if numeric and all(float(v).is_integer() and isinstance(v, int) for v in values) and min(values) < max(values):
            distributions[p] = IntDistribution(int(min(values)), int(max(values)))
        elif numeric and min(values) < max(values):
            distributions[p] = FloatDistribution(float(min(values)), float(max(values)))
        else:
            distributions[p] = CategoricalDistribution(sorted({_choice(v) for v in values}, key=str) or [None])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", storage=None)
    trials = []
    for rec in scored.to_dict("records"):
        point = {}
        for p, dist in distributions.items():
            v = rec.get(p)
            if isinstance(dist, CategoricalDistribution):
                point[p] = _choice(v)
            elif isinstance(dist, IntDistribution):
                point[p] = int(v)
            else:
                point[p] = float(v)
        trials.append(optuna.trial.create_trial(params=point, distributions=distributions, value=float(rec["score"]),
                                                user_attrs={"config_id": rec["full_config_id"]}))
    study.add_trials(trials)
    return study


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _choice(v: Any) -> Any:
    """A categorical value Optuna accepts (None, bool, int, float, str): others as JSON text."""
    if _missing(v):
        return None
    if isinstance(v, bool | int | float | str):
        return v.item() if hasattr(v, "item") else v
    return json.dumps(v, sort_keys=True, default=str)


def default_evaluator() -> str:
    """mean_decrease_impurity when scikit-learn is installed, else ped_anova."""
    import importlib.util

    return "mean_decrease_impurity" if importlib.util.find_spec("sklearn") is not None else "ped_anova"


def importance(configs: pd.DataFrame, evaluator: str = "auto", seed: int = 0) -> pd.DataFrame:
    """Each varied parameter's importance for the score (shares summing to 1), most important
    first; empty when fewer than two configurations are scored or no parameter varies.
    ``attrs["evaluator"]`` names the evaluator used (``auto``: see :func:`default_evaluator`)."""
    from optuna.importance import (
        FanovaImportanceEvaluator,
        MeanDecreaseImpurityImportanceEvaluator,
        PedAnovaImportanceEvaluator,
        get_param_importances,
    )

    if evaluator not in IMPORTANCE_EVALUATORS:
        raise ValueError(f"evaluator must be one of {', '.join(IMPORTANCE_EVALUATORS)}, not {evaluator!r}")
    if evaluator == "auto":
        evaluator = default_evaluator()
    empty = pd.DataFrame(columns=["parameter", "importance"])
    empty.attrs["evaluator"] = evaluator
    params = [p for p in configs.attrs.get("params", []) if configs[p].nunique(dropna=True) > 1]
    if len(configs.dropna(subset=["score"])) < 2 or not params:
        return empty
    if configs["score"].dropna().nunique() < 2:
        # Every configuration scored the same: no parameter explains anything (fANOVA would raise).
        return _with_evaluator(pd.DataFrame({"parameter": params, "importance": [0.0] * len(params)}), evaluator)
    narrowed = configs[[c for c in configs.columns if c not in configs.attrs.get("params", []) or c in params]]
    narrowed.attrs["params"] = params
    study = optuna_study(narrowed)
    chosen = {"fanova": lambda: FanovaImportanceEvaluator(n_trees=FANOVA_TREES, seed=seed),
              "mean_decrease_impurity": lambda: MeanDecreaseImpurityImportanceEvaluator(seed=seed),
              "ped_anova": lambda: PedAnovaImportanceEvaluator()}[evaluator]()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks some evaluators experimental
            values = get_param_importances(study, evaluator=chosen, normalize=True)
    except ImportError as exc:
        raise ValueError(f"the {evaluator} evaluator needs scikit-learn (pip install 'promptlooper[analysis]'); "
                         "ped_anova needs nothing more") from exc
    out = pd.DataFrame({"parameter": list(values), "importance": [float(v) for v in values.values()]})
    out.attrs["evaluator"] = evaluator
    return out


def _with_evaluator(df: pd.DataFrame, evaluator: str) -> pd.DataFrame:
    df.attrs["evaluator"] = evaluator
    return df


def pareto_front(configs: pd.DataFrame) -> pd.DataFrame:
    """The configurations no other beats on both score (higher) and cost (lower), cheapest first."""
    scored = configs.dropna(subset=["score", "cost"]).sort_values(["cost", "score"], ascending=[True, False])
    keep, best = [], -math.inf
    for idx, s in zip(scored.index, scored["score"], strict=True):
        if s > best:
            keep.append(idx)
            best = s
    return scored.loc[keep]


__all__ = ["IMPORTANCE_EVALUATORS", "configuration_table", "default_evaluator", "importance", "optuna_study", "pareto_front"]
