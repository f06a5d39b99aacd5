"""A configuration's mean score over samples, its 95% interval, and whether it differs from the best.

Plain Python on lists of floats, so a leaderboard (printed after every CLI run) imports neither
numpy, pandas nor scipy: together they cost more start-up than a short sweep. Sums follow numpy's
pairwise order (:func:`fsum_like_numpy`), so every mean and standard deviation equals, to the last
bit, what the pandas leaderboard computed before; the Student-t quantile and tail come from
:mod:`promptlooper.student_t`. Only the seeded bootstrap imports numpy, because its figures are
defined by numpy's random stream.

* :func:`t_interval` / :func:`bootstrap_interval` / :func:`interval`: a 95% interval of the mean.
* :func:`versus_best`: every configuration against the best one in a paired t-test over the samples
  both finished, for the leaderboard's ``distinguishable`` column.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import student_t

ALPHA = 0.05
MIN_SHARED = 3  # fewer shared samples than this: two configurations are never called distinguishable


def is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fsum_like_numpy(values: Sequence[float]) -> float:
    """Sum in numpy's pairwise order (8 accumulators, blocks of 128), bit for bit ``np.sum``."""
    n = len(values)
    if n < 8:
        total = 0.0
        for v in values:
            total += v
        return total
    if n <= 128:
        r = list(values[:8])
        i = 8
        while i < n - n % 8:
            for j in range(8):
                r[j] += values[i + j]
            i += 8
        total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for v in values[i:]:
            total += v
        return total
    half = n // 2
    half -= half % 8
    return fsum_like_numpy(values[:half]) + fsum_like_numpy(values[half:])


def mean(values: Sequence[float]) -> float:
    return fsum_like_numpy(values) / len(values) if len(values) else math.nan


def std(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof = 1), as ``np.std(values, ddof=1)``."""
    n = len(values)
    if n < 2:
        return math.nan
    m = mean(values)
    return math.sqrt(fsum_like_numpy([(v - m) * (v - m) for v in values]) / (n - 1))


def t_interval(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean, clipped to 0..1 (NaN for fewer than 2 values)."""
    values = [float(v) for v in values]
    n = len(values)
    if n < 2:
        return (math.nan, math.nan)
    m = mean(values)
    half = student_t.ppf(0.5 + confidence / 2, n - 1) * std(values) / math.sqrt(n)
    return (max(0.0, m - half), min(1.0, m + half))


def bootstrap_interval(values: Iterable[float], confidence: float = 0.95, n_resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (seeded, so a leaderboard is reproducible)."""
    import numpy as np  # lazy: only this interval needs it (numpy's seeded stream defines its figures)

    arr = np.asarray(list(values), dtype=float)
    n = len(arr)
    if n < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, n, size=(n_resamples, n))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return (float(low), float(high))


def interval(values: Iterable[float], method: str = "t", confidence: float = 0.95) -> tuple[float, float]:
    if method == "t":
        return t_interval(values, confidence)
    if method == "bootstrap":
        return bootstrap_interval(values, confidence)
    raise ValueError(f"interval must be 't' or 'bootstrap', not {method!r}")


def versus_best(per_sample: Iterable[Mapping[str, Any]], metric: str, best: str, *, alpha: float = ALPHA,
                min_shared: int = MIN_SHARED) -> dict[str, Any]:
    """For each configuration: 'best', True (significantly different from the best in a paired
    t-test over shared samples, p < alpha) or False (not, or fewer than ``min_shared`` shared).

    ``per_sample``: rows with ``config_id``, ``sample_id`` and ``metric`` (one per pair; rows whose
    metric is missing are ignored)."""
    table: dict[str, dict[str, float]] = {}
    samples: set[str] = set()
    for row in per_sample:
        value = row.get(metric)
        if not is_missing(value):
            table.setdefault(str(row["config_id"]), {})[row["sample_id"]] = float(value)
            samples.add(row["sample_id"])
    if best not in table:
        return {c: False for c in table} | {best: "best"}
    columns = sorted(samples)  # the sample order numpy summed in, so p-values are unchanged
    reference = table[best]
    out: dict[str, Any] = {}
    for config, values in table.items():
        diffs = [values[s] - reference[s] if s in values and s in reference else None for s in columns]
        n = sum(d is not None for d in diffs)
        out[config] = bool(n >= min_shared and _paired_p(diffs, n) < alpha)
    out[best] = "best"
    return out


def _paired_p(diffs: list[float | None], n: int) -> float:
    """Two-sided p-value of a paired t-test on the present ``diffs`` (NaN when undefined)."""
    if n < 2:
        return math.nan
    d = [0.0 if x is None else x for x in diffs]
    m = fsum_like_numpy(d) / n
    var = fsum_like_numpy([0.0 if x is None else (x - m) ** 2 for x in diffs]) / (n - 1)
    if var <= 1e-24:  # every difference equal: no spread, so "different" exactly when not zero
        return 1.0 if abs(m) <= 1e-12 else 0.0
    return 2 * student_t.sf(abs(m / math.sqrt(var / n)), n - 1)
