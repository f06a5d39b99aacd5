"""Rankings: configurations (never single runs) by weighted score over samples, with intervals.

A run's weighted score is the weighted mean of its scorers (weights from the experiment). Repeats
of one sample are averaged first, so the interval reflects the samples: a configuration's score is
the mean over samples, with a 95% Student-t interval (none for n = 1), and ``n`` is always shown.
Rejected configurations are left out; approved ones are marked. ``interval="bootstrap"`` gives a
seeded percentile bootstrap interval instead. A missing score (a judge reply with no grade, a
scorer that failed) is left out of every mean and counted in the ``missing`` column. The
``distinguishable`` column compares every configuration with the best one in a paired t-test over
the samples both finished: 'best' for the best, True when the difference is significant
(p < 0.05), False when it is not or when fewer than 3 samples are shared, so a close second is never mistaken for a loser.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .hashing import short
from .stats import interval as _interval
from .stats import t_interval, versus_best  # noqa: F401 - t_interval: re-exported (it lived here)
from .store import Store


def per_sample_scores(store: Store, experiment_id: str, weights: dict[str, float]) -> pd.DataFrame:
    """One row per (configuration, sample): each scorer's mean and the weighted score."""
    rows = store.score_rows(experiment_id)
    if not rows:
        return pd.DataFrame(columns=["config_id", "sample_id", "score"])
    df = pd.DataFrame(rows, columns=["config_id", "run_id", "sample_id", "scorer", "value"])
    df["value"] = pd.to_numeric(df["value"], errors="coerce")  # a missing score (NULL) is NaN
    # groupby, not pivot_table: a run whose every score is missing keeps its row (NaN), so its
    # configuration stays on the board with n = 0 instead of vanishing.
    wide = df.groupby(["config_id", "sample_id", "run_id", "scorer"])["value"].mean().unstack("scorer")
    scorer_cols = list(wide.columns)
    w = pd.Series({c: weights.get(c, 0.0) for c in scorer_cols}, dtype=float)
    present = wide.notna().astype(float) * w
    wide["score"] = (wide.fillna(0.0) * w).sum(axis=1) / present.sum(axis=1).replace(0.0, np.nan)
    per_sample = wide.groupby(level=["config_id", "sample_id"]).mean().reset_index()
    per_sample.columns.name = None
    # Missing scores (a judge reply with no grade, a scorer that failed) per configuration: left
    # out of every mean above, and counted so the leaderboard can show them.
    per_sample.attrs["missing"] = df[df["value"].isna()].groupby("config_id").size().to_dict()
    return per_sample


def leaderboard(
    store: Store,
    experiment: dict[str, Any],
    *,
    sort: str | None = None,
    top: int | None = None,
    include_rejected: bool = False,
    interval: str = "t",
) -> pd.DataFrame:
    spec = experiment["spec"]
    weights = {(s.get("label") or s["name"]): float(s.get("weight", 1.0)) for s in spec.get("scorers", [])}
    configs = {c["id"]: c for c in store.configurations(experiment["id"])}
    per_sample = per_sample_scores(store, experiment["id"], weights)
    runs = pd.DataFrame(store.run_rows(experiment["id"]),
                        columns=["config_id", "run_id", "sample_id", "status", "tokens_in", "tokens_out", "cost", "latency_ms"])
    varied_keys: list[str] = []
    for c in configs.values():
        for k in c["varied"]:
            if k not in varied_keys:
                varied_keys.append(k)
    scorer_cols = [c for c in per_sample.columns if c not in ("config_id", "sample_id", "score")]
    # Run totals grouped once (filtering the runs per configuration was quadratic: 1.8 s for 200).
    ok_runs = runs[runs.status.isin(["completed", "cached"])]
    totals = ok_runs.groupby("config_id").agg(tokens_in=("tokens_in", "sum"), tokens_out=("tokens_out", "sum"),
                                              cost=("cost", "sum"), latency_ms=("latency_ms", "median"))
    failed_counts = runs[runs.status == "failed"].groupby("config_id").size()
    missing = per_sample.attrs.get("missing", {})
    records = []
    for config_id, group in per_sample.groupby("config_id"):
        cfg = configs.get(str(config_id))
        decision = cfg.get("decision") if cfg else None
        if decision == "rejected" and not include_rejected:
            continue
        values = group["score"].dropna().to_numpy(dtype=float)
        low, high = _interval(values, interval)
        tot = totals.loc[config_id] if config_id in totals.index else None
        rec: dict[str, Any] = {"config_id": short(str(config_id))}
        for k in varied_keys:
            rec[k] = (cfg["varied"].get(k) if cfg else None)
        rec.update({
            "score": float(values.mean()) if len(values) else math.nan,
            "ci_low": low, "ci_high": high, "n": int(len(values)), "distinguishable": False,
        })
        for col in scorer_cols:
            rec[col] = float(group[col].mean())
        rec.update({
            "tokens": int(tot.tokens_in + tot.tokens_out) if tot is not None else 0,
            "cost": float(tot.cost) if tot is not None else 0.0,
            "latency_ms": float(tot.latency_ms) if tot is not None else math.nan,
            "failed": int(failed_counts.get(config_id, 0)),
            "missing": int(missing.get(config_id, 0)),
            "decision": decision or "",
            "full_config_id": str(config_id),
        })
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    if df.empty:
        return pd.DataFrame(columns=["rank", "config_id", *varied_keys, "score", "ci_low", "ci_high", "n", "distinguishable",
                                     *scorer_cols, "tokens", "cost", "latency_ms", "failed", "missing", "decision",
                                     "full_config_id"])
    key = sort or "score"
    if key not in df.columns:
        raise KeyError(f"cannot sort by {key!r}; choose one of: score, {', '.join(scorer_cols)}, tokens, cost, latency_ms")
    ascending = key in ("cost", "tokens", "latency_ms")
    df = df.sort_values([key, "n"], ascending=[ascending, False], na_position="last").reset_index(drop=True)
    df.insert(0, "rank", range(1, len(df) + 1))
    # Compared on what the ranking is about: the sorted scorer's column, else the weighted score.
    metric = key if key in scorer_cols else "score"
    ranked = df.dropna(subset=[metric])
    if len(ranked):
        best = str(ranked.sort_values([metric, "rank"], ascending=[False, True]).iloc[0]["full_config_id"])
        marks = versus_best(per_sample[per_sample.config_id.isin(df.full_config_id)], metric, best)
        df["distinguishable"] = [marks.get(c, False) for c in df.full_config_id]
    df["distinguishable"] = df["distinguishable"].astype(object)
    if top:
        df = df.head(top)
    return df
