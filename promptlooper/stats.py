"""Rankings you can trust: intervals, paired comparisons, and how well judges agree with people.

* :func:`t_interval` / :func:`bootstrap_interval`: a 95% interval of a configuration's mean score
  over samples (Student t, or a seeded percentile bootstrap that needs no normality).
* :func:`paired` / :func:`compare`: two configurations on the samples both have finished. Pairing
  removes the variation between samples (some questions are hard for every prompt), so a real
  difference shows with far fewer samples than comparing two independent means. Mean difference,
  its paired-t interval and the two-sided p-value (``scipy.stats.ttest_rel``).
* :func:`versus_best`: every configuration against the best one at once (vectorised), for the
  leaderboard's ``distinguishable`` column.
* :func:`calibration`: per judge scorer, agreement with human ratings on the runs having both:
  Spearman's rho, and Cohen's kappa on values binarised at 0.5.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import NotFoundError
from .scoring import weights_of

if TYPE_CHECKING:
    from .store import Store
    from .workbench import Workbench

ALPHA = 0.05
MIN_SHARED = 3  # fewer shared samples than this: two configurations are never called distinguishable


# --------------------------------------------------------------------------- intervals
def t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean, clipped to 0..1 (NaN for fewer than 2 values)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return (math.nan, math.nan)
    from scipy import stats

    mean = float(np.mean(values))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * float(np.std(values, ddof=1)) / math.sqrt(n)
    return (max(0.0, mean - half), min(1.0, mean + half))


def bootstrap_interval(values: np.ndarray, confidence: float = 0.95, n_resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (seeded, so a leaderboard is reproducible)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, n, size=(n_resamples, n))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return (float(low), float(high))


def interval(values: np.ndarray, method: str = "t", confidence: float = 0.95) -> tuple[float, float]:
    if method == "t":
        return t_interval(values, confidence)
    if method == "bootstrap":
        return bootstrap_interval(values, confidence)
    raise ValueError(f"interval must be 't' or 'bootstrap', not {method!r}")


# --------------------------------------------------------------------------- paired comparison
@dataclass(frozen=True)
class Paired:
    n: int
    mean_a: float
    mean_b: float
    mean_diff: float  # a - b
    ci_low: float
    ci_high: float
    p_value: float
    t: float


def paired(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> Paired:
    """Paired t comparison of ``a`` and ``b`` (aligned arrays).

    When every difference is the same, the t statistic is undefined: the p-value is then 1 for a
    zero difference and 0 otherwise, and the interval is that difference.
    """
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = a - b
    n = len(d)
    nan = math.nan
    if n == 0:
        return Paired(0, nan, nan, nan, nan, nan, nan, nan)
    mean = float(d.mean())
    if n < 2:
        return Paired(n, float(a.mean()), float(b.mean()), mean, nan, nan, nan, nan)
    sd = float(d.std(ddof=1))
    if sd <= 1e-12 * max(1.0, abs(mean)):
        p = 1.0 if abs(mean) <= 1e-12 else 0.0
        t = 0.0 if p == 1.0 else math.copysign(math.inf, mean)
        return Paired(n, float(a.mean()), float(b.mean()), mean, mean, mean, p, t)
    se = sd / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    result = stats.ttest_rel(a, b)
    return Paired(n, float(a.mean()), float(b.mean()), mean, mean - half, mean + half, float(result.pvalue), float(result.statistic))


def _weights(experiment: dict[str, Any]) -> dict[str, float]:
    return weights_of(experiment["spec"].get("scorers", []))


def _resolve_config(wb: Workbench, experiment: dict[str, Any], ref: str | int) -> str:
    """A configuration id from an id prefix, 'best', or a leaderboard rank (an int)."""
    if ref == "best":
        ref = 1
    if isinstance(ref, int) and not isinstance(ref, bool):
        from .leaderboard import leaderboard

        board = leaderboard(wb.store, experiment)
        if not 1 <= ref <= len(board):
            raise NotFoundError(f"no configuration ranked {ref}; the leaderboard has {len(board)}")
        return str(board.iloc[ref - 1]["full_config_id"])
    return str(wb.store.configuration(experiment["id"], str(ref))["id"])


def compare(wb: Workbench, experiment_ref: str, config_a: str | int, config_b: str | int, *, scorer: str | None = None,
            confidence: float = 0.95) -> dict[str, Any]:
    """Paired comparison of two configurations over the samples both finished.

    ``config_a`` / ``config_b``: an id prefix, ``"best"``, or a leaderboard rank (int). ``scorer``:
    a scorer's column instead of the weighted score. Repeats of a sample are averaged first.
    Returns n, both means, mean_diff (a - b), ci_low / ci_high, p_value, t, significant
    (p < 0.05), better ('a', 'b' or None) and the samples only one of them has.
    """
    from .leaderboard import per_sample_scores

    experiment = wb.experiment(experiment_ref)
    a_id, b_id = _resolve_config(wb, experiment, config_a), _resolve_config(wb, experiment, config_b)
    table = per_sample_scores(wb.store, experiment["id"], _weights(experiment))
    metric = scorer or "score"
    if metric not in table.columns:
        options = [c for c in table.columns if c not in ("config_id", "sample_id")]
        raise KeyError(f"no scorer column {metric!r} in this experiment; choose one of: {', '.join(options) or 'none yet'}")
    wide = table.pivot_table(index="sample_id", columns="config_id", values=metric, aggfunc="mean")
    col_a = wide[a_id] if a_id in wide else pd.Series(dtype=float)
    col_b = wide[b_id] if b_id in wide else pd.Series(dtype=float)
    both = pd.concat([col_a.rename("a"), col_b.rename("b")], axis=1)
    shared = both.dropna()
    result = paired(shared["a"].to_numpy(), shared["b"].to_numpy(), confidence)
    significant = bool(result.n >= 2 and not math.isnan(result.p_value) and result.p_value < ALPHA)
    return {
        "experiment": f"{experiment['project']}/{experiment['name']}", "config_a": a_id, "config_b": b_id, "metric": metric,
        **asdict(result), "confidence": confidence, "significant": significant,
        "better": ("a" if result.mean_diff > 0 else "b") if significant else None,
        "only_a": int(both["a"].notna().sum() - len(shared)), "only_b": int(both["b"].notna().sum() - len(shared)),
    }


def versus_best(per_sample: pd.DataFrame, metric: str, best: str, *, alpha: float = ALPHA,
                min_shared: int = MIN_SHARED) -> dict[str, Any]:
    """For each configuration: 'best', True (significantly different from the best in a paired
    t-test over shared samples, p < alpha) or False (not, or fewer than ``min_shared`` shared)."""
    from scipy import stats

    wide = per_sample.pivot_table(index="config_id", columns="sample_id", values=metric, aggfunc="mean")
    if best not in wide.index:
        return {str(c): False for c in wide.index} | {best: "best"}
    m = wide.to_numpy(dtype=float)
    diff = m - wide.loc[best].to_numpy(dtype=float)[None, :]
    ok = ~np.isnan(diff)
    n = ok.sum(axis=1)
    d = np.where(ok, diff, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = d.sum(axis=1) / n
        var = (np.where(ok, diff - mean[:, None], 0.0) ** 2).sum(axis=1) / (n - 1)
        t = mean / np.sqrt(var / n)
        p = 2 * stats.t.sf(np.abs(t), np.maximum(n - 1, 1))
    constant = var <= 1e-24
    p = np.where(constant, np.where(np.abs(mean) <= 1e-12, 1.0, 0.0), p)
    out: dict[str, Any] = {}
    for i, config in enumerate(wide.index):
        out[str(config)] = bool(n[i] >= min_shared and p[i] < alpha)
    out[best] = "best"
    return out


# --------------------------------------------------------------------------- calibration
def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two binary (0/1) label arrays; 1.0 for perfect agreement on one class."""
    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    if len(a) == 0:
        return math.nan
    po = float(np.mean(a == b))
    pa, pb = float(a.mean()), float(b.mean())
    pe = pa * pb + (1 - pa) * (1 - pb)
    if pe >= 1.0:
        return 1.0 if po == 1.0 else math.nan
    return (po - pe) / (1 - pe)


