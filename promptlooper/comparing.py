"""Comparing experiments: a fork against its parent, or any two experiments over their shared
samples (samples are identified by content, so the same question in two experiments is one sample).

* :func:`compare_experiments`: both leaderboards side by side (each experiment's current
  definition), each configuration ranked by its mean over the SHARED samples only (so neither side
  wins on easier samples),
  with n and its 95% interval, and whether the same configuration ran in both.
* :func:`compare_configurations`: a paired comparison of two configurations that may belong to
  different experiments (``EXP:CONFIG`` references), over the samples both finished.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import NotFoundError
from .hashing import short
from .intervals import ALPHA, t_interval
from .leaderboard import per_sample_scores
from .stats import _weights, paired, resolve_config

if TYPE_CHECKING:
    from .store import Store


def split_ref(ref: str, default_experiment: str | None = None) -> tuple[str, str]:
    """``EXP:CONFIG`` -> (EXP, CONFIG); a bare CONFIG belongs to ``default_experiment``."""
    if ":" in ref:
        exp, _, config = ref.rpartition(":")
        if exp and config:
            return exp, config
        raise NotFoundError(f"{ref!r}: write EXPERIMENT:CONFIG, e.g. tests/qa:3f2a91 or tests/qa:best")
    if default_experiment is None:
        raise NotFoundError(f"{ref!r} names no experiment; write EXPERIMENT:CONFIG (e.g. tests/qa:best)")
    return default_experiment, ref


def _config_ref(value: str) -> str | int:
    return int(value) if value.isdigit() and len(value) < 6 else value


def _scores(store: Store, experiment: dict[str, Any], metric: str) -> pd.DataFrame:
    table = per_sample_scores(store, experiment["id"], _weights(experiment))
    if metric not in table.columns:
        options = [c for c in table.columns if c not in ("config_id", "sample_id")]
        raise KeyError(f"no scorer column {metric!r} in {experiment['project']}/{experiment['name']}; "
                       f"choose one of: {', '.join(options) or 'none yet'}")
    return table


def compare_configurations(store: Store, a: str, b: str, *, experiment: str | None = None, scorer: str | None = None,
                           confidence: float = 0.95) -> dict[str, Any]:
    """Paired comparison of configuration ``a`` and ``b`` (``EXP:CONFIG``, or a CONFIG of
    ``experiment``: an id prefix, 'best' or a leaderboard rank) over the samples both finished."""
    exp_a, cfg_a = split_ref(a, experiment)
    exp_b, cfg_b = split_ref(b, experiment)
    row_a, row_b = store.experiment(exp_a), store.experiment(exp_b)
    id_a, id_b = resolve_config(store, row_a, _config_ref(cfg_a)), resolve_config(store, row_b, _config_ref(cfg_b))
    metric = scorer or "score"
    table_a, table_b = _scores(store, row_a, metric), _scores(store, row_b, metric)
    col_a = table_a[table_a.config_id == id_a].groupby("sample_id")[metric].mean().rename("a")
    col_b = table_b[table_b.config_id == id_b].groupby("sample_id")[metric].mean().rename("b")
    both = pd.concat([col_a, col_b], axis=1)
    shared = both.dropna()
    result = paired(shared["a"].to_numpy(), shared["b"].to_numpy(), confidence)
    significant = bool(result.n >= 2 and not math.isnan(result.p_value) and result.p_value < ALPHA)
    name = lambda r: f"{r['project']}/{r['name']}"  # noqa: E731
    return {
        "experiment_a": name(row_a), "experiment_b": name(row_b), "config_a": id_a, "config_b": id_b, "metric": metric,
        **asdict(result), "confidence": confidence, "significant": significant,
        "better": ("a" if result.mean_diff > 0 else "b") if significant else None,
        "only_a": int(both["a"].notna().sum() - len(shared)), "only_b": int(both["b"].notna().sum() - len(shared)),
    }


def _current(store: Store, experiment: dict[str, Any], table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the experiment's current definition, as its leaderboard ranks them."""
    members = store.definition(experiment["id"])
    if members is None:
        return table
    return table[table.config_id.isin(members["configurations"]) & table.sample_id.isin(members["sample_ids"])]


BOARD_COLUMNS = ["experiment", "rank", "config_id", "score", "ci_low", "ci_high", "n", "in_both", "full_config_id"]


def compare_experiments(store: Store, a: str, b: str, *, scorer: str | None = None) -> pd.DataFrame:
    """The leaderboards of ``a`` and ``b`` side by side over their shared samples: one row per
    configuration, ``experiment`` saying whose, ranked within each, its varied parameters, mean,
    95% interval, n and ``in_both`` (the same configuration ran in the other experiment).
    ``attrs``: ``shared_samples``, ``only_a``, ``only_b`` (sample counts) and both names."""
    row_a, row_b = store.experiment(a), store.experiment(b)
    metric = scorer or "score"
    table_a, table_b = _current(store, row_a, _scores(store, row_a, metric)), _current(store, row_b, _scores(store, row_b, metric))
    samples_a, samples_b = set(table_a.sample_id), set(table_b.sample_id)
    shared = samples_a & samples_b
    names = [f"{r['project']}/{r['name']}" for r in (row_a, row_b)]
    configs = [set(table_a.config_id), set(table_b.config_id)]
    parts = []
    for i, (row, table) in enumerate(((row_a, table_a), (row_b, table_b))):
        varied = {c["id"]: c["varied"] for c in store.configurations(row["id"])}
        kept = table[table.sample_id.isin(shared)].dropna(subset=[metric])
        records = []
        for config_id, group in kept.groupby("config_id"):
            values = group[metric].to_numpy(dtype=float)
            low, high = t_interval(values)
            records.append({"experiment": names[i], "config_id": short(str(config_id)), **varied.get(config_id, {}),
                            "score": float(values.mean()), "ci_low": low, "ci_high": high, "n": len(values),
                            "in_both": config_id in configs[1 - i], "full_config_id": str(config_id)})
        part = pd.DataFrame.from_records(records)
        if len(part):
            part = part.sort_values(["score", "n"], ascending=[False, False]).reset_index(drop=True)
            part.insert(1, "rank", np.arange(1, len(part) + 1))
        parts.append(part)
    out = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) \
        else pd.DataFrame(columns=BOARD_COLUMNS)
    head = ["experiment", "rank", "config_id"]
    tail = ["score", "ci_low", "ci_high", "n", "in_both", "full_config_id"]
    out = out[head + [c for c in out.columns if c not in head + tail] + tail]
    out.attrs.update({"experiment_a": names[0], "experiment_b": names[1], "metric": metric,
                      "shared_samples": len(shared), "only_a": len(samples_a - shared), "only_b": len(samples_b - shared)})
    return out


def side_by_side(board: pd.DataFrame) -> pd.DataFrame:
    """:func:`compare_experiments` as two column blocks, rank against rank (A's first, B's second)."""
    a, b = board.attrs.get("experiment_a"), board.attrs.get("experiment_b")
    cols = ["config_id", "score", "ci_low", "ci_high", "n"]
    left = board[board.experiment == a][["rank", *cols]].set_index("rank")
    right = board[board.experiment == b][["rank", *cols]].set_index("rank")
    return pd.concat({a: left, b: right}, axis=1)


__all__ = ["compare_configurations", "compare_experiments", "side_by_side", "split_ref"]
