"""Group by any variable: the mean of a metric per value (or per pair of values), with its 95%
interval and n, over the experiment's finished runs.

The unit is a (configuration, sample) pair, repeats averaged first, as on the leaderboard: n is
how many such pairs a value has, so ``persona = terse`` over 4 temperatures and 10 samples has
n = 40. The interval is Student t (none for n < 2); a score's is clipped to 0..1 like the
leaderboard's, a cost's or latency's is not.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from . import student_t
from .errors import NotFoundError

NUMERIC_METRICS = ("score", "cost", "tokens", "tokens_in", "tokens_out", "latency_ms", "duration_ms")


def group_by(runs: pd.DataFrame, by: str | list[str], metric: str = "score", confidence: float = 0.95) -> pd.DataFrame:
    """Per value of ``by`` (a varied parameter, ``config_id``, ``sample_id``, ``status``... or a
    list of two): n, mean, ci_low, ci_high, std, configurations and samples, best mean first."""
    keys = [by] if isinstance(by, str) else list(by)
    if not 1 <= len(keys) <= 2:
        raise ValueError(f"group by one or two variables, not {len(keys)}")
    params = runs.attrs.get("params", [])
    scorers = runs.attrs.get("scorers", [])
    groupable = [*params, "config_id", "sample_id", "status", "repeat"]
    for k in keys:
        if k not in runs.columns or k not in groupable:
            raise NotFoundError(f"cannot group by {k!r}; choose one of: {', '.join(groupable)}")
    metrics = [*NUMERIC_METRICS, *scorers]
    if metric not in metrics:
        raise NotFoundError(f"no metric {metric!r}; choose one of: {', '.join(metrics)}")
    done = runs[runs["status"].isin(["completed", "cached"])]
    # Repeats of one sample by one configuration count once, averaged (the leaderboard's unit).
    cols = list(dict.fromkeys([*keys, "config_id", "sample_id"]))
    units = done.groupby(cols, dropna=False, observed=True)[metric].mean().reset_index()
    units = units.dropna(subset=[metric])
    grouped = units.groupby(keys, dropna=False, observed=True)
    out = grouped[metric].agg(["count", "mean", "std"]).rename(columns={"count": "n"})
    out["configurations"] = grouped["config_id"].nunique()
    out["samples"] = grouped["sample_id"].nunique()
    n = out["n"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.array([student_t.ppf(0.5 + confidence / 2, max(k - 1.0, 1.0)) for k in n])
        half = t * out["std"].to_numpy(dtype=float) / np.sqrt(n)
    half = np.where(n >= 2, half, math.nan)
    low, high = out["mean"].to_numpy(dtype=float) - half, out["mean"].to_numpy(dtype=float) + half
    if metric == "score" or metric in scorers:
        low, high = np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)
    out["ci_low"], out["ci_high"] = low, high
    out = out.reset_index()[[*keys, "n", "mean", "ci_low", "ci_high", "std", "configurations", "samples"]]
    out = out.sort_values(["mean", "n"], ascending=[False, False], na_position="last").reset_index(drop=True)
    out.attrs.update({"metric": metric, "by": keys, "confidence": confidence})
    return out


def pivot(table: pd.DataFrame, value: str = "mean") -> pd.DataFrame:
    """A two-variable :func:`group_by` as a pivot table: first variable down, second across."""
    keys: list[Any] = table.attrs.get("by", [])
    if len(keys) != 2:
        raise ValueError("a pivot needs a group_by over two variables")
    return table.pivot(index=keys[0], columns=keys[1], values=value)


__all__ = ["group_by", "pivot"]