CALIBRATION_COLUMNS = ["judge", "human", "n", "spearman_rho", "spearman_p", "kappa", "agreement", "judge_mean", "human_mean"]


def calibration(store: Store, experiment_ref: str, *, scorers: list[str] | None = None, threshold: float = 0.5) -> pd.DataFrame:
    """How each judge scorer agrees with human ratings, on runs that have both.

    One row per (judge column, human rating): n, Spearman's rho and its p-value, Cohen's kappa
    and raw agreement of the values binarised at ``threshold`` (a 1-5 judge's 3 and 3 stars
    count as positive), and both means. ``scorers`` picks the automatic columns to calibrate
    (default: every scorer that calls a model, i.e. judges).
    """
    from scipy import stats

    from .ratings import LABELS
    from .scorers.base import registered

    rows = store.finished_scores(store.experiment(experiment_ref)["id"])
    judges = set(scorers) if scorers is not None else {n for n, info in registered().items() if info.model_calls}
    auto: dict[str, dict[str, float]] = {}
    human: dict[str, dict[str, float]] = {}
    for run_id, label, name, value, source, meta in rows:
        if source == "human" and label in LABELS:
            human.setdefault(label, {})[run_id] = value
        elif source == "auto" and (label in judges if scorers is not None else name in judges):
            if meta and json.loads(meta).get("error"):
                continue  # an unparsable reply or failed call is not the judge's opinion
            auto.setdefault(label, {})[run_id] = value
    records = []
    for judge_label in sorted(auto):
        for human_label in LABELS:
            shared = sorted(set(auto[judge_label]) & set(human.get(human_label, {})))
            j = np.array([auto[judge_label][r] for r in shared], dtype=float)
            h = np.array([human[human_label][r] for r in shared], dtype=float)
            if not len(shared):
                continue
            rho = p = math.nan
            if len(shared) >= 2 and np.ptp(j) > 0 and np.ptp(h) > 0:
                res = stats.spearmanr(j, h)
                rho, p = float(res.statistic), float(res.pvalue)
            jb, hb = (j >= threshold).astype(int), (h >= threshold).astype(int)
            records.append({"judge": judge_label, "human": human_label, "n": len(shared), "spearman_rho": rho, "spearman_p": p,
                            "kappa": cohen_kappa(jb, hb), "agreement": float(np.mean(jb == hb)),
                            "judge_mean": float(j.mean()), "human_mean": float(h.mean())})
    return pd.DataFrame.from_records(records, columns=CALIBRATION_COLUMNS)


__all__ = ["Paired", "bootstrap_interval", "calibration", "cohen_kappa", "compare", "interval", "paired", "t_interval",
           "versus_best"]
