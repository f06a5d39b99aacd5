"""The one formula for a run's weighted score, and the weights an experiment gives its scorers.

Runner, leaderboard, ratings, rescoring and guided search all rank by this function, so a run's
score means the same wherever it is read. A missing score (``None``: the scorer failed or gave
no value) is left out of the mean and counted elsewhere; it is never a 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def weights_of(scorers: Iterable[Any]) -> dict[str, float]:
    """Column label → weight, from scorer specs (objects with ``column``/``weight``) or stored dicts."""
    weights: dict[str, float] = {}
    for s in scorers:
        if isinstance(s, Mapping):
            weights[s.get("label") or s["name"]] = float(s.get("weight", 1.0))
        else:
            weights[s.column] = float(s.weight)
    return weights


def weighted_score(scores: Iterable[tuple[Any, ...]], weights: Mapping[str, float]) -> float | None:
    """The weighted mean of ``(label, value, ...)`` tuples; ``None`` when no weighted score is present."""
    present = [(label, value) for label, value, *_ in scores if value is not None]
    total = sum(weights.get(label, 0.0) for label, _ in present)
    if not present or total <= 0:
        return None
    return sum(weights.get(label, 0.0) * value for label, value in present) / total
