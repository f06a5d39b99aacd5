"""Rankings: configurations (never single runs) by weighted score over samples, with intervals.

A run's weighted score is the weighted mean of its scorers (weights from the experiment). Repeats
of one sample are averaged first, so the interval reflects the samples: a configuration's score is
the mean over samples, with a 95% Student-t interval (none for n = 1), and ``n`` is always shown.
Only the experiment's current definition is ranked: the configurations it planned (or a redirect,
guided search or outside driver added), on its samples, with its scorers; earlier definitions stay
in the store (``definition=N``, ``all_definitions=True``). Experiments stored before definitions
were kept are ranked whole.

Rejected configurations are left out (``include_rejected`` lists them after the ranking, never as
the best, for a board that can un-reject them); approved ones are marked. A configuration whose every run
failed stays on the board, last, with ``n`` 0; ``failed`` counts failed runs and ``failure`` gives
the most common reason. ``interval="bootstrap"`` gives a seeded percentile bootstrap interval
instead. A missing score (a judge reply with no grade, a scorer that failed) is left out of every
mean and counted in the ``missing`` column. The ``distinguishable`` column (text, like every column of one type) compares every
configuration with the best one in a paired t-test over the samples both finished: 'best' for the
best, 'yes' when the difference is significant (p < 0.05), 'no' when it is not or when fewer than
3 samples are shared, so a close second is never mistaken for a loser.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from .hashing import short
from .scoring import weights_of
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


COLUMNS_HEAD = ("rank", "config_id")
COLUMNS_TAIL = ("tokens", "cost", "latency_ms", "failed", "missing", "failure", "decision", "full_config_id")
DISTINGUISHABLE = {"best": "best", True: "yes", False: "no"}


def leaderboard(
    store: Store,
    experiment: dict[str, Any],
    *,
    sort: str | None = None,
    top: int | None = None,
    include_rejected: bool = False,
    interval: str = "t",
    definition: int | None = None,
    all_definitions: bool = False,
) -> pd.DataFrame:
    """The ranking of the experiment's current definition (``definition``: an earlier one by its
    number; ``all_definitions``: every configuration and sample ever run)."""
    spec = experiment["spec"]
    members = None if all_definitions else store.definition(experiment["id"], definition)
    if members is not None and definition is not None:
        spec = members["spec"]  # a past definition is ranked with its own scorers
    weights = weights_of(spec.get("scorers", []))
    configs = {c["id"]: c for c in store.configurations(experiment["id"])}
    per_sample = per_sample_scores(store, experiment["id"], weights)
    missing = per_sample.attrs.get("missing", {})  # before filtering: attrs do not always follow
    runs = pd.DataFrame(store.run_rows(experiment["id"]),
                        columns=["config_id", "run_id", "sample_id", "status", "tokens_in", "tokens_out", "cost", "latency_ms"])
    failures = pd.DataFrame(store.failed_runs(experiment["id"]), columns=["config_id", "sample_id", "error"])
    if members is not None:
        wanted, samples = members["configurations"], members["sample_ids"]
        per_sample = per_sample[per_sample.config_id.isin(wanted) & per_sample.sample_id.isin(samples)]
        runs = runs[runs.config_id.isin(wanted) & runs.sample_id.isin(samples)]
        failures = failures[failures.config_id.isin(wanted) & failures.sample_id.isin(samples)]
        # Scorers that other definitions had and this one dropped go. Human ratings stay, and so do
        # scores `rescore` added for a scorer no definition names (an extra column, not weighted).
        dropped = {(s.get("label") or s["name"]) for d in store.definitions(experiment["id"])
                   for s in d["spec"].get("scorers", [])} - set(weights)
        per_sample = per_sample.drop(columns=[c for c in per_sample.columns if c in dropped])
    if not include_rejected:
        rejected = {cid for cid, c in configs.items() if c.get("decision") == "rejected"}
        per_sample = per_sample[~per_sample.config_id.isin(rejected)]
        runs = runs[~runs.config_id.isin(rejected)]
    scorer_cols = [c for c in per_sample.columns if c not in ("config_id", "sample_id", "score")]
    # Run totals grouped once (filtering the runs per configuration was quadratic: 1.8 s for 200).
    ok_runs = runs[runs.status.isin(["completed", "cached"])]
    totals = ok_runs.groupby("config_id").agg(tokens_in=("tokens_in", "sum"), tokens_out=("tokens_out", "sum"),
                                              cost=("cost", "sum"), latency_ms=("latency_ms", "median"))
    failed_counts = runs[runs.status == "failed"].groupby("config_id").size()
    reasons = _most_common_reasons(failures)
    groups = dict(tuple(per_sample.groupby("config_id")))
    # Every configuration that ran, scored or not: one whose every run failed stays on the board.
    ranked_ids = list(groups) + [c for c in dict.fromkeys(runs.config_id) if c not in groups]
    varied_keys: list[str] = []
    for config_id in ranked_ids:
        for k in (configs.get(str(config_id)) or {}).get("varied", {}):
            if k not in varied_keys:
                varied_keys.append(k)
    records = []
    for config_id in ranked_ids:
        cfg = configs.get(str(config_id))
        group = groups.get(config_id)
        values = group["score"].dropna().to_numpy(dtype=float) if group is not None else np.array([], dtype=float)
        low, high = _interval(values, interval)
        tot = totals.loc[config_id] if config_id in totals.index else None
        rec: dict[str, Any] = {"config_id": short(str(config_id))}
        for k in varied_keys:
            rec[k] = (cfg["varied"].get(k) if cfg else None)
        rec.update({
            "score": float(values.mean()) if len(values) else math.nan,
            "ci_low": low, "ci_high": high, "n": int(len(values)), "distinguishable": "no",
        })
        for col in scorer_cols:
            rec[col] = float(group[col].mean()) if group is not None else math.nan
        rec.update({
            "tokens": int(tot.tokens_in + tot.tokens_out) if tot is not None else 0,
            "cost": float(tot.cost) if tot is not None else 0.0,
            "latency_ms": float(tot.latency_ms) if tot is not None else math.nan,
            "failed": int(failed_counts.get(config_id, 0)),
            "missing": int(missing.get(config_id, 0)),
            "failure": reasons.get(str(config_id), ""),
            "decision": (cfg.get("decision") if cfg else None) or "",
            "full_config_id": str(config_id),
        })
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    if df.empty:
        return pd.DataFrame(columns=[*COLUMNS_HEAD, *varied_keys, "score", "ci_low", "ci_high", "n", "distinguishable",
                                     *scorer_cols, *COLUMNS_TAIL])
    for k in varied_keys:
        df[k] = _one_type(list(df[k]))
    key = sort or "score"
    if key not in df.columns:
        raise KeyError(f"cannot sort by {key!r}; choose one of: score, {', '.join(scorer_cols)}, tokens, cost, latency_ms")
    ascending = key in ("cost", "tokens", "latency_ms")
    # Configurations with no finished run go last whatever the order (their cost of 0 is no merit),
    # and rejected ones (listed only on request, to be un-rejected) after everything else.
    df["_kept"], df["_scored"] = df["decision"] != "rejected", df["n"] > 0
    df = df.sort_values(["_kept", "_scored", key, "n"], ascending=[False, False, ascending, False], na_position="last")
    df = df.drop(columns=["_kept", "_scored"]).reset_index(drop=True)
    df.insert(0, "rank", range(1, len(df) + 1))
    # Compared on what the ranking is about: the sorted scorer's column, else the weighted score.
    metric = key if key in scorer_cols else "score"
    ranked = df[df["decision"] != "rejected"].dropna(subset=[metric])
    if len(ranked):
        best = str(ranked.sort_values([metric, "rank"], ascending=[False, True]).iloc[0]["full_config_id"])
        marks = versus_best(per_sample[per_sample.config_id.isin(df.full_config_id)], metric, best)
        df["distinguishable"] = [DISTINGUISHABLE[marks.get(c, False)] for c in df.full_config_id]
    if top:
        df = df.head(top)
    return df


def _most_common_reasons(failures: pd.DataFrame) -> dict[str, str]:
    """Each configuration's most frequent failure reason (ties: the alphabetically first)."""
    out: dict[str, str] = {}
    if failures.empty:
        return out
    counted = failures.assign(error=failures.error.fillna("unknown error")).groupby(["config_id", "error"]).size()
    table = counted.reset_index(name="k").sort_values(["config_id", "k", "error"], ascending=[True, False, True])
    for config_id, error in zip(table.config_id, table.error, strict=True):
        out.setdefault(str(config_id), str(error))
    return out


def _one_type(column: list[Any]) -> list[Any]:
    """A varied column as one type: mixed values (a string and a list, say) as JSON text each."""
    def kind(v: Any) -> str:
        if isinstance(v, bool):
            return "bool"
        if isinstance(v, int | float):
            return "number"
        return "str" if isinstance(v, str) else "other"

    present = [v for v in column if v is not None and not (isinstance(v, float) and math.isnan(v))]
    kinds = {kind(v) for v in present}
    if len(kinds) <= 1 and "other" not in kinds:
        return column
    return [json.dumps(v, ensure_ascii=False, sort_keys=True) if v is not None else None for v in column]
