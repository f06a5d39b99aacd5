"""Rankings you can trust: intervals, paired comparisons, and how well judges agree with people.

* :func:`paired` / :func:`compare`: two configurations on the samples both have finished. Pairing
  removes the variation between samples (some questions are hard for every prompt), so a real
  difference shows with far fewer samples than comparing two independent means. Mean difference,
  its paired-t interval and the two-sided p-value (what ``scipy.stats.ttest_rel`` gives).
* :func:`calibration`: per judge scorer, agreement with human ratings on the runs having both:
  Spearman's rho (and its p-value, as ``scipy.stats.spearmanr`` gives it), and Cohen's kappa on
  values binarised at 0.5.

A configuration's interval and :func:`~promptlooper.intervals.versus_best` are in
:mod:`promptlooper.intervals` (the leaderboard's arithmetic); the t distribution in :mod:`promptlooper.student_t`, so nothing here
needs scipy. This module reads the leaderboard and never the reverse.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import student_t
from .errors import NotFoundError
from .intervals import ALPHA
from .leaderboard import leaderboard, per_sample_scores
from .ratings import LABELS
from .scorers.base import registered
from .scoring import weights_of

if TYPE_CHECKING:
    from .store import Store


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
    half = student_t.ppf(0.5 + confidence / 2, n - 1) * se
    t = mean / se
    p = 2 * student_t.sf(abs(t), n - 1)
    return Paired(n, float(a.mean()), float(b.mean()), mean, mean - half, mean + half, p, t)


def _weights(experiment: dict[str, Any]) -> dict[str, float]:
    return weights_of(experiment["spec"].get("scorers", []))


def resolve_config(store: Store, experiment: dict[str, Any], ref: str | int) -> str:
    """A configuration id from an id prefix, 'best', or a leaderboard rank (an int)."""
    if ref == "best":
        ref = 1
    if isinstance(ref, int) and not isinstance(ref, bool):
        board = leaderboard(store, experiment)
        if not 1 <= ref <= len(board):
            raise NotFoundError(f"no configuration ranked {ref}; the leaderboard has {len(board)}")
        return str(board.iloc[ref - 1]["full_config_id"])
    return str(store.configuration(experiment["id"], str(ref))["id"])


def compare(store: Store, experiment_ref: str, config_a: str | int, config_b: str | int, *, scorer: str | None = None,
            confidence: float = 0.95) -> dict[str, Any]:
    """Paired comparison of two configurations over the samples both finished.

    ``config_a`` / ``config_b``: an id prefix, ``"best"``, or a leaderboard rank (int). ``scorer``:
    a scorer's column instead of the weighted score. Repeats of a sample are averaged first.
    Returns n, both means, mean_diff (a - b), ci_low / ci_high, p_value, t, significant
    (p < 0.05), better ('a', 'b' or None) and the samples only one of them has.
    """
    experiment = store.experiment(experiment_ref)
    a_id, b_id = resolve_config(store, experiment, config_a), resolve_config(store, experiment, config_b)
    table = per_sample_scores(store, experiment["id"], _weights(experiment))
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


def spearman(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Spearman's rho (Pearson's r of average ranks) and its two-sided p-value from Student's t
    with n - 2 degrees of freedom, as ``scipy.stats.spearmanr`` computes them."""
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    rho = float(np.corrcoef(ra, rb)[0, 1])
    n = len(ra)
    if n < 3 or abs(rho) >= 1.0:
        return rho, (0.0 if n >= 3 else math.nan)
    t = rho * math.sqrt((n - 2) / ((1.0 + rho) * (1.0 - rho)))
    return rho, 2 * student_t.sf(abs(t), n - 2)


CALIBRATION_COLUMNS = ["judge", "human", "n", "spearman_rho", "spearman_p", "kappa", "agreement", "judge_mean", "human_mean"]


def calibration(store: Store, experiment_ref: str, *, scorers: list[str] | None = None, threshold: float = 0.5) -> pd.DataFrame:
    """How each judge scorer agrees with human ratings, on runs that have both.

    One row per (judge column, human rating): n, Spearman's rho and its p-value, Cohen's kappa
    and raw agreement of the values binarised at ``threshold`` (a 1-5 judge's 3 and 3 stars
    count as positive), and both means. ``scorers`` picks the automatic columns to calibrate
    (default: every scorer that calls a model, i.e. judges).
    """
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
                rho, p = spearman(j, h)
            jb, hb = (j >= threshold).astype(int), (h >= threshold).astype(int)
            records.append({"judge": judge_label, "human": human_label, "n": len(shared), "spearman_rho": rho, "spearman_p": p,
                            "kappa": cohen_kappa(jb, hb), "agreement": float(np.mean(jb == hb)),
                            "judge_mean": float(j.mean()), "human_mean": float(h.mean())})
    return pd.DataFrame.from_records(records, columns=CALIBRATION_COLUMNS)


__all__ = ["Paired", "calibration", "cohen_kappa", "compare", "paired", "resolve_config", "spearman"]
